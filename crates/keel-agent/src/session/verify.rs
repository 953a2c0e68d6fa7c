//! Verification: the project's tests re-run when the model says it is done — and, when
//! they are quick, after each change the agent makes, so that it sees at once what its
//! change did (the same run, reported as feedback instead of judged).

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
    /// Red: what the model is told, and the gist of the run.
    Failed {
        feedback: String,
        red: test_output::Red,
    },
}

/// The tests run after a change.
pub(super) struct AfterChange {
    pub(super) passed: bool,
    /// What the model is told.
    pub(super) feedback: String,
    /// What a red run says.
    pub(super) red: test_output::Red,
    /// The failing tests, when the runner's output names them (none when green).
    pub(super) failing: Option<std::collections::BTreeSet<String>>,
}

/// How long the baseline run may have taken for the tests to run after every change.
pub(super) const QUICK_TESTS: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a test run after a change may take (within the configured test timeout):
/// quick tests that now run for a minute say the change made the code too slow, and
/// the turn should not wait ten minutes to learn it (alphametics, in the eval).
const AFTER_CHANGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// One run of the project's tests, as verification runs them.
enum TestRun {
    Cancelled,
    /// The command could not be started (the error is in the `verification` event).
    NotStarted(String),
    Ran {
        result: exec::ExecResult,
        /// Masked output.
        output: String,
        report: test_report::Report,
        passed: bool,
        preexisting: Vec<String>,
        /// Test files put back for the run.
        originals: Vec<String>,
    },
}

impl Session {
    /// Runs the project's tests the way verification does: the baseline settled first,
    /// the test files as they were when the task started (unless the task asks to change
    /// tests), in the sandbox. Emits the `verification` event to `sink`, when given.
    async fn run_tests(
        &mut self,
        agent: &Agent,
        command: &str,
        timeout: std::time::Duration,
        sink: Option<&dyn EventSink>,
        cancel: &CancellationToken,
    ) -> TestRun {
        // The baseline first (it is never run against the agent's work).
        self.settle_baseline(None).await;
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
        let result = match self.tool_ctx.sandbox.shell(command, &root) {
            Ok(shell) => exec::run(shell, timeout, agent.config.limits.output_bytes, cancel).await,
            Err(refused) => Err(std::io::Error::other(refused.to_string())),
        };
        self.tool_ctx.sandbox.reap();
        if let Some(restored) = restored {
            restored.undo();
        }
        let result = match result {
            Ok(result) => result,
            Err(e) => {
                if let Some(sink) = sink {
                    self.emit(
                        sink,
                        Event::Verification {
                            command: command.to_string(),
                            passed: false,
                            exit_code: None,
                            output: e.to_string(),
                            duration_ms: 0,
                            preexisting: Vec::new(),
                        },
                    );
                }
                return TestRun::NotStarted(e.to_string());
            }
        };
        if result.ending == exec::Ending::Cancelled {
            return TestRun::Cancelled;
        }
        let output = secrets::mask_output(&result.output);
        let report = if result.ending == exec::Ending::Exited {
            test_report::read(command, result.exit_code, &result.output)
        } else {
            test_report::Report::Red(None)
        };
        // Compared with a red baseline: nothing worse, something fixed, and none of the
        // tests the task is about still failing passes.
        let preexisting: Vec<String> = match (&self.baseline, &report) {
            (Some(test_report::Report::Red(Some(before))), test_report::Report::Red(Some(now)))
                if test_report::improved(before, now)
                    && !now.iter().any(|t| test_report::task_targets(&self.task, t)) =>
            {
                now.iter().cloned().collect()
            }
            _ => Vec::new(),
        };
        let passed = report == test_report::Report::Green || !preexisting.is_empty();
        if let Some(sink) = sink {
            self.emit(
                sink,
                Event::Verification {
                    command: command.to_string(),
                    passed,
                    exit_code: result.exit_code,
                    output: output.clone(),
                    duration_ms: result.duration.as_millis() as u64,
                    preexisting: preexisting.clone(),
                },
            );
        }
        TestRun::Ran {
            result,
            output,
            report,
            passed,
            preexisting,
            originals,
        }
    }

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
        let (result, output, report, passed, originals) = match self
            .run_tests(
                agent,
                &command,
                agent.config.test_timeout,
                Some(sink),
                cancel,
            )
            .await
        {
            TestRun::Cancelled => return Verification::Cancelled,
            TestRun::NotStarted(e) => {
                return Verification::Unavailable(format!(
                    "keel could not run the test command `{command}`: {e}. The task is not verified."
                ));
            }
            TestRun::Ran {
                result,
                output,
                report,
                passed,
                originals,
                ..
            } => (result, output, report, passed, originals),
        };
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
        Verification::Failed {
            feedback: format!(
                "You said you are done, but the tests fail (`{command}`, {}):\n{}{}\nFix the code so the tests pass, then finish again.",
                how(&result, agent.config.test_timeout),
                test_output::condense(&output).trim_end(),
                put_back(&originals),
            ),
            red: test_output::red(&output),
        }
    }

    /// Runs the tests after a change, when they are quick (the baseline took at most
    /// [`QUICK_TESTS`]) and verification is on. `Some` when they ran.
    pub(super) async fn test_after_change(
        &mut self,
        agent: &Agent,
        cancel: &CancellationToken,
    ) -> Option<AfterChange> {
        let command = self.test_command.clone().filter(|_| agent.config.verify)?;
        if !self.baseline_was_quick() {
            return None;
        }
        let timeout = agent.config.test_timeout.min(AFTER_CHANGE_TIMEOUT);
        let TestRun::Ran {
            result,
            output,
            report,
            passed,
            preexisting,
            originals,
        } = self.run_tests(agent, &command, timeout, None, cancel).await
        else {
            return None;
        };
        const DONE_OR_ON: &str = "If the task is done, say so in one line; otherwise go on.";
        let feedback = match &report {
            _ if passed && preexisting.is_empty() => {
                format!(
                    "keel ran the tests after this change (`{command}`): they pass. {DONE_OR_ON}"
                )
            }
            _ if passed => format!(
                "keel ran the tests after this change (`{command}`): the failures this task is about are fixed; these failed before the task started and still do: {}. {DONE_OR_ON}",
                preexisting.join(", ")
            ),
            test_report::Report::NoTests | test_report::Report::MissingRunner(_) => return None,
            _ => format!(
                "keel ran the tests after this change (`{command}`, {}): they fail.\n{}{}\n{DIAGNOSE}",
                how(&result, timeout),
                test_output::condense(&output).trim_end(),
                put_back(&originals),
            ),
        };
        let failing = match &report {
            test_report::Report::Green => Some(Default::default()),
            test_report::Report::Red(failing) => failing.clone(),
            _ => None,
        };
        Some(AfterChange {
            passed,
            feedback,
            failing,
            red: if passed {
                test_output::Red::default()
            } else {
                test_output::red(&output)
            },
        })
    }
}

/// The request after a red run: the cause in words before the code. Asked to fix, the
/// 1.5B answered most red runs with a call at once, often the same code again; its
/// fixes came in replies that first said what was wrong ("…excludes null-like values
/// from the final result. Here's the updated code:", the eval's flatten-array).
const DIAGNOSE: &str = "First say in one sentence which input fails and what the code must do differently for it; then fix the code.";

/// How a red run ended, for the model.
fn how(result: &exec::ExecResult, timeout: std::time::Duration) -> String {
    match (result.ending, result.exit_code) {
        (exec::Ending::TimedOut, _) => {
            format!(
                "timed out after {} s: too slow, or waiting for something that never comes",
                timeout.as_secs()
            )
        }
        (_, Some(code)) => format!("exit code {code}"),
        (_, None) => "killed by a signal".into(),
    }
}

/// The note on test files put back for a run (empty when none were).
fn put_back(originals: &[String]) -> String {
    if originals.is_empty() {
        return String::new();
    }
    format!(
        "\n(The tests ran as they were when the task started: {} changed or removed in this session was put back for the run. The task does not ask to change tests.)",
        originals.join(", ")
    )
}
