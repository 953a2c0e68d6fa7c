//! A session and its turns: the loop of DESIGN.md.
//!
//! ```text
//! user message ─► assemble prompt ─► model (streaming) ─► parse tool calls
//!       ▲                                                        │
//!       │            no tool call ─► response ─► (verify) ─► done
//!       └── tool results ◄── execute (read-only calls in parallel, mutating calls in order)
//! ```
//!
//! Everything that happens is emitted as an [`Event`] and appended to the session's
//! event list; the conversation sent to the model is rebuilt from that list.

use std::sync::Arc;

use keel_llm::{ChatRequest, Constraint, ModelClient, ToolProtocol, calls};
use keel_protocol::{Event, FeedbackReason, Message, Outcome, ToolCall, ToolSpec, conversation};
use keel_store::{FileRef, Store};
use keel_tools::{ToolContext, ToolRegistry, Workspace, typed};
use serde_json::Value;

use crate::memory::{Recall, Remember};
use crate::permissions::{Approver, FixedApprover};
use crate::repair;
use crate::window::{ContextTooSmall, WORKING_MARGIN, estimate_tokens};
use crate::{AgentConfig, detect_test_command, system_prompt};

mod afresh;
mod baseline;
mod checkpoint;
mod compaction;
mod execute;
mod plan;
mod reply;
mod stream;
mod trim;
mod turn;
mod verify;

pub use checkpoint::{Restored, UndoError, turn_diff};
pub use plan::{plan_steps, plan_task};

/// Receives every event as it happens (printer, SSE stream, store, …).
pub trait EventSink: Send + Sync {
    fn emit(&self, event: &Event);

    /// A fault that must end the turn (the store cannot be written, …).
    fn failure(&self) -> Option<String> {
        None
    }
}

/// Why a stored session cannot be resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("the stored events do not start with a `session` event")]
    NoSessionEvent,
}

/// The tools that change files, required when the agent loops without changing any.
const CHANGING_TOOLS: &[&str] = &["write", "edit"];

/// Tools whose successful calls mean the agent has seen the file's content.
const READING_TOOLS: &[&str] = &["read", "write", "edit"];

/// What a session needs that does not change between sessions: the model, the tools
/// and the configuration. Shared by every session of a process.
pub struct Agent {
    model: Arc<dyn ModelClient>,
    tools: ToolRegistry,
    config: AgentConfig,
    /// How calls travel with this model (the configured choice, resolved).
    protocol: ToolProtocol,
    /// Computed once: the same bytes for every request.
    system_prompt: String,
    tool_specs: Vec<ToolSpec>,
    /// Project memory (change log, facts, recall), when a store is attached.
    memory: Option<Arc<Store>>,
    /// Decides the calls a permission says to ask about.
    approver: Arc<dyn Approver>,
}

impl Agent {
    pub fn new(model: Arc<dyn ModelClient>, tools: ToolRegistry, config: AgentConfig) -> Self {
        let tool_specs = tools.specs();
        let protocol = config.protocol.resolve(&model.info());
        let system_prompt = system_prompt(&tool_specs, protocol);
        Self {
            model,
            tools,
            config,
            protocol,
            system_prompt,
            tool_specs,
            memory: None,
            approver: Arc::new(FixedApprover {
                allow: false,
                by: "no one to ask".into(),
            }),
        }
    }

    /// Who decides the calls a permission says to ask about (default: nobody, so they
    /// are refused).
    pub fn with_approver(mut self, approver: Arc<dyn Approver>) -> Self {
        self.approver = approver;
        self
    }

    /// Attaches project memory: the `remember` and `recall` tools, memories in the
    /// session context, and a change-log entry for every turn that changes files.
    pub fn with_memory(self, store: Arc<Store>) -> Self {
        let mut tools = self.tools;
        tools.register(typed(Remember(Arc::clone(&store))));
        tools.register(typed(Recall(Arc::clone(&store))));
        let mut agent = Agent::new(self.model, tools, self.config);
        agent.memory = Some(store);
        agent.approver = self.approver;
        agent
    }

    /// The configuration the agent was made with.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The model this agent talks to.
    pub fn model(&self) -> &dyn ModelClient {
        self.model.as_ref()
    }

    /// The tool-call protocol spoken with this model.
    pub fn protocol(&self) -> ToolProtocol {
        self.protocol
    }

    /// The offered tools that change files (`write`, `edit`).
    fn changing_tools(&self) -> Vec<ToolSpec> {
        self.tool_specs
            .iter()
            .filter(|t| CHANGING_TOOLS.contains(&t.name.as_str()))
            .cloned()
            .collect()
    }

    /// The system prompt every request of this agent starts with.
    pub fn system_prompt(&self) -> &str {
        &self.system_prompt
    }

    /// The tools offered to the model, sorted by name.
    pub fn tool_specs(&self) -> &[ToolSpec] {
        &self.tool_specs
    }

    /// The smallest context window keel runs in: its system prompt (estimated high)
    /// plus a working margin.
    pub fn context_needed(&self) -> u32 {
        estimate_tokens(&self.system_prompt) + WORKING_MARGIN
    }

    /// Refuses a model whose context window cannot hold keel's system prompt plus a
    /// working margin (never silently truncate). Unknown windows pass.
    pub fn check_context_window(&self) -> Result<(), ContextTooSmall> {
        match self.model.info().context_window {
            Some(window) if window < self.context_needed() => Err(ContextTooSmall {
                window,
                prompt: estimate_tokens(&self.system_prompt),
                margin: WORKING_MARGIN,
            }),
            _ => Ok(()),
        }
    }

    /// The configured test command, else the one detected in the project.
    fn test_command(&self, root: &std::path::Path) -> Option<String> {
        self.config
            .test_command
            .clone()
            .filter(|c| !c.trim().is_empty())
            .or_else(|| detect_test_command(root))
    }
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnSummary {
    pub outcome: Outcome,
    pub iterations: u32,
    /// The files the turn created, changed or deleted (by any tool, `bash` included),
    /// relative to the workspace, sorted; with line counts where they are known.
    pub changed: Vec<FileRef>,
}

/// One call of a model response, ready to run or already known to be malformed.
struct PendingCall {
    id: String,
    name: String,
    arguments: Result<Value, String>,
}

/// A conversation with the agent in one workspace.
pub struct Session {
    id: String,
    tool_ctx: ToolContext,
    test_command: Option<String>,
    events: Vec<Event>,
    next_call: u64,
    /// Set when a sink reported a fault; the turn then ends `failed`.
    sink_failure: Option<String>,
    /// The tests as they were when the session started (verification's baseline).
    baseline: Option<crate::test_report::Report>,
    /// The baseline run, while it runs, and when it has finished.
    baseline_run: Option<baseline::Running>,
    baseline_done: Option<baseline::Finished>,
    /// The test files as they were when the session started (the tamper guard's).
    test_files: Option<crate::tamper::Snapshot>,
    /// The current task asks to change tests: the tamper guard stands aside.
    tests_may_change: bool,
    /// The current turn's message (which failing tests it is about).
    task: String,
    /// Bytes per token of the backend, for estimating prompts it cannot count for us.
    calibration: crate::budget::Calibration,
    /// The nested `AGENTS.md` files already given to the model.
    instructions_given: std::collections::HashSet<String>,
    /// The checkpoint store, opened at the first turn (when configured).
    checkpoints: Option<keel_checkpoint::Checkpoints>,
    /// The workspace when the current turn started.
    turn_tree: Option<keel_checkpoint::Tree>,
    /// The task being planned, during a planning turn.
    planning: Option<String>,
}

impl Session {
    /// Starts a session: emits `session`. The project context follows with the first
    /// turn, whose task picks the memories it recalls.
    pub fn start(agent: &Agent, workspace: Workspace, sink: &dyn EventSink) -> Self {
        let test_command = agent.test_command(workspace.root());
        let id = uuid::Uuid::now_v7().to_string();
        let mut session = Self {
            tool_ctx: ToolContext::with_sandbox(
                workspace,
                agent.config.limits.clone(),
                &agent.config.sandbox,
            )
            .with_session(&id),
            id,
            test_command,
            events: Vec::new(),
            next_call: 0,
            sink_failure: None,
            baseline: None,
            baseline_run: None,
            baseline_done: None,
            test_files: None,
            tests_may_change: false,
            task: String::new(),
            calibration: Default::default(),
            instructions_given: Default::default(),
            checkpoints: None,
            turn_tree: None,
            planning: None,
        };
        session.emit(
            sink,
            Event::Session {
                session_id: session.id.clone(),
                workspace: session.tool_ctx.workspace.root().display().to_string(),
                model: agent.model.info().name,
            },
        );
        session
    }

    /// Continues a stored session. If its last turn was cut off, the calls left
    /// without a result get an error result and the model is told what happened.
    pub fn resume(
        agent: &Agent,
        workspace: Workspace,
        events: Vec<Event>,
        sink: &dyn EventSink,
    ) -> Result<Self, ResumeError> {
        let Some(Event::Session { session_id, .. }) = events.first() else {
            return Err(ResumeError::NoSessionEvent);
        };
        let test_command = agent.test_command(workspace.root());
        let tool_ctx = ToolContext::with_sandbox(
            workspace,
            agent.config.limits.clone(),
            &agent.config.sandbox,
        )
        .with_session(session_id);
        let mut calls = std::collections::HashMap::new();
        let mut pending: Vec<(String, String)> = Vec::new();
        for event in &events {
            match event {
                Event::ToolCall {
                    call_id,
                    name,
                    arguments,
                } => {
                    calls.insert(call_id.clone(), (name.clone(), arguments.clone()));
                    pending.push((call_id.clone(), name.clone()));
                }
                Event::ToolResult {
                    call_id, is_error, ..
                } => {
                    pending.retain(|(id, _)| id != call_id);
                    if let Some((name, arguments)) = calls.get(call_id)
                        && !is_error
                        && READING_TOOLS.contains(&name.as_str())
                        && let Some(path) = arguments.get("path").and_then(Value::as_str)
                        && let Ok(resolved) = tool_ctx.workspace.resolve(path)
                    {
                        tool_ctx.mark_read(&resolved);
                    }
                }
                _ => {}
            }
        }
        // The last turn has no `done` (undo, redo and the like may follow a `done`).
        let interrupted = events
            .iter()
            .rposition(|e| matches!(e, Event::User { .. }))
            .is_some_and(|at| !events[at..].iter().any(|e| matches!(e, Event::Done { .. })));
        let instructions_given = crate::instructions::given_in(&events);
        let mut session = Self {
            id: session_id.clone(),
            tool_ctx,
            test_command,
            next_call: calls.len() as u64,
            events,
            sink_failure: None,
            baseline: None,
            baseline_run: None,
            baseline_done: None,
            test_files: None,
            tests_may_change: false,
            task: String::new(),
            calibration: Default::default(),
            instructions_given,
            checkpoints: None,
            turn_tree: None,
            planning: None,
        };
        if interrupted {
            for (call_id, name) in pending {
                session.emit(
                    sink,
                    Event::ToolResult {
                        call_id,
                        name,
                        output: "interrupted: keel stopped before this call finished; its effects are unknown".into(),
                        is_error: true,
                        duration_ms: 0,
                    },
                );
            }
            // What the cut-off turn changed can still be undone.
            session.checkpoint_interrupted(agent, sink);
            session.emit(
                sink,
                Event::Feedback {
                    reason: FeedbackReason::Interrupted,
                    content: "The previous turn was interrupted: keel was stopped before it finished. Check the state of the files before you continue.".into(),
                },
            );
        }
        Ok(session)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    fn emit(&mut self, sink: &dyn EventSink, event: Event) {
        sink.emit(&event);
        self.events.push(event);
        if self.sink_failure.is_none() {
            self.sink_failure = sink.failure();
        }
    }

    /// The request for the next model call, rebuilt from the events. The tools go with
    /// every request: `native` servers get them as definitions, and in the text dialects
    /// a constraining backend uses them to force every call that opens to be valid.
    pub fn request(&self, agent: &Agent) -> ChatRequest {
        Self::request_from(&self.id, agent, &self.events)
    }

    /// The request `events` make.
    fn request_from(id: &str, agent: &Agent, events: &[Event]) -> ChatRequest {
        let mut messages = vec![Message::system(agent.system_prompt.clone())];
        messages.extend(conversation(events));
        let messages = if agent.protocol.is_text() {
            calls::to_text_messages(agent.protocol, &messages)
        } else {
            messages
        };
        ChatRequest {
            session_id: id.to_string(),
            messages,
            tools: agent.tool_specs.clone(),
            require_call: false,
            end_with_call: false,
            protocol: agent.protocol,
            max_tokens: agent.config.max_tokens,
            response_schema: None,
            temperature: None,
        }
    }

    /// The next request with a tool call required, by the strongest means the backend
    /// has: the embedded engine opens the reply with a call under its grammar; `native`
    /// servers get `tool_choice: "required"`; other constraining servers get the whole
    /// reply constrained to a call's JSON. Backends that cannot constrain get the
    /// request as it is (the feedback before it asks for a call).
    pub(super) fn required_call_request(&self, agent: &Agent) -> ChatRequest {
        self.required_call_among(agent, agent.tool_specs.clone())
    }

    /// The next request with a call of one of the tools that change files (`write`,
    /// `edit`) required, by the same means as [`Self::required_call_request`]: the way
    /// out of a loop of calls that change nothing while the tests fail. The prompt
    /// still lists every tool; only the constraint is narrower.
    pub(super) fn required_change_request(&self, agent: &Agent) -> ChatRequest {
        let writers = agent.changing_tools();
        if writers.is_empty() {
            return self.required_call_request(agent);
        }
        self.required_call_among(agent, writers)
    }

    /// The first request of a new attempt (after a fresh start): the reply may explain
    /// and may write a file as a fenced block, but it ends with a change. On a grammar
    /// backend (the embedded engine) a call it opens can only be `write` or `edit`, and
    /// one is opened where it would end without a call; other backends get the request
    /// as it is. Not a call at the reply's start: after the eval's grains went back to
    /// the start for the third time, the 1.5B's pass came from such a reply — the
    /// reasoning, then the file in a block.
    pub(super) fn new_attempt_request(&self, agent: &Agent) -> ChatRequest {
        let mut request = self.request(agent);
        let writers = agent.changing_tools();
        if agent.model.info().constraint == Some(Constraint::Grammar) && !writers.is_empty() {
            request.end_with_call = true;
            request.tools = writers;
        }
        request
    }

    fn required_call_among(&self, agent: &Agent, tools: Vec<ToolSpec>) -> ChatRequest {
        let mut request = self.request(agent);
        match (agent.model.info().constraint, agent.protocol) {
            (_, ToolProtocol::Native) | (Some(Constraint::Grammar), _) => {
                request.require_call = true;
                request.tools = tools;
            }
            (Some(_), _) => {
                request.response_schema = Some(repair::call_schema(&tools));
            }
            (None, _) => {}
        }
        request
    }
}

#[derive(Default)]
pub(super) struct Response {
    pub(super) text: String,
    pub(super) native_calls: Vec<ToolCall>,
    /// The piece the reply repeated until keel stopped it (`text` ends with it once).
    pub(super) looped: Option<String>,
}
