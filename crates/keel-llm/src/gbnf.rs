//! JSON schema → GBNF grammar for compact JSON, for llama.cpp's `grammar` field.
//!
//! llama.cpp turns a `response_format` schema into a grammar itself, but that grammar
//! allows whitespace between tokens, and small models spend their whole budget on
//! newlines and indentation. This one allows none: every valid output is minimal JSON,
//! so a call ends in as few tokens as its content needs. It covers what tool schemas
//! use (objects, arrays, strings with `maxLength`, numbers, booleans, null, `enum`,
//! `const`, `anyOf`/`oneOf`, type unions, local `$ref`s); a schema using anything else
//! (`pattern`, `allOf`, …) gets `None` and the caller falls back to `response_format`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

/// A grammar whose `root` matches exactly the compact JSON documents valid for
/// `schema` (up to keywords that only narrow values, such as `minimum`), or `None`.
pub fn from_json_schema(schema: &Value) -> Option<String> {
    let mut builder = Builder {
        root: schema,
        rules: BTreeMap::new(),
        next: 0,
    };
    let root = builder.value(schema)?;
    let mut grammar = format!("root ::= {root}\n");
    for (name, body) in &builder.rules {
        let _ = writeln!(grammar, "{name} ::= {body}");
    }
    grammar.push_str(BASE);
    Some(grammar)
}

/// Rules every grammar shares.
const BASE: &str = r#"char ::= [^"\\\x00-\x1f] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])
string ::= "\"" char* "\""
integer ::= "-"? ("0" | [1-9] [0-9]{0,17})
number ::= integer ("." [0-9]{1,17})? ([eE] [-+]? [0-9]{1,3})?
boolean ::= "true" | "false"
null ::= "null"
any ::= anyobject | anyarray | string | number | boolean | null
anyobject ::= "{" (string ":" any ("," string ":" any)*)? "}"
anyarray ::= "[" (any ("," any)*)? "]"
"#;

struct Builder<'a> {
    root: &'a Value,
    /// Named rules made so far (definitions, objects), by name.
    rules: BTreeMap<String, String>,
    next: usize,
}

impl Builder<'_> {
    fn rule(&mut self, body: String) -> String {
        self.next += 1;
        let name = format!("r{}", self.next);
        self.rules.insert(name.clone(), body);
        name
    }

    /// An expression (a rule name or a parenthesised group) for `schema`.
    fn value(&mut self, schema: &Value) -> Option<String> {
        let object = match schema {
            Value::Bool(true) => return Some("any".into()),
            Value::Object(object) => object,
            _ => return None,
        };
        for unsupported in [
            "allOf",
            "not",
            "pattern",
            "patternProperties",
            "if",
            "$dynamicRef",
        ] {
            if object.contains_key(unsupported) {
                return None;
            }
        }
        if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
            return self.reference(reference);
        }
        if let Some(value) = object.get("const") {
            return Some(literal(value));
        }
        if let Some(values) = object.get("enum").and_then(Value::as_array) {
            let options: Vec<String> = values.iter().map(literal).collect();
            return (!options.is_empty()).then(|| format!("({})", options.join(" | ")));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(variants) = object.get(key).and_then(Value::as_array) {
                let options = variants
                    .iter()
                    .map(|v| self.value(v))
                    .collect::<Option<Vec<_>>>()?;
                return (!options.is_empty()).then(|| format!("({})", options.join(" | ")));
            }
        }
        match object.get("type") {
            Some(Value::String(kind)) => self.typed(kind, object),
            Some(Value::Array(kinds)) => {
                let options = kinds
                    .iter()
                    .map(|k| k.as_str().and_then(|k| self.typed(k, object)))
                    .collect::<Option<Vec<_>>>()?;
                Some(format!("({})", options.join(" | ")))
            }
            None if object.contains_key("properties") => self.typed("object", object),
            None => Some("any".into()),
            Some(_) => None,
        }
    }

    fn typed(&mut self, kind: &str, schema: &serde_json::Map<String, Value>) -> Option<String> {
        Some(match kind {
            "string" => match schema.get("maxLength").and_then(Value::as_u64) {
                Some(max) => format!("(\"\\\"\" char{{0,{max}}} \"\\\"\")"),
                None => "string".into(),
            },
            "integer" => "integer".into(),
            "number" => "number".into(),
            "boolean" => "boolean".into(),
            "null" => "null".into(),
            "array" => {
                let item = match schema.get("items") {
                    Some(items) => self.value(items)?,
                    None => "any".into(),
                };
                format!("(\"[\" ({item} (\",\" {item})*)? \"]\")")
            }
            "object" => self.object(schema)?,
            _ => return None,
        })
    }

    /// Properties in schema order: the required ones always, then each optional one
    /// at most once, in order. No other keys.
    fn object(&mut self, schema: &serde_json::Map<String, Value>) -> Option<String> {
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            return Some("anyobject".into());
        };
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut must = Vec::new();
        let mut may = Vec::new();
        for (name, property) in properties {
            let member = format!(
                "{} \":\" {}",
                literal(&Value::String(name.clone())),
                self.value(property)?
            );
            if required.contains(&name.as_str()) {
                must.push(member);
            } else {
                may.push(member);
            }
        }
        // `tail(i)`: optional members from i on, each preceded by a comma.
        let tail = |from: usize| -> String {
            may[from..]
                .iter()
                .map(|m| format!(" (\",\" {m})?"))
                .collect()
        };
        let body = if must.is_empty() {
            if may.is_empty() {
                "\"{\" \"}\"".to_string()
            } else {
                let firsts: Vec<String> = (0..may.len())
                    .map(|i| format!("{}{}", may[i], tail(i + 1)))
                    .collect();
                format!("\"{{\" ({})? \"}}\"", firsts.join(" | "))
            }
        } else {
            format!("\"{{\" {}{} \"}}\"", must.join(" \",\" "), tail(0))
        };
        Some(self.rule(body))
    }

    fn reference(&mut self, reference: &str) -> Option<String> {
        let path = reference.strip_prefix("#/")?;
        let name = format!(
            "def-{}",
            path.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>()
        );
        if !self.rules.contains_key(&name) {
            // Reserve the name first so a recursive definition refers to itself.
            self.rules.insert(name.clone(), String::new());
            let mut target = self.root;
            for part in path.split('/') {
                target = target.get(part.replace("~1", "/").replace("~0", "~"))?;
            }
            let body = self.value(target)?;
            self.rules.insert(name.clone(), body);
        }
        Some(name)
    }
}

/// A GBNF string literal matching `value` written as compact JSON.
fn literal(value: &Value) -> String {
    let json = value.to_string();
    let mut out = String::with_capacity(json.len() + 2);
    out.push('"');
    for c in json.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_call_schema_becomes_a_compact_grammar() {
        let schema = json!({"anyOf": [{
            "type": "object",
            "properties": {"name": {"const": "read"}, "input": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "limit": {"type": ["integer", "null"]}},
                "required": ["path"]}},
            "required": ["name", "input"]}]});
        let grammar = from_json_schema(&schema).unwrap();
        assert!(grammar.starts_with("root ::= "), "{grammar}");
        assert!(
            grammar.contains(r#""\"name\"" ":" "\"read\"""#),
            "{grammar}"
        );
        assert!(grammar.contains(r#"(",""#), "{grammar}");
        assert!(!grammar.contains("ws"), "no whitespace rule: {grammar}");
    }

    #[test]
    fn unsupported_keywords_fall_back() {
        assert!(from_json_schema(&json!({"type": "string", "pattern": "^a"})).is_none());
        assert!(from_json_schema(&json!({"allOf": []})).is_none());
    }

    #[test]
    fn references_resolve_against_the_root() {
        let schema = json!({"$defs": {"P": {"type": "boolean"}},
                            "type": "object", "properties": {"p": {"$ref": "#/$defs/P"}}});
        let grammar = from_json_schema(&schema).unwrap();
        assert!(grammar.contains("def--defs-P ::= boolean"), "{grammar}");
        assert!(
            grammar.contains("\"\\\"p\\\"\" \":\" def--defs-P"),
            "{grammar}"
        );
    }
}
