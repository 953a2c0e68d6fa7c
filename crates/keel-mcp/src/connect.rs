//! Starting one MCP server: spawn it (or reach it over HTTP), agree on a protocol
//! revision — the current one, falling back to the previous for servers that only
//! speak that — and list its tools.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, ProcessGroup};
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{
    ClientInitializeError, ClientLifecycleMode, ClientServiceExt, RoleClient, RunningService,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::config::{ServerConfig, ServerTransport};

/// A running server session.
pub(crate) struct Connection {
    pub service: RunningService<RoleClient, ClientConfig>,
    pub tools: Vec<rmcp::model::Tool>,
    /// The revision agreed on (`2026-07-28` or the fallback `2025-11-25`).
    pub protocol: String,
    /// The last lines the server wrote to stderr (stdio servers).
    pub stderr: StderrTail,
}

/// The tail of a server's stderr, kept for error messages.
#[derive(Clone, Default)]
pub(crate) struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    /// Cancelled when the server closed its stderr (it exited).
    closed: CancellationToken,
}

const STDERR_LINES: usize = 8;
const STDERR_LINE_CHARS: usize = 300;

impl StderrTail {
    fn push(&self, line: &str) {
        let line: String = line.trim_end().chars().take(STDERR_LINE_CHARS).collect();
        if line.is_empty() {
            return;
        }
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == STDERR_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// `"; its stderr ends with: …"`, or nothing. A server that is going away gets a
    /// moment to finish writing, so its last words make it into the message.
    pub async fn last_words(&self) -> String {
        let _ = tokio::time::timeout(Duration::from_millis(500), self.closed.cancelled()).await;
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.is_empty() {
            return String::new();
        }
        let joined: Vec<&str> = lines.iter().map(String::as_str).collect();
        format!("; its stderr ends with: {}", joined.join(" | "))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("the environment variable {0} (its bearer token) is not set")]
    MissingToken(String),
    #[error("no MCP handshake: {0}")]
    Handshake(String),
    #[error("cannot list its tools: {0}")]
    ListTools(String),
    #[error("did not start within {0} s")]
    Timeout(u64),
}

/// A handshake failure in words: for a transport error, the transport's own error and
/// its causes (rmcp's message names the transport's Rust type, useless to a user).
fn handshake_error(e: &ClientInitializeError) -> String {
    match e {
        ClientInitializeError::TransportError { error, context } => {
            let mut text = error.error.to_string();
            let mut source = error.error.source();
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text.push_str(": ");
                    text.push_str(&cause_text);
                }
                source = cause.source();
            }
            format!(
                "{text} (when trying to {})",
                context.trim_start_matches("when ")
            )
        }
        other => other.to_string(),
    }
}

fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("keel", env!("CARGO_PKG_VERSION")),
    )
}

/// The current revision first; the previous one for servers that only speak it.
fn lifecycle() -> ClientLifecycleMode {
    ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        legacy_version: Some(ProtocolVersion::V_2025_11_25),
    }
}

/// Starts `config` (relative paths and the working directory resolve against
/// `root`) and lists its tools, within the server's startup timeout.
pub(crate) async fn connect(config: &ServerConfig, root: &Path) -> Result<Connection, StartError> {
    let stderr = StderrTail::default();
    let attempt = async {
        let service = match &config.transport {
            ServerTransport::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).envs(env).current_dir(
                    cwd.as_ref()
                        .map_or_else(|| root.to_path_buf(), |c| root.join(c)),
                );
                let mut wrapped = CommandWrap::from(cmd);
                // Its own process group, so that stopping it also stops what it spawned
                // (`npx` runs the server as a grandchild).
                wrapped.wrap(ProcessGroup::leader());
                let (transport, child_stderr) = TokioChildProcess::builder(wrapped)
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|source| StartError::Spawn {
                        command: command.clone(),
                        source,
                    })?;
                if let Some(child_stderr) = child_stderr {
                    let tail = stderr.clone();
                    tokio::spawn(async move {
                        let mut lines = BufReader::new(child_stderr).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            tail.push(&line);
                        }
                        tail.closed.cancel();
                    });
                }
                match client_config()
                    .serve_with_lifecycle(transport, lifecycle())
                    .await
                {
                    Ok(service) => service,
                    Err(e) => {
                        return Err(StartError::Handshake(format!(
                            "{}{}",
                            handshake_error(&e),
                            stderr.last_words().await
                        )));
                    }
                }
            }
            ServerTransport::Http {
                url,
                bearer_token_env,
            } => {
                // No stderr to wait for.
                stderr.closed.cancel();
                let mut transport_config =
                    StreamableHttpClientTransportConfig::with_uri(url.as_str());
                if let Some(var) = bearer_token_env {
                    let token = std::env::var(var)
                        .ok()
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| StartError::MissingToken(var.clone()))?;
                    transport_config = transport_config.auth_header(token);
                }
                let _ = rustls::crypto::ring::default_provider().install_default();
                let client = reqwest::Client::builder()
                    .build()
                    .map_err(|e| StartError::Handshake(e.to_string()))?;
                let transport =
                    StreamableHttpClientTransport::with_client(client, transport_config);
                client_config()
                    .serve_with_lifecycle(transport, lifecycle())
                    .await
                    .map_err(|e| StartError::Handshake(handshake_error(&e)))?
            }
        };
        let protocol = service
            .peer_info()
            .map(|info| info.protocol_version.to_string())
            .unwrap_or_default();
        let tools = match service.list_all_tools().await {
            Ok(tools) => tools,
            Err(e) => {
                return Err(StartError::ListTools(format!(
                    "{e}{}",
                    stderr.last_words().await
                )));
            }
        };
        Ok(Connection {
            service,
            tools,
            protocol,
            stderr: stderr.clone(),
        })
    };
    match tokio::time::timeout(config.startup_timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(StartError::Timeout(config.startup_timeout.as_secs())),
    }
}
