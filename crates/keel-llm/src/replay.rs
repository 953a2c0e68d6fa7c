//! The `replay` backend: scripted responses from a JSON Lines file.
//!
//! Public format (other tests and users write these files; keep it stable). One
//! model response per non-empty line, consumed in order, each session from line 1:
//!
//! ```text
//! {"content": "text, possibly with <tool_call> blocks"}
//! {"content": "", "tool_calls": [{"name": "read", "arguments": {"path": "src/lib.rs"}}]}
//! ```
//!
//! With a context window (`context_window` in the configuration), the replay model
//! counts a request's tokens as its bytes / 4 (the messages and, in `native` mode, the
//! tool definitions), reports that count as `prompt_tokens`, and fails a request whose
//! count plus its `max_tokens` passes the window, as a server would: tests of keel's
//! window budget run against it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures_util::stream;
use serde::Deserialize;
use serde_json::Value;

use crate::{ChatRequest, LlmError, ModelClient, ModelEvent, ModelInfo, ModelStream};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    #[serde(default)]
    content: String,
    #[serde(default)]
    tool_calls: Vec<StepCall>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepCall {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    arguments: Value,
}

/// Streams text in pieces this long, so consumers see real streaming.
const CHUNK_BYTES: usize = 24;

pub struct ReplayClient {
    path: PathBuf,
    spec: String,
    steps: Vec<Step>,
    positions: Mutex<HashMap<String, usize>>,
    context_window: Option<u32>,
}

/// The replay model's token count: a request's bytes / 4.
pub fn replay_tokens(request: &ChatRequest) -> u32 {
    request.prompt_bytes().div_ceil(4) as u32
}

impl ReplayClient {
    /// Loads and validates a whole script.
    pub fn open(path: &Path, spec: &str) -> Result<Self, LlmError> {
        let text = std::fs::read_to_string(path).map_err(|source| LlmError::ReplayIo {
            path: path.to_path_buf(),
            source,
        })?;
        let mut steps = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let step: Step = serde_json::from_str(line).map_err(|e| LlmError::ReplayFormat {
                path: path.to_path_buf(),
                line: index + 1,
                reason: e.to_string(),
            })?;
            steps.push(step);
        }
        Ok(Self {
            path: path.to_path_buf(),
            spec: spec.to_string(),
            steps,
            positions: Mutex::new(HashMap::new()),
            context_window: None,
        })
    }

    /// Gives the replay model a context window (see the module documentation).
    pub fn with_context_window(mut self, window: Option<u32>) -> Self {
        self.context_window = window;
        self
    }

    fn next_step(&self, session_id: &str) -> Result<Step, LlmError> {
        let mut positions = self.positions.lock().unwrap_or_else(|e| e.into_inner());
        let position = positions.entry(session_id.to_string()).or_insert(0);
        let step = self
            .steps
            .get(*position)
            .cloned()
            .ok_or_else(|| LlmError::ReplayExhausted {
                path: self.path.clone(),
                lines: self.steps.len(),
            })?;
        *position += 1;
        Ok(step)
    }
}

impl ModelClient for ReplayClient {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            context_window: self.context_window,
            ..ModelInfo::named(self.spec.clone())
        }
    }

    fn stream(&self, request: ChatRequest) -> ModelStream {
        let prompt = replay_tokens(&request);
        if let Some(window) = self.context_window {
            let wanted = prompt + request.max_tokens.unwrap_or(0);
            if wanted > window {
                return Box::pin(stream::iter([Err(LlmError::ContextOverflow(format!(
                    "the request needs {wanted} tokens ({prompt} of prompt); the window is {window}"
                )))]));
            }
        }
        let step = match self.next_step(&request.session_id) {
            Ok(step) => step,
            Err(e) => return Box::pin(stream::iter([Err(e)])),
        };
        let mut events = Vec::new();
        let mut rest = step.content.as_str();
        while !rest.is_empty() {
            let mut end = rest.len().min(CHUNK_BYTES);
            while !rest.is_char_boundary(end) {
                end += 1;
            }
            events.push(Ok(ModelEvent::Text(rest[..end].to_string())));
            rest = &rest[end..];
        }
        for call in step.tool_calls {
            let arguments = match call.arguments {
                Value::Null => "{}".to_string(),
                other => other.to_string(),
            };
            events.push(Ok(ModelEvent::ToolCall {
                id: call.id,
                name: call.name,
                arguments,
            }));
        }
        if self.context_window.is_some() {
            events.push(Ok(ModelEvent::Usage(keel_protocol::Usage {
                prompt_tokens: Some(prompt.into()),
                ..Default::default()
            })));
        }
        Box::pin(stream::iter(events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn request(session: &str) -> ChatRequest {
        ChatRequest::new(session, vec![])
    }

    async fn collect(client: &ReplayClient, session: &str) -> Result<Vec<ModelEvent>, LlmError> {
        client
            .stream(request(session))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    #[tokio::test]
    async fn each_session_replays_from_the_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        std::fs::write(
            &path,
            "{\"content\": \"héllo wörld, this is a longer line of text\"}\n\n{\"content\": \"\", \"tool_calls\": [{\"name\": \"read\", \"arguments\": {\"path\": \"a\"}}]}\n",
        )
        .unwrap();
        let client = ReplayClient::open(&path, "replay:s").unwrap();
        let first = collect(&client, "a").await.unwrap();
        assert!(first.len() > 1, "text is streamed in pieces");
        let text: String = first
            .iter()
            .map(|e| match e {
                ModelEvent::Text(t) => t.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(text, "héllo wörld, this is a longer line of text");
        assert_eq!(
            collect(&client, "a").await.unwrap(),
            vec![ModelEvent::ToolCall {
                id: None,
                name: "read".into(),
                arguments: "{\"path\":\"a\"}".into()
            }]
        );
        let exhausted = collect(&client, "a").await.unwrap_err();
        assert!(
            exhausted.to_string().contains("no response left"),
            "{exhausted}"
        );
        // Another session starts again from line 1.
        assert_eq!(collect(&client, "b").await.unwrap(), first);
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        std::fs::write(&path, "{\"content\": \"ok\"}\n{\"contnet\": \"typo\"}\n").unwrap();
        let err = ReplayClient::open(&path, "replay:s")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("line 2") && err.contains("contnet"), "{err}");
        let missing = ReplayClient::open(&dir.path().join("nope"), "replay:nope")
            .err()
            .unwrap();
        assert!(missing.to_string().contains("cannot read replay script"));
    }
}
