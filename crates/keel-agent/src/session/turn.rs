//! One turn: the loop of DESIGN.md from the user's message to `done`.

use std::time::Instant;

use keel_llm::{ChatRequest, LlmError, calls};
use keel_protocol::{ErrorKind, Event, FeedbackReason, Outcome};
use keel_store::NewChange;
use tokio_util::sync::CancellationToken;

use super::verify::Verification;
use super::{Agent, EventSink, PendingCall, Response, Session, TurnSummary, stream};
use crate::changes::{ChangeTracker, describe, fingerprint};
use crate::context::shown_files;
use crate::intent::asks_for_work;
use crate::memory::{context_section, project_key};
use crate::project_context;
use crate::stall::{StallDetector, Verdict};
use crate::tamper::{Snapshot, task_changes_tests};

/// How many times a prose reply is refused, in a turn that asked for work and has done
/// nothing yet, before it is taken as the answer.
const ACTION_ASKS: u32 = 2;

const NO_ACTION: &str = "Nothing has been done yet: no tool has been called, so no file has changed and no test has run. Do the task now with a tool call — start by reading the file the task is about.";

impl Session {
    /// Runs one user message to the end of its turn.
    pub async fn run_turn(
        &mut self,
        agent: &Agent,
        message: &str,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
    ) -> TurnSummary {
        let root = self.tool_ctx.workspace.root().to_path_buf();
        if !self
            .events
            .iter()
            .any(|e| matches!(e, Event::Context { .. }))
        {
            let mut content = project_context(&root, self.test_command.as_deref());
            // Files shown whole in the context count as read (write may replace them).
            for (path, _) in shown_files(&root) {
                if let Ok(resolved) = self.tool_ctx.workspace.resolve(&path) {
                    self.tool_ctx.mark_read(&resolved);
                }
            }
            self.start_baseline(agent);
            if asks_for_work(message) {
                content.push_str(&self.baseline_context().await);
            }
            if let Some(store) = &agent.memory {
                content.push_str(&context_section(store, &root, message, &self.id));
            }
            // Files shown whole and test output: secrets masked like any tool output.
            let content = keel_tools::secrets::mask(&content).0;
            self.emit(sink, Event::Context { content });
        }
        self.emit(
            sink,
            Event::User {
                content: message.to_string(),
            },
        );
        if self.test_files.is_none() {
            self.test_files = Some(Snapshot::take(&root));
        }
        self.tests_may_change = task_changes_tests(message);
        let mut changes = Some(ChangeTracker::start(&root));
        let mut answer = String::new();
        let mut stall = StallDetector::default();
        let mut iterations = 0;
        let wants_work = asks_for_work(message);
        // A successful call made, or the workspace changed, in this turn.
        let mut worked = false;
        let mut action_asks = 0;
        let mut require_call = false;
        let outcome = loop {
            if let Some(message) = self.sink_failure.clone() {
                self.emit(
                    sink,
                    Event::Error {
                        kind: ErrorKind::Internal,
                        message,
                    },
                );
                break Outcome::Failed;
            }
            if iterations >= agent.config.max_iterations {
                break Outcome::MaxIterations;
            }
            if cancel.is_cancelled() {
                break Outcome::Cancelled;
            }
            iterations += 1;
            self.emit(
                sink,
                Event::Thinking {
                    iteration: iterations,
                },
            );

            let request = if std::mem::take(&mut require_call) {
                self.required_call_request(agent)
            } else {
                self.request(agent)
            };
            let Some(mut response) = self.generate(agent, request, sink, cancel).await else {
                break if cancel.is_cancelled() {
                    Outcome::Cancelled
                } else {
                    Outcome::Failed
                };
            };
            if agent.protocol.is_text() && agent.model.info().constraint.is_some() {
                self.repair_calls(agent, &mut response, sink, cancel).await;
            }
            let (mut prose, mut calls) = self.calls_of(agent, &mut response);
            if calls.is_empty() && wants_work && agent.tools.get("write").is_some() {
                // "Here's the updated code:" and a block: the model's own way of editing.
                calls = self.calls_of_blocks(agent, &mut response, &mut prose);
            }
            self.emit(
                sink,
                Event::Assistant {
                    content: response.text,
                    tool_calls: response.native_calls,
                },
            );

            let verdict = if calls.is_empty() {
                if wants_work && !worked && action_asks < ACTION_ASKS {
                    // A prose "done" before any work: ask again, with a call required.
                    action_asks += 1;
                    require_call = true;
                    self.emit(
                        sink,
                        Event::Feedback {
                            reason: FeedbackReason::NoAction,
                            content: NO_ACTION.into(),
                        },
                    );
                    stall.observe([], false, false)
                } else {
                    match self.verify(agent, sink, cancel).await {
                        Verification::Passed => {
                            answer = prose.clone();
                            self.emit(sink, Event::Response { content: prose });
                            break Outcome::Verified;
                        }
                        Verification::NotRun | Verification::NoTests => {
                            answer = prose.clone();
                            self.emit(sink, Event::Response { content: prose });
                            break Outcome::Completed;
                        }
                        Verification::Unavailable(message) => {
                            // Not the model's to fix: said once, and the turn ends.
                            self.emit(
                                sink,
                                Event::Error {
                                    kind: ErrorKind::Environment,
                                    message,
                                },
                            );
                            answer = prose.clone();
                            self.emit(sink, Event::Response { content: prose });
                            break Outcome::Completed;
                        }
                        Verification::Cancelled => break Outcome::Cancelled,
                        Verification::Failed(feedback) => {
                            // Red tests need work, not words: the next reply is a call.
                            require_call = true;
                            self.emit(
                                sink,
                                Event::Feedback {
                                    reason: FeedbackReason::TestsFailed,
                                    content: feedback,
                                },
                            );
                            stall.observe([], false, false)
                        }
                    }
                }
            } else {
                // Calls that may write: compare the workspace around them (by content,
                // so rewriting a file with the same bytes is not progress).
                let may_write = calls
                    .iter()
                    .any(|c| c.arguments.is_ok() && !agent.tools.is_read_only(&c.name));
                let before = may_write.then(|| fingerprint(&root));
                let outputs = self
                    .execute(agent, &calls, &mut changes, sink, cancel)
                    .await;
                if cancel.is_cancelled() {
                    break Outcome::Cancelled;
                }
                let any_success = outputs.iter().any(|o| !o.is_error);
                let changed = before.is_some_and(|b| b != fingerprint(&root));
                worked |= any_success || changed;
                let observed = calls.iter().filter_map(|c: &PendingCall| {
                    c.arguments.as_ref().ok().map(|a| (c.name.as_str(), a))
                });
                stall.observe(observed, any_success, changed)
            };
            match verdict {
                Verdict::Fine => {}
                Verdict::Warn(content) => self.emit(
                    sink,
                    Event::Feedback {
                        reason: FeedbackReason::Stall,
                        content,
                    },
                ),
                Verdict::Stalled => break Outcome::Stalled,
            }
        };
        let changed = changes.map(|c| c.finish(&root)).unwrap_or_default();
        if let Some(store) = &agent.memory {
            let files = &changed;
            if !files.is_empty() {
                let summary = if answer.trim().is_empty() {
                    describe(files)
                } else {
                    answer
                };
                // The events stay the record of the turn; a change log that cannot
                // be written is not worth failing the turn for.
                let _ = store.add_change(&NewChange {
                    project: &project_key(&root),
                    session_id: &self.id,
                    request: message,
                    outcome: outcome.as_str(),
                    summary: &summary,
                    files,
                });
            }
        }
        self.emit(
            sink,
            Event::Done {
                outcome,
                iterations,
            },
        );
        TurnSummary {
            outcome,
            iterations,
            changed,
        }
    }

    /// Streams one model response. `None` when it failed (an `error` event says
    /// why) or was cancelled.
    async fn generate(
        &mut self,
        agent: &Agent,
        request: ChatRequest,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
    ) -> Option<Response> {
        let started = Instant::now();
        let filtering = agent.protocol.is_text();
        // A reply constrained whole to a call's JSON is one constrained call (the embedded
        // engine counts its own).
        let whole_reply_call = request.response_schema.is_some();
        let mut filter = calls::ProseFilter::default();
        let stream = agent.model.stream(request);
        let streamed = stream::read(stream, started, cancel, |text| {
            let shown = if filtering {
                filter.push(text)
            } else {
                text.to_string()
            };
            if !shown.is_empty() {
                self.emit(sink, Event::Delta { text: shown });
            }
        })
        .await;
        if streamed.cancelled {
            return None;
        }
        let rest = filter.finish();
        if filtering && !rest.is_empty() {
            self.emit(sink, Event::Delta { text: rest });
        }
        let mut streamed = streamed;
        if whole_reply_call && streamed.usage.constrained_calls.is_none() {
            streamed.usage.constrained_calls = Some(1);
        }
        self.emit_usage(sink, &streamed);
        if let Some(failure) = streamed.failure {
            let kind = match failure {
                LlmError::ContextOverflow(_) => ErrorKind::ContextOverflow,
                _ => ErrorKind::Model,
            };
            self.emit(
                sink,
                Event::Error {
                    kind,
                    message: failure.to_string(),
                },
            );
            return None;
        }
        let native_calls = self.native_calls(streamed.native_calls);
        Some(Response {
            text: streamed.text,
            native_calls,
        })
    }
}
