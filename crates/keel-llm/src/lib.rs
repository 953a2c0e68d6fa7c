//! Talking to models: the provider-neutral [`ModelClient`] trait, the backends, and
//! the tool-call wire formats (`xml` text blocks and `native` structured calls).

mod client;
mod json_repair;
mod replay;
mod spec;
pub mod xml;

pub use client::{
    ChatRequest, LlmError, ModelClient, ModelEvent, ModelInfo, ModelStream, ToolProtocol,
};
pub use json_repair::parse_lenient_json;
pub use replay::ReplayClient;
pub use spec::{ModelSpec, connect};
