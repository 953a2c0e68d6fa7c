//! Checking sampled tool calls: they parse, name a tool, and their arguments match the
//! tool's JSON schema (the subset of JSON Schema keel's built-in tools use). Shared by the
//! engine tests and the engine benchmark.
#![allow(dead_code)]

use keel_protocol::ToolSpec;
use serde_json::Value;

/// A minimal JSON-schema check for the built-in tools' schemas.
pub fn valid(value: &Value, schema: &Value) -> Result<(), String> {
    if let Some(kinds) = schema.get("type") {
        let kinds: Vec<&str> = match kinds {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = kinds.iter().any(|k| match *k {
            "object" => value.is_object(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "null" => value.is_null(),
            _ => true,
        });
        if !ok {
            return Err(format!("{value} is not {kinds:?}"));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return Err(format!("{value} not in {options:?}"));
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && value.as_f64().is_some_and(|v| v < min)
    {
        return Err(format!("{value} < {min}"));
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = key.as_str().unwrap_or_default();
            if !object.contains_key(key) {
                return Err(format!("missing `{key}`"));
            }
        }
        for (key, v) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(sub) => valid(v, sub)?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("unexpected `{key}`"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for v in array {
            valid(v, items)?;
        }
    }
    Ok(())
}

pub fn check_calls(text: &str, tools: &[ToolSpec]) -> Result<usize, String> {
    let parsed = keel_llm::calls::parse_response(text);
    let mut n = 0;
    for call in &parsed.calls {
        let call = call.as_ref().map_err(|bad| {
            format!(
                "malformed call: {} in {text:?}",
                bad.message(keel_llm::ToolProtocol::Xml)
            )
        })?;
        n += 1;
        let tool = tools
            .iter()
            .find(|t| t.name == call.name)
            .ok_or_else(|| format!("unknown tool {}", call.name))?;
        valid(&call.arguments, &tool.parameters)
            .map_err(|e| format!("{}: {e} in {text:?}", call.name))?;
    }
    Ok(n)
}
