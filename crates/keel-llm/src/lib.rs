//! Talking to models: the provider-neutral [`ModelClient`] trait, the backends, and
//! the tool-call wire formats (`xml` text blocks and `native` structured calls).

mod client;
mod frames;
mod gbnf;
mod http;
mod json_repair;
mod ollama;
mod openai;
mod replay;
mod spec;
pub mod xml;

pub use client::{
    ChatRequest, Constraint, LlmError, ModelClient, ModelEvent, ModelInfo, ModelStream,
    ToolProtocol,
};
pub use http::ConnectOptions;
pub use json_repair::parse_lenient_json;
pub use ollama::OllamaClient;
pub use openai::OpenAiClient;
pub use replay::ReplayClient;
pub use spec::{ModelSpec, SPEC_FORMS, connect};
