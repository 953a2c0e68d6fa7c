//! Plain data shared by every keel crate.
//!
//! The [`Event`] stream is the spine of keel: the terminal printer, the JSON Lines
//! exporter, the HTTP SSE endpoint and the session store all consume it, and the
//! conversation the model sees is rebuilt from it ([`Message`]s).

mod event;
mod message;

pub use event::{
    ErrorKind, Event, FeedbackReason, FileChange, Outcome, SUMMARY_HEAD, conversation, stub,
};
pub use message::{Message, Role, ToolCall, ToolSpec, Usage};
