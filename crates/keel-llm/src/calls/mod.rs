//! Tool calls written in the model's text.
//!
//! Two dialects are spoken (chosen per model, see [`ToolProtocol`](crate::ToolProtocol)):
//!
//! ```text
//! keel's xml                              Hermes (Qwen2.5/Qwen3 and many templates)
//! <tool_call>                             <tool_call>
//! <name>bash</name>                       {"name": "bash", "arguments": {"command": "pytest"}}
//! <input>{"command": "pytest"}</input>    </tool_call>
//! </tool_call>
//! ```
//!
//! Whatever the dialect, the reader accepts every form small models really write for a
//! call ([`CallForm`]): either dialect's block, a fenced ```json / ```tool_call block
//! holding `{"name", "arguments" | "input" | "parameters"}`, a bare JSON object of that
//! shape on its own line, and the xml elements without their `<tool_call>` wrapper
//! (`<function-name>` for `<name>` too, and `<function name="…" arguments='{…}'/>`).
//! JSON is read by its structure, so arguments may hold any text — `</tool_call>`
//! included. A block that is plainly meant as a call but cannot be read becomes a
//! [`MalformedCall`] that says what was wrong.

mod dialect;
mod filter;
mod parse;
mod scan;

pub use dialect::{call_format, render_call, render_json, render_reply, to_text_messages};
pub use filter::ProseFilter;
pub use parse::parse_response;

use serde_json::Value;

use crate::ToolProtocol;

pub const OPEN: &str = "<tool_call>";
pub const CLOSE: &str = "</tool_call>";

/// A well-formed call as written in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCall {
    pub name: String,
    pub arguments: Value,
}

/// How a call was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallForm {
    /// `<tool_call><name>…</name><input>…</input></tool_call>`.
    Xml,
    /// `<tool_call>{"name": …, "arguments": …}</tool_call>`.
    Hermes,
    /// A fenced code block holding the JSON object.
    Fenced,
    /// The JSON object alone on its line(s).
    Bare,
    /// `<name>…</name><input>…</input>` without the `<tool_call>` wrapper (also with
    /// `<function-name>` for `<name>`), or `<function name="…" arguments='{…}'/>`.
    Unwrapped,
}

impl CallForm {
    /// Whether this is the form `protocol` asks for (what the history shows).
    pub fn is_canonical(self, protocol: ToolProtocol) -> bool {
        match protocol {
            ToolProtocol::Xml => self == CallForm::Xml,
            ToolProtocol::Hermes | ToolProtocol::Native => self == CallForm::Hermes,
        }
    }
}

/// A block meant as a call that could not be understood.
#[derive(Debug, Clone, PartialEq)]
pub struct MalformedCall {
    /// The tool name, when it could be read.
    pub name: Option<String>,
    /// What was wrong, for the model.
    pub problem: String,
    /// The block as written (shortened).
    pub raw: String,
}

impl MalformedCall {
    /// The error result the model receives for this block, showing the correct form in
    /// `protocol`'s dialect.
    pub fn message(&self, protocol: ToolProtocol) -> String {
        format!(
            "malformed tool call: {}.\nYou wrote: {}\nWrite each call exactly like this, with a JSON object of arguments:\n{}",
            self.problem,
            self.raw,
            call_format(protocol)
        )
    }
}

/// A response split into its prose and its calls (in order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedResponse {
    pub prose: String,
    pub calls: Vec<Result<ParsedCall, MalformedCall>>,
    /// How each call (malformed ones included) was written, parallel to `calls`.
    pub forms: Vec<CallForm>,
}

impl ParsedResponse {
    /// Whether every call is in `protocol`'s own form, so the text can stand in the
    /// history as written.
    pub fn is_canonical(&self, protocol: ToolProtocol) -> bool {
        self.forms.iter().all(|f| f.is_canonical(protocol))
    }
}

#[cfg(test)]
mod parse_tests;
