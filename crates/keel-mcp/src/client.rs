//! External MCP servers as keel tools. All servers start together, each within its
//! own startup timeout; one that fails is reported once and its tools are absent. A
//! call that outlives its timeout, or finds its server gone, becomes an error result,
//! and the next call starts the server again — a session never dies with a server.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use keel_protocol::ToolSpec;
use keel_tools::{Tool, ToolContext, ToolOutput};
use rmcp::ServiceError;
use rmcp::model::CallToolRequestParams;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::connect::{Connection, connect};
use crate::content::render;
use crate::schema::{sanitize_schema, tool_name};

/// The configured servers of one agent, in configuration order.
pub struct McpServers {
    entries: Vec<Entry>,
}

enum Entry {
    Started(Arc<McpServer>),
    Failed { name: String, reason: String },
}

/// How a server's start went.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerReport {
    pub name: String,
    pub state: ServerState,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServerState {
    Running {
        /// The protocol revision agreed on.
        protocol: String,
        /// Its tools as the model sees them, sorted by name.
        tools: Vec<ToolSpec>,
    },
    Failed(String),
}

impl McpServers {
    /// Starts every server at once and waits for each (at most its startup timeout).
    /// Relative paths in the configuration resolve against `root`, the workspace.
    pub async fn start(configs: Vec<ServerConfig>, root: &Path) -> McpServers {
        let starts: Vec<_> = configs
            .into_iter()
            .map(|config| {
                let root = root.to_path_buf();
                let name = config.name.clone();
                let start = tokio::spawn(async move {
                    let result = connect(&config, &root).await;
                    (config, root, result)
                });
                (name, start)
            })
            .collect();
        let mut entries = Vec::new();
        for (name, start) in starts {
            let entry = match start.await {
                Ok((config, root, Ok(connection))) => Entry::Started(Arc::new(McpServer {
                    tools: model_tools(&config.name, &connection),
                    protocol: connection.protocol.clone(),
                    config,
                    root,
                    connection: Mutex::new(Some(Arc::new(connection))),
                })),
                Ok((_, _, Err(e))) => Entry::Failed {
                    name,
                    reason: e.to_string(),
                },
                Err(e) => Entry::Failed {
                    name,
                    reason: format!("its start failed inside keel: {e}"),
                },
            };
            entries.push(entry);
        }
        McpServers { entries }
    }

    fn started(&self) -> impl Iterator<Item = &Arc<McpServer>> {
        self.entries.iter().filter_map(|entry| match entry {
            Entry::Started(server) => Some(server),
            Entry::Failed { .. } => None,
        })
    }

    /// One report per configured server, in configuration order.
    pub fn reports(&self) -> Vec<ServerReport> {
        self.entries
            .iter()
            .map(|entry| match entry {
                Entry::Started(server) => ServerReport {
                    name: server.config.name.clone(),
                    state: ServerState::Running {
                        protocol: server.protocol.clone(),
                        tools: server.tools.iter().map(|(spec, _)| spec.clone()).collect(),
                    },
                },
                Entry::Failed { name, reason } => ServerReport {
                    name: name.clone(),
                    state: ServerState::Failed(reason.clone()),
                },
            })
            .collect()
    }

    /// The started servers' tools, to be registered with the agent.
    pub fn tools(&self) -> Vec<Arc<dyn Tool>> {
        let mut tools: Vec<Arc<dyn Tool>> = Vec::new();
        for server in self.started() {
            for (spec, remote) in &server.tools {
                tools.push(Arc::new(McpTool {
                    server: Arc::clone(server),
                    spec: spec.clone(),
                    remote: remote.clone(),
                }));
            }
        }
        tools
    }

    /// Stops every server: stdin closed, then SIGTERM, then SIGKILL (a few seconds
    /// at most, all servers at once).
    pub async fn shutdown(&self) {
        let mut closing = tokio::task::JoinSet::new();
        for server in self.started() {
            let Some(connection) = server.connection.lock().await.take() else {
                continue;
            };
            match Arc::try_unwrap(connection) {
                Ok(mut connection) => {
                    closing.spawn(async move {
                        let _ = connection.service.close_with_timeout(SHUTDOWN).await;
                    });
                }
                // A call still holds it: cancelling ends its session all the same.
                Err(shared) => shared.service.cancellation_token().cancel(),
            }
        }
        closing.join_all().await;
    }
}

/// How long `shutdown` waits for a server to go.
const SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(8);

struct McpServer {
    config: ServerConfig,
    root: PathBuf,
    /// Its tools as first listed (the prompt stays the same across restarts), each
    /// with the server's own name for it.
    tools: Vec<(ToolSpec, String)>,
    /// The protocol revision agreed on at the first start.
    protocol: String,
    /// The live session; `None` after a crash or timeout until the next call.
    connection: Mutex<Option<Arc<Connection>>>,
}

/// The model-facing specs of a connection's tools, sorted by name, each with the
/// server's name for it. A name that collides after sanitising keeps its first tool.
fn model_tools(server: &str, connection: &Connection) -> Vec<(ToolSpec, String)> {
    let mut tools: Vec<(ToolSpec, String)> = Vec::new();
    for tool in &connection.tools {
        let name = tool_name(server, &tool.name);
        if tools.iter().any(|(s, _)| s.name == name) {
            continue;
        }
        let description = tool
            .description
            .as_deref()
            .or(tool.title.as_deref())
            .unwrap_or("")
            .trim()
            .to_string();
        let spec = ToolSpec {
            name,
            description,
            parameters: sanitize_schema(&Value::Object((*tool.input_schema).clone())),
            read_only: tool
                .annotations
                .as_ref()
                .and_then(|a| a.read_only_hint)
                .unwrap_or(false),
        };
        tools.push((spec, tool.name.to_string()));
    }
    tools.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    tools
}

impl McpServer {
    /// The live connection, starting the server again when it is gone.
    async fn connection(&self) -> Result<Arc<Connection>, String> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            if !connection.service.is_transport_closed() && !connection.service.is_closed() {
                return Ok(Arc::clone(connection));
            }
            if let Some(old) = slot.take() {
                old.service.cancellation_token().cancel();
            }
        }
        let connection = Arc::new(
            connect(&self.config, &self.root)
                .await
                .map_err(|e| e.to_string())?,
        );
        *slot = Some(Arc::clone(&connection));
        Ok(connection)
    }

    /// Stops `connection` (if it is still the live one) so the next call restarts.
    async fn discard(&self, connection: &Arc<Connection>) {
        let mut slot = self.connection.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, connection)) {
            slot.take();
        }
        connection.service.cancellation_token().cancel();
    }
}

/// One tool of an MCP server.
struct McpTool {
    server: Arc<McpServer>,
    spec: ToolSpec,
    /// The tool's name on its server.
    remote: String,
}

#[async_trait]
impl Tool for McpTool {
    fn spec(&self) -> ToolSpec {
        self.spec.clone()
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        arguments: Value,
        cancel: &CancellationToken,
    ) -> ToolOutput {
        let server = &self.server.config.name;
        let arguments = match arguments {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => {
                return ToolOutput::error(format!(
                    "the arguments of `{}` must be a JSON object, not {other}",
                    self.spec.name
                ));
            }
        };
        let connection = tokio::select! {
            _ = cancel.cancelled() => return ToolOutput::error("cancelled"),
            connection = self.server.connection() => connection,
        };
        let connection = match connection {
            Ok(connection) => connection,
            Err(e) => {
                return ToolOutput::error(format!(
                    "MCP server `{server}` is not running and could not be started again: {e}"
                ));
            }
        };
        let params = CallToolRequestParams::new(self.remote.clone()).with_arguments(arguments);
        let timeout = self.server.config.tool_timeout;
        let result = tokio::select! {
            _ = cancel.cancelled() => return ToolOutput::error("cancelled"),
            result = tokio::time::timeout(timeout, connection.service.call_tool(params)) => result,
        };
        match result {
            Ok(Ok(result)) => render(&result, ctx.limits.output_bytes),
            Ok(Err(ServiceError::McpError(e))) => ToolOutput::error(format!(
                "MCP server `{server}` rejected the call: {}",
                e.message
            )),
            Ok(Err(e)) => {
                let said = connection.stderr.last_words().await;
                self.server.discard(&connection).await;
                ToolOutput::error(format!(
                    "MCP server `{server}` failed during `{}`: {e}{said}. It will be started again on the next call.",
                    self.remote
                ))
            }
            Err(_) => {
                self.server.discard(&connection).await;
                ToolOutput::error(format!(
                    "MCP server `{server}` did not answer `{}` within {} s; it was stopped and will be started again on the next call.",
                    self.remote,
                    timeout.as_secs()
                ))
            }
        }
    }
}
