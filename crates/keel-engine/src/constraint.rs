//! Tool calls that cannot be malformed: once the model has written `<tool_call>`, an
//! llguidance grammar allows only a call of one of the registered tools in the request's
//! dialect — `<name>` tool `</name><input>` JSON valid against its schema
//! `</input></tool_call>` (xml), or `{"name": "tool", "arguments": ` JSON valid against
//! its schema `}</tool_call>` (Hermes). JSON whitespace is fixed
//! (free whitespace lets small models loop on newlines). Compiled grammars are cached
//! per tool set; each call gets a fresh copy of the compiled parser.

use std::collections::HashMap;
use std::sync::Mutex;

use keel_llm::ToolProtocol;
use keel_protocol::ToolSpec;
use llama_cpp_2::model::LlamaModel;
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use serde_json::{Value, json};

use crate::EngineError;

/// How many compiled tool sets to keep (a session's set rarely changes).
const CACHE: usize = 8;

pub(crate) struct Constraints {
    factory: ParserFactory,
    compiled: Mutex<HashMap<String, Matcher>>,
}

/// The JSON layout forced inside calls: the separators of the prompt's example.
fn guidance() -> Value {
    json!({"whitespace_flexible": false, "key_separator": ": ", "item_separator": ", "})
}

/// Bounds integers the schema leaves open: an unbounded integer lets a small model write
/// a hundred digits, valid JSON Schema that no tool can take (keel's are `usize`/`u64`).
fn bound_integers(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("integer") {
                map.entry("maximum").or_insert(json!(999_999_999_999_u64));
                map.entry("minimum").or_insert(json!(-999_999_999_999_i64));
            }
            for v in map.values_mut() {
                bound_integers(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

fn with_guidance(schema: &Value) -> Value {
    let mut schema = match schema {
        Value::Object(_) => schema.clone(),
        _ => json!({"type": "object"}),
    };
    bound_integers(&mut schema);
    if let Value::Object(map) = &mut schema {
        map.insert("x-guidance".into(), guidance());
    }
    schema
}

/// The Lark grammar of the text after `<tool_call>` for these tools in `protocol`'s
/// dialect: the layout [`keel_llm::calls::render_call`] writes.
pub(crate) fn tool_call_grammar(tools: &[ToolSpec], protocol: ToolProtocol) -> String {
    let mut sorted: Vec<&ToolSpec> = tools.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let alternatives: Vec<String> = (0..sorted.len()).map(|i| format!("call_{i}")).collect();
    let mut out = format!("start: {}\n", alternatives.join(" | "));
    for (i, tool) in sorted.iter().enumerate() {
        let (open, close) = match protocol {
            ToolProtocol::Xml => (
                format!("\n<name>{}</name>\n<input>", tool.name),
                "</input>\n</tool_call>",
            ),
            ToolProtocol::Hermes | ToolProtocol::Native => (
                format!(
                    "\n{{\"name\": {}, \"arguments\": ",
                    serde_json::Value::String(tool.name.clone())
                ),
                "}\n</tool_call>",
            ),
        };
        let open = serde_json::to_string(&open).unwrap_or_default();
        let close = serde_json::to_string(close).unwrap_or_default();
        out.push_str(&format!("call_{i}: {open} args_{i} {close}\n"));
        out.push_str(&format!(
            "args_{i}: %json {}\n",
            with_guidance(&tool.parameters)
        ));
    }
    out
}

impl Constraints {
    /// Builds llguidance's view of the vocabulary (hundreds of ms on a large one; once
    /// per model).
    pub(crate) fn new(model: &LlamaModel) -> Result<Self, EngineError> {
        let env = llama_cpp_2::sampling::LlamaSampler::llguidance_tok_env(model);
        let mut factory =
            ParserFactory::new_simple(&env).map_err(|e| EngineError::Grammar(e.to_string()))?;
        factory.quiet();
        Ok(Self {
            factory,
            compiled: Mutex::new(HashMap::new()),
        })
    }

    fn matcher(
        &self,
        key: String,
        grammar: impl FnOnce() -> TopLevelGrammar,
    ) -> Result<Matcher, EngineError> {
        if let Some(m) = self
            .compiled
            .lock()
            .ok()
            .and_then(|c| c.get(&key).map(Matcher::deep_clone))
        {
            return Ok(m);
        }
        let parser = self
            .factory
            .create_parser(grammar())
            .map_err(|e| EngineError::Grammar(e.to_string()))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(EngineError::Grammar(e));
        }
        if let Ok(mut cache) = self.compiled.lock() {
            if cache.len() >= CACHE {
                cache.clear();
            }
            cache.insert(key, matcher.deep_clone());
        }
        Ok(matcher)
    }

    /// A matcher for one call's text after `<tool_call>`. A tool whose schema llguidance
    /// cannot compile is constrained to a JSON object instead of being dropped.
    pub(crate) fn tool_call(
        &self,
        tools: &[ToolSpec],
        protocol: ToolProtocol,
    ) -> Result<Matcher, EngineError> {
        let key = serde_json::to_string(
            &tools
                .iter()
                .map(|t| (&t.name, &t.parameters))
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default();
        let key = format!("{}:{key}", protocol.as_str());
        let grammar = tool_call_grammar(tools, protocol);
        match self.matcher(format!("calls:{key}"), || {
            TopLevelGrammar::from_lark(grammar)
        }) {
            Ok(m) => Ok(m),
            Err(_) => {
                let relaxed: Vec<ToolSpec> = tools
                    .iter()
                    .map(|t| {
                        let one = tool_call_grammar(std::slice::from_ref(t), protocol);
                        let ok = self
                            .factory
                            .create_parser(TopLevelGrammar::from_lark(one))
                            .is_ok();
                        let mut t = t.clone();
                        if !ok {
                            t.parameters = json!({"type": "object"});
                        }
                        t
                    })
                    .collect();
                let grammar = tool_call_grammar(&relaxed, protocol);
                self.matcher(format!("relaxed:{key}"), || {
                    TopLevelGrammar::from_lark(grammar)
                })
            }
        }
    }

    /// A matcher for a whole response that must be JSON valid against `schema`.
    pub(crate) fn json(&self, schema: &Value) -> Result<Matcher, EngineError> {
        let schema = with_guidance(schema);
        self.matcher(format!("json:{schema}"), || {
            TopLevelGrammar::from_json_schema(schema)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_lists_tools_sorted_with_their_schemas() {
        let tools = [
            ToolSpec {
                name: "write".into(),
                description: String::new(),
                parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
                read_only: false,
            },
            ToolSpec {
                name: "bash".into(),
                description: String::new(),
                parameters: json!({"type": "object"}),
                read_only: false,
            },
        ];
        let g = tool_call_grammar(&tools, ToolProtocol::Xml);
        let lines: Vec<&str> = g.lines().collect();
        assert_eq!(lines[0], "start: call_0 | call_1");
        assert!(
            lines[1].starts_with(r#"call_0: "\n<name>bash</name>\n<input>" args_0"#),
            "{g}"
        );
        assert!(lines[4].contains("\"path\""), "{g}");
        assert!(g.contains("\"whitespace_flexible\":false"), "{g}");
        let g = tool_call_grammar(&tools, ToolProtocol::Hermes);
        assert!(
            g.contains(
                r#"call_0: "\n{\"name\": \"bash\", \"arguments\": " args_0 "}\n</tool_call>""#
            ),
            "{g}"
        );
    }
}
