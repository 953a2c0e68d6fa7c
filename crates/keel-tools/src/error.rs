use std::path::PathBuf;

/// A tool failure; its `Display` is what the model reads.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("permission denied: `{path}` is outside the workspace")]
    OutsideWorkspace { path: String },
    #[error("invalid arguments for `{tool}`: {problem}\nExpected input: {expected}")]
    InvalidArguments {
        tool: String,
        problem: String,
        expected: String,
    },
    #[error("{0}")]
    Refused(String),
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

impl ToolError {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ToolError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
