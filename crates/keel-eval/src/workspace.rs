//! A fresh scratch workspace per task: the starting files (made writable), committed to
//! git so `git diff` shows exactly what the agent did.

use std::path::Path;
use std::process::Command;

use crate::{EvalError, Task, io};

/// Copies the task's starting files into `dest` (created) and commits them.
pub fn prepare(task: &Task, dest: &Path) -> Result<(), EvalError> {
    std::fs::create_dir_all(dest).map_err(io(dest.display().to_string()))?;
    for file in &task.files {
        let to = dest.join(file);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent.display().to_string()))?;
        }
        let from = task.dir.join(file);
        let bytes = std::fs::read(&from).map_err(io(from.display().to_string()))?;
        // Written anew (not copied) so read-only sources give writable files.
        std::fs::write(&to, bytes).map_err(io(to.display().to_string()))?;
    }
    let git = |args: &[&str]| -> Result<(), EvalError> {
        let out = Command::new("git")
            .args(args)
            .current_dir(dest)
            .env("GIT_AUTHOR_NAME", "keel eval")
            .env("GIT_AUTHOR_EMAIL", "eval@keel.invalid")
            .env("GIT_COMMITTER_NAME", "keel eval")
            .env("GIT_COMMITTER_EMAIL", "eval@keel.invalid")
            .output()
            .map_err(io("git"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(EvalError::Task {
                path: dest.to_path_buf(),
                reason: format!(
                    "git {} failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            })
        }
    };
    git(&["init", "-q"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-q", "--no-gpg-sign", "-m", "task start"])?;
    Ok(())
}
