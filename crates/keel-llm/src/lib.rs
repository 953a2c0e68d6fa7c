//! Talking to models: the provider-neutral [`ModelClient`] trait, the backends, and
//! the tool-call dialects (`xml` and Hermes text blocks, `native` structured calls).

pub mod calls;
mod client;
mod frames;
mod gbnf;
mod http;
mod json_repair;
mod ollama;
mod openai;
mod replay;
mod spec;

pub use client::{
    ChatRequest, Constraint, LlmError, ModelClient, ModelEvent, ModelInfo, ModelStream,
    ProtocolChoice, ToolProtocol,
};
pub use http::ConnectOptions;
pub use json_repair::parse_lenient_json;
pub use ollama::OllamaClient;
pub use openai::OpenAiClient;
pub use replay::{ReplayClient, replay_tokens};
pub use spec::{ModelSpec, SPEC_FORMS, connect};
