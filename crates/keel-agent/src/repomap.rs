//! The repo map in the project context: for a project too big to show whole, the
//! definitions that matter most for the task — ranked towards the files and names the
//! task mentions — within a budget of an eighth of the window (1k–4k tokens).

use std::path::{Path, PathBuf};

use keel_map::{Focus, RepoMap};

/// The map's budget when the window is not known.
const DEFAULT_TOKENS: u32 = 1024;

/// The map's budget for a window: clamp(window / 8, 1k, 4k) tokens.
pub(crate) fn budget(window: Option<u32>) -> u32 {
    window.map_or(DEFAULT_TOKENS, |w| (w / 8).clamp(1024, 4096))
}

/// What a task points at: the files it names (relative paths) and the words that could
/// be names of code.
pub(crate) fn focus(task: &str, named_files: &[String]) -> Focus {
    let mut names: Vec<String> = task
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.len() >= 3 && !w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(String::from)
        .collect();
    names.sort();
    names.dedup();
    Focus {
        files: named_files.to_vec(),
        names,
    }
}

/// The files of `root` that `text` names by relative path — in test output, where the
/// failures are: `tests/test_names.py:5: AssertionError`, `FAILED tests/test_x.py::test_y`.
pub(crate) fn paths_in(root: &Path, text: &str) -> Vec<String> {
    let mut paths: Vec<String> = text
        .split(|c: char| c.is_whitespace() || "`'\"()[]<>,;".contains(c))
        .filter_map(|word| word.split(':').next())
        .map(|word| word.trim_end_matches('.'))
        .filter(|word| word.contains('.') && !word.starts_with('/') && !word.contains(".."))
        .filter(|word| root.join(word).is_file())
        .map(String::from)
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// The context section: the map of `root` for `focus`, refreshed through the cache in
/// `cache_dir` (when given). Empty when the project has no source files keel can map.
pub(crate) fn section(
    root: &Path,
    cache_dir: Option<&PathBuf>,
    focus: &Focus,
    tokens: u32,
) -> String {
    let cache = cache_dir.map(|dir| keel_map::cache_path(dir, root));
    let mut map = RepoMap::open(root, cache);
    // A cache that cannot be written costs the next session a cold build, nothing more.
    let _ = map.refresh();
    let text = map.render(focus, tokens as usize, &|s: &str| s.len().div_ceil(4));
    if text.is_empty() {
        return String::new();
    }
    format!(
        "\nRepo map (definitions ranked for this task, with line numbers; read a file for the rest):\n{text}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_follows_the_window() {
        assert_eq!(budget(None), 1024);
        assert_eq!(budget(Some(4096)), 1024);
        assert_eq!(budget(Some(16384)), 2048);
        assert_eq!(budget(Some(131072)), 4096);
    }

    #[test]
    fn test_output_names_the_files_that_fail() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tests")).unwrap();
        std::fs::write(dir.path().join("tests/test_names.py"), "").unwrap();
        std::fs::write(dir.path().join("names.py"), "").unwrap();
        let output = "    def test_display_name():\n>       assert display_name(\"ada\") == \"Ada\"\nE       AssertionError\n\ntests/test_names.py:5: AssertionError\nFAILED tests/test_names.py::test_display_name - assert\nsee /etc/passwd and ../names.py and gone.py.\n";
        assert_eq!(paths_in(dir.path(), output), ["tests/test_names.py"]);
    }

    #[test]
    fn a_task_focuses_on_the_names_it_mentions() {
        let focus = focus(
            "Fix compute_total in billing.py (it drops 3 items)",
            &["billing.py".into()],
        );
        assert_eq!(focus.files, ["billing.py"]);
        assert!(focus.names.contains(&"compute_total".to_string()));
        assert!(!focus.names.contains(&"3".to_string()));
    }
}
