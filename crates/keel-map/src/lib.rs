//! The repo map: what is defined where in a project, and what matters for a task.
//!
//! Each source file of a language keel knows (Python, Rust, JavaScript, TypeScript, Go,
//! C, C++, Java) is parsed with tree-sitter, and its definitions and references are
//! read with the grammar's own tags query. Files are ranked by a PageRank over "file A
//! uses a name file B defines", personalised to the files and names the task and
//! conversation mention; the definitions of the top files are rendered as their
//! signature lines within a token budget. Tags are cached on disk by file size and
//! modification time, so after one file changes only that file is parsed again.

mod cache;
mod disk;
mod graph;
mod lang;
mod rank;
mod render;
mod tags;

use std::path::{Path, PathBuf};

pub use cache::{CacheError, RepoMap};
pub use lang::supported;
pub use rank::Focus;
pub use tags::{Kind, Tag};

/// Where a workspace's map cache lives under a data directory.
pub fn cache_path(data_dir: &Path, root: &Path) -> PathBuf {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    root.hash(&mut hasher);
    data_dir
        .join("maps")
        .join(format!("{:016x}.map", hasher.finish()))
}
