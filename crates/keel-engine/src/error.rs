use std::path::PathBuf;

/// What can go wrong in the embedded engine. Messages name the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("model registry {}: {reason}", path.display())]
    Registry { path: PathBuf, reason: String },
    #[error("`{0}` is not a usable model name (letters, digits, `-`, `_`, `.`; not a path)")]
    InvalidName(String),
    #[error("no model named `{name}`: {known}")]
    UnknownModel { name: String, known: String },
    #[error("cannot use model file {}: {reason}", path.display())]
    ModelFile { path: PathBuf, reason: String },
    #[error("cannot load model {}: {reason}", path.display())]
    Load { path: PathBuf, reason: String },
    #[error("cannot create a llama.cpp context: {0}")]
    Context(String),
    #[error("llama.cpp failed to evaluate the prompt: {0}")]
    Decode(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("tool-call constraint: {0}")]
    Grammar(String),
    #[error("the prompt needs {needed} tokens but the context holds {window}")]
    ContextOverflow { needed: usize, window: u32 },
    #[error("this keel was built without the embedded engine (cargo feature `embedded`)")]
    NotBuilt,
}

impl From<EngineError> for keel_llm::LlmError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::ContextOverflow { .. } => {
                keel_llm::LlmError::ContextOverflow(e.to_string())
            }
            other => keel_llm::LlmError::Engine(other.to_string()),
        }
    }
}
