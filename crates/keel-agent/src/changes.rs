//! What a turn changed in the workspace: a snapshot of file sizes and modification
//! times before and after the turn (so changes made through `bash` count too), and
//! the content of files before the agent's own write/edit calls touched them, for
//! line statistics and for putting them back when an attempt starts afresh.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::SystemTime;

use keel_store::{FileRef, content_hash};

/// Files looked at by one snapshot; beyond this a change may go unnoticed.
const SNAPSHOT_FILES: usize = 20_000;
/// Content kept for line statistics only below this size.
const CONTENT_BYTES: u64 = 1024 * 1024;

type Snapshot = HashMap<String, (u64, Option<SystemTime>)>;

pub(crate) struct ChangeTracker {
    before: Snapshot,
    /// Content before the first write/edit of the turn.
    contents: HashMap<String, Original>,
}

/// A file as it was before the turn's first write or edit of it.
#[derive(Debug, Clone, PartialEq)]
enum Original {
    Absent,
    Bytes(Vec<u8>),
    /// Over [`CONTENT_BYTES`], or unreadable: not kept.
    Unknown,
}

impl Original {
    fn read(path: &Path) -> Self {
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Original::Absent,
            Ok(meta) if meta.is_file() && meta.len() <= CONTENT_BYTES => std::fs::read(path)
                .map(Original::Bytes)
                .unwrap_or(Original::Unknown),
            _ => Original::Unknown,
        }
    }

    /// As text, for line statistics (`Some("")` for a file that did not exist).
    fn text(&self) -> Option<String> {
        match self {
            Original::Absent => Some(String::new()),
            Original::Bytes(bytes) => String::from_utf8(bytes.clone()).ok(),
            Original::Unknown => None,
        }
    }
}

/// The agent's files at one moment of the turn (the best attempt so far).
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    files: HashMap<String, Original>,
}

impl Kept {
    /// The kept files that differ from the start of the turn, with their text (`None`:
    /// removed, or not text).
    pub(crate) fn changed(&self, tracker: &ChangeTracker) -> Vec<(String, Option<String>)> {
        let mut changed: Vec<(String, Option<String>)> = self
            .files
            .iter()
            .filter(|(path, kept)| tracker.contents.get(*path) != Some(*kept))
            .map(|(path, kept)| {
                let text = match kept {
                    Original::Bytes(bytes) => String::from_utf8(bytes.clone()).ok(),
                    _ => None,
                };
                (path.clone(), text)
            })
            .collect();
        changed.sort();
        changed
    }
}

/// Files a tool or a test run writes on its own (byte code, caches): a change to them
/// is not the agent's work.
fn generated(path: &str) -> bool {
    path.split('/')
        .any(|c| c == "__pycache__" || c == ".pytest_cache" || c == ".mypy_cache")
}

fn snapshot(root: &Path) -> Snapshot {
    let mut files = Snapshot::new();
    let walk = keel_tools::walker(root).build();
    for entry in walk
        .flatten()
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
    {
        if files.len() >= SNAPSHOT_FILES {
            break;
        }
        if let (Ok(relative), Ok(meta)) = (entry.path().strip_prefix(root), entry.metadata()) {
            files.insert(
                relative.display().to_string(),
                (meta.len(), meta.modified().ok()),
            );
        }
    }
    files
}

/// Workspaces up to this many files are fingerprinted by content, not only by
/// modification time (rewriting a file with the same bytes is not a change).
const CONTENT_FINGERPRINT_FILES: usize = 2_000;
/// ... and up to this many bytes in all, so the check stays cheap on every iteration.
const CONTENT_FINGERPRINT_BYTES: u64 = 16 * 1024 * 1024;

/// A digest of the workspace: its file list with sizes and, for workspaces up to
/// [`CONTENT_FINGERPRINT_FILES`] and [`CONTENT_FINGERPRINT_BYTES`], the content of files up to 1 MiB (larger ones, and
/// larger workspaces, by modification time). Equal digests mean nothing changed — what
/// stall detection asks after a call that may write.
pub(crate) fn fingerprint(root: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut entries: Vec<_> = snapshot(root).into_iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let by_content = entries.len() <= CONTENT_FINGERPRINT_FILES
        && entries.iter().map(|(_, (size, _))| size).sum::<u64>() <= CONTENT_FINGERPRINT_BYTES;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for (path, (size, modified)) in &entries {
        path.hash(&mut hasher);
        size.hash(&mut hasher);
        let content = (by_content && *size <= CONTENT_BYTES)
            .then(|| std::fs::read(root.join(path)).ok())
            .flatten();
        match content {
            Some(bytes) => bytes.hash(&mut hasher),
            None => modified.hash(&mut hasher),
        }
    }
    hasher.finish()
}

/// Lines added and removed, counted as a multiset difference of lines.
fn line_stats(before: &str, after: &str) -> (i64, i64) {
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for line in before.lines() {
        *counts.entry(line).or_default() += 1;
    }
    let mut added = 0;
    for line in after.lines() {
        match counts.get_mut(line) {
            Some(n) if *n > 0 => *n -= 1,
            _ => added += 1,
        }
    }
    let removed = counts.values().sum();
    (added, removed)
}

impl ChangeTracker {
    pub(crate) fn start(root: &Path) -> Self {
        Self {
            before: snapshot(root),
            contents: HashMap::new(),
        }
    }

    /// Called before a call that may write `relative` (a path inside the root).
    pub(crate) fn before_write(&mut self, root: &Path, relative: &str) {
        if !self.contents.contains_key(relative) {
            self.contents
                .insert(relative.to_string(), Original::read(&root.join(relative)));
        }
    }

    /// The text of `relative` before the turn's first write or edit of it; `None` when
    /// it did not exist, was not kept, or is not text.
    pub(crate) fn original_text(&self, relative: &str) -> Option<String> {
        match self.contents.get(relative)? {
            Original::Bytes(bytes) => String::from_utf8(bytes.clone()).ok(),
            _ => None,
        }
    }

    /// The files the agent's writes and edits touched, as they are now: a state
    /// [`ChangeTracker::rewind`] can return to.
    pub(crate) fn keep(&self, root: &Path) -> Kept {
        Kept {
            files: self
                .contents
                .keys()
                .map(|path| (path.clone(), Original::read(&root.join(path))))
                .collect(),
        }
    }

    /// Puts every file the agent's writes and edits changed back as it was at the start
    /// of the turn — or, given a state kept since, as it was then — (a file they created
    /// is removed), through `workspace`, so nothing is written outside it. Refused
    /// (`None`, nothing touched) when the workspace has changed in other ways too — a
    /// command's work cannot be put back — or a file was too large to keep.
    /// `Some(paths put back)` otherwise.
    pub(crate) fn rewind(
        &self,
        workspace: &keel_tools::Workspace,
        to: Option<&Kept>,
    ) -> Option<Vec<String>> {
        let root = workspace.root();
        let now = snapshot(root);
        let other = self
            .before
            .keys()
            .chain(now.keys())
            .filter(|p| !self.contents.contains_key(*p) && !generated(p))
            .any(|p| self.before.get(p) != now.get(p));
        let target = |path: &String| {
            to.and_then(|kept| kept.files.get(path))
                .or_else(|| self.contents.get(path))
        };
        if other
            || self
                .contents
                .keys()
                .any(|p| matches!(target(p), Some(Original::Unknown)))
        {
            return None;
        }
        let mut restored = Vec::new();
        for relative in self.contents.keys() {
            let Some(original) = target(relative) else {
                continue;
            };
            let current = std::fs::symlink_metadata(root.join(relative))
                .ok()
                .filter(|m| m.is_file())
                .and_then(|_| std::fs::read(root.join(relative)).ok());
            let put_back = match original {
                Original::Bytes(bytes) if current.as_deref() != Some(bytes.as_slice()) => {
                    write_beneath(workspace, relative, bytes)
                }
                Original::Absent if current.is_some() => remove_beneath(workspace, relative),
                _ => continue,
            };
            if put_back {
                restored.push(relative.clone());
            } else {
                return None;
            }
        }
        restored.sort();
        Some(restored)
    }

    /// The files that differ from the start of the turn.
    pub(crate) fn finish(self, root: &Path) -> Vec<FileRef> {
        let after = snapshot(root);
        let mut changed: BTreeMap<String, FileRef> = BTreeMap::new();
        let paths: BTreeSet<&String> = self
            .before
            .keys()
            .chain(after.keys())
            .chain(self.contents.keys())
            .collect();
        for path in paths {
            let differs = self.before.get(path) != after.get(path);
            let known_before = self.contents.get(path);
            // Only files whose size or mtime moved, or that the agent wrote, are read.
            if !differs && known_before.is_none() {
                continue;
            }
            let now = std::fs::read(root.join(path)).ok();
            let content_differs = known_before.is_some_and(|old| match old {
                Original::Absent => now.is_some(),
                Original::Bytes(bytes) => Some(bytes.as_slice()) != now.as_deref(),
                Original::Unknown => true,
            });
            if !differs && !content_differs {
                continue;
            }
            let now_text = now.as_deref().map(String::from_utf8_lossy);
            let old_text = match known_before {
                Some(old) => old.text(),
                None if !self.before.contains_key(path) => Some(String::new()),
                None => None,
            };
            let (added, removed) = match (&old_text, &now_text) {
                (Some(old), Some(new)) => {
                    let (a, r) = line_stats(old, new);
                    (Some(a), Some(r))
                }
                (Some(old), None) => (Some(0), Some(old.lines().count() as i64)),
                _ => (None, None),
            };
            if old_text.as_deref() == Some("") && now.is_none() {
                continue; // created and deleted within the turn
            }
            changed.insert(
                path.clone(),
                FileRef {
                    path: path.clone(),
                    hash: now.as_deref().map(content_hash),
                    added,
                    removed,
                },
            );
        }
        changed.into_values().collect()
    }
}

/// Writes `bytes` to a workspace file, opened beneath the root.
pub(crate) fn write_beneath(
    workspace: &keel_tools::Workspace,
    relative: &str,
    bytes: &[u8],
) -> bool {
    use std::io::Write;
    let Ok(resolved) = workspace.resolve(relative) else {
        return false;
    };
    workspace
        .open_write(&resolved)
        .and_then(|mut file| file.write_all(bytes))
        .is_ok()
}

/// Removes a workspace file (a link itself, not what it points to), its directory
/// resolved inside the workspace first.
fn remove_beneath(workspace: &keel_tools::Workspace, relative: &str) -> bool {
    let path = Path::new(relative);
    let (Some(name), parent) = (path.file_name(), path.parent()) else {
        return false;
    };
    let parent = parent
        .map(|p| p.display().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| ".".into());
    match workspace.resolve(&parent) {
        Ok(dir) => std::fs::remove_file(dir.join(name)).is_ok(),
        Err(_) => false,
    }
}

/// A summary built from the changes alone, for when the model gives none.
pub(crate) fn describe(files: &[FileRef]) -> String {
    let parts: Vec<String> = files
        .iter()
        .map(|f| match (&f.hash, f.added, f.removed) {
            (None, _, _) => format!("deleted {}", f.path),
            (Some(_), Some(a), Some(0)) if a > 0 => format!("wrote {} (+{a})", f.path),
            (Some(_), Some(a), Some(r)) => format!("edited {} (+{a} -{r})", f.path),
            _ => format!("changed {}", f.path),
        })
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_stats_count_added_and_removed_lines() {
        assert_eq!(line_stats("a\nb\nc\n", "a\nB\nc\nd\n"), (2, 1));
        assert_eq!(line_stats("", "x\n"), (1, 0));
        assert_eq!(line_stats("x\nx\n", "x\n"), (0, 1));
    }

    #[test]
    fn tracks_tool_and_shell_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("keep.txt"), "same\n").unwrap();
        std::fs::write(root.join("edit.py"), "a\nb\n").unwrap();
        std::fs::write(root.join("gone.txt"), "x\n").unwrap();
        let mut tracker = ChangeTracker::start(root);
        tracker.before_write(root, "edit.py");
        tracker.before_write(root, "new/file.py");
        std::fs::write(root.join("edit.py"), "a\nc\n").unwrap();
        std::fs::create_dir_all(root.join("new")).unwrap();
        std::fs::write(root.join("new/file.py"), "1\n2\n").unwrap();
        std::fs::remove_file(root.join("gone.txt")).unwrap();
        std::fs::write(root.join("by_shell.log"), "out\n").unwrap();
        let changes = tracker.finish(root);
        let summary = describe(&changes);
        assert_eq!(
            summary,
            "wrote by_shell.log (+1), edited edit.py (+1 -1), deleted gone.txt, wrote new/file.py (+2)"
        );
    }

    #[test]
    fn rewind_puts_back_the_agents_writes_and_refuses_other_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("edit.py"), "a\nb\n").unwrap();
        let workspace = keel_tools::Workspace::new(root).unwrap();
        let mut tracker = ChangeTracker::start(root);
        tracker.before_write(root, "edit.py");
        tracker.before_write(root, "new.py");
        std::fs::write(root.join("edit.py"), "changed\n").unwrap();
        std::fs::write(root.join("new.py"), "x\n").unwrap();
        // Byte code a test run leaves behind is no change of the agent's.
        std::fs::create_dir_all(root.join("__pycache__")).unwrap();
        std::fs::write(root.join("__pycache__/edit.cpython-312.pyc"), "pyc").unwrap();
        // A state kept on the way: rewinding to it.
        let kept = tracker.keep(root);
        assert_eq!(
            kept.changed(&tracker),
            [
                ("edit.py".to_string(), Some("changed\n".to_string())),
                ("new.py".to_string(), Some("x\n".to_string()))
            ]
        );
        std::fs::write(root.join("edit.py"), "worse\n").unwrap();
        assert_eq!(
            tracker.rewind(&workspace, Some(&kept)),
            Some(vec!["edit.py".to_string()])
        );
        assert_eq!(
            std::fs::read_to_string(root.join("edit.py")).unwrap(),
            "changed\n"
        );
        assert_eq!(
            tracker.rewind(&workspace, None),
            Some(vec!["edit.py".to_string(), "new.py".to_string()])
        );
        assert_eq!(
            std::fs::read_to_string(root.join("edit.py")).unwrap(),
            "a\nb\n"
        );
        assert!(!root.join("new.py").exists());
        // Nothing left to put back.
        assert_eq!(tracker.rewind(&workspace, None), Some(vec![]));
        // A file a command wrote cannot be put back: nothing is touched.
        std::fs::write(root.join("edit.py"), "again\n").unwrap();
        std::fs::write(root.join("by_shell.txt"), "out\n").unwrap();
        assert_eq!(tracker.rewind(&workspace, None), None);
        assert_eq!(
            std::fs::read_to_string(root.join("edit.py")).unwrap(),
            "again\n"
        );
    }
}
