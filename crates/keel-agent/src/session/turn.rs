//! One turn: the loop of DESIGN.md from the user's message to `done`.

use std::time::Instant;

use keel_llm::{ChatRequest, LlmError, calls};
use keel_protocol::{ErrorKind, Event, FeedbackReason, Outcome};
use keel_store::NewChange;
use tokio_util::sync::CancellationToken;

use super::verify::Verification;
use super::{Agent, EventSink, PendingCall, Response, Session, TurnSummary, stream};
use crate::changes::{ChangeTracker, describe, fingerprint};
use crate::context::{named_files, named_section, shown_files};
use crate::intent::asks_for_work;
use crate::memory::{context_section, project_key};
use crate::project_context;
use crate::rut::Rut;
use crate::stall::{StallDetector, Verdict};
use crate::tamper::{Snapshot, task_changes_tests};
use crate::test_output;
use crate::test_report::runs_tests;

/// How many times a prose reply is refused, in a turn that asked for work and has done
/// nothing yet, before it is taken as the answer.
const ACTION_ASKS: u32 = 2;

const REPEAT: &str = "The files are now exactly as they were when the tests failed earlier in this task, so the tests fail the same way again. Do not write that code again: look at the failing assertion, find what is wrong, and change the code differently.";

/// What the next reply must be: anything, a tool call, or a call that changes a file.
enum Require {
    Nothing,
    Call,
    Change,
    /// The first reply of a new attempt: it may explain, it ends with a change.
    NewAttempt,
}

const CHANGE_NOW: &str =
    " The tests still fail, so your next reply must change the code: call edit or write.";

/// Said after a reply stopped in a loop (`{piece}`: what it repeated).
const LOOPED: &str = "Your last reply went round in a loop, writing `{piece}` again and again, so keel stopped it. Nothing was run. Answer again, briefly: one tool call, with short arguments.";

/// Said, in place of running the tests again, when the model says it is done with the
/// workspace exactly as it was when its tests failed in this turn (`{command}`: the
/// test command).
const UNCHANGED: &str = "You said you are done, but the files are exactly as they were when the tests failed (`{command}`, above), so they still fail the same way. Change the code now: call edit or write.";

const NO_ACTION: &str = "Nothing has been done yet: no tool has been called, so no file has changed and no test has run. Do the task now with a tool call — start by reading the file the task is about.";

/// What the first reply of a new attempt must be: one that ends with a change. The
/// files are shown in the note or the context and the tests just failed, so any other
/// call is a detour — and at the raised temperature of a new attempt the 1.5B took a
/// detour after 30 of 135 fresh starts in the eval (the failing tests run again,
/// `git add`, `git checkout HEAD~1`, `git clone`), each an iteration of the ten.
/// ([`Session::new_attempt_request`] leaves the request as it is when no tool changes files.)
fn new_attempt(wants_work: bool) -> Require {
    if wants_work {
        Require::NewAttempt
    } else {
        Require::Nothing
    }
}

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
            let shown = shown_files(&root);
            for (path, _) in &shown {
                if let Ok(resolved) = self.tool_ctx.workspace.resolve(path) {
                    self.tool_ctx.mark_read(&resolved);
                }
            }
            // Files the task names, shown whole (and counted as read) when they are small.
            let named = named_files(&root, message);
            for (path, _) in &named {
                if let Ok(resolved) = self.tool_ctx.workspace.resolve(path) {
                    self.tool_ctx.mark_read(&resolved);
                }
            }
            content.push_str(&named_section(&named));
            // The tests first: their failures tell the map where to look.
            self.start_baseline(agent);
            let baseline = if asks_for_work(message) {
                self.baseline_context(!shown.is_empty()).await
            } else {
                String::new()
            };
            if agent.config.repo_map && shown.is_empty() {
                // Ranked towards the files the task names and the failing tests (their
                // file uses the code that fails) and the names both mention.
                let mut paths: Vec<String> = named.iter().map(|(p, _)| p.clone()).collect();
                paths.extend(crate::repomap::paths_in(&root, &baseline));
                content.push_str(&crate::repomap::section(
                    &root,
                    agent.config.map_cache_dir.as_ref(),
                    &crate::repomap::focus(&format!("{message}\n{baseline}"), &paths),
                    crate::repomap::budget(agent.model.info().context_window),
                ));
            }
            if agent.tools.get("skill").is_some() {
                let skills = crate::skills::discover(&root, &agent.config.skill_dirs);
                content.push_str(&crate::skills::context_section(&skills));
            }
            content.push_str(&baseline);
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
        self.checkpoint_start(agent);
        if self.test_files.is_none() {
            self.test_files = Some(Snapshot::take(&root));
        }
        self.tests_may_change = task_changes_tests(message);
        self.task = message.to_string();
        let mut changes = Some(ChangeTracker::start(&root));
        let mut answer = String::new();
        let mut stall = StallDetector::default();
        let mut rut = Rut::default();
        // The workspace at the attempt that failed the fewest tests so far.
        let mut best = None;
        let mut iterations = 0;
        // A planning turn reads and answers: no nudges to act, no tests.
        let wants_work = asks_for_work(message) && self.planning.is_none();
        let mut plan_asked = false;
        // A successful call made, or the workspace changed, in this turn.
        let mut worked = false;
        let mut action_asks = 0;
        // What the next reply must be.
        let mut require = Require::Nothing;
        // The last reply was empty and was asked again.
        let mut empty_asked = false;
        // A stall has started the task afresh in this turn.
        let mut stall_restarted = false;
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

            self.fit_window(agent, sink, cancel).await;
            let mut request = match std::mem::replace(&mut require, Require::Nothing) {
                Require::Change => self.required_change_request(agent),
                Require::Call => self.required_call_request(agent),
                Require::NewAttempt => self.new_attempt_request(agent),
                Require::Nothing => {
                    let mut request = self.request(agent);
                    // Red, and nothing changed since: a reply may say what is wrong,
                    // but it does not end without the call that changes it (the 1.5B
                    // answered 20 of 71 red runs with the cause alone, an iteration
                    // each). `red()` first: the workspace is hashed only when red.
                    request.end_with_call = wants_work
                        && !agent.changing_tools().is_empty()
                        && rut.red()
                        && rut.red_here(fingerprint(&root));
                    request
                }
            };
            request.temperature = rut.next_temperature();
            let Some(mut response) = self.generate(agent, request, sink, cancel).await else {
                break if cancel.is_cancelled() {
                    Outcome::Cancelled
                } else {
                    Outcome::Failed
                };
            };
            // An empty reply (small models end their turn at once now and then) is no
            // answer to a task: asked again once, with a call required, and not counted.
            let empty = response.text.trim().is_empty() && response.native_calls.is_empty();
            if empty && wants_work && !std::mem::replace(&mut empty_asked, true) {
                require = Require::Call;
                iterations -= 1;
                continue;
            }
            empty_asked = empty;
            if let Some(piece) = response.looped.take() {
                // Nothing in a looped reply is run; the next one is sampled warmer.
                rut.looped();
                self.emit(
                    sink,
                    Event::Assistant {
                        content: response.text,
                        tool_calls: Vec::new(),
                    },
                );
                let piece: String = piece.trim().chars().take(80).collect();
                self.emit(
                    sink,
                    Event::Feedback {
                        reason: FeedbackReason::Looped,
                        content: LOOPED.replace("{piece}", &piece),
                    },
                );
                if let Verdict::Stalled = stall.observe([], false, false) {
                    break Outcome::Stalled;
                }
                continue;
            }
            if agent.protocol.is_text() && agent.model.info().constraint.is_some() {
                self.repair_calls(agent, &mut response, sink, cancel).await;
            }
            let (mut prose, mut calls) = self.calls_of(agent, &mut response);
            if wants_work && agent.tools.get("write").is_some() {
                if calls.is_empty() {
                    // "Here's the updated code:" and a block: the model's own way of
                    // editing.
                    calls = self.calls_of_blocks(agent, &mut response, &mut prose);
                } else if agent.protocol.is_text() {
                    // A file written as a block that names it, then a call (the tests,
                    // say): the file first, or the model believes it wrote it.
                    let mut writes = self.calls_of_named_blocks(agent, &mut response, &mut prose);
                    writes.append(&mut calls);
                    calls = writes;
                }
            }
            rut.reply(&response.text);
            self.emit(
                sink,
                Event::Assistant {
                    content: response.text,
                    tool_calls: response.native_calls,
                },
            );

            let verdict = if calls.is_empty() {
                if let Some(task) = self.planning.clone() {
                    let steps = super::plan::plan_steps(&prose);
                    if steps.is_empty() && !std::mem::replace(&mut plan_asked, true) {
                        self.emit(
                            sink,
                            Event::Feedback {
                                reason: FeedbackReason::NoAction,
                                content: super::plan::PLAN_FORMAT.into(),
                            },
                        );
                        continue;
                    }
                    if !steps.is_empty() {
                        self.emit(sink, Event::Plan { task, steps });
                    }
                    answer = prose.clone();
                    self.emit(sink, Event::Response { content: prose });
                    break Outcome::Completed;
                }
                if wants_work && !worked && action_asks < ACTION_ASKS {
                    // A prose "done" before any work: ask again, with a call required.
                    action_asks += 1;
                    require = Require::Call;
                    self.emit(
                        sink,
                        Event::Feedback {
                            reason: FeedbackReason::NoAction,
                            content: NO_ACTION.into(),
                        },
                    );
                    stall.observe([], false, false)
                } else if wants_work
                    && !agent.changing_tools().is_empty()
                    && rut.unchanged_since_red(fingerprint(&root))
                {
                    // Nothing to verify: the tests failed in exactly this state. A run
                    // would only repeat their output (~500 tokens to prefill); the
                    // eval's 1.5B answered a red run with such a "done" in 32 of 260
                    // replies, often just `python3 -m pytest -q` as prose. Said once per state: a second
                    // "done" there runs the tests (a flaky test may pass).
                    require = Require::Change;
                    let command = self.test_command.clone().unwrap_or_default();
                    self.emit(
                        sink,
                        Event::Feedback {
                            reason: FeedbackReason::TestsFailed,
                            content: UNCHANGED.replace("{command}", &command),
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
                        Verification::Failed { feedback, red } => {
                            // Red tests need work, not words: the next reply is a call.
                            require = Require::Call;
                            rut.tests_failed(fingerprint(&root), red);
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
                let after = may_write.then(|| fingerprint(&root));
                let changed = before.is_some() && before != after;
                worked |= any_success || changed;
                if let Some(after) = after {
                    self.after_writes(
                        agent,
                        &calls,
                        &outputs,
                        after,
                        changed,
                        changes.as_ref(),
                        &mut rut,
                        sink,
                        cancel,
                    )
                    .await;
                    if cancel.is_cancelled() {
                        break Outcome::Cancelled;
                    }
                }
                let observed = calls.iter().filter_map(|c: &PendingCall| {
                    c.arguments.as_ref().ok().map(|a| (c.name.as_str(), a))
                });
                stall.observe(observed, any_success, changed)
            };
            // An attempt that failed its tests and repeated itself (or failed twice) is
            // over: the task starts again afresh, while there is room for a new attempt.
            if rut.take_new_best() {
                best = changes.as_ref().map(|c| c.keep(&root));
            }
            let left = agent.config.max_iterations.saturating_sub(iterations);
            if self.start_afresh(&mut rut, changes.as_ref(), best.as_ref(), left, false, sink) {
                stall = StallDetector::default();
                require = new_attempt(wants_work);
                continue;
            }
            let red =
                rut.red() || matches!(self.baseline, Some(crate::test_report::Report::Red(_)));
            match verdict {
                Verdict::Fine => {}
                Verdict::Warn(mut content) => {
                    // Going round in circles while the tests fail: the way out is a
                    // change to the code, so the next reply must make one.
                    if wants_work && red && !agent.changing_tools().is_empty() {
                        require = Require::Change;
                        content.push_str(CHANGE_NOW);
                    }
                    self.emit(
                        sink,
                        Event::Feedback {
                            reason: FeedbackReason::Stall,
                            content,
                        },
                    )
                }
                Verdict::Stalled => {
                    // Still in circles after the warning while the tests fail, with room
                    // left: a new attempt (the circling out of the conversation), once a
                    // turn, rather than the end. The eval's `change` wrote the same
                    // unparsable file four times and stopped at iteration 4 of 10.
                    if wants_work
                        && red
                        && !std::mem::replace(&mut stall_restarted, true)
                        && self.start_afresh(
                            &mut rut,
                            changes.as_ref(),
                            best.as_ref(),
                            left,
                            true,
                            sink,
                        )
                    {
                        stall = StallDetector::default();
                        require = new_attempt(wants_work);
                        continue;
                    }
                    break Outcome::Stalled;
                }
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
        self.checkpoint_end(agent, sink);
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

    /// After calls that may write, with the workspace in state `after`: a test run the
    /// model made that failed marks the state; a state whose tests already failed is
    /// said to be one (and the next reply is sampled hotter); else, after a change, the
    /// tests run when they are quick and the model is told what they say.
    #[allow(clippy::too_many_arguments)]
    async fn after_writes(
        &mut self,
        agent: &Agent,
        calls: &[PendingCall],
        outputs: &[keel_tools::ToolOutput],
        after: u64,
        changed: bool,
        changes: Option<&ChangeTracker>,
        rut: &mut Rut,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
    ) {
        let red_test_run = calls.iter().zip(outputs).find(|(call, output)| {
            call.name == "bash"
                && output.is_error
                && call
                    .arguments
                    .as_ref()
                    .ok()
                    .and_then(|a| a.get("command"))
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|c| runs_tests(c, self.test_command.as_deref()))
        });
        if let Some((_, output)) = red_test_run {
            rut.tests_failed(after, test_output::red(&output.content));
            return;
        }
        // A file written (same bytes included) or anything changed: the model tried to
        // change the code.
        let wrote = calls.iter().zip(outputs).any(|(call, output)| {
            !output.is_error && (call.name == "write" || call.name == "edit")
        });
        if (changed || wrote) && rut.state(after) {
            self.emit(
                sink,
                Event::Feedback {
                    reason: FeedbackReason::Repeat,
                    content: REPEAT.into(),
                },
            );
            return;
        }
        if !changed {
            return;
        }
        if let Some(mut run) = self.test_after_change(agent, cancel).await {
            let mut after = after;
            if !run.passed
                && let Some((relative, original)) = self.written_file(calls, outputs, changes)
                && let Some(trimmed) = self
                    .trim_regressions(agent, &relative, &original, &run, cancel)
                    .await
            {
                after = fingerprint(self.tool_ctx.workspace.root());
                run = trimmed.run;
                run.feedback = format!(
                    "{}
{}",
                    trimmed.note, run.feedback
                );
            }
            if run.passed {
                rut.tests_passed();
            } else {
                rut.tests_failed(after, run.red);
            }
            self.emit(
                sink,
                Event::Feedback {
                    reason: FeedbackReason::TestRun,
                    content: run.feedback,
                },
            );
        }
    }

    /// The one file these calls wrote or edited, and its text at the start of the turn
    /// (`None` for several files, or a file new in this turn).
    fn written_file(
        &self,
        calls: &[PendingCall],
        outputs: &[keel_tools::ToolOutput],
        changes: Option<&ChangeTracker>,
    ) -> Option<(String, String)> {
        let workspace = &self.tool_ctx.workspace;
        let mut written = calls
            .iter()
            .zip(outputs)
            .filter(|(call, output)| {
                !output.is_error && (call.name == "write" || call.name == "edit")
            })
            .filter_map(|(call, _)| {
                let path = call.arguments.as_ref().ok()?.get("path")?.as_str()?;
                Some(workspace.display(&workspace.resolve(path).ok()?))
            });
        let first = written.next()?;
        if written.any(|other| other != first) {
            return None;
        }
        let original = changes?.original_text(&first)?;
        Some((first, original))
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
        let bytes = request.prompt_bytes();
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
        self.calibrate(bytes, streamed.usage.prompt_tokens);
        self.emit_usage(agent, sink, &streamed);
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
            looped: streamed.looped.map(|l| l.piece),
        })
    }
}
