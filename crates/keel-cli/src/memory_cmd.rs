//! `keel memory`: the project memory, for people.

use anyhow::{Context, Result};
use keel_store::MemoryKind;

use crate::cli::{MemoryArgs, MemoryCommand};
use crate::run::workspace_dir;
use crate::sessions_cmd::open_store;

pub fn run(args: MemoryArgs) -> Result<u8> {
    let store = open_store()?;
    let dir = workspace_dir(args.workspace)?;
    let root = dir
        .canonicalize()
        .with_context(|| format!("cannot open workspace {}", dir.display()))?;
    let project = root.display().to_string();
    let print = |memories: Vec<keel_store::Memory>| {
        for mut memory in memories {
            let changed = store
                .check_staleness(&root, &mut memory)
                .unwrap_or_default();
            let kind = match memory.kind {
                MemoryKind::Fact => "fact",
                MemoryKind::Change => "change",
            };
            let stale = if changed.is_empty() {
                String::new()
            } else {
                format!("  [possibly stale: {} changed]", changed.join(", "))
            };
            println!("{:>5}  {kind:<6}  {}{stale}", memory.id, memory.text);
        }
    };
    match args.command {
        MemoryCommand::List { limit } => print(store.memories(&project, limit)?),
        MemoryCommand::Search { query } => print(store.search(&project, &query, 20)?),
        MemoryCommand::Add { text } => {
            let workspace = keel_tools::Workspace::new(&root)?;
            let files = keel_agent::files_named_in(&workspace, &text);
            let id = store.add_fact(&project, text.trim(), None, &files)?;
            println!("remembered (memory {id})");
        }
        MemoryCommand::Forget { id } => {
            store.forget(&project, id)?;
            println!("forgot memory {id}");
        }
        MemoryCommand::Reindex => {
            let (mut checked, mut stale) = (0, 0);
            for (project, mut memory) in store.all_memories(None)? {
                let changed = store.check_staleness(std::path::Path::new(&project), &mut memory)?;
                checked += 1;
                stale += usize::from(!changed.is_empty());
            }
            println!("checked {checked} memories: {stale} possibly stale");
        }
    }
    Ok(0)
}
