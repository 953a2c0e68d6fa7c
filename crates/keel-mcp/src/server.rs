//! `keel mcp`: keel as an MCP server on stdio, for other MCP hosts. It offers keel's
//! built-in tools — the same containment and sandbox rules as inside keel, one tool
//! context for the connection (so `write` still refuses to overwrite a file the host
//! has not read) — and `keel_task`, which runs a whole agent task, reports its events
//! as progress notifications, stores the session like `keel run` does, and answers
//! with the final answer, the outcome and the files changed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use keel_agent::{Agent, EventSink, Session, StoreSink};
use keel_protocol::{Event, Outcome, ToolSpec};
use keel_store::Store;
use keel_tools::{Limits, ToolContext, ToolRegistry, Workspace};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProgressToken,
    ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, Peer, ServerHandler, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The name of the tool that runs a whole task.
pub const TASK_TOOL: &str = "keel_task";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("MCP handshake on stdio failed: {0}")]
    Handshake(String),
    #[error("the MCP session ended abnormally: {0}")]
    Ended(String),
}

/// keel over MCP, for one workspace.
#[derive(Clone)]
pub struct KeelMcpServer {
    inner: Arc<Inner>,
}

struct Inner {
    agent: Arc<Agent>,
    store: Arc<Store>,
    workspace: Workspace,
    tools: ToolRegistry,
    /// What `tools/list` answers: the built-in tools and `keel_task`, sorted.
    listed: Vec<Tool>,
    /// Shared by the direct tool calls of this connection.
    ctx: ToolContext,
    /// Sessions with a `keel_task` running.
    busy: Mutex<HashSet<String>>,
}

impl KeelMcpServer {
    /// `agent` runs `keel_task`s (stored in `store`); the built-in tools work in
    /// `workspace` under `limits`.
    pub fn new(agent: Arc<Agent>, store: Arc<Store>, workspace: Workspace, limits: Limits) -> Self {
        let tools = ToolRegistry::builtin();
        let mut listed: Vec<Tool> = tools.specs().iter().map(mcp_tool).collect();
        listed.push(mcp_tool(&task_spec()));
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        let ctx = ToolContext::with_sandbox(workspace.clone(), limits, &agent.config().sandbox);
        Self {
            inner: Arc::new(Inner {
                agent,
                store,
                ctx,
                workspace,
                tools,
                listed,
                busy: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Serves on stdin/stdout until the host closes the connection.
    pub async fn serve_stdio(self) -> Result<(), ServeError> {
        let running = self
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| ServeError::Handshake(e.to_string()))?;
        running
            .waiting()
            .await
            .map(|_| ())
            .map_err(|e| ServeError::Ended(e.to_string()))
    }

    async fn run_task(
        &self,
        arguments: &JsonObject,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let inner = &self.inner;
        let task = match arguments.get("task").and_then(Value::as_str).map(str::trim) {
            Some(task) if !task.is_empty() => task.to_string(),
            _ => {
                return error_result("`task` must be a non-empty string: what the agent should do");
            }
        };
        let session_id = match arguments.get("session_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if !id.trim().is_empty() => Some(id.trim().to_string()),
            Some(other) => {
                return error_result(format!(
                    "`session_id` must be the id of an earlier keel_task's session, not {other}"
                ));
            }
        };
        // A continued session must be one of this workspace's.
        let stored = match &session_id {
            None => None,
            Some(id) => {
                let root = inner.workspace.root().display().to_string();
                match inner.store.session_in(id, &root) {
                    Ok(Some(_)) => match inner.store.events(id) {
                        Ok(events) => Some(events),
                        Err(e) => return error_result(format!("cannot read session {id}: {e}")),
                    },
                    Ok(None) => {
                        return error_result(format!(
                            "no session {id} in this workspace; leave `session_id` out to start a new one"
                        ));
                    }
                    Err(e) => return error_result(format!("cannot read session {id}: {e}")),
                }
            }
        };
        let (progress, forwarder) = match context.meta.get_progress_token() {
            Some(token) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let forwarder = tokio::spawn(forward_progress(context.peer.clone(), token, rx));
                (Some(tx), Some(forwarder))
            }
            None => (None, None),
        };
        let sink = TaskSink {
            store: StoreSink::new(Arc::clone(&inner.store), session_id.clone()),
            progress,
            claimed: Mutex::new(None),
            busy: &inner.busy,
        };
        if let Some(id) = &session_id
            && !sink.claim(id)
        {
            return error_result(format!(
                "session {id} is already running a task; wait for it to finish"
            ));
        }
        let agent = &inner.agent;
        let mut session = match stored {
            Some(events) => match Session::resume(agent, inner.workspace.clone(), events, &sink) {
                Ok(session) => session,
                Err(e) => return error_result(format!("cannot continue that session: {e}")),
            },
            None => Session::start(agent, inner.workspace.clone(), &sink),
        };
        let from = session.events().len();
        let summary = session.run_turn(agent, &task, &sink, &context.ct).await;
        let turn = &session.events()[from..];
        let answer = turn.iter().rev().find_map(|e| match e {
            Event::Response { content } => Some(content.clone()),
            _ => None,
        });
        let error = turn.iter().rev().find_map(|e| match e {
            Event::Error { message, .. } => Some(message.clone()),
            _ => None,
        });
        let changed: Vec<Value> = summary
            .changed
            .iter()
            .map(|f| {
                json!({
                    "path": f.path,
                    "status": if f.hash.is_none() { "deleted" } else { "changed" },
                    "added_lines": f.added,
                    "removed_lines": f.removed,
                })
            })
            .collect();
        let report = json!({
            "session_id": session.id(),
            "outcome": summary.outcome.as_str(),
            "answer": answer,
            "error": error,
            "iterations": summary.iterations,
            "changed_files": changed,
        });
        // Every progress notification goes out before the result.
        drop(sink);
        if let Some(forwarder) = forwarder {
            let _ = forwarder.await;
        }
        let text = render_report(&report, summary.outcome);
        let mut result = if matches!(summary.outcome, Outcome::Failed | Outcome::Cancelled) {
            CallToolResult::error(vec![ContentBlock::text(text)])
        } else {
            CallToolResult::success(vec![ContentBlock::text(text)])
        };
        result.structured_content = Some(report);
        result
    }
}

impl ServerHandler for KeelMcpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("keel", env!("CARGO_PKG_VERSION")))
            .with_instructions(format!(
                "keel, a local coding agent, in the workspace {}. Its tools read, search and \
                 edit files there and run commands in its sandbox; `{TASK_TOOL}` hands a whole \
                 task to keel's own agent and returns its answer and the files it changed.",
                self.inner.workspace.root().display()
            ))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.inner.listed.clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let arguments = request.arguments.unwrap_or_default();
        let result = if request.name == TASK_TOOL {
            self.run_task(&arguments, &context).await
        } else if self.inner.tools.get(&request.name).is_some() {
            let output = self
                .inner
                .tools
                .call(
                    &self.inner.ctx,
                    &request.name,
                    Value::Object(arguments),
                    &context.ct,
                )
                .await;
            if output.is_error {
                error_result(output.content)
            } else {
                CallToolResult::success(vec![ContentBlock::text(output.content)])
            }
        } else {
            return Err(McpError::invalid_params(
                format!(
                    "unknown tool `{}`; keel offers: {}",
                    request.name,
                    self.inner
                        .listed
                        .iter()
                        .map(|t| t.name.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None,
            ));
        };
        Ok(result.into())
    }
}

fn error_result(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

fn mcp_tool(spec: &ToolSpec) -> Tool {
    let schema = match &spec.parameters {
        Value::Object(map) => map.clone(),
        _ => JsonObject::new(),
    };
    Tool::new(
        spec.name.clone(),
        spec.description.clone(),
        Arc::new(schema),
    )
    .with_annotations(
        ToolAnnotations::new()
            .read_only(spec.read_only)
            .destructive(!spec.read_only),
    )
}

fn task_spec() -> ToolSpec {
    ToolSpec {
        name: TASK_TOOL.into(),
        description: "Run a whole coding task with keel's agent in its workspace: it reads, \
                      edits, runs the tests and iterates until done. Returns the final answer, \
                      the outcome (completed, verified = tests re-run green, max_iterations, \
                      stalled, cancelled, failed), the session id and the changed files. Pass \
                      `session_id` to continue an earlier task's session."
            .into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "task": {"type": "string", "description": "What to do, in plain words."},
                "session_id": {"type": "string", "description": "Continue this earlier session (optional)."}
            },
            "required": ["task"]
        }),
        read_only: false,
    }
}

/// The report as text for hosts that read only the content.
fn render_report(report: &Value, outcome: Outcome) -> String {
    let mut text = format!(
        "outcome: {}\nsession_id: {}\n",
        outcome.as_str(),
        report["session_id"].as_str().unwrap_or_default()
    );
    if let Some(error) = report["error"].as_str() {
        text.push_str(&format!("error: {error}\n"));
    }
    let files = report["changed_files"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if files.is_empty() {
        text.push_str("changed files: none\n");
    } else {
        text.push_str("changed files:\n");
        for file in files {
            text.push_str(&format!(
                "  {} ({})\n",
                file["path"].as_str().unwrap_or_default(),
                file["status"].as_str().unwrap_or_default()
            ));
        }
    }
    if let Some(answer) = report["answer"].as_str() {
        text.push_str(&format!("\n{answer}"));
    }
    text
}

/// Stores every event, and turns the notable ones into progress messages.
struct TaskSink<'a> {
    store: StoreSink,
    progress: Option<mpsc::UnboundedSender<String>>,
    /// The session this task holds in `busy`.
    claimed: Mutex<Option<String>>,
    busy: &'a Mutex<HashSet<String>>,
}

impl TaskSink<'_> {
    /// Marks `id` running; false when it already is.
    fn claim(&self, id: &str) -> bool {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if !busy.insert(id.to_string()) {
            return false;
        }
        *self.claimed.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.to_string());
        true
    }
}

impl Drop for TaskSink<'_> {
    fn drop(&mut self) {
        if let Some(id) = self
            .claimed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            self.busy
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
    }
}

impl EventSink for TaskSink<'_> {
    fn emit(&self, event: &Event) {
        self.store.emit(event);
        if let Event::Session { session_id, .. } = event {
            self.claim(session_id);
        }
        if let (Some(progress), Some(message)) = (&self.progress, progress_message(event)) {
            let _ = progress.send(message);
        }
    }

    fn failure(&self) -> Option<String> {
        self.store.failure()
    }
}

/// How much of a call's arguments a progress message shows.
const PROGRESS_ARGS_CHARS: usize = 200;

/// One line per step worth showing a waiting host.
fn progress_message(event: &Event) -> Option<String> {
    Some(match event {
        Event::Session { session_id, .. } => format!("session {session_id}"),
        Event::Thinking { iteration } => format!("thinking (step {iteration})"),
        Event::ToolCall {
            name, arguments, ..
        } => {
            let full = arguments.to_string();
            let mut args: String = full.chars().take(PROGRESS_ARGS_CHARS).collect();
            if args.len() < full.len() {
                args.push('…');
            }
            format!("{name} {args}")
        }
        Event::ToolResult { name, is_error, .. } => {
            format!("{name}: {}", if *is_error { "error" } else { "ok" })
        }
        Event::Verification {
            command, passed, ..
        } => format!(
            "tests ({command}): {}",
            if *passed { "passed" } else { "failed" }
        ),
        Event::Feedback { reason, .. } => format!("feedback: {reason:?}"),
        Event::Error { message, .. } => format!("error: {message}"),
        Event::Done { outcome, .. } => format!("done: {}", outcome.as_str()),
        _ => return None,
    })
}

/// Sends the progress messages in order, counting up.
async fn forward_progress(
    peer: Peer<RoleServer>,
    token: ProgressToken,
    mut messages: mpsc::UnboundedReceiver<String>,
) {
    let mut step = 0.0;
    while let Some(message) = messages.recv().await {
        step += 1.0;
        let notification =
            ProgressNotificationParam::new(token.clone(), step).with_message(message);
        if peer.notify_progress(notification).await.is_err() {
            break;
        }
    }
}
