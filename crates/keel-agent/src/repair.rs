//! Repairing malformed tool calls written in the text with a second, constrained request.
//!
//! A server that cannot constrain a call inside free text can still force a whole
//! response to match a JSON schema. When the model writes a `<tool_call>` keel cannot
//! read, the conversation so far, the model's response and a short note of what was
//! wrong go back to the model with the response constrained to
//! `{"name": TOOL, "input": ARGUMENTS}` for one of the registered tools.

use keel_llm::calls::{MalformedCall, ParsedCall};
use keel_protocol::ToolSpec;
use serde_json::{Map, Value, json};

/// Completion budget of a repair request when none is configured.
pub(crate) const REPAIR_MAX_TOKENS: u32 = 2048;

/// The schema of one call to any of `tools`. `$defs` of the tool schemas move to the
/// root (where their `#/$defs/…` references point) and decoration is dropped.
pub fn call_schema(tools: &[ToolSpec]) -> Value {
    let mut defs = Map::new();
    let variants: Vec<Value> = tools
        .iter()
        .map(|tool| {
            let mut input = tool.parameters.clone();
            if let Some(object) = input.as_object_mut() {
                for key in ["$defs", "definitions"] {
                    if let Some(Value::Object(found)) = object.remove(key) {
                        for (name, def) in found {
                            defs.entry(name).or_insert(def);
                        }
                    }
                }
                object.remove("$schema");
                object.remove("title");
                object.entry("type").or_insert_with(|| json!("object"));
            }
            json!({
                "type": "object",
                "properties": {"name": {"const": tool.name}, "input": input},
                "required": ["name", "input"],
                "additionalProperties": false,
            })
        })
        .collect();
    let mut schema = json!({"anyOf": variants});
    if !defs.is_empty() {
        schema["$defs"] = Value::Object(defs);
    }
    schema
}

/// The note asking for the call again.
pub(crate) fn instruction(bad: &MalformedCall, tools: &[ToolSpec]) -> String {
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    format!(
        "Your tool call could not be read: {}.\nYou wrote: {}\nWrite that one call again as a JSON object {{\"name\": TOOL, \"input\": {{ARGUMENTS}}}} with TOOL one of: {}.",
        bad.problem,
        bad.raw,
        names.join(", ")
    )
}

/// Reads the constrained response. `Err` says why it is still not a call.
pub fn read_call(text: &str, tools: &[ToolSpec]) -> Result<ParsedCall, String> {
    let value: Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("the constrained response is not JSON ({e})"))?;
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .ok_or("the constrained response has no tool name")?;
    if !tools.iter().any(|t| t.name == name) {
        return Err(format!("`{name}` is not a tool"));
    }
    let arguments = value.get("input").cloned().unwrap_or_else(|| json!({}));
    if !arguments.is_object() {
        return Err("the constrained response's input is not an object".into());
    }
    Ok(ParsedCall {
        name: name.to_string(),
        arguments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, parameters: Value) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: String::new(),
            parameters,
            read_only: true,
        }
    }

    #[test]
    fn schema_hoists_defs_and_names_every_tool() {
        let tools = [
            spec(
                "read",
                json!({"$schema": "x", "title": "Args", "type": "object",
                       "properties": {"r": {"$ref": "#/$defs/Range"}},
                       "$defs": {"Range": {"type": "object"}}}),
            ),
            spec(
                "bash",
                json!({"properties": {"command": {"type": "string"}}}),
            ),
        ];
        let schema = call_schema(&tools);
        assert_eq!(schema["$defs"]["Range"], json!({"type": "object"}));
        let variants = schema["anyOf"].as_array().unwrap();
        assert_eq!(variants[0]["properties"]["name"]["const"], "read");
        assert!(variants[0]["properties"]["input"].get("$schema").is_none());
        assert_eq!(variants[1]["properties"]["input"]["type"], "object");
    }

    #[test]
    fn reads_only_calls_to_known_tools() {
        let tools = [spec("bash", json!({}))];
        let call = read_call(r#"{"name": "bash", "input": {"command": "ls"}}"#, &tools).unwrap();
        assert_eq!(call.arguments, json!({"command": "ls"}));
        assert!(read_call(r#"{"name": "rm", "input": {}}"#, &tools).is_err());
        assert!(read_call(r#"{"name": "bash", "input": {"command": "#, &tools).is_err());
    }
}
