//! The blob store: each distinct file content once, named by its sha256, written
//! whole or not at all (a temporary file renamed into place), so a crash never leaves
//! a half blob behind a good name.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use keel_protocol::FileChange;
use sha2::{Digest, Sha256};

use crate::{CheckpointError, unified_diff};

/// sha256 of `bytes`, in lowercase hex.
pub fn hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Content-addressed blobs in one directory (`ab/cdef…`).
pub struct Objects {
    dir: PathBuf,
}

impl Objects {
    /// The blob store of a checkpoint data directory.
    pub fn of(data_dir: &Path) -> Result<Self, CheckpointError> {
        Self::open(&data_dir.join("objects"))
    }

    pub fn open(dir: &Path) -> Result<Self, CheckpointError> {
        std::fs::create_dir_all(dir).map_err(|e| CheckpointError::io("create", dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Where a blob lives; `None` for anything that is not a sha256 in hex (names come
    /// from stored events, which are not trusted to name paths).
    fn path(&self, hash: &str) -> Option<PathBuf> {
        (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| self.dir.join(&hash[..2]).join(&hash[2..]))
    }

    pub fn contains(&self, hash: &str) -> bool {
        self.path(hash).is_some_and(|p| p.is_file())
    }

    /// Stores `bytes` (once) and returns their hash.
    pub fn write(&self, bytes: &[u8]) -> Result<String, CheckpointError> {
        let hash = hash(bytes);
        let Some(path) = self.path(&hash) else {
            unreachable!("a sha256 in hex names a blob")
        };
        if path.is_file() {
            return Ok(hash);
        }
        let shard = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(shard).map_err(|e| CheckpointError::io("create", shard, e))?;
        let mut file = tempfile::NamedTempFile::new_in(shard)
            .map_err(|e| CheckpointError::io("create a blob in", shard, e))?;
        file.write_all(bytes)
            .and_then(|()| file.as_file().sync_data())
            .map_err(|e| CheckpointError::io("write a blob in", shard, e))?;
        file.persist(&path)
            .map_err(|e| CheckpointError::io("store blob", &path, e.error))?;
        Ok(hash)
    }

    /// The unified diff of some changes, from their blobs (as `git diff` shows it,
    /// without colour).
    pub fn diff(&self, changes: &[FileChange]) -> Result<String, CheckpointError> {
        let mut out = String::new();
        for change in changes {
            let read = |hash: &Option<String>| hash.as_deref().map(|h| self.read(h)).transpose();
            let (before, after) = (read(&change.before)?, read(&change.after)?);
            out.push_str(&unified_diff(
                &change.path,
                before.as_deref(),
                after.as_deref(),
            ));
        }
        Ok(out)
    }

    pub fn read(&self, hash: &str) -> Result<Vec<u8>, CheckpointError> {
        let path = self
            .path(hash)
            .ok_or_else(|| CheckpointError::MissingBlob(hash.to_string()))?;
        std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CheckpointError::MissingBlob(hash.to_string()),
            _ => CheckpointError::io("read blob", &path, e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_stored_once_by_content_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(dir.path()).unwrap();
        let a = objects.write(b"hello\n").unwrap();
        assert_eq!(
            a,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        assert_eq!(objects.write(b"hello\n").unwrap(), a);
        assert_eq!(objects.read(&a).unwrap(), b"hello\n");
        assert!(objects.contains(&a));
        // Names that are not hashes never become paths.
        assert!(matches!(
            objects.read("../../etc/passwd"),
            Err(CheckpointError::MissingBlob(_))
        ));
        assert!(!objects.contains(&"0".repeat(64)));
    }
}
