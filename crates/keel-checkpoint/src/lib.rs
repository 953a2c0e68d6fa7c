//! Checkpoints of a workspace, kept in keel's data directory and never in the user's
//! `.git`: every file's bytes as content-addressed blobs, and a stat index per
//! workspace so that a snapshot only reads the files whose size or modification time
//! moved. A turn's changes are the difference of the snapshots before and after it —
//! whatever tool made them, `bash` included — and undoing it writes the "before" blobs
//! back (removing the files it created), beneath the workspace root only.
//!
//! What is not checkpointed: files the project's ignore files leave out (`target/`,
//! `node_modules/` and the like), `.git`, tool caches (`__pycache__`, …), symlinks and
//! files over [`MAX_FILE_BYTES`]. Undo never touches them.

mod diff;
mod objects;
mod restore;
mod snapshot;

use std::path::{Path, PathBuf};

pub use diff::{line_counts, unified_diff};
use keel_protocol::FileChange;
pub use objects::Objects;
pub use snapshot::Tree;

/// Files larger than this are not checkpointed.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// A workspace with more files than this is not checkpointed...
pub const MAX_FILES: usize = 100_000;
/// ... nor one whose checkpointed files hold more bytes than this in all.
pub const MAX_TOTAL_BYTES: u64 = 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the workspace has more than {MAX_FILES} files or {} MiB: it is not checkpointed",
        MAX_TOTAL_BYTES >> 20
    )]
    TooBig,
    #[error("the checkpoint store has no blob {0} (was keel's data directory cleaned?)")]
    MissingBlob(String),
    #[error("refusing to write {0}: it is not a plain path beneath the workspace root")]
    Outside(String),
}

impl CheckpointError {
    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        CheckpointError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The checkpoints of one workspace.
pub struct Checkpoints {
    root: PathBuf,
    objects: Objects,
    index: snapshot::Index,
    index_path: PathBuf,
}

impl Checkpoints {
    /// Opens the checkpoint store under `data_dir` (`data_dir/objects` for the blobs,
    /// `data_dir/index` for the workspaces' stat indexes) for the workspace at `root`.
    pub fn open(data_dir: &Path, root: &Path) -> Result<Self, CheckpointError> {
        let root = root
            .canonicalize()
            .map_err(|e| CheckpointError::io("open workspace", root, e))?;
        let objects = Objects::of(data_dir)?;
        let index_dir = data_dir.join("index");
        std::fs::create_dir_all(&index_dir)
            .map_err(|e| CheckpointError::io("create", &index_dir, e))?;
        let index_path = index_dir.join(format!(
            "{}.json",
            &objects::hash(root.display().to_string().as_bytes())[..24]
        ));
        let index = snapshot::Index::load(&index_path);
        Ok(Self {
            root,
            objects,
            index,
            index_path,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    /// The workspace as it is now: every checkpointed file's blob stored.
    pub fn snapshot(&mut self) -> Result<Tree, CheckpointError> {
        let tree = snapshot::take(&self.root, &self.objects, &mut self.index)?;
        self.index.save(&self.index_path);
        Ok(tree)
    }

    /// Keeps `tree` under `name` (a turn's start, so that a turn cut off by a crash can
    /// still be undone), written whole or not at all.
    pub fn save_tree(&self, name: &str, tree: &Tree) -> Result<(), CheckpointError> {
        let path = self.tree_path(name)?;
        let json = serde_json::to_vec(tree).map_err(|e| {
            CheckpointError::io("encode", &path, std::io::Error::other(e.to_string()))
        })?;
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(|e| CheckpointError::io("create", dir, e))?;
        let mut file = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| CheckpointError::io("create a file in", dir, e))?;
        std::io::Write::write_all(&mut file, &json)
            .map_err(|e| CheckpointError::io("write", &path, e))?;
        file.persist(&path)
            .map_err(|e| CheckpointError::io("save", &path, e.error))?;
        Ok(())
    }

    /// The tree saved under `name`, if there is one.
    pub fn load_tree(&self, name: &str) -> Option<Tree> {
        let bytes = std::fs::read(self.tree_path(name).ok()?).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Forgets the tree saved under `name`.
    pub fn drop_tree(&self, name: &str) {
        if let Ok(path) = self.tree_path(name) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Saved trees live next to the index: `trees/NAME.json` (names are ids and numbers).
    fn tree_path(&self, name: &str) -> Result<PathBuf, CheckpointError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(CheckpointError::Outside(name.to_string()));
        }
        let dir = self.index_path.parent().and_then(Path::parent);
        Ok(dir
            .unwrap_or(&self.root)
            .join("trees")
            .join(format!("{name}.json")))
    }

    /// What changed from `before` to `after`, sorted by path, with line counts.
    pub fn changes(&self, before: &Tree, after: &Tree) -> Vec<FileChange> {
        before
            .changed_paths(after)
            .into_iter()
            .map(|path| {
                let (b, a) = (before.get(&path), after.get(&path));
                self.change(path, b.map(str::to_string), a.map(str::to_string))
            })
            .collect()
    }

    /// A change with its line counts.
    fn change(&self, path: String, before: Option<String>, after: Option<String>) -> FileChange {
        let text = |hash: &Option<String>| match hash {
            None => Some(Vec::new()),
            Some(hash) => self.objects.read(hash).ok(),
        };
        let counts = match (text(&before), text(&after)) {
            (Some(old), Some(new)) => line_counts(&old, &new),
            _ => None,
        };
        FileChange {
            path,
            before,
            after,
            added: counts.map(|c| c.0),
            removed: counts.map(|c| c.1),
        }
    }

    /// Puts each path back to its target (`None`: removed), first storing what is there
    /// now. Returns the changes made (what was there → the target), so that they can be
    /// put back in turn; paths already at their target are left out. Paths are checked
    /// before anything is written: all beneath the root, or nothing is done.
    pub fn restore(
        &mut self,
        targets: &[(String, Option<String>)],
    ) -> Result<Vec<FileChange>, CheckpointError> {
        for (path, target) in targets {
            restore::check_path(&self.root, path)?;
            if let Some(hash) = target
                && !self.objects.contains(hash)
            {
                return Err(CheckpointError::MissingBlob(hash.clone()));
            }
        }
        let mut done = Vec::new();
        for (path, target) in targets {
            let now = restore::current(&self.root, path, &self.objects)?;
            if &now == target {
                continue;
            }
            restore::put(&self.root, path, target.as_deref(), &self.objects)?;
            done.push(self.change(path.clone(), now, target.clone()));
        }
        done.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(done)
    }

    /// The unified diff of some changes (as `git diff` shows it, without colour).
    pub fn diff(&self, changes: &[FileChange]) -> Result<String, CheckpointError> {
        self.objects.diff(changes)
    }
}
