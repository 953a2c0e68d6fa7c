//! The agent loop: prompt assembly, tool execution, stall detection and verified
//! completion, all expressed as a stream of [`keel_protocol::Event`]s.

pub mod budget;
mod changes;
mod code_blocks;
mod compact;
mod config;
mod context;
mod deps;
mod detect;
mod hunks;
mod instructions;
mod intent;
mod looping;
mod memory;
pub mod permissions;
mod prompt;
mod repair;
mod repomap;
mod rut;
mod session;
pub mod skills;
mod stall;
mod store_sink;
mod tamper;
mod test_output;
mod test_report;
mod window;

pub use config::AgentConfig;
pub use context::project_context;
pub use detect::detect_test_command;
pub use memory::files_named_in;
pub use prompt::system_prompt;
pub use repair::{call_schema, read_call};
pub use session::{
    Agent, EventSink, Restored, ResumeError, Session, TurnSummary, UndoError, plan_steps,
    plan_task, turn_diff,
};
pub use store_sink::StoreSink;
pub use window::{ContextTooSmall, WORKING_MARGIN, estimate_tokens};
