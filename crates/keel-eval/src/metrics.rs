//! What a session did, read from its events (the `keel run --json` lines).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Tools whose `path` argument means the agent opened that file.
const OPENING_TOOLS: &[&str] = &["read", "edit", "write"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// `done` outcome, or `none` when the session never ended (killed, crashed).
    pub outcome: String,
    pub iterations: u64,
    pub tool_calls: u64,
    /// Calls that reached keel malformed (each became an error result, never a tool run).
    pub malformed_calls: u64,
    /// Malformed calls turned into calls by a constrained repair request.
    pub repaired_calls: u64,
    /// Calls generated under a grammar.
    pub constrained_calls: u64,
    /// Prose replies refused because nothing had been done yet.
    pub no_action_asks: u64,
    /// Replies stopped because they went round in a loop.
    #[serde(default)]
    pub looped_replies: u64,
    pub prompt_tokens: u64,
    pub cached_prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Test runs keel made when the model said it was done.
    pub verifications: u64,
    /// The last `error` event's message.
    pub error: Option<String>,
    /// Each file the agent read, edited or wrote, with the iteration of the first time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub opened: BTreeMap<String, u64>,
}

impl Metrics {
    /// The iteration at which the agent first opened one of `targets`.
    pub fn first_opened(&self, targets: &[String]) -> Option<u64> {
        targets
            .iter()
            .filter_map(|t| self.opened.get(t.as_str()))
            .min()
            .copied()
    }

    /// Folds the events of a session's output (one JSON object per line; other lines
    /// are ignored).
    pub fn from_jsonl(text: &str) -> Metrics {
        let mut m = Metrics {
            outcome: "none".into(),
            ..Metrics::default()
        };
        let number = |e: &Value, key: &str| e.get(key).and_then(Value::as_u64).unwrap_or(0);
        let mut iteration = 0;
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            match event.get("type").and_then(Value::as_str).unwrap_or("") {
                "thinking" => iteration = number(&event, "iteration"),
                "tool_call" => {
                    m.tool_calls += 1;
                    let name = event.get("name").and_then(Value::as_str).unwrap_or("");
                    let path = event
                        .get("arguments")
                        .and_then(|a| a.get("path"))
                        .and_then(Value::as_str);
                    if let Some(path) = path.filter(|_| OPENING_TOOLS.contains(&name)) {
                        let path = path.trim_start_matches("./").to_string();
                        m.opened.entry(path).or_insert(iteration);
                    }
                }
                "tool_result"
                    if event
                        .get("output")
                        .and_then(Value::as_str)
                        .is_some_and(|o| o.starts_with("malformed tool call")) =>
                {
                    m.malformed_calls += 1;
                }
                "repair" if event.get("repaired").and_then(Value::as_bool) == Some(true) => {
                    m.repaired_calls += 1;
                }
                "feedback" if event.get("reason").and_then(Value::as_str) == Some("no_action") => {
                    m.no_action_asks += 1;
                }
                "feedback" if event.get("reason").and_then(Value::as_str) == Some("looped") => {
                    m.looped_replies += 1;
                }
                "usage" => {
                    m.prompt_tokens += number(&event, "prompt_tokens");
                    m.cached_prompt_tokens += number(&event, "cached_prompt_tokens");
                    m.completion_tokens += number(&event, "completion_tokens");
                    m.constrained_calls += number(&event, "constrained_calls");
                }
                "verification" => m.verifications += 1,
                "error" => {
                    m.error = event
                        .get("message")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                }
                "done" => {
                    m.outcome = event
                        .get("outcome")
                        .and_then(Value::as_str)
                        .unwrap_or("none")
                        .to_string();
                    m.iterations += number(&event, "iterations");
                }
                _ => {}
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_opened_are_kept_with_the_iteration_of_the_first_time() {
        let lines = [
            r#"{"type": "thinking", "iteration": 1}"#,
            r#"{"type": "tool_call", "call_id": "1", "name": "grep", "arguments": {"pattern": "x", "path": "shop"}}"#,
            r#"{"type": "tool_call", "call_id": "2", "name": "read", "arguments": {"path": "./shop/a.py"}}"#,
            r#"{"type": "thinking", "iteration": 2}"#,
            r#"{"type": "tool_call", "call_id": "3", "name": "edit", "arguments": {"path": "shop/a.py"}}"#,
            r#"{"type": "tool_call", "call_id": "4", "name": "write", "arguments": {"path": "shop/b.py"}}"#,
            r#"{"type": "feedback", "reason": "looped", "content": "Your last reply went round in a loop"}"#,
            r#"{"type": "done", "outcome": "verified", "iterations": 2}"#,
        ];
        let m = Metrics::from_jsonl(&lines.join("\n"));
        assert_eq!((m.tool_calls, m.looped_replies), (4, 1));
        assert_eq!(m.opened.len(), 2, "{:?}", m.opened);
        assert_eq!(m.opened["shop/a.py"], 1);
        assert_eq!(
            m.first_opened(&["shop/b.py".into(), "shop/a.py".into()]),
            Some(1)
        );
        assert_eq!(m.first_opened(&["shop/b.py".into()]), Some(2));
        assert_eq!(m.first_opened(&["shop/c.py".into()]), None);
        assert_eq!(m.first_opened(&[]), None);
    }
}
