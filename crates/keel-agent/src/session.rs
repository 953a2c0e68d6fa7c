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
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::future::join_all;
use keel_llm::{
    ChatRequest, LlmError, ModelClient, ModelEvent, ToolProtocol, parse_lenient_json, xml,
};
use keel_protocol::{
    ErrorKind, Event, FeedbackReason, Message, Outcome, ToolCall, ToolSpec, Usage, conversation,
};
use keel_store::{FileRef, NewChange, Store};
use keel_tools::{ToolContext, ToolOutput, ToolRegistry, Workspace, exec, typed};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::changes::{ChangeTracker, describe};
use crate::memory::{Recall, Remember, context_section, project_key};
use crate::repair;
use crate::stall::{StallDetector, Verdict};
use crate::window::{ContextTooSmall, WORKING_MARGIN, estimate_tokens};
use crate::{AgentConfig, detect_test_command, project_context, system_prompt};

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

/// Tools whose successful calls mean the agent has seen the file's content.
const READING_TOOLS: &[&str] = &["read", "write", "edit"];

/// What a session needs that does not change between sessions: the model, the tools
/// and the configuration. Shared by every session of a process.
pub struct Agent {
    model: Arc<dyn ModelClient>,
    tools: ToolRegistry,
    config: AgentConfig,
    /// Computed once: the same bytes for every request.
    system_prompt: String,
    tool_specs: Vec<ToolSpec>,
    /// Project memory (change log, facts, recall), when a store is attached.
    memory: Option<Arc<Store>>,
}

impl Agent {
    pub fn new(model: Arc<dyn ModelClient>, tools: ToolRegistry, config: AgentConfig) -> Self {
        let tool_specs = tools.specs();
        let system_prompt = system_prompt(&tool_specs, config.protocol);
        Self {
            model,
            tools,
            config,
            system_prompt,
            tool_specs,
            memory: None,
        }
    }

    /// Attaches project memory: the `remember` and `recall` tools, memories in the
    /// session context, and a change-log entry for every turn that changes files.
    pub fn with_memory(self, store: Arc<Store>) -> Self {
        let mut tools = self.tools;
        tools.register(typed(Remember(Arc::clone(&store))));
        tools.register(typed(Recall(Arc::clone(&store))));
        let mut agent = Agent::new(self.model, tools, self.config);
        agent.memory = Some(store);
        agent
    }

    /// The model this agent talks to.
    pub fn model(&self) -> &dyn ModelClient {
        self.model.as_ref()
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
}

impl Session {
    /// Starts a session: emits `session`. The project context follows with the first
    /// turn, whose task picks the memories it recalls.
    pub fn start(agent: &Agent, workspace: Workspace, sink: &dyn EventSink) -> Self {
        let test_command = agent.test_command(workspace.root());
        let id = uuid::Uuid::now_v7().to_string();
        let mut session = Self {
            tool_ctx: ToolContext::new(workspace, agent.config.limits.clone()).with_session(&id),
            id,
            test_command,
            events: Vec::new(),
            next_call: 0,
            sink_failure: None,
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
        let tool_ctx =
            ToolContext::new(workspace, agent.config.limits.clone()).with_session(session_id);
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
        let interrupted = !matches!(events.last(), Some(Event::Done { .. }))
            && events.iter().any(|e| matches!(e, Event::User { .. }));
        let mut session = Self {
            id: session_id.clone(),
            tool_ctx,
            test_command,
            next_call: calls.len() as u64,
            events,
            sink_failure: None,
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

    /// The request for the next model call, rebuilt from the events.
    pub fn request(&self, agent: &Agent) -> ChatRequest {
        let mut messages = vec![Message::system(agent.system_prompt.clone())];
        messages.extend(conversation(&self.events));
        let (messages, tools) = match agent.config.protocol {
            ToolProtocol::Xml => (xml::to_xml_messages(&messages), Vec::new()),
            ToolProtocol::Native => (messages, agent.tool_specs.clone()),
        };
        ChatRequest {
            session_id: self.id.clone(),
            messages,
            tools,
            protocol: agent.config.protocol,
            max_tokens: agent.config.max_tokens,
            response_schema: None,
        }
    }

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
            if let Some(store) = &agent.memory {
                content.push_str(&context_section(store, &root, message, &self.id));
            }
            self.emit(sink, Event::Context { content });
        }
        self.emit(
            sink,
            Event::User {
                content: message.to_string(),
            },
        );
        let mut changes = Some(ChangeTracker::start(&root));
        let mut answer = String::new();
        let mut stall = StallDetector::default();
        let mut iterations = 0;
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

            let Some(mut response) = self.generate(agent, sink, cancel).await else {
                break if cancel.is_cancelled() {
                    Outcome::Cancelled
                } else {
                    Outcome::Failed
                };
            };
            if agent.config.protocol == ToolProtocol::Xml && agent.model.info().constraint.is_some()
            {
                self.repair_calls(agent, &mut response, sink, cancel).await;
            }
            let (prose, calls) = self.calls_of(agent, &response);
            self.emit(
                sink,
                Event::Assistant {
                    content: response.text,
                    tool_calls: response.native_calls,
                },
            );

            let verdict = if calls.is_empty() {
                match self.verify(agent, sink, cancel).await {
                    Verification::Passed => {
                        answer = prose.clone();
                        self.emit(sink, Event::Response { content: prose });
                        break Outcome::Verified;
                    }
                    Verification::NotRun => {
                        answer = prose.clone();
                        self.emit(sink, Event::Response { content: prose });
                        break Outcome::Completed;
                    }
                    Verification::Cancelled => break Outcome::Cancelled,
                    Verification::Failed(feedback) => {
                        self.emit(
                            sink,
                            Event::Feedback {
                                reason: FeedbackReason::TestsFailed,
                                content: feedback,
                            },
                        );
                        stall.observe([], false)
                    }
                }
            } else {
                let outputs = self
                    .execute(agent, &calls, &mut changes, sink, cancel)
                    .await;
                if cancel.is_cancelled() {
                    break Outcome::Cancelled;
                }
                let any_success = outputs.iter().any(|o| !o.is_error);
                let observed = calls
                    .iter()
                    .filter_map(|c| c.arguments.as_ref().ok().map(|a| (c.name.as_str(), a)));
                stall.observe(observed, any_success)
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
        sink: &dyn EventSink,
        cancel: &CancellationToken,
    ) -> Option<Response> {
        let request = self.request(agent);
        let started = Instant::now();
        let mut stream = agent.model.stream(request);
        let mut first_token = None;
        let mut response = Response::default();
        let mut usage = Usage::default();
        let mut filter = xml::ProseFilter::default();
        let filtering = agent.config.protocol == ToolProtocol::Xml;
        let mut failure = None;
        loop {
            let item = tokio::select! {
                _ = cancel.cancelled() => return None,
                item = stream.next() => item,
            };
            match item {
                None => break,
                Some(Ok(ModelEvent::Text(text))) => {
                    first_token.get_or_insert_with(|| started.elapsed());
                    response.text.push_str(&text);
                    let shown = if filtering { filter.push(&text) } else { text };
                    if !shown.is_empty() {
                        self.emit(sink, Event::Delta { text: shown });
                    }
                }
                Some(Ok(ModelEvent::ToolCall {
                    id,
                    name,
                    arguments,
                })) => {
                    first_token.get_or_insert_with(|| started.elapsed());
                    let arguments =
                        parse_lenient_json(&arguments).unwrap_or(Value::String(arguments));
                    let id = id.unwrap_or_else(|| self.new_call_id());
                    response.native_calls.push(ToolCall {
                        id,
                        name,
                        arguments,
                    });
                }
                Some(Ok(ModelEvent::Usage(reported))) => usage = reported,
                Some(Err(e)) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let rest = filter.finish();
        if filtering && !rest.is_empty() {
            self.emit(sink, Event::Delta { text: rest });
        }
        self.emit(
            sink,
            Event::Usage {
                prompt_tokens: usage.prompt_tokens,
                cached_prompt_tokens: usage.cached_prompt_tokens,
                completion_tokens: usage.completion_tokens,
                time_to_first_token_ms: first_token.map(|d| d.as_millis() as u64),
            },
        );
        if let Some(failure) = failure {
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
        Some(response)
    }

    /// Sends each malformed `xml` call back as a request constrained to a valid call
    /// and, where that works, rewrites the response with the repaired calls.
    async fn repair_calls(
        &mut self,
        agent: &Agent,
        response: &mut Response,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
    ) {
        let parsed = xml::parse_response(&response.text);
        if parsed.calls.iter().all(Result::is_ok) {
            return;
        }
        let schema = repair::call_schema(&agent.tool_specs);
        let mut calls = Vec::with_capacity(parsed.calls.len());
        let mut any_repaired = false;
        for call in parsed.calls {
            let bad = match call {
                Ok(call) => {
                    calls.push(Ok(call));
                    continue;
                }
                Err(bad) => bad,
            };
            let mut request = self.request(agent);
            request
                .messages
                .push(Message::assistant(response.text.clone(), Vec::new()));
            request
                .messages
                .push(Message::user(repair::instruction(&bad, &agent.tool_specs)));
            request.response_schema = Some(schema.clone());
            request.max_tokens = Some(agent.config.max_tokens.unwrap_or(repair::REPAIR_MAX_TOKENS));
            let mut stream = agent.model.stream(request);
            let mut text = String::new();
            let mut failure = None;
            loop {
                let item = tokio::select! {
                    _ = cancel.cancelled() => return,
                    item = stream.next() => item,
                };
                match item {
                    None => break,
                    Some(Ok(ModelEvent::Text(piece))) => text.push_str(&piece),
                    Some(Ok(ModelEvent::Usage(usage))) => self.emit(
                        sink,
                        Event::Usage {
                            prompt_tokens: usage.prompt_tokens,
                            cached_prompt_tokens: usage.cached_prompt_tokens,
                            completion_tokens: usage.completion_tokens,
                            time_to_first_token_ms: None,
                        },
                    ),
                    Some(Ok(ModelEvent::ToolCall { .. })) => {}
                    Some(Err(e)) => {
                        failure = Some(e.to_string());
                        break;
                    }
                }
            }
            let result = match failure {
                Some(reason) => Err(reason),
                None => repair::read_call(&text, &agent.tool_specs),
            };
            self.emit(
                sink,
                Event::Repair {
                    problem: bad.problem.clone(),
                    repaired: result.is_ok(),
                },
            );
            match result {
                Ok(call) => {
                    any_repaired = true;
                    calls.push(Ok(call));
                }
                Err(_) => calls.push(Err(bad)),
            }
        }
        if any_repaired {
            response.text = repair::rewrite(&parsed.prose, &calls);
        }
    }

    fn new_call_id(&mut self) -> String {
        self.next_call += 1;
        format!("call_{}", self.next_call)
    }

    /// The prose and the calls of a response, in the order they were written.
    fn calls_of(&mut self, agent: &Agent, response: &Response) -> (String, Vec<PendingCall>) {
        let mut calls = Vec::new();
        let prose = if agent.config.protocol == ToolProtocol::Xml {
            let parsed = xml::parse_response(&response.text);
            for call in parsed.calls {
                let id = self.new_call_id();
                calls.push(match call {
                    Ok(call) => PendingCall {
                        id,
                        name: call.name,
                        arguments: Ok(call.arguments),
                    },
                    Err(bad) => PendingCall {
                        id,
                        name: bad.name.clone().unwrap_or_else(|| "unknown".into()),
                        arguments: Err(bad.message()),
                    },
                });
            }
            parsed.prose
        } else {
            response.text.trim().to_string()
        };
        for call in &response.native_calls {
            let arguments = match &call.arguments {
                Value::Object(_) => Ok(call.arguments.clone()),
                Value::String(raw) => Err(format!(
                    "malformed tool call: the arguments of `{}` are not valid JSON: {raw}",
                    call.name
                )),
                _ => Err(format!(
                    "malformed tool call: the arguments of `{}` must be a JSON object",
                    call.name
                )),
            };
            calls.push(PendingCall {
                id: call.id.clone(),
                name: call.name.clone(),
                arguments,
            });
        }
        (prose, calls)
    }

    /// Runs the calls: consecutive read-only calls concurrently, mutating calls one
    /// at a time in order. Results are emitted in call order.
    async fn execute(
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
            let ctx = &self.tool_ctx;
            let results = join_all(group.iter().map(|call| async move {
                let started = Instant::now();
                let output = match &call.arguments {
                    Err(problem) => ToolOutput::error(problem.clone()),
                    Ok(_) if cancel.is_cancelled() => {
                        ToolOutput::error("not run: the turn was cancelled")
                    }
                    Ok(arguments) => {
                        agent
                            .tools
                            .call(ctx, &call.name, arguments.clone(), cancel)
                            .await
                    }
                };
                (output, started.elapsed())
            }))
            .await;
            for (call, (output, duration)) in group.iter().zip(results) {
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

    /// Re-runs the project's tests after the model said it is done.
    async fn verify(
        &mut self,
        agent: &Agent,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
    ) -> Verification {
        let Some(command) = self.test_command.clone().filter(|_| agent.config.verify) else {
            return Verification::NotRun;
        };
        let shell = exec::shell(&command, self.tool_ctx.workspace.root());
        let result = exec::run(
            shell,
            agent.config.test_timeout,
            agent.config.limits.output_bytes,
            cancel,
        )
        .await;
        let result = match result {
            Ok(result) => result,
            Err(e) => {
                let feedback = format!(
                    "keel could not run the test command `{command}`: {e}. The task is not verified."
                );
                self.emit(
                    sink,
                    Event::Verification {
                        command,
                        passed: false,
                        exit_code: None,
                        output: e.to_string(),
                        duration_ms: 0,
                    },
                );
                return Verification::Failed(feedback);
            }
        };
        if result.ending == exec::Ending::Cancelled {
            return Verification::Cancelled;
        }
        let passed = result.success();
        self.emit(
            sink,
            Event::Verification {
                command: command.clone(),
                passed,
                exit_code: result.exit_code,
                output: result.output.clone(),
                duration_ms: result.duration.as_millis() as u64,
            },
        );
        if passed {
            return Verification::Passed;
        }
        let how = match (result.ending, result.exit_code) {
            (exec::Ending::TimedOut, _) => {
                format!("timed out after {} s", agent.config.test_timeout.as_secs())
            }
            (_, Some(code)) => format!("exit code {code}"),
            (_, None) => "killed by a signal".into(),
        };
        Verification::Failed(format!(
            "You said you are done, but the tests fail (`{command}`, {how}):\n{}\nFix the code so the tests pass, then finish again.",
            result.output.trim_end()
        ))
    }
}

#[derive(Default)]
struct Response {
    text: String,
    native_calls: Vec<ToolCall>,
}

enum Verification {
    Passed,
    NotRun,
    Cancelled,
    Failed(String),
}
