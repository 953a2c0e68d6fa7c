//! Running one response's calls: consecutive read-only calls concurrently, mutating
//! calls one at a time, results emitted in call order.

use std::time::Instant;

use futures_util::future::join_all;
use keel_protocol::Event;
use keel_tools::sandbox::Backend;
use keel_tools::{ToolOutput, secrets};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Agent, EventSink, PendingCall, Session};
use crate::changes::ChangeTracker;
use crate::permissions::{Action, ApprovalRequest, Decision, Permissions};
use crate::test_output;
use crate::{deps, tamper};

const TESTS_PASS: &str =
    "\n\nThe tests pass. If the task is done, reply without a tool call: say what you changed.";

/// What marks a command as a test run, by runner.
const TEST_MARKERS: &[&str] = &[
    "pytest",
    "unittest",
    "cargo test",
    "go test",
    "npm test",
    "jest",
    "vitest",
];

fn test_marker(command: &str) -> Option<&'static str> {
    TEST_MARKERS.iter().copied().find(|m| command.contains(m))
}

impl Session {
    /// Whether a call may run: `None` to run it, else the refusal the model gets. A
    /// rule or default that says `ask` waits for the agent's approver.
    async fn gate(
        &mut self,
        agent: &Agent,
        call: &PendingCall,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
    ) -> Option<String> {
        let Ok(arguments) = &call.arguments else {
            return None;
        };
        if self.planning.is_some() && !agent.tools.is_read_only(&call.name) {
            self.emit(
                sink,
                Event::Approval {
                    call_id: call.id.clone(),
                    allowed: false,
                    by: "plan mode".into(),
                },
            );
            return Some(super::plan::refused(&call.name));
        }
        let sandbox = &self.tool_ctx.sandbox;
        let permissions = Permissions {
            rules: &agent.config.permission_rules,
            unsandboxed: *sandbox.backend() == Backend::Off,
            network: sandbox.policy().network,
        };
        let mut verdict =
            permissions.decide(&call.name, arguments, agent.tools.is_read_only(&call.name));
        if let Some(why) = self.weakens_tests(call, arguments) {
            self.emit(
                sink,
                Event::Approval {
                    call_id: call.id.clone(),
                    allowed: false,
                    by: "test-tamper guard".into(),
                },
            );
            return Some(why);
        }
        if !verdict.from_rule && verdict.action != Action::Deny {
            // The packages the call adds: typos refused, unknown names asked about.
            let guard = deps::check(self.tool_ctx.workspace.root(), &call.name, arguments);
            if !guard.refuse.is_empty() {
                self.emit(
                    sink,
                    Event::Approval {
                        call_id: call.id.clone(),
                        allowed: false,
                        by: "dependency guard".into(),
                    },
                );
                return Some(format!(
                    "refused by keel's dependency guard: {}",
                    guard.refuse.join("; ")
                ));
            }
            if !guard.ask.is_empty() {
                verdict.action = Action::Ask;
                verdict.reason = if verdict.reason.is_empty() {
                    guard.ask.join("; ")
                } else {
                    format!("{}; {}", guard.ask.join("; "), verdict.reason)
                };
            }
        }
        match verdict.action {
            Action::Allow => None,
            Action::Deny => {
                self.emit(
                    sink,
                    Event::Approval {
                        call_id: call.id.clone(),
                        allowed: false,
                        by: "rule".into(),
                    },
                );
                Some(format!(
                    "denied: {}; do the task another way",
                    verdict.reason
                ))
            }
            Action::Ask => {
                self.emit(
                    sink,
                    Event::ApprovalRequest {
                        call_id: call.id.clone(),
                        name: call.name.clone(),
                        arguments: arguments.clone(),
                        reason: verdict.reason.clone(),
                    },
                );
                let request = ApprovalRequest {
                    session_id: self.id.clone(),
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    arguments: arguments.clone(),
                    reason: verdict.reason.clone(),
                };
                let decision = tokio::select! {
                    decision = agent.approver.decide(&request) => decision,
                    _ = cancel.cancelled() => Decision { allowed: false, by: "cancelled".into() },
                };
                self.emit(
                    sink,
                    Event::Approval {
                        call_id: call.id.clone(),
                        allowed: decision.allowed,
                        by: decision.by.clone(),
                    },
                );
                if decision.allowed {
                    if verdict.grants_network {
                        self.tool_ctx.grant_network_once();
                    }
                    None
                } else {
                    Some(format!(
                        "not run: the user did not approve this call ({}; decided by {}). Do the task another way, or say what you need.",
                        verdict.reason, decision.by
                    ))
                }
            }
        }
    }

    /// The refusal of a `write` / `edit` that weakens a test file, unless the task asks to
    /// change tests.
    fn weakens_tests(&self, call: &PendingCall, arguments: &Value) -> Option<String> {
        if self.tests_may_change || !matches!(call.name.as_str(), "write" | "edit") {
            return None;
        }
        let path = arguments.get("path").and_then(Value::as_str)?;
        let workspace = &self.tool_ctx.workspace;
        let resolved = workspace.resolve(path).ok()?;
        let shown = workspace.display(&resolved);
        if !tamper::is_test_file(&shown) {
            return None;
        }
        let before = std::fs::read_to_string(&resolved).ok()?;
        let text = |key: &str| arguments.get(key).and_then(Value::as_str);
        let after = match call.name.as_str() {
            "write" => text("content")?.to_string(),
            _ => {
                let old = text("old_string")?;
                if !before.contains(old) {
                    return None;
                }
                before.replacen(old, text("new_string")?, 1)
            }
        };
        let why = tamper::weakening(&before, &after)?;
        Some(format!(
            "refused: {shown} is a test file and this change weakens it ({why}). The task does not ask to change tests: make the code pass them as they are."
        ))
    }

    /// Whether `call` runs the project's tests: its command contains the test command,
    /// or names the same runner.
    fn is_test_run(&self, call: &PendingCall) -> bool {
        let (Some(test), Ok(arguments)) = (&self.test_command, &call.arguments) else {
            return false;
        };
        let Some(command) = arguments.get("command").and_then(Value::as_str) else {
            return false;
        };
        call.name == "bash"
            && (command.contains(test.as_str())
                || test_marker(test).is_some_and(|m| test_marker(command) == Some(m)))
    }

    /// Runs the calls: consecutive read-only calls concurrently, mutating calls one
    /// at a time in order. Results are emitted in call order.
    pub(super) async fn execute(
        &mut self,
        agent: &Agent,
        calls: &[PendingCall],
        changes: &mut Option<ChangeTracker>,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
    ) -> Vec<ToolOutput> {
        let mut outputs = Vec::with_capacity(calls.len());
        let mut index = 0;
        while index < calls.len() {
            let concurrent =
                |c: &PendingCall| c.arguments.is_ok() && agent.tools.is_read_only(&c.name);
            let end = if concurrent(&calls[index]) {
                index + calls[index..].iter().take_while(|c| concurrent(c)).count()
            } else {
                index + 1
            };
            let group = &calls[index..end];
            if group.iter().any(|c| !agent.tools.is_read_only(&c.name)) {
                // The baseline must not see the agent's work.
                self.settle_baseline(None).await;
            }
            if let Some(tracker) = changes.as_mut() {
                let workspace = &self.tool_ctx.workspace;
                for call in group.iter().filter(|c| !agent.tools.is_read_only(&c.name)) {
                    let path = call
                        .arguments
                        .as_ref()
                        .ok()
                        .and_then(|a| a.get("path"))
                        .and_then(Value::as_str);
                    if let Some(resolved) = path.and_then(|p| workspace.resolve(p).ok()) {
                        tracker.before_write(workspace.root(), &workspace.display(&resolved));
                    }
                }
            }
            for call in group {
                self.emit(
                    sink,
                    Event::ToolCall {
                        call_id: call.id.clone(),
                        name: call.name.clone(),
                        arguments: call.arguments.clone().unwrap_or(Value::Null),
                    },
                );
            }
            let mut refusals = Vec::with_capacity(group.len());
            for call in group {
                refusals.push(self.gate(agent, call, sink, cancel).await);
            }
            let ctx = &self.tool_ctx;
            let results = join_all(
                group
                    .iter()
                    .zip(refusals)
                    .map(|(call, refusal)| async move {
                        let started = Instant::now();
                        let output = match &call.arguments {
                            Err(problem) => ToolOutput::error(problem.clone()),
                            Ok(_) if cancel.is_cancelled() => {
                                ToolOutput::error("not run: the turn was cancelled")
                            }
                            Ok(_) if refusal.is_some() => {
                                ToolOutput::error(refusal.unwrap_or_default())
                            }
                            Ok(arguments) => {
                                agent
                                    .tools
                                    .call(ctx, &call.name, arguments.clone(), cancel)
                                    .await
                            }
                        };
                        (output, started.elapsed())
                    }),
            )
            .await;
            let room = self.output_room(agent, group.len());
            for (call, (mut output, duration)) in group.iter().zip(results) {
                // Secrets never reach the model or the store.
                output.content = secrets::mask_output(&output.content);
                if self.is_test_run(call) {
                    if output.is_error {
                        output.content = test_output::condense(&output.content);
                    } else {
                        // Small models re-run green tests until told: say what green means.
                        output.content.push_str(TESTS_PASS);
                    }
                }
                // A nested AGENTS.md goes with the first call that touches its files.
                if !output.is_error
                    && let Some(path) = call
                        .arguments
                        .as_ref()
                        .ok()
                        .and_then(|a| a.get("path"))
                        .and_then(Value::as_str)
                    && let Ok(resolved) = self.tool_ctx.workspace.resolve(path)
                {
                    let root = self.tool_ctx.workspace.root().to_path_buf();
                    output.content.push_str(&crate::instructions::nested_for(
                        &root,
                        &resolved,
                        &mut self.instructions_given,
                    ));
                }
                // Within the room the window has left (head and tail, and how to see more).
                if let Some(room) = room {
                    output.content = crate::compact::fit_output(&output.content, room);
                }
                self.emit(
                    sink,
                    Event::ToolResult {
                        call_id: call.id.clone(),
                        name: call.name.clone(),
                        output: output.content.clone(),
                        is_error: output.is_error,
                        duration_ms: duration.as_millis() as u64,
                    },
                );
                outputs.push(output);
            }
            index = end;
        }
        outputs
    }
}
