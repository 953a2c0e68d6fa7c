//! The event stream: everything the agent does, in order.
//!
//! Serialised with a `type` field holding the event name (`session`, `tool_call`, …);
//! `keel run --json` prints exactly these objects, one per line.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Message, Role, ToolCall};

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The model finished and there was no test command to check it.
    Completed,
    /// The model finished and the project's tests were re-run green.
    Verified,
    /// The iteration cap was reached.
    MaxIterations,
    /// The model repeated itself or made no progress, even after a warning.
    Stalled,
    /// The user cancelled the turn.
    Cancelled,
    /// keel itself failed (model unreachable, …).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Verified => "verified",
            Outcome::MaxIterations => "max_iterations",
            Outcome::Stalled => "stalled",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed => "failed",
        }
    }
}

/// Category of an `error` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The model backend failed (unreachable, script exhausted, bad response).
    Model,
    /// The conversation no longer fits the model's context window.
    ContextOverflow,
    /// A fault inside keel (store unwritable, …).
    Internal,
    /// The machine cannot do what the task needs (the test runner is not installed, no
    /// sandbox for commands, …): nothing the model can fix.
    Environment,
}

/// One file a turn (or an undo, or a redo) changed: its content before and after, by
/// the content hash of keel's checkpoint store (`None`: the file did not exist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// Relative to the workspace root, `/`-separated.
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
    /// Lines added and removed (unknown for files that are not text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<u64>,
}

/// Why keel sent the model a message of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackReason {
    /// The model said it was done but the tests are red.
    TestsFailed,
    /// The model is repeating itself or making no progress.
    Stall,
    /// The previous turn was cut off (keel was killed) and the session is resumed.
    Interrupted,
    /// The model answered without a call while the task asked for work and nothing had
    /// been done yet; it is asked again with a call required.
    NoAction,
    /// keel ran the tests after a change (when they are quick): what they say now.
    TestRun,
    /// The workspace is back in a state whose tests already failed in this turn.
    Repeat,
    /// An attempt at the task failed its tests and repeated itself (or failed twice):
    /// the files the agent changed were put back and the task starts again. In the
    /// conversation the turn so far is replaced by this note, added to the task.
    FreshStart,
    /// The model's reply went round in a loop (one piece of text over and over) and
    /// was stopped there; it is asked again, sampled warmer.
    Looped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// First event of a session.
    Session {
        session_id: String,
        workspace: String,
        model: String,
    },
    /// The project context (instructions file, file list, test command) given to the
    /// model as the first user message; fixed for the life of the session.
    Context {
        content: String,
    },
    /// A user message; starts a turn.
    User {
        content: String,
    },
    /// The model is generating (iteration number within the turn, from 1).
    Thinking {
        iteration: u32,
    },
    /// Streamed assistant prose (tool-call markup is not included).
    Delta {
        text: String,
    },
    /// The complete assistant message of one iteration, exactly as the model wrote it.
    Assistant {
        content: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    ToolCall {
        call_id: String,
        name: String,
        arguments: Value,
    },
    ToolResult {
        call_id: String,
        name: String,
        /// Output as the model sees it (already capped).
        output: String,
        is_error: bool,
        duration_ms: u64,
    },
    /// A call waits for the user: a permission rule (or the default for an
    /// unsandboxed or networked command) says to ask. The decision follows as
    /// `approval`.
    ApprovalRequest {
        call_id: String,
        name: String,
        arguments: Value,
        /// Why keel asks, for the person deciding.
        reason: String,
    },
    /// The decision on an approval request (or a rule that denied a call outright).
    Approval {
        call_id: String,
        allowed: bool,
        /// Who decided: `user`, `--yes`, `rule`, `no terminal`, …
        by: String,
    },
    /// The project's test command was run to check the model's claim of being done.
    Verification {
        command: String,
        passed: bool,
        exit_code: Option<i32>,
        output: String,
        duration_ms: u64,
        /// Tests that already failed when the session started and still fail: the run
        /// counts as passed when nothing else fails and one of them was fixed.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        preexisting: Vec<String>,
    },
    /// A message keel sent to the model on its own initiative.
    Feedback {
        reason: FeedbackReason,
        content: String,
    },
    /// A malformed tool call was sent back to the model as a constrained request
    /// (the backend forces valid JSON); `repaired` says whether that produced a call.
    Repair {
        problem: String,
        repaired: bool,
    },
    /// The final answer of the turn.
    Response {
        content: String,
    },
    Usage {
        prompt_tokens: Option<u64>,
        cached_prompt_tokens: Option<u64>,
        completion_tokens: Option<u64>,
        time_to_first_token_ms: Option<u64>,
        /// Calls of this response generated under a grammar.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        constrained_calls: Option<u64>,
        /// The model's context window, when known: `prompt_tokens` of it are in use.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context_window: Option<u64>,
    },
    /// The conversation was compacted to fit the context window; from here on the model
    /// sees it compacted (a resumed session rebuilds the same).
    Compaction {
        /// Tool results (by call id) shown from now on as a one-line stub.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        stubbed: Vec<String>,
        /// The messages after the project context that `summary` replaces (0: none).
        #[serde(default)]
        summarized: u32,
        /// What the replaced messages said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
        /// Whether the model wrote the summary (else keel built it from the calls).
        #[serde(default)]
        by_model: bool,
        /// Estimated prompt tokens before and after.
        tokens_before: u64,
        tokens_after: u64,
    },
    /// The files a turn changed (by any tool, `bash` included), recorded in keel's
    /// checkpoint store so that the turn can be undone. Only for turns that changed
    /// files; `turn` counts the session's user messages from 1.
    Checkpoint {
        turn: u32,
        files: Vec<FileChange>,
    },
    /// The user undid turn `turn`: `files` went from what they were at the undo
    /// (`before`) back to what they were before the turn (`after`).
    Undo {
        turn: u32,
        files: Vec<FileChange>,
    },
    /// The user redid turn `turn` after undoing it: `files` went back to what they were
    /// when it was undone.
    Redo {
        turn: u32,
        files: Vec<FileChange>,
    },
    /// The plan a planning turn ended with, waiting for approval: the task it is for
    /// and its numbered steps.
    Plan {
        task: String,
        steps: Vec<String>,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
    Done {
        outcome: Outcome,
        iterations: u32,
    },
}

impl Event {
    /// The event's name (the `type` field, and the SSE `event:` name).
    pub fn name(&self) -> &'static str {
        match self {
            Event::Session { .. } => "session",
            Event::Context { .. } => "context",
            Event::User { .. } => "user",
            Event::Thinking { .. } => "thinking",
            Event::Delta { .. } => "delta",
            Event::Assistant { .. } => "assistant",
            Event::ToolCall { .. } => "tool_call",
            Event::ToolResult { .. } => "tool_result",
            Event::ApprovalRequest { .. } => "approval_request",
            Event::Approval { .. } => "approval",
            Event::Verification { .. } => "verification",
            Event::Feedback { .. } => "feedback",
            Event::Repair { .. } => "repair",
            Event::Response { .. } => "response",
            Event::Usage { .. } => "usage",
            Event::Compaction { .. } => "compaction",
            Event::Checkpoint { .. } => "checkpoint",
            Event::Undo { .. } => "undo",
            Event::Redo { .. } => "redo",
            Event::Plan { .. } => "plan",
            Event::Error { .. } => "error",
            Event::Done { .. } => "done",
        }
    }
}

/// How a compaction's summary opens, in the conversation.
pub const SUMMARY_HEAD: &str =
    "Summary of the earlier conversation (compacted to fit the context window):";

/// What a stubbed tool result shows: the tool and how much was left out, and how to get
/// it back.
pub fn stub(tool: Option<&str>, output: &str) -> String {
    let lines = output.lines().count();
    let first = output.lines().next().unwrap_or("").trim();
    let first: String = first.chars().take(80).collect();
    format!(
        "[output of `{}` left out to save room: {lines} lines, starting `{first}`; call it again if you need it]",
        tool.unwrap_or("tool")
    )
}

/// Rebuilds the conversation (without the system prompt) from a session's events.
///
/// This is the only way keel builds what the model sees after the first message, so a
/// session stored as events can be resumed and replayed exactly.
pub fn conversation(events: &[Event]) -> Vec<Message> {
    let mut messages = Vec::new();
    // The current turn's user message: where it is, and what it said.
    let mut task: Option<(usize, String)> = None;
    // What the user did to the files between turns (undo, redo): told with the next
    // message, so the model does not take its earlier changes as still there.
    let mut notes: Vec<String> = Vec::new();
    for event in events {
        match event {
            Event::Context { content } => messages.push(Message::user(content.clone())),
            Event::Compaction {
                stubbed,
                summarized,
                summary,
                ..
            } => {
                for message in messages.iter_mut().filter(|m| {
                    m.role == Role::Tool
                        && m.tool_call_id
                            .as_ref()
                            .is_some_and(|id| stubbed.contains(id))
                }) {
                    message.content = stub(message.name.as_deref(), &message.content);
                }
                let summarized = (*summarized as usize).min(messages.len().saturating_sub(1));
                if let Some(summary) = summary.as_ref().filter(|_| summarized > 0) {
                    messages.splice(
                        1..1 + summarized,
                        [Message::user(format!("{SUMMARY_HEAD}\n\n{summary}"))],
                    );
                    task = match task {
                        Some((at, content)) if at > summarized => {
                            Some((at - summarized + 1, content))
                        }
                        _ => None,
                    };
                }
            }
            Event::Undo { turn, files } | Event::Redo { turn, files } => {
                let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
                let what = if matches!(event, Event::Undo { .. }) {
                    "undid"
                } else {
                    "redid"
                };
                notes.push(format!(
                    "[The user {what} turn {turn} of this conversation: {} now as {}.]",
                    if paths.is_empty() {
                        "no file changed".to_string()
                    } else {
                        paths.join(", ")
                    },
                    if what == "undid" {
                        "they were before that turn"
                    } else {
                        "that turn left them"
                    }
                ));
            }
            Event::User { content } => {
                let content = if notes.is_empty() {
                    content.clone()
                } else {
                    format!("{}\n\n{content}", std::mem::take(&mut notes).join("\n"))
                };
                task = Some((messages.len(), content.clone()));
                messages.push(Message::user(content))
            }
            // A fresh start: the attempts so far are gone, the note goes with the task
            // (a small model copies what its history shows, failing code included).
            Event::Feedback {
                reason: FeedbackReason::FreshStart,
                content,
            } if task.is_some() => {
                if let Some((at, task)) = &task {
                    let at = *at;
                    messages.truncate(at + 1);
                    messages[at].content = format!("{task}\n\n{content}");
                }
            }
            // What keel found after the calls (their test run, a repeat) travels with
            // their result: a user message right after a tool result gets an empty reply
            // from small models (Qwen2.5-Coder 1.5B, every time, in the eval).
            Event::Feedback {
                reason: FeedbackReason::TestRun | FeedbackReason::Repeat,
                content,
            } if messages
                .last()
                .is_some_and(|m: &Message| m.role == Role::Tool) =>
            {
                if let Some(last) = messages.last_mut() {
                    last.content.push_str("\n\n");
                    last.content.push_str(content);
                }
            }
            Event::Feedback { content, .. } => messages.push(Message::user(content.clone())),
            Event::Assistant {
                content,
                tool_calls,
            } => messages.push(Message::assistant(content.clone(), tool_calls.clone())),
            Event::ToolResult {
                call_id,
                name,
                output,
                is_error,
                ..
            } => {
                let mut message = Message::tool(call_id.clone(), name.clone(), output.clone());
                message.is_error = *is_error;
                messages.push(message)
            }
            _ => {}
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_their_names_as_type() {
        let events = [
            Event::ToolCall {
                call_id: "c1".into(),
                name: "read".into(),
                arguments: serde_json::json!({"path": "a"}),
            },
            Event::Done {
                outcome: Outcome::MaxIterations,
                iterations: 3,
            },
        ];
        for event in events {
            let value = serde_json::to_value(&event).unwrap();
            assert_eq!(value["type"], event.name());
            let back: Event = serde_json::from_value(value).unwrap();
            assert_eq!(back, event);
        }
        let done = serde_json::to_string(&Event::Done {
            outcome: Outcome::MaxIterations,
            iterations: 3,
        })
        .unwrap();
        assert_eq!(
            done,
            r#"{"type":"done","outcome":"max_iterations","iterations":3}"#
        );
    }

    #[test]
    fn a_test_run_after_calls_travels_with_their_result() {
        let result = |id: &str| Event::ToolResult {
            call_id: id.into(),
            name: "write".into(),
            output: "overwrote a.py".into(),
            is_error: false,
            duration_ms: 1,
        };
        let feedback = |reason| Event::Feedback {
            reason,
            content: "they fail".into(),
        };
        let messages = conversation(&[
            result("c1"),
            feedback(FeedbackReason::TestRun),
            result("c2"),
            feedback(FeedbackReason::Repeat),
            feedback(FeedbackReason::TestsFailed),
        ]);
        let shape: Vec<(Role, &str)> = messages
            .iter()
            .map(|m| (m.role, m.content.as_str()))
            .collect();
        assert_eq!(
            shape,
            [
                (Role::Tool, "overwrote a.py\n\nthey fail"),
                (Role::Tool, "overwrote a.py\n\nthey fail"),
                (Role::User, "they fail"),
            ]
        );
        // With no tool result before it, a test run is a message of its own.
        let messages = conversation(&[feedback(FeedbackReason::TestRun)]);
        assert_eq!(messages[0].role, Role::User);
    }

    #[test]
    fn a_fresh_start_replaces_the_turn_so_far_with_a_note_on_the_task() {
        let user = |content: &str| Event::User {
            content: content.into(),
        };
        let assistant = || Event::Assistant {
            content: "<tool_call>write</tool_call>".into(),
            tool_calls: vec![],
        };
        let result = || Event::ToolResult {
            call_id: "c1".into(),
            name: "write".into(),
            output: "wrote a.py".into(),
            is_error: false,
            duration_ms: 1,
        };
        let fresh = |content: &str| Event::Feedback {
            reason: FeedbackReason::FreshStart,
            content: content.into(),
        };
        let messages = conversation(&[
            Event::Context {
                content: "ctx".into(),
            },
            user("first task"),
            assistant(),
            result(),
            user("fix a.py"),
            assistant(),
            result(),
            fresh("attempt 1 failed"),
            assistant(),
            result(),
            fresh("attempt 2 failed"),
            assistant(),
        ]);
        let shape: Vec<(Role, &str)> = messages
            .iter()
            .map(|m| (m.role, m.content.as_str()))
            .collect();
        assert_eq!(
            shape,
            [
                (Role::User, "ctx"),
                (Role::User, "first task"),
                (Role::Assistant, "<tool_call>write</tool_call>"),
                (Role::Tool, "wrote a.py"),
                (Role::User, "fix a.py\n\nattempt 2 failed"),
                (Role::Assistant, "<tool_call>write</tool_call>"),
            ]
        );
    }

    #[test]
    fn a_compaction_stubs_results_and_summarises_the_oldest_messages() {
        let result = |id: &str, output: &str| Event::ToolResult {
            call_id: id.into(),
            name: "read".into(),
            output: output.into(),
            is_error: false,
            duration_ms: 1,
        };
        let assistant = |content: &str| Event::Assistant {
            content: content.into(),
            tool_calls: vec![],
        };
        let compaction =
            |stubbed: Vec<String>, summarized, summary: Option<&str>| Event::Compaction {
                stubbed,
                summarized,
                summary: summary.map(String::from),
                by_model: false,
                tokens_before: 100,
                tokens_after: 50,
            };
        let events = vec![
            Event::Context {
                content: "ctx".into(),
            },
            Event::User {
                content: "task".into(),
            },
            assistant("a1"),
            result("c1", "line 1\nline 2\n"),
            assistant("a2"),
            result("c2", "kept"),
            compaction(vec!["c1".into()], 0, None),
        ];
        let messages = conversation(&events);
        assert_eq!(messages.len(), 6);
        assert_eq!(
            messages[3].content,
            "[output of `read` left out to save room: 2 lines, starting `line 1`; call it again if you need it]"
        );
        assert_eq!(messages[5].content, "kept");
        // Then the task and the first exchange are summarised: the context stays first.
        let mut events = events;
        events.push(compaction(vec![], 3, Some("did a1")));
        events.push(assistant("a3"));
        events.push(Event::Feedback {
            reason: FeedbackReason::FreshStart,
            content: "again".into(),
        });
        let shape: Vec<(Role, String)> = conversation(&events)
            .into_iter()
            .map(|m| (m.role, m.content))
            .collect();
        assert_eq!(
            shape,
            [
                (Role::User, "ctx".to_string()),
                (Role::User, format!("{SUMMARY_HEAD}\n\ndid a1")),
                (Role::Assistant, "a2".to_string()),
                (Role::Tool, "kept".to_string()),
                (Role::Assistant, "a3".to_string()),
                // The task was summarised away: a fresh start is a message of its own.
                (Role::User, "again".to_string()),
            ]
        );
    }

    #[test]
    fn conversation_follows_events() {
        let events = vec![
            Event::Context {
                content: "ctx".into(),
            },
            Event::User {
                content: "fix it".into(),
            },
            Event::Thinking { iteration: 1 },
            Event::Delta {
                text: "Let me".into(),
            },
            Event::Assistant {
                content: "Let me look".into(),
                tool_calls: vec![],
            },
            Event::ToolResult {
                call_id: "c1".into(),
                name: "read".into(),
                output: "1\tx".into(),
                is_error: false,
                duration_ms: 1,
            },
            Event::Feedback {
                reason: FeedbackReason::TestsFailed,
                content: "tests fail".into(),
            },
        ];
        let roles: Vec<Role> = conversation(&events).iter().map(|m| m.role).collect();
        use crate::Role;
        assert_eq!(
            roles,
            [
                Role::User,
                Role::User,
                Role::Assistant,
                Role::Tool,
                Role::User
            ]
        );
    }
}
