//! The test-tamper guard. A small model that cannot make the tests pass makes them
//! pass another way: `assert True`, a skip marker, a deleted test. Unless the task asks
//! to change tests, a `write` or `edit` of a test file that removes or weakens
//! assertions, removes tests or skips them is refused with the reason; and whatever
//! happens to the test files otherwise (through `bash`), verification runs the tests as
//! they were when the session started, plus any the agent added.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keel_tools::walker;

/// Test files snapshotted at most (and bytes in all).
const SNAPSHOT_FILES: usize = 500;
const SNAPSHOT_BYTES: usize = 8 << 20;

/// Whether a workspace-relative path is a test file by its language's conventions.
pub(crate) fn is_test_file(path: &str) -> bool {
    let path = path.replace('\\', "/");
    let name = path.rsplit('/').next().unwrap_or(&path);
    let in_dir =
        |dir: &str| path.starts_with(&format!("{dir}/")) || path.contains(&format!("/{dir}/"));
    let code = [
        ".py", ".rs", ".go", ".js", ".ts", ".jsx", ".tsx", ".mjs", ".cjs", ".java", ".rb",
    ]
    .iter()
    .any(|e| name.ends_with(e));
    if !code {
        return false;
    }
    name.starts_with("test_")
        || name.ends_with("_test.py")
        || name.ends_with("_test.go")
        || name.ends_with("_spec.rb")
        || [".test.", ".spec."].iter().any(|m| name.contains(m))
        || in_dir("tests")
        || in_dir("test")
        || in_dir("__tests__")
        || in_dir("spec")
}

/// Whether the task asks to change tests (then the guard stands aside).
pub(crate) fn task_changes_tests(message: &str) -> bool {
    let lower = message.to_lowercase();
    const VERBS: &[&str] = &[
        "add", "write", "create", "update", "change", "modify", "fix", "rewrite", "extend",
        "remove", "delete", "rename", "edit", "adjust", "correct",
    ];
    const FILLERS: &[&str] = &[
        "a", "an", "the", "some", "new", "more", "unit", "these", "those", "this", "that",
        "failing", "broken", "existing", "missing", "my", "our",
    ];
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .collect();
    for (i, word) in words.iter().enumerate() {
        if !VERBS.contains(word) {
            continue;
        }
        let mut j = i + 1;
        while j < words.len() && FILLERS.contains(&words[j]) {
            j += 1;
        }
        if j < words.len()
            && (words[j] == "test" || words[j] == "tests" || words[j].starts_with("test_"))
        {
            return true;
        }
    }
    false
}

/// What a test file's text holds that matters here.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Strength {
    assertions: usize,
    tests: usize,
    skips: usize,
    trivial: usize,
}

fn strength(text: &str) -> Strength {
    let mut s = Strength::default();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.starts_with("//") {
            continue;
        }
        s.assertions += [
            "assert ",
            "assert(",
            "assert!",
            "assert_eq!",
            "assert_ne!",
            ".assert",
            "self.assert",
            "expect(",
            "t.Error",
            "t.Fatal",
            "require.",
            "assert.",
            "pytest.raises",
        ]
        .iter()
        .map(|p| t.matches(p).count())
        .sum::<usize>();
        if t.starts_with("def test")
            || t.starts_with("async def test")
            || t.starts_with("#[test]")
            || t.starts_with("#[tokio::test]")
            || t.starts_with("func Test")
            || t.starts_with("it(")
            || t.starts_with("test(")
            || t.starts_with("it.only(")
        {
            s.tests += 1;
        }
        if [
            "@pytest.mark.skip",
            "@pytest.mark.xfail",
            "@unittest.skip",
            "@skip",
            "pytest.skip(",
            "self.skipTest(",
            "#[ignore]",
            "it.skip(",
            "test.skip(",
            "describe.skip(",
            "xit(",
            "xdescribe(",
            "t.Skip(",
            "t.SkipNow(",
        ]
        .iter()
        .any(|m| t.contains(m))
        {
            s.skips += 1;
        }
        let trivial = [
            "assert True",
            "assert 1",
            "assert not False",
            "assert(true)",
            "assert!(true)",
            "expect(true)",
            "self.assertTrue(True)",
        ];
        if trivial.iter().any(|p| t.starts_with(p)) {
            s.trivial += 1;
        }
    }
    s
}

/// Why a change from `before` to `after` of a test file weakens it, or `None`.
pub(crate) fn weakening(before: &str, after: &str) -> Option<String> {
    let (b, a) = (strength(before), strength(after));
    let mut why = Vec::new();
    if a.tests < b.tests {
        why.push(format!("it removes {} test(s)", b.tests - a.tests));
    }
    if a.assertions < b.assertions {
        why.push(format!(
            "it removes {} assertion(s)",
            b.assertions - a.assertions
        ));
    }
    if a.skips > b.skips {
        why.push("it skips tests".to_string());
    }
    if a.trivial > b.trivial {
        why.push("it adds an assertion that cannot fail".to_string());
    }
    (!why.is_empty()).then(|| why.join(", "))
}

/// The test files of a workspace as they were when the session started.
#[derive(Debug, Default, Clone)]
pub(crate) struct Snapshot {
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl Snapshot {
    pub(crate) fn take(root: &Path) -> Self {
        let mut files = BTreeMap::new();
        let mut bytes = 0;
        for entry in walker(root).build().flatten() {
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let Ok(relative) = entry.path().strip_prefix(root) else {
                continue;
            };
            if !is_test_file(&relative.to_string_lossy()) {
                continue;
            }
            let Ok(content) = std::fs::read(entry.path()) else {
                continue;
            };
            bytes += content.len();
            if files.len() >= SNAPSHOT_FILES || bytes > SNAPSHOT_BYTES {
                break;
            }
            files.insert(relative.to_path_buf(), content);
        }
        Self { files }
    }

    /// Puts the original test files back where the agent changed or removed them, for
    /// the verification run; returns what to undo afterwards.
    pub(crate) fn restore(&self, root: &Path) -> Restored {
        let mut undo = Vec::new();
        for (relative, original) in &self.files {
            let path = root.join(relative);
            let current = std::fs::read(&path).ok();
            if current.as_deref() == Some(original.as_slice()) {
                continue;
            }
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            if std::fs::write(&path, original).is_ok() {
                undo.push((path, current));
            }
        }
        Restored { undo }
    }
}

/// Test files put back for a verification run; [`Restored::undo`] returns the agent's
/// versions.
#[derive(Debug)]
pub(crate) struct Restored {
    undo: Vec<(PathBuf, Option<Vec<u8>>)>,
}

impl Restored {
    /// The relative paths that were put back.
    pub(crate) fn paths(&self, root: &Path) -> Vec<String> {
        self.undo
            .iter()
            .filter_map(|(p, _)| p.strip_prefix(root).ok())
            .map(|p| p.display().to_string())
            .collect()
    }

    pub(crate) fn undo(self) {
        for (path, content) in self.undo {
            match content {
                Some(content) => {
                    let _ = std::fs::write(&path, content);
                }
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_files_are_known_by_convention() {
        for yes in [
            "test_calc.py",
            "calc_test.py",
            "tests/test_a.py",
            "pkg/tests/helpers.py",
            "tests/it.rs",
            "x_test.go",
            "src/a.test.ts",
            "web/__tests__/a.js",
            "spec/a_spec.rb",
        ] {
            assert!(is_test_file(yes), "{yes}");
        }
        for no in [
            "calc.py",
            "src/lib.rs",
            "contest.py",
            "testing.md",
            "tests/data.json",
            "latest.py",
        ] {
            assert!(!is_test_file(no), "{no}");
        }
    }

    #[test]
    fn tasks_that_ask_to_change_tests() {
        for yes in [
            "Add a test for the parser",
            "Please write tests for calc",
            "Fix the failing test",
            "update test_add to the new API",
        ] {
            assert!(task_changes_tests(yes), "{yes}");
        }
        for no in [
            "The test test_add fails. Fix the bug in calc.py.",
            "Fix add so the tests pass",
            "Run the tests",
            "Refactor the parser",
        ] {
            assert!(!task_changes_tests(no), "{no}");
        }
    }

    #[test]
    fn weakening_is_seen() {
        let before = "def test_add():\n    assert add(2, 3) == 5\n\ndef test_sub():\n    assert sub(3, 2) == 1\n";
        assert_eq!(weakening(before, before), None);
        assert!(
            weakening(
                before,
                "def test_add():\n    assert True\n\ndef test_sub():\n    assert sub(3, 2) == 1\n"
            )
            .unwrap()
            .contains("cannot fail")
        );
        assert!(
            weakening(before, "def test_add():\n    assert add(2, 3) == 5\n")
                .unwrap()
                .contains("removes 1 test")
        );
        assert!(
            weakening(
                before,
                &format!("import pytest\n@pytest.mark.skip\n{before}")
            )
            .unwrap()
            .contains("skips")
        );
        // Adding a test is fine.
        assert_eq!(
            weakening(
                before,
                &format!("{before}\ndef test_mul():\n    assert mul(2, 3) == 6\n")
            ),
            None
        );
    }

    #[test]
    fn a_snapshot_puts_the_originals_back_and_undoes_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("tests")).unwrap();
        std::fs::write(root.join("tests/test_a.py"), "assert 1 == 1\n").unwrap();
        std::fs::write(root.join("calc.py"), "x = 1\n").unwrap();
        let snapshot = Snapshot::take(root);
        std::fs::remove_file(root.join("tests/test_a.py")).unwrap();
        std::fs::write(root.join("tests/test_new.py"), "assert 2 == 2\n").unwrap();
        let restored = snapshot.restore(root);
        assert_eq!(restored.paths(root), ["tests/test_a.py"]);
        assert_eq!(
            std::fs::read_to_string(root.join("tests/test_a.py")).unwrap(),
            "assert 1 == 1\n"
        );
        assert!(
            root.join("tests/test_new.py").exists(),
            "tests the agent added stay"
        );
        restored.undo();
        assert!(
            !root.join("tests/test_a.py").exists(),
            "the agent's deletion is back"
        );
    }
}
