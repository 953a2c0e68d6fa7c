//! The project context: the first user message of every session (after the system
//! prompt). It is computed once when the session starts and then fixed, so the
//! prompt prefix stays cacheable for the whole session.

use std::fmt::Write as _;
use std::path::Path;

/// Files listed in the context; the model uses glob for the rest.
const LISTED_FILES: usize = 200;
/// A project at most this big is shown whole: a small model that sees the code does not
/// have to guess it (and then cannot edit lines that are not there).
const SMALL_PROJECT_FILES: usize = 12;
const SMALL_PROJECT_BYTES: usize = 8 * 1024;

/// The files whose whole content the context shows (relative paths and text): all of a
/// small project's files when every one is text, else none.
pub(crate) fn shown_files(root: &Path) -> Vec<(String, String)> {
    let (files, complete) = list_files(root);
    if !complete || files.is_empty() || files.len() > SMALL_PROJECT_FILES {
        return Vec::new();
    }
    let mut shown = Vec::new();
    let mut total = 0;
    for file in files {
        let Ok(text) = std::fs::read_to_string(root.join(&file)) else {
            return Vec::new();
        };
        total += text.len();
        if total > SMALL_PROJECT_BYTES || text.contains('\0') {
            return Vec::new();
        }
        shown.push((file, text));
    }
    shown
}

/// A file the task names is shown whole up to this size, and all of them up to
/// [`NAMED_FILES_BYTES`]: the model starts from the code instead of a read call (or a
/// write refused because the file was not read).
const NAMED_FILE_BYTES: usize = 8 * 1024;
const NAMED_FILES_BYTES: usize = 12 * 1024;

/// The workspace files a task names (by relative path or file name), with their text:
/// none when the whole project is shown anyway; only text files within the size budget.
pub(crate) fn named_files(root: &Path, task: &str) -> Vec<(String, String)> {
    if !shown_files(root).is_empty() {
        return Vec::new();
    }
    let words: Vec<&str> = task
        .split(|c: char| c.is_whitespace() || "`'\",;:()[]<>".contains(c))
        .map(|w| w.trim_end_matches(['.', '!', '?']))
        .filter(|w| !w.is_empty())
        .collect();
    let (files, _) = list_files(root);
    let mut named = Vec::new();
    let mut total = 0;
    for file in files {
        let name = file.rsplit('/').next().unwrap_or(&file);
        if !words.iter().any(|w| *w == file || *w == name) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(root.join(&file)) else {
            continue;
        };
        if text.len() > NAMED_FILE_BYTES
            || total + text.len() > NAMED_FILES_BYTES
            || text.contains('\0')
        {
            continue;
        }
        total += text.len();
        named.push((file, text));
    }
    named
}

/// The context's section showing the files a task names (empty when it names none).
pub(crate) fn named_section(named: &[(String, String)]) -> String {
    let mut out = String::new();
    if named.is_empty() {
        return out;
    }
    out.push_str("\nFiles the task names:\n");
    write_files(&mut out, named);
    out
}

/// Each file as its path and its text in a fence that its own text cannot close.
fn write_files(out: &mut String, files: &[(String, String)]) {
    for (path, text) in files {
        let fence = if text.contains("```") { "````" } else { "```" };
        let _ = write!(out, "\n{path}:\n{fence}\n{}\n{fence}\n", text.trim_end());
    }
}

/// Builds the project context message for a workspace.
pub fn project_context(root: &Path, test_command: Option<&str>) -> String {
    let mut out = String::from("Project context for this session.\n");
    out.push_str(&crate::instructions::root_section(root));
    let (files, complete) = list_files(root);
    if files.is_empty() {
        out.push_str("\nThe workspace has no files yet.\n");
    } else {
        let heading = if complete {
            format!("Files in the workspace ({}):", files.len())
        } else {
            format!("Files in the workspace (the first {LISTED_FILES}; use glob for more):")
        };
        let _ = write!(out, "\n{heading}\n{}\n", files.join("\n"));
    }
    let shown = shown_files(root);
    if !shown.is_empty() {
        out.push_str("\nThe project is small; here is all of it:\n");
        write_files(&mut out, &shown);
    }
    match test_command {
        Some(command) => {
            let _ = write!(
                out,
                "\nTest command: `{command}`. keel runs it when you say you are done.\n"
            );
        }
        None => out.push_str("\nNo test command is known for this project.\n"),
    }
    out
}

pub(crate) fn list_files(root: &Path) -> (Vec<String>, bool) {
    let mut files = Vec::new();
    let walk = keel_tools::walker(root)
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    for entry in walk.flatten() {
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        if files.len() == LISTED_FILES {
            return (files, false);
        }
        if let Ok(relative) = entry.path().strip_prefix(root) {
            files.push(relative.display().to_string());
        }
    }
    (files, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_the_task_names_are_shown_within_a_budget() {
        let dir = tempfile::tempdir().unwrap();
        // Bigger than a small project, so nothing is shown whole.
        for i in 0..13 {
            std::fs::write(dir.path().join(format!("other{i}.py")), "x = 1\n").unwrap();
        }
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(
            dir.path().join("bowling.py"),
            "class BowlingGame:\n    pass\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("src/lib.py"), "def f():\n    pass\n").unwrap();
        std::fs::write(dir.path().join("big.py"), "#\n".repeat(5000)).unwrap();
        let task =
            "Modify the supplied files: bowling.py. Also see `src/lib.py`, big.py and missing.py.";
        let named = named_files(dir.path(), task);
        let paths: Vec<&str> = named.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["bowling.py", "src/lib.py"]);
        let section = named_section(&named);
        assert!(
            section.contains("bowling.py:\n```\nclass BowlingGame:\n    pass\n```"),
            "{section}"
        );
        // A name inside another word is not a mention.
        assert!(named_files(dir.path(), "Fix mybowling.pyc").is_empty());
        assert!(named_section(&[]).is_empty());
        // A small project is shown whole already.
        let small = tempfile::tempdir().unwrap();
        std::fs::write(small.path().join("a.py"), "x = 1\n").unwrap();
        assert!(named_files(small.path(), "Fix a.py").is_empty());
    }

    #[test]
    fn lists_instructions_files_and_test_command() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("AGENTS.md"), "Use tabs.\n").unwrap();
        std::fs::write(dir.path().join(".gitignore"), "build/\n").unwrap();
        std::fs::create_dir_all(dir.path().join("build")).unwrap();
        std::fs::write(dir.path().join("build/out.o"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/a.py"), "").unwrap();
        let context = project_context(dir.path(), Some("python -m pytest"));
        assert!(
            context.contains("Instructions from AGENTS.md:\nUse tabs.\n"),
            "{context}"
        );
        assert!(
            context.contains("Files in the workspace (3):\n.gitignore\nAGENTS.md\nsrc/a.py\n"),
            "{context}"
        );
        assert!(!context.contains("out.o"));
        assert!(context.contains("Test command: `python -m pytest`"));
    }

    #[test]
    fn a_small_project_is_shown_whole_and_a_larger_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("calc.py"),
            "def add(a, b):\n    return a - b\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("test_calc.py"), "from calc import add\n").unwrap();
        let context = project_context(dir.path(), None);
        assert!(
            context.contains(
                "here is all of it:\n\ncalc.py:\n```\ndef add(a, b):\n    return a - b\n```\n"
            ),
            "{context}"
        );
        assert_eq!(shown_files(dir.path()).len(), 2);
        std::fs::write(dir.path().join("big.py"), "x = 1\n".repeat(2000)).unwrap();
        assert!(!project_context(dir.path(), None).contains("here is all of it"));
        assert!(shown_files(dir.path()).is_empty());
    }

    #[test]
    fn long_listings_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..250 {
            std::fs::write(dir.path().join(format!("f{i:03}.txt")), "").unwrap();
        }
        let context = project_context(dir.path(), None);
        assert!(context.contains("the first 200; use glob for more"));
        assert!(context.contains("f199.txt") && !context.contains("f200.txt"));
        assert!(context.contains("No test command"));
    }
}
