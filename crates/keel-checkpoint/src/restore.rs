//! Writing checkpointed content back: only plain relative paths, only through real
//! directories beneath the root (a symlink that a turn left in the way is never
//! followed out of the workspace).

use std::path::{Component, Path, PathBuf};

use crate::{CheckpointError, Objects};

/// `relative` names a file beneath `root` through directories that are not symlinks.
pub(crate) fn check_path(root: &Path, relative: &str) -> Result<PathBuf, CheckpointError> {
    let outside = || CheckpointError::Outside(relative.to_string());
    let path = Path::new(relative);
    if relative.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(outside());
    }
    let mut at = root.to_path_buf();
    let mut components = path.components().peekable();
    while let Some(component) = components.next() {
        at.push(component);
        if components.peek().is_none() {
            break;
        }
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(outside()), // a symlink or a file where a folder was
            Err(_) => break,                // the rest does not exist: it will be made
        }
    }
    Ok(root.join(path))
}

/// The hash of what is at `relative` now (stored, so that it can be put back), `None`
/// when there is no file.
pub(crate) fn current(
    root: &Path,
    relative: &str,
    objects: &Objects,
) -> Result<Option<String>, CheckpointError> {
    let path = check_path(root, relative)?;
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => {
            let bytes = std::fs::read(&path).map_err(|e| CheckpointError::io("read", &path, e))?;
            Ok(Some(objects.write(&bytes)?))
        }
        _ => Ok(None),
    }
}

/// Makes `relative` hold the blob `target`, or removes it (`None`).
pub(crate) fn put(
    root: &Path,
    relative: &str,
    target: Option<&str>,
    objects: &Objects,
) -> Result<(), CheckpointError> {
    let path = check_path(root, relative)?;
    let existing = std::fs::symlink_metadata(&path).ok();
    if existing.as_ref().is_some_and(|m| m.is_symlink()) || (target.is_none() && existing.is_some())
    {
        if existing.as_ref().is_some_and(|m| m.is_dir()) {
            return Err(CheckpointError::Outside(relative.to_string()));
        }
        std::fs::remove_file(&path).map_err(|e| CheckpointError::io("remove", &path, e))?;
    }
    let Some(hash) = target else {
        remove_empty_parents(root, &path);
        return Ok(());
    };
    let bytes = objects.read(hash)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| CheckpointError::io("create", parent, e))?;
        // Made just now, through real folders only: check again before writing.
        check_path(root, relative)?;
    }
    // In place: an existing file keeps its permissions, a new one gets the umask's.
    std::fs::write(&path, bytes).map_err(|e| CheckpointError::io("write", &path, e))
}

/// Folders left empty by removing a file the turn created go too (up to the root).
fn remove_empty_parents(root: &Path, path: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}
