//! The in-memory refresh of a repo map after one file changes, timed (bench/repomap.py
//! runs it): the map is opened warm and refreshed once, then FILE is changed N times;
//! each time the map updates that file and renders again. Prints one JSON object.
//!
//! usage: refresh ROOT FILE [N] [CACHE]   (FILE relative to ROOT; it is appended to)

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use keel_map::{Focus, RepoMap};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: refresh ROOT FILE [N] [CACHE]");
        std::process::exit(2);
    }
    let root = PathBuf::from(&args[1]);
    let file = &args[2];
    let rounds: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(10);
    let cache = args.get(4).map(PathBuf::from);
    let started = Instant::now();
    let mut map = RepoMap::open(&root, cache);
    if let Err(e) = map.refresh() {
        eprintln!("{e}");
        std::process::exit(1);
    }
    let tokens = |s: &str| s.len().div_ceil(4);
    let focus = Focus::default();
    let first = map.render(&focus, 2048, &tokens);
    let opened_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut times = Vec::new();
    for round in 0..rounds {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(root.join(file))
            .expect("FILE must exist");
        writeln!(f, "\ndef keel_bench_added_{round}():\n    return {round}").expect("append");
        drop(f);
        let started = Instant::now();
        let changed = map.update(&[file.as_str()]);
        let t = started.elapsed();
        let text = map.render(&focus, 2048, &tokens);
        if std::env::var_os("KEEL_MAP_TIMING").is_some() {
            eprintln!("update {t:?} render {:?}", started.elapsed() - t);
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(changed && !text.is_empty());
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    println!(
        "{{\"files\": {}, \"opened_ms\": {opened_ms:.1}, \"first_map_bytes\": {}, \"refresh_ms\": {{\"median\": {:.1}, \"max\": {:.1}}}, \"rounds\": {rounds}}}",
        map.files(),
        first.len(),
        times[times.len() / 2],
        times[times.len() - 1],
    );
}
