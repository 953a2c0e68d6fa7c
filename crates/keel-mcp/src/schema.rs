//! What a small model sees of an MCP tool: a name it can write (`server__tool`) and
//! an input schema reduced to what such a model follows — every property typed,
//! references inlined, unions collapsed to their first non-null branch.

use serde_json::{Map, Value, json};

/// Longest tool name (what OpenAI-style APIs accept).
const MAX_NAME: usize = 64;
/// `$ref`s followed this deep; deeper (recursive) ones become a plain object.
const MAX_REF_DEPTH: usize = 8;

/// `server__tool`, with anything but letters, digits, `_` and `-` replaced by `_`.
pub fn tool_name(server: &str, tool: &str) -> String {
    let clean: String = tool
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = format!("{server}__{clean}");
    name.truncate(MAX_NAME);
    name
}

/// The schema a tool's arguments are offered and checked with.
pub fn sanitize_schema(schema: &Value) -> Value {
    let defs = definitions(schema);
    let mut out = clean(schema, &defs, 0);
    if let Some(object) = out.as_object_mut() {
        object.insert("type".into(), json!("object"));
        object
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
    } else {
        out = json!({"type": "object", "properties": {}});
    }
    out
}

fn definitions(schema: &Value) -> Map<String, Value> {
    let mut defs = Map::new();
    for key in ["$defs", "definitions"] {
        if let Some(found) = schema.get(key).and_then(Value::as_object) {
            for (name, def) in found {
                defs.insert(format!("#/{key}/{name}"), def.clone());
            }
        }
    }
    defs
}

fn clean(schema: &Value, defs: &Map<String, Value>, depth: usize) -> Value {
    let Some(object) = schema.as_object() else {
        // `true` (anything) and other odd forms: a string is what a model can write.
        return json!({"type": "string"});
    };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        return match defs.get(reference) {
            Some(target) if depth < MAX_REF_DEPTH => {
                let mut resolved = clean(target, defs, depth + 1);
                copy_description(object, &mut resolved);
                resolved
            }
            _ => json!({"type": "object"}),
        };
    }
    for union in ["anyOf", "oneOf"] {
        if let Some(branches) = object.get(union).and_then(Value::as_array) {
            let chosen = branches
                .iter()
                .find(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                .or_else(|| branches.first());
            if let Some(chosen) = chosen {
                let mut merged = object.clone();
                merged.remove(union);
                if let Some(branch) = chosen.as_object() {
                    for (k, v) in branch {
                        merged.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                return clean(&Value::Object(merged), defs, depth);
            }
        }
    }
    if let Some(all) = object.get("allOf").and_then(Value::as_array) {
        let mut merged = object.clone();
        merged.remove("allOf");
        for part in all {
            if let Some(part) = part.as_object() {
                for (k, v) in part {
                    merged.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        return clean(&Value::Object(merged), defs, depth);
    }

    let mut out = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "$schema" | "$id" | "$defs" | "definitions" | "$comment" | "examples" => {}
            "properties" => {
                let properties = value
                    .as_object()
                    .map(|props| {
                        props
                            .iter()
                            .map(|(name, prop)| (name.clone(), clean(prop, defs, depth)))
                            .collect::<Map<_, _>>()
                    })
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Object(properties));
            }
            "items" => {
                out.insert(key.clone(), clean(value, defs, depth));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    let kind = match out.get("type") {
        Some(Value::String(kind)) => Some(kind.clone()),
        // `["string", "null"]`: the first real type.
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .or_else(|| kinds.first().and_then(Value::as_str))
            .map(str::to_string),
        _ => None,
    };
    let kind = kind.unwrap_or_else(|| infer_type(&out));
    out.insert("type".into(), Value::String(kind));
    Value::Object(out)
}

fn infer_type(schema: &Map<String, Value>) -> String {
    if schema.contains_key("properties") {
        return "object".into();
    }
    if schema.contains_key("items") {
        return "array".into();
    }
    let sample = schema
        .get("const")
        .or_else(|| schema.get("enum").and_then(|e| e.as_array()?.first()));
    match sample {
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => "integer",
        Some(Value::Number(_)) => "number",
        _ => "string",
    }
    .into()
}

fn copy_description(from: &Map<String, Value>, to: &mut Value) {
    if let (Some(description), Some(to)) = (from.get("description"), to.as_object_mut()) {
        to.insert("description".into(), description.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_writable() {
        assert_eq!(tool_name("fs", "read_text_file"), "fs__read_text_file");
        assert_eq!(tool_name("git", "git.status v2"), "git__git_status_v2");
        assert_eq!(tool_name("s", &"x".repeat(100)).len(), 64);
    }

    #[test]
    fn schemas_get_types_inlined_refs_and_simple_unions() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "$defs": {"Mode": {"enum": ["fast", "slow"], "description": "how"}},
            "properties": {
                "path": {"description": "a file"},
                "count": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": null},
                "mode": {"$ref": "#/$defs/Mode"},
                "tags": {"items": {"enum": [1, 2]}},
                "flag": {"type": ["boolean", "null"]},
                "both": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}}]}
            },
            "required": ["path"]
        });
        let clean = sanitize_schema(&schema);
        assert_eq!(
            clean,
            json!({
                "properties": {
                    "path": {"description": "a file", "type": "string"},
                    "count": {"default": null, "type": "integer"},
                    "mode": {"enum": ["fast", "slow"], "description": "how", "type": "string"},
                    "tags": {"items": {"enum": [1, 2], "type": "integer"}, "type": "array"},
                    "flag": {"type": "boolean"},
                    "both": {"type": "object", "properties": {"a": {"type": "string"}}}
                },
                "required": ["path"],
                "type": "object"
            })
        );
    }

    #[test]
    fn odd_schemas_still_give_an_object() {
        assert_eq!(
            sanitize_schema(&json!(true)),
            json!({"type": "object", "properties": {}})
        );
        assert_eq!(
            sanitize_schema(&json!({})),
            json!({"type": "object", "properties": {}})
        );
        let recursive = json!({"$defs": {"N": {"properties": {"next": {"$ref": "#/$defs/N"}}}},
                               "properties": {"n": {"$ref": "#/$defs/N"}}});
        let clean = sanitize_schema(&recursive);
        assert_eq!(clean["properties"]["n"]["type"], "object");
    }
}
