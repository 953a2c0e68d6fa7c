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
