//! Writing calls, results and conversations in a dialect: what the model is shown, so
//! what it copies.

use keel_protocol::{Message, Role};
use serde_json::Value;

use super::{CLOSE, MalformedCall, OPEN, ParsedCall};
use crate::ToolProtocol;

/// JSON the way the constrained decoder writes it: one line, `": "` and `", "` between
/// items (what the prompt's example shows, so the model sees one layout everywhere).
pub fn render_json(value: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, value);
    out
}

fn write_json(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                write_json(out, item);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(out, item);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A call in `protocol`'s canonical form.
pub fn render_call(protocol: ToolProtocol, name: &str, arguments: &Value) -> String {
    match protocol {
        ToolProtocol::Xml => format!(
            "{OPEN}\n<name>{name}</name>\n<input>{}</input>\n{CLOSE}",
            render_json(arguments)
        ),
        ToolProtocol::Hermes | ToolProtocol::Native => format!(
            "{OPEN}\n{{\"name\": {}, \"arguments\": {}}}\n{CLOSE}",
            Value::String(name.to_string()),
            render_json(arguments)
        ),
    }
}

/// The correct form of a call, shown to a model that got one wrong.
pub fn call_format(protocol: ToolProtocol) -> &'static str {
    match protocol {
        ToolProtocol::Xml => {
            "<tool_call>\n<name>TOOL_NAME</name>\n<input>{\"argument\": \"value\"}</input>\n</tool_call>"
        }
        ToolProtocol::Hermes | ToolProtocol::Native => {
            "<tool_call>\n{\"name\": \"TOOL_NAME\", \"arguments\": {\"argument\": \"value\"}}\n</tool_call>"
        }
    }
}

/// A reply's prose followed by its calls in the canonical form; calls that are still
/// malformed keep their text inside a block of the dialect.
pub fn render_reply(
    protocol: ToolProtocol,
    prose: &str,
    calls: &[Result<ParsedCall, MalformedCall>],
) -> String {
    let mut text = prose.trim().to_string();
    for call in calls {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        match call {
            Ok(call) => text.push_str(&render_call(protocol, &call.name, &call.arguments)),
            Err(bad) => {
                text.push_str(OPEN);
                text.push('\n');
                text.push_str(&bad.raw);
                text.push('\n');
                text.push_str(CLOSE);
            }
        }
    }
    text
}

/// A tool result as the text of a user turn.
fn render_result(protocol: ToolProtocol, out: &mut String, message: &Message) {
    let name = message.name.as_deref().unwrap_or("tool");
    let status = if message.is_error {
        " status=\"error\""
    } else {
        ""
    };
    let (open, close) = match protocol {
        ToolProtocol::Xml => (
            format!("<tool_result name=\"{name}\"{status}>\n"),
            "</tool_result>",
        ),
        // Exactly the wrapper Qwen's template trains on; an error says so first.
        ToolProtocol::Hermes | ToolProtocol::Native => (
            if message.is_error {
                format!("<tool_response>\nerror ({name}): ")
            } else {
                "<tool_response>\n".to_string()
            },
            "</tool_response>",
        ),
    };
    out.push_str(&open);
    out.push_str(&message.content);
    if !message.content.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(close);
}

/// Converts a provider-neutral conversation into plain system/user/assistant messages
/// for a text dialect: native calls become blocks in the assistant text, tool results
/// become user messages, and consecutive user messages are merged (many chat templates
/// require roles to alternate).
pub fn to_text_messages(protocol: ToolProtocol, messages: &[Message]) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::with_capacity(messages.len());
    for message in messages {
        let (role, text) = match message.role {
            Role::Tool => {
                let mut text = String::new();
                render_result(protocol, &mut text, message);
                (Role::User, text)
            }
            Role::Assistant if !message.tool_calls.is_empty() => {
                let mut text = message.content.clone();
                for call in &message.tool_calls {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&render_call(protocol, &call.name, &call.arguments));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_written_on_one_line_with_spaced_separators() {
        assert_eq!(
            render_json(&json!({"a": [1, "x\n"], "b": {"c": null}})),
            r#"{"a": [1, "x\n"], "b": {"c": null}}"#
        );
    }

    #[test]
    fn calls_in_each_dialect() {
        let args = json!({"path": "a.py"});
        assert_eq!(
            render_call(ToolProtocol::Xml, "read", &args),
            "<tool_call>\n<name>read</name>\n<input>{\"path\": \"a.py\"}</input>\n</tool_call>"
        );
        assert_eq!(
            render_call(ToolProtocol::Hermes, "read", &args),
            "<tool_call>\n{\"name\": \"read\", \"arguments\": {\"path\": \"a.py\"}}\n</tool_call>"
        );
    }

    #[test]
    fn messages_fold_tool_results_into_user_turns() {
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
        let out = to_text_messages(ToolProtocol::Xml, &messages);
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
        let out = to_text_messages(ToolProtocol::Hermes, &messages);
        assert!(
            out[2]
                .content
                .contains("{\"name\": \"read\", \"arguments\": {\"path\": \"a\"}}")
        );
        assert!(
            out[3]
                .content
                .starts_with("<tool_response>\n1\thello\n</tool_response>\n\n<tool_response>\nerror (bash): exit code 1\n</tool_response>"),
            "{}",
            out[3].content
        );
    }
}
