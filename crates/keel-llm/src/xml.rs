//! The `xml` tool-call protocol: calls written as text blocks inside the response.
//!
//! ```text
//! <tool_call>
//! <name>bash</name>
//! <input>{"command": "pytest tests/"}</input>
//! </tool_call>
//! ```
//!
//! Parsing is forgiving where the intent is unambiguous (prose around calls, several
//! calls, code fences around a block, a missing final `</tool_call>`, the Hermes/Qwen
//! JSON body `{"name": …, "arguments": …}`, repairable JSON) and precise where it is
//! not: a malformed block becomes a [`MalformedCall`] that says what was wrong.

use keel_protocol::{Message, Role};
use serde_json::Value;

use crate::parse_lenient_json;

pub const OPEN: &str = "<tool_call>";
pub const CLOSE: &str = "</tool_call>";

/// The correct form, shown to the model when it gets a call wrong.
pub const CALL_FORMAT: &str =
    "<tool_call>\n<name>TOOL_NAME</name>\n<input>{\"argument\": \"value\"}</input>\n</tool_call>";

/// A well-formed call as written in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCall {
    pub name: String,
    pub arguments: Value,
}

/// A `<tool_call>` block that could not be understood.
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
    /// The error result the model receives for this block.
    pub fn message(&self) -> String {
        format!(
            "malformed tool call: {}.\nYou wrote: {}\nWrite each call exactly like this, with a JSON object as input:\n{}",
            self.problem, self.raw, CALL_FORMAT
        )
    }
}

/// A response split into its prose and its calls (in order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedResponse {
    pub prose: String,
    pub calls: Vec<Result<ParsedCall, MalformedCall>>,
}

/// Splits a complete response into prose and tool calls.
pub fn parse_response(text: &str) -> ParsedResponse {
    let mut response = ParsedResponse::default();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        response.prose.push_str(strip_opening_fence(&rest[..start]));
        let body_start = start + OPEN.len();
        let (body, after) = match rest[body_start..].find(CLOSE) {
            Some(end) => (
                &rest[body_start..body_start + end],
                &rest[body_start + end + CLOSE.len()..],
            ),
            // A missing final `</tool_call>` at the end of the stream.
            None => (&rest[body_start..], ""),
        };
        // A nested `<tool_call>` means the previous block was never closed.
        let (body, after) = match body.find(OPEN) {
            Some(nested) => (&body[..nested], &rest[body_start + nested..]),
            None => (body, after),
        };
        response.calls.push(parse_block(body));
        rest = strip_closing_fence(after);
    }
    response.prose.push_str(rest);
    response.prose = response.prose.trim().to_string();
    response
}

/// Removes a "```" / "```xml" line that directly precedes a call block.
fn strip_opening_fence(prose: &str) -> &str {
    let trimmed = prose.trim_end();
    let Some(fence) = trimmed.rfind("```") else {
        return prose;
    };
    let language_tag = &trimmed[fence + 3..];
    let before = trimmed[..fence].trim_end_matches([' ', '\t']);
    let fence_opens_line = before.is_empty() || before.ends_with('\n');
    if fence_opens_line && language_tag.chars().all(|c| c.is_ascii_alphanumeric()) {
        &trimmed[..fence]
    } else {
        prose
    }
}

/// Removes a "```" that directly follows a call block.
fn strip_closing_fence(after: &str) -> &str {
    let trimmed = after.trim_start();
    match trimmed.strip_prefix("```") {
        Some(rest) if !rest.starts_with(|c: char| c.is_ascii_alphanumeric()) => rest,
        _ => after,
    }
}

fn shorten(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

fn tag_content<'a>(body: &'a str, tag: &str) -> Option<(&'a str, bool)> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open)? + open.len();
    match body[start..].find(&close) {
        Some(end) => Some((&body[start..start + end], true)),
        None => Some((&body[start..], false)),
    }
}

fn parse_block(body: &str) -> Result<ParsedCall, MalformedCall> {
    let raw = shorten(&format!("{OPEN}{body}{CLOSE}"), 300);
    let malformed = |name: Option<String>, problem: String| MalformedCall {
        name,
        problem,
        raw: raw.clone(),
    };

    let Some((name, _)) = tag_content(body, "name") else {
        return parse_json_body(body).map_err(|problem| malformed(None, problem));
    };
    let name = name.trim().to_string();
    if name.is_empty() {
        return Err(malformed(None, "the <name> element is empty".into()));
    }
    if name.contains(char::is_whitespace) || name.contains('<') {
        return Err(malformed(
            None,
            format!("`{}` is not a tool name", shorten(&name, 40)),
        ));
    }
    let input = tag_content(body, "input").or_else(|| tag_content(body, "arguments"));
    let arguments = match input {
        None => Value::Object(Default::default()),
        Some((text, _)) if text.trim().is_empty() => Value::Object(Default::default()),
        Some((text, _)) => parse_lenient_json(strip_json_fence(text)).map_err(|e| {
            malformed(
                Some(name.clone()),
                format!("the <input> is not valid JSON ({e})"),
            )
        })?,
    };
    if !arguments.is_object() {
        return Err(malformed(
            Some(name),
            "the <input> must be a JSON object of arguments".into(),
        ));
    }
    Ok(ParsedCall { name, arguments })
}

/// Models trained on the Hermes format write `{"name": "...", "arguments": {...}}`.
fn parse_json_body(body: &str) -> Result<ParsedCall, String> {
    let text = strip_json_fence(body);
    if text.trim().is_empty() {
        return Err("the block has no <name> element".into());
    }
    let value =
        parse_lenient_json(text).map_err(|_| "the block has no <name> element".to_string())?;
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .ok_or("the block has no <name> element")?
        .to_string();
    let arguments = value
        .get("arguments")
        .or_else(|| value.get("input"))
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    // Some models double-encode the arguments as a string.
    let arguments = match arguments {
        Value::String(s) => {
            parse_lenient_json(&s).map_err(|e| format!("the arguments are not valid JSON ({e})"))?
        }
        other => other,
    };
    if !arguments.is_object() {
        return Err("the arguments must be a JSON object".into());
    }
    Ok(ParsedCall { name, arguments })
}

fn strip_json_fence(text: &str) -> &str {
    let t = text.trim();
    let Some(inner) = t.strip_prefix("```") else {
        return t;
    };
    let inner = inner.strip_prefix("json").unwrap_or(inner);
    inner.strip_suffix("```").unwrap_or(inner).trim()
}

/// Renders a call the way the model is asked to write it.
pub fn render_call(name: &str, arguments: &Value) -> String {
    format!("{OPEN}\n<name>{name}</name>\n<input>{arguments}</input>\n{CLOSE}")
}

/// Renders tool results as the text of a user message.
fn render_result(out: &mut String, message: &Message) {
    let name = message.name.as_deref().unwrap_or("tool");
    let status = if message.is_error {
        " status=\"error\""
    } else {
        ""
    };
    out.push_str(&format!("<tool_result name=\"{name}\"{status}>\n"));
    out.push_str(&message.content);
    if !message.content.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("</tool_result>");
}

/// Converts a provider-neutral conversation into plain system/user/assistant
/// messages for the `xml` protocol: native calls become blocks in the assistant text,
/// tool results become user messages, and consecutive user messages are merged (many
/// chat templates require roles to alternate).
pub fn to_xml_messages(messages: &[Message]) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::with_capacity(messages.len());
    for message in messages {
        let (role, text) = match message.role {
            Role::Tool => {
                let mut text = String::new();
                render_result(&mut text, message);
                (Role::User, text)
            }
            Role::Assistant if !message.tool_calls.is_empty() => {
                let mut text = message.content.clone();
                for call in &message.tool_calls {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&render_call(&call.name, &call.arguments));
                }
                (Role::Assistant, text)
            }
            role => (role, message.content.clone()),
        };
        match out.last_mut() {
            Some(last) if last.role == Role::User && role == Role::User => {
                last.content.push_str("\n\n");
                last.content.push_str(&text);
            }
            _ => out.push(Message {
                role,
                content: text,
                ..Message::user("")
            }),
        }
    }
    out
}

/// Separates streamed prose from `<tool_call>` blocks as text arrives, so front ends
/// show the model's words without the call markup.
#[derive(Debug, Default)]
pub struct ProseFilter {
    pending: String,
    inside_call: bool,
}

impl ProseFilter {
    /// Feeds a chunk; returns the prose that can be shown now.
    pub fn push(&mut self, chunk: &str) -> String {
        self.pending.push_str(chunk);
        let mut shown = String::new();
        loop {
            if self.inside_call {
                match self.pending.find(CLOSE) {
                    Some(end) => {
                        self.pending.drain(..end + CLOSE.len());
                        self.inside_call = false;
                    }
                    None => {
                        let keep = floor_boundary(
                            &self.pending,
                            self.pending.len().saturating_sub(CLOSE.len()),
                        );
                        self.pending.drain(..keep);
                        return shown;
                    }
                }
            } else {
                match self.pending.find(OPEN) {
                    Some(start) => {
                        shown.push_str(&self.pending[..start]);
                        self.pending.drain(..start + OPEN.len());
                        self.inside_call = true;
                    }
                    None => {
                        let hold = partial_prefix_len(&self.pending, OPEN);
                        let emit = self.pending.len() - hold;
                        shown.push_str(&self.pending[..emit]);
                        self.pending.drain(..emit);
                        return shown;
                    }
                }
            }
        }
    }

    /// Ends the stream; returns any prose still held back.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        if self.inside_call {
            String::new()
        } else {
            rest
        }
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `tag`.
fn partial_prefix_len(text: &str, tag: &str) -> usize {
    (1..tag.len())
        .rev()
        .find(|&n| {
            text.len() >= n && text.is_char_boundary(text.len() - n) && text.ends_with(&tag[..n])
        })
        .unwrap_or(0)
}

fn floor_boundary(text: &str, mut index: usize) -> usize {
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok_calls(text: &str) -> Vec<ParsedCall> {
        parse_response(text)
            .calls
            .into_iter()
            .map(|c| c.expect("well-formed call"))
            .collect()
    }

    #[test]
    fn canonical_call_with_prose_around_it() {
        let text = "I will run the tests.\n<tool_call>\n<name>bash</name>\n<input>{\"command\": \"pytest tests/\"}</input>\n</tool_call>\nThen look.";
        let parsed = parse_response(text);
        assert_eq!(parsed.prose, "I will run the tests.\n\nThen look.");
        assert_eq!(
            parsed.calls,
            vec![Ok(ParsedCall {
                name: "bash".into(),
                arguments: json!({"command": "pytest tests/"})
            })]
        );
    }

    #[test]
    fn several_calls_in_one_response() {
        let text = "<tool_call><name>read</name><input>{\"path\": \"a\"}</input></tool_call>\n<tool_call>\n<name>read</name>\n<input>{\"path\": \"b\"}</input>\n</tool_call>";
        let names: Vec<_> = ok_calls(text)
            .into_iter()
            .map(|c| c.arguments["path"].clone())
            .collect();
        assert_eq!(names, [json!("a"), json!("b")]);
    }

    #[test]
    fn code_fences_around_the_block() {
        let text = "Reading:\n```xml\n<tool_call>\n<name>read</name>\n<input>{\"path\": \"x\"}</input>\n</tool_call>\n```\nDone.";
        let parsed = parse_response(text);
        assert_eq!(parsed.calls.len(), 1);
        assert!(parsed.calls[0].is_ok());
        assert_eq!(parsed.prose, "Reading:\n\nDone.");
        // JSON fenced inside <input>.
        let text = "<tool_call><name>read</name><input>\n```json\n{\"path\": \"x\"}\n```\n</input></tool_call>";
        assert_eq!(ok_calls(text)[0].arguments, json!({"path": "x"}));
    }

    #[test]
    fn missing_final_close_at_end_of_stream() {
        let text = "<tool_call>\n<name>glob</name>\n<input>{\"pattern\": \"**/*.rs\"}</input>\n";
        assert_eq!(ok_calls(text)[0].name, "glob");
        let text = "<tool_call>\n<name>glob</name>\n<input>{\"pattern\": \"*.rs\"}";
        assert_eq!(ok_calls(text)[0].arguments, json!({"pattern": "*.rs"}));
    }

    #[test]
    fn unclosed_block_followed_by_another() {
        let text = "<tool_call><name>read</name><input>{\"path\": \"a\"}</input>\n<tool_call><name>read</name><input>{\"path\": \"b\"}</input></tool_call>";
        assert_eq!(ok_calls(text).len(), 2);
    }

    #[test]
    fn repairable_json_is_repaired() {
        let text = "<tool_call><name>edit</name><input>{'path': 'a.py', 'old_string': 'x',}</input></tool_call>";
        assert_eq!(
            ok_calls(text)[0].arguments,
            json!({"path": "a.py", "old_string": "x"})
        );
    }

    #[test]
    fn hermes_json_body() {
        let text =
            "<tool_call>\n{\"name\": \"read\", \"arguments\": {\"path\": \"a\"}}\n</tool_call>";
        assert_eq!(
            ok_calls(text)[0],
            ParsedCall {
                name: "read".into(),
                arguments: json!({"path": "a"})
            }
        );
        let text = "<tool_call>{\"name\": \"read\", \"arguments\": \"{\\\"path\\\": \\\"a\\\"}\"}</tool_call>";
        assert_eq!(ok_calls(text)[0].arguments, json!({"path": "a"}));
    }

    #[test]
    fn malformed_blocks_say_what_is_wrong() {
        let parsed =
            parse_response("<tool_call><name>read</name><input>{\"path\": </input></tool_call>");
        let err = parsed.calls[0].clone().unwrap_err();
        assert_eq!(err.name.as_deref(), Some("read"));
        assert!(err.problem.contains("not valid JSON"), "{}", err.problem);
        assert!(err.message().contains("<name>TOOL_NAME</name>"));

        let err = parse_response("<tool_call>just words</tool_call>").calls[0]
            .clone()
            .unwrap_err();
        assert!(err.problem.contains("no <name>"));

        let err = parse_response("<tool_call><name>read</name><input>[1]</input></tool_call>")
            .calls[0]
            .clone()
            .unwrap_err();
        assert!(err.problem.contains("JSON object"));

        let err = parse_response("<tool_call><name>read file</name></tool_call>").calls[0]
            .clone()
            .unwrap_err();
        assert!(err.problem.contains("not a tool name"));
    }

    #[test]
    fn missing_input_means_no_arguments() {
        assert_eq!(
            ok_calls("<tool_call><name>git</name></tool_call>")[0].arguments,
            json!({})
        );
    }

    #[test]
    fn no_calls_means_all_prose() {
        let parsed = parse_response("  All done: the tests pass. ");
        assert!(parsed.calls.is_empty());
        assert_eq!(parsed.prose, "All done: the tests pass.");
    }

    #[test]
    fn prose_filter_hides_calls_across_chunk_boundaries() {
        let text = "Let me read é.\n<tool_call>\n<name>read</name>\n<input>{}</input>\n</tool_call>\nThanks ü <to";
        for size in 1..text.len() {
            let mut filter = ProseFilter::default();
            let mut shown = String::new();
            let bytes = text.as_bytes();
            let mut start = 0;
            while start < bytes.len() {
                let mut end = (start + size).min(bytes.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                shown.push_str(&filter.push(&text[start..end]));
                start = end;
            }
            shown.push_str(&filter.finish());
            assert_eq!(shown, "Let me read é.\n\nThanks ü <to", "chunk size {size}");
        }
    }

    #[test]
    fn xml_messages_fold_tool_results_into_user_turns() {
        let messages = vec![
            Message::system("sys"),
            Message::user("task"),
            Message::assistant(
                "",
                vec![keel_protocol::ToolCall {
                    id: "c1".into(),
                    name: "read".into(),
                    arguments: json!({"path": "a"}),
                }],
            ),
            Message::tool("c1", "read", "1\thello"),
            Message {
                is_error: true,
                ..Message::tool("c2", "bash", "exit code 1")
            },
            Message::user("tests fail"),
        ];
        let out = to_xml_messages(&messages);
        let roles: Vec<Role> = out.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [Role::System, Role::User, Role::Assistant, Role::User]
        );
        assert!(out[2].content.contains("<name>read</name>"));
        assert!(out[2].tool_calls.is_empty());
        assert_eq!(
            out[3].content,
            "<tool_result name=\"read\">\n1\thello\n</tool_result>\n\n<tool_result name=\"bash\" status=\"error\">\nexit code 1\n</tool_result>\n\ntests fail"
        );
    }
}
