//! keel's embedded engine: a GGUF model run in-process by llama.cpp.
//!
//! The model is loaded once per process and shared by every session. Each session keeps
//! its own KV cache and the token ids behind it, so a new request evaluates only what
//! follows the longest common prefix with the previous one (the agent's prompt is
//! append-only). Tool calls are constrained lazily: text is sampled freely until the model
//! writes `<tool_call>`, then an llguidance grammar over the registered tools forces a
//! well-formed call that matches one tool's schema, with a budget that still closes it.
//!
//! Without the `embedded` feature the crate keeps only the model registry.

mod error;
mod registry;
mod template;

#[cfg(feature = "embedded")]
mod client;
#[cfg(feature = "embedded")]
mod constraint;
#[cfg(feature = "embedded")]
mod engine;
#[cfg(feature = "embedded")]
mod logs;
#[cfg(feature = "embedded")]
mod metadata;
#[cfg(feature = "embedded")]
mod slot;

pub use error::EngineError;
pub use registry::{DEFAULT_MODEL, ModelEntry, Registry, check_gguf};
pub use template::{ChatTemplate, Part};

#[cfg(feature = "embedded")]
pub use client::EmbeddedClient;
#[cfg(feature = "embedded")]
pub use engine::{Engine, EngineOptions, Generation, Prefill, SamplingOptions, Stop};
#[cfg(feature = "embedded")]
pub use metadata::{ModelMetadata, read_metadata};

/// Whether this build contains the llama.cpp engine.
pub const AVAILABLE: bool = cfg!(feature = "embedded");
