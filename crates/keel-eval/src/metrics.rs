//! What a session did, read from its events (the `keel run --json` lines).

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    pub prompt_tokens: u64,
    pub cached_prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Test runs keel made when the model said it was done.
    pub verifications: u64,
    /// The last `error` event's message.
    pub error: Option<String>,
}

impl Metrics {
    /// Folds the events of a session's output (one JSON object per line; other lines
    /// are ignored).
    pub fn from_jsonl(text: &str) -> Metrics {
        let mut m = Metrics {
            outcome: "none".into(),
            ..Metrics::default()
        };
        let number = |e: &Value, key: &str| e.get(key).and_then(Value::as_u64).unwrap_or(0);
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            match event.get("type").and_then(Value::as_str).unwrap_or("") {
                "tool_call" => m.tool_calls += 1,
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
