//! Checkpoints on real directories: what a "turn" changed, put back byte for byte, and
//! forward again.

use std::fs;
use std::path::Path;

use keel_checkpoint::{CheckpointError, Checkpoints};
use keel_protocol::FileChange;

fn targets(changes: &[FileChange], before: bool) -> Vec<(String, Option<String>)> {
    changes
        .iter()
        .map(|c| {
            let target = if before { &c.before } else { &c.after };
            (c.path.clone(), target.clone())
        })
        .collect()
}

fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in walk(root) {
        let relative = entry.strip_prefix(root).unwrap().display().to_string();
        out.push((relative, fs::read(&entry).unwrap()));
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_turn_is_undone_byte_for_byte_and_redone() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    fs::write(root.join("edit.py"), "def f():\n    return 1\n").unwrap();
    fs::write(root.join("gone.txt"), b"\x00\xffbinary bytes").unwrap();
    fs::create_dir(root.join("pkg")).unwrap();
    fs::write(root.join("pkg/keep.py"), "x = 1\n").unwrap();
    let mut checkpoints = Checkpoints::open(data.path(), root).unwrap();
    let start = files(root);
    let before = checkpoints.snapshot().unwrap();
    assert_eq!(before.len(), 3);

    // The "turn": an edit, a delete (as bash would), a file created in a new folder,
    // and caches that are not the user's work.
    fs::write(root.join("edit.py"), "def f():\n    return 2\n\n# done\n").unwrap();
    fs::remove_file(root.join("gone.txt")).unwrap();
    fs::create_dir_all(root.join("new/deep")).unwrap();
    fs::write(root.join("new/deep/made.py"), "y = 2\n").unwrap();
    fs::create_dir(root.join("__pycache__")).unwrap();
    fs::write(root.join("__pycache__/edit.pyc"), "cache").unwrap();
    let after = checkpoints.snapshot().unwrap();
    let changes = checkpoints.changes(&before, &after);
    let summary: Vec<String> = changes
        .iter()
        .map(|c| {
            format!(
                "{} {} {} {:?} {:?}",
                c.path,
                c.before.is_some(),
                c.after.is_some(),
                c.added,
                c.removed
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "edit.py true true Some(3) Some(1)",
            "gone.txt true false None None",
            "new/deep/made.py false true Some(1) Some(0)",
        ]
    );
    let diff = checkpoints.diff(&changes).unwrap();
    assert!(
        diff.contains("-    return 1\n+    return 2\n+\n+# done\n"),
        "{diff}"
    );
    assert!(diff.contains("+++ b/new/deep/made.py"), "{diff}");
    let turned = files(root);

    // Undo: every file as it was, the created one and its folders gone (the cache
    // stays: it is not checkpointed).
    let undone = checkpoints.restore(&targets(&changes, true)).unwrap();
    assert_eq!(undone.len(), 3);
    fs::remove_dir_all(root.join("__pycache__")).unwrap();
    assert_eq!(files(root), start);
    assert!(!root.join("new").exists());

    // Redo: the reverse of the undo, from a new process's store.
    drop(checkpoints);
    let mut checkpoints = Checkpoints::open(data.path(), root).unwrap();
    let redone = checkpoints.restore(&targets(&undone, true)).unwrap();
    assert_eq!(redone.len(), 3);
    let mut expected = turned;
    expected.retain(|(p, _)| !p.starts_with("__pycache__"));
    assert_eq!(files(root), expected);
    // Nothing to do when the files are already there.
    assert!(
        checkpoints
            .restore(&targets(&undone, true))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_quick_rewrite_of_the_same_size_is_seen() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("a.txt"), "aaaa").unwrap();
    let mut checkpoints = Checkpoints::open(data.path(), work.path()).unwrap();
    let first = checkpoints.snapshot().unwrap();
    fs::write(work.path().join("a.txt"), "bbbb").unwrap();
    let second = checkpoints.snapshot().unwrap();
    assert_eq!(checkpoints.changes(&first, &second).len(), 1);
}

#[test]
fn nothing_is_written_through_a_symlink_or_outside_the_root() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let root = work.path();
    fs::create_dir(root.join("sub")).unwrap();
    fs::write(root.join("sub/a.txt"), "mine").unwrap();
    let mut checkpoints = Checkpoints::open(data.path(), root).unwrap();
    let before = checkpoints.snapshot().unwrap();
    // A turn swaps the folder for a symlink out of the workspace.
    fs::remove_dir_all(root.join("sub")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("sub")).unwrap();
    let after = checkpoints.snapshot().unwrap();
    let changes = checkpoints.changes(&before, &after);
    assert_eq!(changes.len(), 1);
    let err = checkpoints.restore(&targets(&changes, true)).unwrap_err();
    assert!(matches!(err, CheckpointError::Outside(_)), "{err}");
    assert!(!outside.path().join("a.txt").exists());
    for path in ["../x", "/etc/passwd", "a/../../x", ""] {
        let err = checkpoints
            .restore(&[(path.to_string(), None)])
            .unwrap_err();
        assert!(matches!(err, CheckpointError::Outside(_)), "{path}: {err}");
    }
}
