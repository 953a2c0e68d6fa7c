//! Verification: the project's tests re-run when the model says it is done.

use keel_protocol::Event;
use keel_tools::{exec, secrets};
use tokio_util::sync::CancellationToken;

use super::{Agent, EventSink, Session};
use crate::{test_output, test_report};

pub(super) enum Verification {
    /// Green, or better than a red baseline.
    Passed,
    /// No test command, or verification is off.
    NotRun,
    /// The runner found no tests.
    NoTests,
    /// The tests cannot run here (a missing runner, no sandbox): not the model's to fix.
    Unavailable(String),
    Cancelled,
    Failed(String),
}

impl Session {
    /// Re-runs the project's tests after the model said it is done.
    pub(super) async fn verify(
        &mut self,
        agent: &Agent,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
    ) -> Verification {
        let Some(command) = self.test_command.clone().filter(|_| agent.config.verify) else {
            return Verification::NotRun;
        };
        // The baseline first (it is never run against the agent's work).
        self.settle_baseline(None).await;
        // The tests as they were when the session started (plus any the agent added),
        // unless the task asks to change tests.
        let root = self.tool_ctx.workspace.root().to_path_buf();
        let restored = self
            .test_files
            .as_ref()
            .filter(|_| !self.tests_may_change)
            .map(|snapshot| snapshot.restore(&root));
        let originals = restored
            .as_ref()
            .map(|r| r.paths(&root))
            .unwrap_or_default();
        // The test command is the project's code: it runs in the sandbox like `bash`.
        let result = match self
            .tool_ctx
            .sandbox
            .shell(&command, self.tool_ctx.workspace.root())
        {
            Ok(shell) => {
                exec::run(
                    shell,
                    agent.config.test_timeout,
                    agent.config.limits.output_bytes,
                    cancel,
                )
                .await
            }
            Err(refused) => Err(std::io::Error::other(refused.to_string())),
        };
        self.tool_ctx.sandbox.reap();
        if let Some(restored) = restored {
            restored.undo();
        }
        let result = match result {
            Ok(result) => result,
            Err(e) => {
                self.emit(
                    sink,
                    Event::Verification {
                        command: command.clone(),
                        passed: false,
                        exit_code: None,
                        output: e.to_string(),
                        duration_ms: 0,
                        preexisting: Vec::new(),
                    },
                );
                return Verification::Unavailable(format!(
                    "keel could not run the test command `{command}`: {e}. The task is not verified."
                ));
            }
        };
        if result.ending == exec::Ending::Cancelled {
            return Verification::Cancelled;
        }
        let output = secrets::mask_output(&result.output);
        let report = if result.ending == exec::Ending::Exited {
            test_report::read(&command, result.exit_code, &result.output)
        } else {
            test_report::Report::Red(None)
        };
        // Compared with a red baseline: nothing worse and something fixed passes.
        let preexisting: Vec<String> = match (&self.baseline, &report) {
            (Some(test_report::Report::Red(Some(before))), test_report::Report::Red(Some(now)))
                if test_report::improved(before, now) =>
            {
                now.iter().cloned().collect()
            }
            _ => Vec::new(),
        };
        let passed = report == test_report::Report::Green || !preexisting.is_empty();
        self.emit(
            sink,
            Event::Verification {
                command: command.clone(),
                passed,
                exit_code: result.exit_code,
                output: output.clone(),
                duration_ms: result.duration.as_millis() as u64,
                preexisting,
            },
        );
        match report {
            _ if passed => return Verification::Passed,
            test_report::Report::NoTests => return Verification::NoTests,
            test_report::Report::MissingRunner(why) => {
                return Verification::Unavailable(format!(
                    "the test command `{command}` cannot run here: {why}. Install it, or set `test_command`; the task is not verified."
                ));
            }
            _ => {}
        }
        let how = match (result.ending, result.exit_code) {
            (exec::Ending::TimedOut, _) => {
                format!("timed out after {} s", agent.config.test_timeout.as_secs())
            }
            (_, Some(code)) => format!("exit code {code}"),
            (_, None) => "killed by a signal".into(),
        };
        let originals = if originals.is_empty() {
            String::new()
        } else {
            format!(
                "\n(The tests ran as they were when the task started: {} changed or removed in this session was put back for the run. The task does not ask to change tests.)",
                originals.join(", ")
            )
        };
        Verification::Failed(format!(
            "You said you are done, but the tests fail (`{command}`, {how}):\n{}{originals}\nFix the code so the tests pass, then finish again.",
            test_output::condense(&output).trim_end()
        ))
    }
}
