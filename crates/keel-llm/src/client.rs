//! The model-client trait and the types that cross it.

use std::path::PathBuf;

use futures_util::stream::BoxStream;
use keel_protocol::{Message, ToolSpec, Usage};
use serde::{Deserialize, Serialize};

/// How tool calls travel between keel and the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolProtocol {
    /// `<tool_call>` blocks inside the assistant text; works with any model.
    #[default]
    Xml,
    /// The backend's structured function calling (OpenAI `tools` / `tool_calls`).
    Native,
}

impl std::str::FromStr for ToolProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "xml" => Ok(ToolProtocol::Xml),
            "native" => Ok(ToolProtocol::Native),
            other => Err(format!(
                "unknown tool protocol `{other}` (expected `xml` or `native`)"
            )),
        }
    }
}

/// One request to a model. `messages` starts with the system prompt.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// Lets stateful backends (replay position, embedded KV cache) keep per-session state.
    pub session_id: String,
    pub messages: Vec<Message>,
    /// Tool definitions, for `native` mode (in `xml` mode they are in the system prompt).
    pub tools: Vec<ToolSpec>,
    pub protocol: ToolProtocol,
    pub max_tokens: Option<u32>,
}

/// One item of a streamed model response.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelEvent {
    /// A piece of assistant text.
    Text(String),
    /// A complete native tool call; `arguments` is the raw JSON text the model produced.
    ToolCall {
        id: Option<String>,
        name: String,
        arguments: String,
    },
    /// Token accounting, when the backend reports it.
    Usage(Usage),
}

pub type ModelStream = BoxStream<'static, Result<ModelEvent, LlmError>>;

/// What keel knows about the model behind a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The spec the client was made from, e.g. `replay:demo.jsonl`.
    pub name: String,
    /// Context window in tokens, when known.
    pub context_window: Option<u32>,
}

/// A streaming model backend.
pub trait ModelClient: Send + Sync {
    fn info(&self) -> ModelInfo;

    /// Starts generating a response. Dropping the stream cancels the request.
    fn stream(&self, request: ChatRequest) -> ModelStream;
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("invalid model spec `{spec}`: {reason}")]
    InvalidSpec { spec: String, reason: String },
    #[error("the `{backend}` backend is not part of this keel build yet; use `replay:FILE`")]
    Unsupported { backend: String },
    #[error("cannot read replay script {}: {source}", path.display())]
    ReplayIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("replay script {}, line {line}: {reason}", path.display())]
    ReplayFormat {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error(
        "replay script {} has no response left for this session (all {lines} used)",
        path.display()
    )]
    ReplayExhausted { path: PathBuf, lines: usize },
}
