//! The baseline: the project's tests run once when a session starts, in the background,
//! so that verification can tell a failure the agent caused from one that was there
//! before. A task that asks for work waits for it a moment (at most
//! [`BASELINE_WAIT`]): when it is that quick, its failures go into the context, where a
//! small model that sees which assertion fails looks in the right place. Either way
//! the first change the agent makes waits for the run to end, so the baseline never
//! sees the agent's work.

use std::time::Duration;

use keel_tools::{exec, secrets};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Agent, Session};
use crate::{test_output, test_report};

/// How long the baseline may run before it is left out of the result.
const BASELINE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the first request of a task waits for the baseline. 2 s was too short
/// for the first pytest run in a fresh copy of a 78-file project while the model
/// loaded: the find-the-code eval's first task ran without its failures (and without
/// the map's focus on them) while the others had both. A few seconds are small beside
/// the first prefill of a local model.
pub(super) const BASELINE_WAIT: Duration = Duration::from_secs(5);
/// Output of the baseline shown in the context (its tail, where the failures are).
const CONTEXT_OUTPUT: usize = 3000;

/// A finished baseline run.
#[derive(Debug, Clone)]
pub(super) struct Finished {
    command: String,
    exit_code: Option<i32>,
    output: String,
    duration: Duration,
}

/// The baseline still running.
#[derive(Debug)]
pub(super) struct Running {
    command: String,
    handle: JoinHandle<Option<(Option<i32>, String, Duration)>>,
}

/// The last `max` bytes of `text` (at a character boundary), marked when cut.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[… output cut]\n{}", &text[start..])
}

impl Session {
    /// Starts the baseline run (once per session; not without a test command or with
    /// verification off).
    pub(super) fn start_baseline(&mut self, agent: &Agent) {
        if self.baseline_run.is_some() || self.baseline_done.is_some() {
            return;
        }
        let Some(command) = self.test_command.clone().filter(|_| agent.config.verify) else {
            return;
        };
        let Ok(shell) = self
            .tool_ctx
            .sandbox
            .shell(&command, self.tool_ctx.workspace.root())
        else {
            return;
        };
        let limit = agent.config.limits.output_bytes;
        let handle = tokio::spawn(async move {
            let result = exec::run(shell, BASELINE_TIMEOUT, limit, &CancellationToken::new())
                .await
                .ok()?;
            (result.ending == exec::Ending::Exited).then_some((
                result.exit_code,
                result.output,
                result.duration,
            ))
        });
        self.baseline_run = Some(Running { command, handle });
    }

    /// Waits for the baseline (at most `wait`, or until it ends) and records it.
    pub(super) async fn settle_baseline(&mut self, wait: Option<Duration>) {
        let Some(running) = self.baseline_run.as_mut() else {
            return;
        };
        let joined = match wait {
            Some(wait) => match tokio::time::timeout(wait, &mut running.handle).await {
                Ok(joined) => joined,
                Err(_) => return,
            },
            None => (&mut running.handle).await,
        };
        let Some(running) = self.baseline_run.take() else {
            return;
        };
        self.tool_ctx.sandbox.reap();
        if let Ok(Some((exit_code, output, duration))) = joined {
            self.baseline = Some(test_report::read(&running.command, exit_code, &output));
            self.baseline_done = Some(Finished {
                command: running.command,
                exit_code,
                output,
                duration,
            });
        }
    }

    /// The baseline has finished, within [`super::verify::QUICK_TESTS`]: quick enough to
    /// run the tests after every change.
    pub(super) fn baseline_was_quick(&self) -> bool {
        self.baseline_done
            .as_ref()
            .is_some_and(|done| done.duration <= super::verify::QUICK_TESTS)
    }

    /// The context's section on the tests: what the baseline found, when it finished
    /// within [`BASELINE_WAIT`]; empty otherwise. `tests_shown`: the context shows the
    /// test files whole, so a run that passes nothing is told by its first failure
    /// and the count (see [`test_output::first_failure`]).
    pub(super) async fn baseline_context(&mut self, tests_shown: bool) -> String {
        self.settle_baseline(Some(BASELINE_WAIT)).await;
        let Some(done) = &self.baseline_done else {
            return String::new();
        };
        let command = &done.command;
        match done.exit_code {
            Some(0) => format!("\nThe tests pass at the start (`{command}`).\n"),
            code => format!(
                "\nThe tests fail at the start (`{command}`, exit code {}):\n{}\n",
                code.map_or("none".into(), |c| c.to_string()),
                tail(
                    &secrets::mask_output(
                        &tests_shown
                            .then(|| test_output::first_failure(&done.output))
                            .flatten()
                            .unwrap_or_else(|| test_output::condense(&done.output))
                    ),
                    CONTEXT_OUTPUT
                )
                .trim_end()
            ),
        }
    }
}
