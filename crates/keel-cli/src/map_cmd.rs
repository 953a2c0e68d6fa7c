//! `keel map`: the repo map of a project, as the agent's context carries it.

use std::time::Instant;

use anyhow::{Context, Result};
use keel_map::{Focus, RepoMap};

use crate::cli::MapArgs;

pub fn run(args: MapArgs) -> Result<u8> {
    let root = match args.workspace {
        Some(dir) => dir,
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    let root = root
        .canonicalize()
        .with_context(|| format!("no such directory: {}", root.display()))?;
    let cache = if args.no_cache {
        None
    } else {
        crate::config::keel_home().map(|home| keel_map::cache_path(&home, &root))
    };
    let started = Instant::now();
    let mut map = RepoMap::open(&root, cache);
    map.refresh()?;
    let built = started.elapsed();
    let focus = Focus {
        files: args.focus,
        names: args.name,
    };
    let text = map.render(&focus, args.tokens, &|s: &str| s.len().div_ceil(4));
    let total = started.elapsed();
    print!("{text}");
    if args.stats {
        eprintln!(
            "keel map: {} files, {} parsed, built in {} ms, rendered in {} ms",
            map.files(),
            map.parsed(),
            built.as_millis(),
            (total - built).as_millis()
        );
    }
    Ok(0)
}
