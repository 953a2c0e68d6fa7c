//! keel's tools: the [`Tool`] trait, the [`ToolRegistry`], workspace containment and
//! the seven built-in tools (`bash`, `read`, `write`, `edit`, `glob`, `grep`, `git`).
//!
//! Every tool failure is a [`ToolOutput`] with `is_error` set and a message written
//! for the model; nothing here panics or prints on bad input.

mod beneath;
mod builtin;
mod context;
mod error;
pub mod exec;
mod output;
mod registry;
pub mod secrets;
mod tool;
mod workspace;

pub use context::{Limits, ToolContext};
pub use error::ToolError;
pub use keel_sandbox as sandbox;
pub use output::CappedOutput;
pub use registry::ToolRegistry;
pub use tool::{Tool, ToolOutput, TypedTool, signature, typed};
pub use workspace::{Workspace, walker};
