//! `keel doctor`'s end-to-end checks, each through real `keel` processes in a scratch
//! home: memory across a restart (a fact stored by one process is recalled by a new
//! one), and — behind `--fix`, it takes a minute or more — the sample bug fixed with the
//! configured model in a scratch copy, PASS when verified within three minutes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use keel_tools::exec;
use tokio_util::sync::CancellationToken;

use super::{Report, Status};

/// The sample task (examples/fix-the-test), compiled in so doctor needs no checkout.
const SAMPLE: &[(&str, &str)] = &[
    (
        "calc/__init__.py",
        include_str!("../../../examples/fix-the-test/calc/__init__.py"),
    ),
    (
        "tests/test_calc.py",
        include_str!("../../../examples/fix-the-test/tests/test_calc.py"),
    ),
    (
        "pyproject.toml",
        include_str!("../../../examples/fix-the-test/pyproject.toml"),
    ),
];
const SAMPLE_TASK: &str = "The test test_add fails. Fix the bug in calc/__init__.py.";
const FIX_LIMIT: Duration = Duration::from_secs(180);

fn keel(home: &Path) -> std::io::Result<Command> {
    let mut command = Command::new(std::env::current_exe()?);
    command.env("KEEL_HOME", home);
    Ok(command)
}

/// A fact added by one process, searched for by another.
pub(super) fn memory(report: &mut Report) {
    let outcome = (|| -> Result<String, String> {
        let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (home, project) = (scratch.path().join("home"), scratch.path().join("project"));
        std::fs::create_dir_all(&project).map_err(|e| e.to_string())?;
        let marker = format!("doctorcheck{}", std::process::id());
        let fact = format!("the {marker} fact survives a restart");
        let run = |args: &[&str]| -> Result<String, String> {
            let out = keel(&home)
                .map_err(|e| e.to_string())?
                .args(["memory", "--workspace"])
                .arg(&project)
                .args(args)
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        run(&["add", &fact])?;
        let found = run(&["search", &marker])?;
        if found.contains(&fact) {
            Ok(format!(
                "a fact stored by one process was recalled by a new one ({marker})"
            ))
        } else {
            Err(format!(
                "a new process did not recall the stored fact: {found:?}"
            ))
        }
    })();
    match outcome {
        Ok(detail) => report.line(Status::Pass, "memory", detail),
        Err(reason) => report.line(Status::Fail, "memory", reason),
    }
}

/// The sample bug fixed by `model` in a scratch copy (greedy unless KEEL_TEMPERATURE).
pub(super) async fn fix(report: &mut Report, model: &str) {
    let outcome = async {
        let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
        let work = scratch.path().join("fix-the-test");
        for (path, content) in SAMPLE {
            let full = work.join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            std::fs::write(full, content).map_err(|e| e.to_string())?;
        }
        let mut command = keel(&scratch.path().join("home")).map_err(|e| e.to_string())?;
        command
            .args([
                "run",
                "--json",
                "--max-iterations",
                "10",
                "--model",
                model,
                "--workspace",
            ])
            .arg(&work)
            .arg(SAMPLE_TASK);
        if std::env::var_os("KEEL_TEMPERATURE").is_none() {
            command.env("KEEL_TEMPERATURE", "0");
        }
        let result = exec::run(
            command,
            FIX_LIMIT,
            64 * 1024 * 1024,
            &CancellationToken::new(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let secs = result.duration.as_secs_f64();
        if result.ending == exec::Ending::TimedOut {
            return Err(format!("not done within {} s", FIX_LIMIT.as_secs()));
        }
        let done = result
            .output
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["type"] == "done");
        match done {
            Some(done) if done["outcome"] == "verified" => Ok(format!(
                "sample bug fixed and verified in {secs:.0} s, {} iterations (threshold ≤ {} s)",
                done["iterations"],
                FIX_LIMIT.as_secs()
            )),
            Some(done) => Err(format!(
                "the sample task ended {} after {secs:.0} s (threshold: verified within {} s)",
                done["outcome"],
                FIX_LIMIT.as_secs()
            )),
            None => Err(format!(
                "keel run ended without a result: {}",
                result.output.lines().last().unwrap_or_default()
            )),
        }
    }
    .await;
    match outcome {
        Ok(detail) => report.line(Status::Pass, "fix", detail),
        Err(reason) => report.line(Status::Fail, "fix", reason),
    }
}
