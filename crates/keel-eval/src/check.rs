//! The check: the original test files put back, then the task's check command.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{EvalError, Task, io};

/// Output kept from a check (its tail).
const OUTPUT_TAIL: usize = 4000;

#[derive(Debug, Clone)]
pub struct CheckResult {
    pub passed: bool,
    /// Protected files the agent had changed (restored before the check).
    pub tampered: Vec<String>,
    pub output: String,
}

/// Restores the protected files in `workspace`, then runs the check (killed after
/// `timeout`).
pub fn run_check(
    task: &Task,
    workspace: &Path,
    timeout: Duration,
) -> Result<CheckResult, EvalError> {
    let mut tampered = Vec::new();
    for file in &task.protected {
        let original = std::fs::read(task.dir.join(file)).map_err(io(task
            .dir
            .join(file)
            .display()
            .to_string()))?;
        let path = workspace.join(file);
        if std::fs::read(&path).ok().as_deref() != Some(&original[..]) {
            tampered.push(file.display().to_string());
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent.display().to_string()))?;
            }
            std::fs::write(&path, &original).map_err(io(path.display().to_string()))?;
        }
    }
    let output_file = workspace.join(".keel-eval-check.log");
    let log = std::fs::File::create(&output_file).map_err(io(output_file.display().to_string()))?;
    let log2 = log.try_clone().map_err(io("check log"))?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&task.check)
        .current_dir(workspace)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(io(format!("check `{}`", task.check)))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io("check"))? {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&output_file).unwrap_or_default();
    let _ = std::fs::remove_file(&output_file);
    let mut output: String = {
        let start = text.len().saturating_sub(OUTPUT_TAIL);
        let start = (start..=text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text[start..].to_string()
    };
    if status.is_none() {
        output.push_str(&format!(
            "\n(check timed out after {} s)",
            timeout.as_secs()
        ));
    }
    Ok(CheckResult {
        passed: status.is_some_and(|s| s.success()),
        tampered,
        output,
    })
}
