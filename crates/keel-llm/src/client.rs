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
    /// Constrain the whole response to this JSON schema (backends whose
    /// [`ModelInfo::constraint`] is set); the response is then the JSON text.
    pub response_schema: Option<serde_json::Value>,
}

impl ChatRequest {
    /// A request with the given messages and nothing else set.
    pub fn new(session_id: impl Into<String>, messages: Vec<Message>) -> Self {
        Self {
            session_id: session_id.into(),
            messages,
            tools: Vec::new(),
            protocol: ToolProtocol::Xml,
            max_tokens: None,
            response_schema: None,
        }
    }
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
    /// The kind of server, when one was recognised (`llama.cpp`, `vllm`, `ollama`, …).
    pub server: Option<String>,
    /// How this backend can force a response to match a JSON schema, if it can.
    pub constraint: Option<Constraint>,
}

impl ModelInfo {
    /// A model with only a name known.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            context_window: None,
            server: None,
            constraint: None,
        }
    }
}

/// A backend's mechanism for constraining a response to a JSON schema. Each backend
/// declares the strongest one its server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constraint {
    /// OpenAI `response_format: {"type": "json_schema", …}`: llama.cpp server (which
    /// compiles it to a grammar), vLLM, SGLang, LM Studio.
    ResponseFormat,
    /// Ollama's `format` field with a JSON schema.
    OllamaFormat,
    /// llama.cpp's `grammar` field: keel compiles the schema to a GBNF grammar for
    /// compact JSON (no free whitespace for a small model to loop on), falling back
    /// to `response_format` for schemas the compiler does not cover.
    Gbnf,
    /// The embedded engine: tool calls are constrained as they are generated (a grammar
    /// switched on at `<tool_call>`), and `response_schema` is enforced.
    Grammar,
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
    #[error("the `{backend}` backend is not part of this keel build yet")]
    Unsupported { backend: String },
    #[error("cannot create an HTTP client: {0}")]
    Client(String),
    #[error("cannot reach the model server at {url}: {reason} (is it running?)")]
    Unreachable { url: String, reason: String },
    #[error("talking to the model server at {url} failed: {reason}")]
    Transport { url: String, reason: String },
    #[error("the model server at {url} sent nothing for {secs} s; gave up waiting")]
    Idle { url: String, secs: u64 },
    #[error("the response stream from {url} was cut off: {reason}")]
    StreamCut { url: String, reason: String },
    #[error("the model server at {url} answered HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("the model server at {url} sent something keel cannot read: {reason}")]
    BadResponse { url: String, reason: String },
    #[error("the model server reported an error mid-stream: {0}")]
    Server(String),
    #[error("embedded engine: {0}")]
    Engine(String),
    #[error("the prompt does not fit the model's context window: {0}")]
    ContextOverflow(String),
    #[error("{}", unknown_model(model, url, available))]
    UnknownModel {
        model: String,
        url: String,
        available: Vec<String>,
    },
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

fn unknown_model(model: &str, url: &str, available: &[String]) -> String {
    if available.is_empty() {
        format!("the model server at {url} has no model `{model}` (and lists none)")
    } else {
        format!(
            "the model server at {url} has no model `{model}`; it serves: {}",
            available.join(", ")
        )
    }
}
