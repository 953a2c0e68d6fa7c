//! Unified diffs and line counts of checkpointed content.

use similar::TextDiff;

/// Lines added and removed from `old` to `new`; `None` when either is not text.
pub fn line_counts(old: &[u8], new: &[u8]) -> Option<(u64, u64)> {
    let (old, new) = (
        std::str::from_utf8(old).ok()?,
        std::str::from_utf8(new).ok()?,
    );
    let diff = TextDiff::from_lines(old, new);
    let (mut added, mut removed) = (0, 0);
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    Some((added, removed))
}

/// The `git diff`-style unified diff of one file (`None`: absent on that side).
pub fn unified_diff(path: &str, before: Option<&[u8]>, after: Option<&[u8]>) -> String {
    let old_name = if before.is_some() {
        format!("a/{path}")
    } else {
        "/dev/null".to_string()
    };
    let new_name = if after.is_some() {
        format!("b/{path}")
    } else {
        "/dev/null".to_string()
    };
    let mut out = format!("diff --keel a/{path} b/{path}\n");
    match before {
        None => out.push_str("new file\n"),
        Some(_) if after.is_none() => out.push_str("deleted file\n"),
        _ => {}
    }
    let (old, new) = (before.unwrap_or_default(), after.unwrap_or_default());
    match (std::str::from_utf8(old), std::str::from_utf8(new)) {
        (Ok(old), Ok(new)) => {
            let diff = TextDiff::from_lines(old, new);
            let text = diff
                .unified_diff()
                .context_radius(3)
                .header(&old_name, &new_name)
                .to_string();
            out.push_str(&text);
            if !text.is_empty() && !text.ends_with('\n') {
                out.push('\n');
            }
        }
        _ => out.push_str(&format!(
            "Binary files {old_name} and {new_name} differ ({} → {} bytes)\n",
            old.len(),
            new.len()
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_diffs_like_git() {
        let diff = unified_diff("a.py", Some(b"x = 1\ny = 2\n"), Some(b"x = 1\ny = 3\n"));
        assert_eq!(
            diff,
            "diff --keel a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n x = 1\n-y = 2\n+y = 3\n"
        );
        assert_eq!(line_counts(b"x\ny\n", b"x\nz\nw\n"), Some((2, 1)));
        assert_eq!(line_counts(b"\xff", b""), None);
    }

    #[test]
    fn created_deleted_and_binary_files_say_so() {
        let created = unified_diff("new.txt", None, Some(b"hi\n"));
        assert!(
            created.contains("new file\n--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+hi\n"),
            "{created}"
        );
        let deleted = unified_diff("old.txt", Some(b"bye\n"), None);
        assert!(
            deleted.contains("deleted file\n--- a/old.txt\n+++ /dev/null\n"),
            "{deleted}"
        );
        let binary = unified_diff("x.bin", Some(b"\xff\x00"), Some(b"\xfe"));
        assert!(binary.ends_with("Binary files a/x.bin and b/x.bin differ (2 → 1 bytes)\n"));
    }
}
