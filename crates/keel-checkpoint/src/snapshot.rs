//! Taking a snapshot: walk the workspace as keel's tools see it, store each file's
//! blob, and remember (size, modification time) → hash so that the next snapshot
//! reads only the files that moved.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::{CheckpointError, MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES, Objects};

/// A workspace at one moment: relative path → blob hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree(BTreeMap<String, String>);

impl Tree {
    pub fn get(&self, path: &str) -> Option<&str> {
        self.0.get(path).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Paths whose content differs between the two trees (added, changed, removed).
    pub fn changed_paths(&self, other: &Tree) -> Vec<String> {
        let paths: BTreeSet<&String> = self.0.keys().chain(other.0.keys()).collect();
        paths
            .into_iter()
            .filter(|p| self.0.get(*p) != other.0.get(*p))
            .cloned()
            .collect()
    }
}

/// Tool caches: rewritten by every test run, never the user's work.
fn cache(path: &str) -> bool {
    path.split('/').any(|c| {
        matches!(
            c,
            "__pycache__" | ".pytest_cache" | ".mypy_cache" | ".ruff_cache"
        )
    })
}

/// How recent a modification must be for its stat not to be trusted.
const RACY_NS: u128 = 2_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stat {
    size: u64,
    modified_ns: u128,
    hash: String,
}

/// The stat index of one workspace, kept next to the blobs.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Index {
    files: HashMap<String, Stat>,
}

impl Index {
    /// The saved index, or an empty one (everything is read again: slower, not wrong).
    pub(crate) fn load(path: &Path) -> Self {
        std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Saves the index whole (temporary file, renamed). A failure only costs speed.
    pub(crate) fn save(&self, path: &Path) {
        let Ok(json) = serde_json::to_vec(self) else {
            return;
        };
        let Some(dir) = path.parent() else { return };
        if let Ok(mut file) = tempfile::NamedTempFile::new_in(dir) {
            use std::io::Write as _;
            if file.write_all(&json).is_ok() {
                let _ = file.persist(path);
            }
        }
    }
}

pub(crate) fn take(
    root: &Path,
    objects: &Objects,
    index: &mut Index,
) -> Result<Tree, CheckpointError> {
    let mut tree = BTreeMap::new();
    let mut seen = HashMap::new();
    let mut total = 0;
    // A file modified this recently may change again within the clock's resolution
    // with the same size: its stat is not trusted ("racily clean", as git calls it).
    let trusted_before = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .saturating_sub(RACY_NS);
    let walk = ignore::WalkBuilder::new(root)
        .hidden(false)
        .require_git(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .build();
    for entry in walk.flatten() {
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Ok(relative) = entry.path().strip_prefix(root) else {
            continue;
        };
        let Some(relative) = relative.to_str().map(|r| r.replace('\\', "/")) else {
            continue; // not UTF-8: cannot travel in events
        };
        if cache(&relative) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if meta.len() > MAX_FILE_BYTES {
            continue;
        }
        total += meta.len();
        if tree.len() >= MAX_FILES || total > MAX_TOTAL_BYTES {
            return Err(CheckpointError::TooBig);
        }
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let known = index
            .files
            .get(&relative)
            .filter(|s| s.size == meta.len() && s.modified_ns == modified_ns)
            .filter(|_| modified_ns != 0 && modified_ns < trusted_before)
            .filter(|s| objects.contains(&s.hash))
            .map(|s| s.hash.clone());
        let hash = match known {
            Some(hash) => hash,
            None => match std::fs::read(entry.path()) {
                Ok(bytes) => objects.write(&bytes)?,
                Err(_) => continue, // gone or unreadable since the walk saw it
            },
        };
        seen.insert(
            relative.clone(),
            Stat {
                size: meta.len(),
                modified_ns,
                hash: hash.clone(),
            },
        );
        tree.insert(relative, hash);
    }
    index.files = seen;
    Ok(Tree(tree))
}
