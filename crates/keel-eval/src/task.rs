//! Task formats.
//!
//! - **Exercism practice exercise**: `.docs/instructions.md` (+ `.docs/instructions.append.md`),
//!   `.meta/config.json` naming `files.solution` and `files.test`. `.meta/` (the reference
//!   solution) and `.docs/` never reach the workspace; the task text is the instructions
//!   and the benchmark's request to modify the solution files; the check is pytest on the
//!   test files, which are protected.
//! - **plain**: `eval.toml` with `task` (the request), `check` (a shell command; exit 0 =
//!   pass), optional `protected` (files restored before the check) and `test_command`
//!   (what the session runs; default: `check`; `""`: none, the session is not verified),
//!   and `target` (the files where the change belongs: the record says whether and when
//!   the agent opened one). Every other file of the folder is a starting file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{EvalError, io};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    Exercism,
    Plain,
}

/// One task, read from its folder.
#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    pub dir: PathBuf,
    pub kind: TaskKind,
    /// The message the agent gets.
    pub prompt: String,
    /// Files copied into the workspace, relative to `dir`.
    pub files: Vec<PathBuf>,
    /// Files put back from `dir` before the check, relative to `dir`.
    pub protected: Vec<PathBuf>,
    /// Decides pass/fail, run in the workspace.
    pub check: String,
    /// The session's test command (what keel re-runs when the model says it is done);
    /// empty: none.
    pub test_command: String,
    /// Where the change belongs (a plain task's `target`, workspace-relative): the record
    /// says when the agent first opened one of them, a measure of finding the code.
    pub targets: Vec<String>,
}

/// The request Aider's benchmark sends with an exercise (its wording, so the figures
/// compare), naming the solution and test files.
fn exercism_prompt(instructions: &str, solution: &[String], tests: &[String]) -> String {
    format!(
        "{}\n\n# Task\n\nUse the above instructions to modify the supplied files: {}. Don't change the names of existing functions or classes, as they may be called from other code like unit tests, etc. Only use standard libraries, don't suggest installing any packages. The tests are in {} (do not change them); run them with `python -m pytest -q`.",
        instructions.trim(),
        solution.join(", "),
        tests.join(", "),
    )
}

#[derive(Deserialize)]
struct ExercismConfig {
    files: ExercismFiles,
}

#[derive(Deserialize)]
struct ExercismFiles {
    solution: Vec<String>,
    test: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainConfig {
    task: String,
    check: String,
    #[serde(default)]
    protected: Vec<PathBuf>,
    test_command: Option<String>,
    #[serde(default)]
    target: Vec<PathBuf>,
}

fn bad(path: &Path, reason: impl Into<String>) -> EvalError {
    EvalError::Task {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl Task {
    /// Reads the task in `dir`, whichever format it is in; `None` when `dir` holds no task.
    pub fn load(dir: &Path) -> Result<Option<Task>, EvalError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if dir.join(".meta/config.json").is_file() && dir.join(".docs/instructions.md").is_file() {
            return Self::exercism(dir, name).map(Some);
        }
        if dir.join("eval.toml").is_file() {
            return Self::plain(dir, name).map(Some);
        }
        Ok(None)
    }

    fn exercism(dir: &Path, name: String) -> Result<Task, EvalError> {
        let config_path = dir.join(".meta/config.json");
        let text =
            std::fs::read_to_string(&config_path).map_err(io(config_path.display().to_string()))?;
        let config: ExercismConfig =
            serde_json::from_str(&text).map_err(|e| bad(&config_path, e.to_string()))?;
        let mut instructions = std::fs::read_to_string(dir.join(".docs/instructions.md"))
            .map_err(io(format!("{}/.docs/instructions.md", dir.display())))?;
        if let Ok(more) = std::fs::read_to_string(dir.join(".docs/instructions.append.md")) {
            instructions.push_str("\n\n");
            instructions.push_str(&more);
        }
        let mut files = Vec::new();
        for file in config.files.solution.iter().chain(&config.files.test) {
            if !dir.join(file).is_file() {
                return Err(bad(
                    dir,
                    format!("`{file}` named in .meta/config.json is missing"),
                ));
            }
            files.push(PathBuf::from(file));
        }
        let check = format!("python3 -m pytest -q {}", config.files.test.join(" "));
        Ok(Task {
            name,
            dir: dir.to_path_buf(),
            kind: TaskKind::Exercism,
            prompt: exercism_prompt(&instructions, &config.files.solution, &config.files.test),
            files,
            protected: config.files.test.iter().map(PathBuf::from).collect(),
            test_command: check.clone(),
            check,
            targets: Vec::new(),
        })
    }

    fn plain(dir: &Path, name: String) -> Result<Task, EvalError> {
        let config_path = dir.join("eval.toml");
        let text =
            std::fs::read_to_string(&config_path).map_err(io(config_path.display().to_string()))?;
        let config: PlainConfig =
            toml::from_str(&text).map_err(|e| bad(&config_path, e.to_string()))?;
        let mut files = Vec::new();
        collect_files(dir, dir, &mut files)?;
        files.retain(|f| f != Path::new("eval.toml"));
        for protected in &config.protected {
            if !files.contains(protected) {
                return Err(bad(
                    &config_path,
                    format!(
                        "protected file `{}` is not in the task",
                        protected.display()
                    ),
                ));
            }
        }
        Ok(Task {
            name,
            dir: dir.to_path_buf(),
            kind: TaskKind::Plain,
            prompt: config.task,
            files,
            protected: config.protected,
            test_command: config.test_command.unwrap_or_else(|| config.check.clone()),
            check: config.check,
            targets: config
                .target
                .iter()
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .collect(),
        })
    }
}

/// Every file under `dir` except version control and Python caches, relative to `root`.
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), EvalError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir.display().to_string()))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if matches!(
            name.to_str(),
            Some(".git" | "__pycache__" | ".pytest_cache")
        ) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            out.push(relative.to_path_buf());
        }
    }
    Ok(())
}

/// The tasks at `root`: `root` itself when it is a task, else each task folder directly
/// inside it, in name order, filtered by the glob `pattern` on their names.
pub fn discover(root: &Path, pattern: Option<&str>) -> Result<Vec<Task>, EvalError> {
    if let Some(task) = Task::load(root)? {
        return Ok(vec![task]);
    }
    let matcher = pattern
        .map(|p| {
            globset::Glob::new(p)
                .map(|g| g.compile_matcher())
                .map_err(|e| EvalError::Pattern {
                    pattern: p.to_string(),
                    reason: e.to_string(),
                })
        })
        .transpose()?;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(io(root.display().to_string()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut tasks = Vec::new();
    for dir in dirs {
        if let Some(task) = Task::load(&dir)?
            && matcher.as_ref().is_none_or(|m| m.is_match(&task.name))
        {
            tasks.push(task);
        }
    }
    Ok(tasks)
}
