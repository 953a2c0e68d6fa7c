//! The model-client trait and the types that cross it.

use std::path::PathBuf;

use futures_util::stream::BoxStream;
use keel_protocol::{Message, ToolSpec, Usage};
use serde::{Deserialize, Serialize};

/// How tool calls travel between keel and the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolProtocol {
    /// keel's own `<tool_call><name>…</name><input>…</input></tool_call>` blocks inside
    /// the assistant text; for models whose template defines no call format.
    #[default]
    Xml,
    /// Hermes-style `<tool_call>{"name": …, "arguments": …}</tool_call>` in the text, the
    /// tools listed in `<tools>`: what Qwen2.5/Qwen3 and many other templates train on.
    Hermes,
    /// The backend's structured function calling (OpenAI `tools` / `tool_calls`).
    Native,
}

impl ToolProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolProtocol::Xml => "xml",
            ToolProtocol::Hermes => "hermes",
            ToolProtocol::Native => "native",
        }
    }

    /// Calls travel as text in the reply (`xml`, `hermes`).
    pub fn is_text(self) -> bool {
        self != ToolProtocol::Native
    }

    /// The dialect a chat template (Jinja source) trains its model on: Hermes when it
    /// writes calls inside `<tool_call>` tags, else none known.
    pub fn of_template(template: &str) -> Option<ToolProtocol> {
        (template.contains("<tool_call>") && template.contains("<tools>"))
            .then_some(ToolProtocol::Hermes)
    }
}

impl std::str::FromStr for ToolProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "xml" => Ok(ToolProtocol::Xml),
            "hermes" => Ok(ToolProtocol::Hermes),
            "native" => Ok(ToolProtocol::Native),
            other => Err(format!(
                "unknown tool protocol `{other}` (expected `auto`, `xml`, `hermes` or `native`)"
            )),
        }
    }
}

/// The configured tool protocol: a fixed one, or `auto` — the model's own dialect when
/// its chat template has one (see [`ModelInfo::dialect`]), else keel's `xml`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProtocolChoice {
    #[default]
    Auto,
    Fixed(ToolProtocol),
}

impl ProtocolChoice {
    /// The protocol to speak with a model.
    pub fn resolve(self, model: &ModelInfo) -> ToolProtocol {
        match self {
            ProtocolChoice::Fixed(protocol) => protocol,
            ProtocolChoice::Auto => model.dialect.unwrap_or(ToolProtocol::Xml),
        }
    }
}

impl std::str::FromStr for ProtocolChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ProtocolChoice::Auto),
            other => other.parse().map(ProtocolChoice::Fixed),
        }
    }
}

impl<'de> Deserialize<'de> for ProtocolChoice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One request to a model. `messages` starts with the system prompt.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// Lets stateful backends (replay position, embedded KV cache) keep per-session state.
    pub session_id: String,
    pub messages: Vec<Message>,
    /// The tools offered. In `native` mode they are sent to the server; in the text
    /// dialects they are also in the system prompt, and backends that constrain decoding
    /// use them to force a call that opens to be a valid one.
    pub tools: Vec<ToolSpec>,
    /// The reply must be a tool call (the constraining backends force one; others get
    /// `tool_choice: "required"` in `native` mode).
    pub require_call: bool,
    /// The reply must not end without a call, though prose may come first: where the
    /// model would end its turn before any call, the embedded engine writes the call
    /// opener and samples the call under the grammar (a one-sentence diagnosis, then
    /// the fix, in one reply). Other backends send the request as it is: the agent
    /// handles a reply that ends in prose.
    pub end_with_call: bool,
    pub protocol: ToolProtocol,
    pub max_tokens: Option<u32>,
    /// Constrain the whole response to this JSON schema (backends whose
    /// [`ModelInfo::constraint`] is set); the response is then the JSON text.
    pub response_schema: Option<serde_json::Value>,
    /// A floor for this request's sampling temperature: keel raises it for one reply
    /// when a model at greedy decoding repeats itself (the same failing code, the same
    /// reply). `None`: the backend's own setting.
    pub temperature: Option<f32>,
}

impl ChatRequest {
    /// The bytes of what the request sends as its prompt: the messages (with a little
    /// for each message's markup) and, in `native` mode, the tool definitions — what
    /// token estimates are made from.
    pub fn prompt_bytes(&self) -> usize {
        let mut bytes = 0;
        for message in &self.messages {
            bytes += message.content.len() + 16;
            for call in &message.tool_calls {
                bytes += call.name.len() + call.arguments.to_string().len() + 16;
            }
        }
        if self.protocol == ToolProtocol::Native {
            bytes += self
                .tools
                .iter()
                .map(|t| t.name.len() + t.description.len() + t.parameters.to_string().len())
                .sum::<usize>();
        }
        bytes
    }

    /// A request with the given messages and nothing else set.
    pub fn new(session_id: impl Into<String>, messages: Vec<Message>) -> Self {
        Self {
            session_id: session_id.into(),
            messages,
            tools: Vec::new(),
            require_call: false,
            end_with_call: false,
            protocol: ToolProtocol::Xml,
            max_tokens: None,
            response_schema: None,
            temperature: None,
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
    /// The call dialect the model was trained on, when its chat template says.
    pub dialect: Option<ToolProtocol>,
}

impl ModelInfo {
    /// A model with only a name known.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            context_window: None,
            server: None,
            constraint: None,
            dialect: None,
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

    /// The prompt tokens of this request, counted with the model's own tokenizer, where
    /// the backend has it at hand (the embedded engine). `None`: estimate.
    fn count_prompt_tokens(&self, _request: &ChatRequest) -> Option<u32> {
        None
    }
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
