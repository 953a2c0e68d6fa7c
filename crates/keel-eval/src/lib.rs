//! `keel eval`: run a set of tasks against a model and say how the agent did.
//!
//! This crate holds what does not need the agent: reading tasks in the formats keel
//! knows ([`Task`]), preparing a fresh scratch workspace committed to git, the check
//! that decides pass or fail **with the original test files restored** (an agent that
//! edits the tests gains nothing), the metrics read from a session's events, and the
//! records, summary and comparison of runs. The CLI runs each task's session.

mod check;
mod metrics;
mod record;
mod task;
mod workspace;

pub use check::{CheckResult, run_check};
pub use metrics::Metrics;
pub use record::{Record, Run, Summary, compare_table, summary_table};
pub use task::{Task, TaskKind, discover};
pub use workspace::prepare;

/// What can go wrong reading or preparing tasks.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{}: {reason}", path.display())]
    Task {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("invalid task pattern `{pattern}`: {reason}")]
    Pattern { pattern: String, reason: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EvalError {
    let what = what.into();
    move |source| EvalError::Io { what, source }
}
