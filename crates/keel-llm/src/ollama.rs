//! The Ollama backend: `/api/chat` streamed as JSON lines. Unlike Ollama's `/v1`
//! endpoint it can send `num_ctx`, without which Ollama cuts every prompt to its
//! small default window without saying so.

use keel_protocol::{Message, Role, Usage};
use serde_json::{Value, json};

use crate::frames::LineSplitter;
use crate::http::{
    ConnectOptions, Decoder, Http, HttpFailure, error_message, post_stream, role_name,
    tool_definitions,
};
use crate::{ChatRequest, Constraint, LlmError, ModelClient, ModelEvent, ModelInfo, ModelStream};

/// `num_ctx` when neither configuration nor the model says: the model's trained
/// context is capped here, because Ollama allocates the whole KV cache up front.
const MAX_DEFAULT_CONTEXT: u64 = 32_768;

/// A model served by Ollama.
#[derive(Debug, Clone)]
pub struct OllamaClient {
    http: Http,
    model: String,
    base_url: String,
    num_ctx: u32,
    info: ModelInfo,
}

impl OllamaClient {
    /// Connects: reads the model's context length from `/api/show`. Fails when the
    /// server cannot be reached or does not have the model (listing those it has).
    pub async fn connect(
        spec: &str,
        model: &str,
        base_url: &str,
        options: ConnectOptions,
    ) -> Result<Self, LlmError> {
        let http = Http::new(options)?;
        let base_url = base_url.trim_end_matches('/').to_string();
        let show_url = format!("{base_url}/api/show");
        let shown = match http.post(&show_url, &json!({"model": model})).await {
            Ok(response) => response
                .json::<Value>()
                .await
                .map_err(|e| LlmError::BadResponse {
                    url: show_url.clone(),
                    reason: e.to_string(),
                })?,
            Err(HttpFailure::Other(e)) => return Err(e),
            Err(HttpFailure::Status { status: 404, .. }) => {
                return Err(LlmError::UnknownModel {
                    model: model.to_string(),
                    url: base_url.clone(),
                    available: list_models(&http, &base_url).await,
                });
            }
            Err(HttpFailure::Status { status, body }) => {
                return Err(LlmError::Status {
                    url: show_url,
                    status,
                    message: error_message(&body),
                });
            }
        };
        let trained = shown
            .get("model_info")
            .and_then(Value::as_object)
            .and_then(|info| {
                info.iter()
                    .find(|(key, _)| key.ends_with(".context_length"))
                    .and_then(|(_, v)| v.as_u64())
            });
        let num_ctx = match http.options.context_window {
            Some(configured) => configured,
            None => trained
                .unwrap_or(MAX_DEFAULT_CONTEXT)
                .min(MAX_DEFAULT_CONTEXT) as u32,
        };
        Ok(Self {
            info: ModelInfo {
                name: spec.to_string(),
                context_window: Some(num_ctx),
                server: Some("ollama".into()),
                constraint: Some(Constraint::OllamaFormat),
                dialect: None,
            },
            http,
            model: model.to_string(),
            base_url,
            num_ctx,
        })
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let messages: Vec<Value> = request.messages.iter().map(wire_message).collect();
        let mut options = json!({"num_ctx": self.num_ctx});
        if let Some(max) = request.max_tokens {
            options["num_predict"] = json!(max);
        }
        if let Some(temperature) = request.temperature {
            options["temperature"] = json!(temperature);
        }
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "options": options,
        });
        if let Some(tools) = tool_definitions(request) {
            body["tools"] = tools;
        }
        if let Some(schema) = &request.response_schema {
            body["format"] = schema.clone();
        }
        body
    }
}

impl OllamaClient {
    /// The error for a failed chat request, with the pulled models when the model
    /// name was wrong.
    async fn failure(&self, url: &str, status: u16, body: String) -> LlmError {
        let message = error_message(&body);
        let lower = message.to_ascii_lowercase();
        if status == 404 && lower.contains("not found") {
            LlmError::UnknownModel {
                model: self.model.clone(),
                url: self.base_url.clone(),
                available: list_models(&self.http, &self.base_url).await,
            }
        } else if lower.contains("context") {
            LlmError::ContextOverflow(message)
        } else {
            LlmError::Status {
                url: url.to_string(),
                status,
                message,
            }
        }
    }
}

async fn list_models(http: &Http, base_url: &str) -> Vec<String> {
    match http.get_json(&format!("{base_url}/api/tags")).await {
        Ok(Some(tags)) => tags
            .get("models")
            .and_then(Value::as_array)
            .map(|models| {
                models
                    .iter()
                    .filter_map(|m| m.get("name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

impl ModelClient for OllamaClient {
    fn info(&self) -> ModelInfo {
        self.info.clone()
    }

    fn stream(&self, request: ChatRequest) -> ModelStream {
        let url = format!("{}/api/chat", self.base_url);
        let client = self.clone();
        let target = url.clone();
        post_stream(
            &self.http,
            url.clone(),
            self.body(&request),
            LineDecoder::new(&url),
            move |status, body| async move { client.failure(&target, status, body).await },
        )
    }
}

/// A provider-neutral message in Ollama's shape (call arguments are objects).
fn wire_message(message: &Message) -> Value {
    let mut wire = json!({"role": role_name(message.role), "content": message.content});
    if message.role == Role::Assistant && !message.tool_calls.is_empty() {
        wire["tool_calls"] = message
            .tool_calls
            .iter()
            .map(|c| json!({"function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
    }
    if message.role == Role::Tool
        && let Some(name) = &message.name
    {
        wire["tool_name"] = json!(name);
    }
    wire
}

/// Decodes Ollama's JSON-lines stream.
struct LineDecoder {
    url: String,
    lines: LineSplitter,
    calls: usize,
    done: bool,
}

impl LineDecoder {
    fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            lines: LineSplitter::default(),
            calls: 0,
            done: false,
        }
    }

    fn line(&mut self, line: &str, out: &mut Vec<ModelEvent>) -> Result<(), LlmError> {
        let line = line.trim();
        if line.is_empty() || self.done {
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(line).map_err(|e| LlmError::BadResponse {
            url: self.url.clone(),
            reason: format!(
                "a stream line is not JSON ({e}): {}",
                crate::http::quote(line)
            ),
        })?;
        if let Some(error) = chunk.get("error") {
            let message = error
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| error.to_string());
            return Err(LlmError::Server(message));
        }
        if let Some(message) = chunk.get("message") {
            if let Some(text) = message.get("content").and_then(Value::as_str)
                && !text.is_empty()
            {
                out.push(ModelEvent::Text(text.to_string()));
            }
            for call in message
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let function = call.get("function").unwrap_or(&Value::Null);
                let arguments = match function.get("arguments") {
                    Some(Value::String(raw)) => raw.clone(),
                    Some(other) => other.to_string(),
                    None => "{}".into(),
                };
                self.calls += 1;
                out.push(ModelEvent::ToolCall {
                    id: call.get("id").and_then(Value::as_str).map(str::to_string),
                    name: function
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    arguments,
                });
            }
        }
        if chunk.get("done").and_then(Value::as_bool) == Some(true) {
            self.done = true;
            let number = |key: &str| chunk.get(key).and_then(Value::as_u64);
            out.push(ModelEvent::Usage(Usage {
                prompt_tokens: number("prompt_eval_count"),
                cached_prompt_tokens: None,
                completion_tokens: number("eval_count"),
                constrained_calls: None,
            }));
        }
        Ok(())
    }
}

impl Decoder for LineDecoder {
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<ModelEvent>, LlmError> {
        let mut out = Vec::new();
        for line in self.lines.push(chunk) {
            self.line(&line, &mut out)?;
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<ModelEvent>, LlmError> {
        let mut out = Vec::new();
        if let Some(line) = self.lines.finish() {
            self.line(&line, &mut out)?;
        }
        if !self.done {
            return Err(LlmError::StreamCut {
                url: self.url.clone(),
                reason: "the body ended before a line with `\"done\": true`".into(),
            });
        }
        Ok(out)
    }

    fn done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_text_calls_and_usage_split_anywhere() {
        let body = concat!(
            "{\"message\":{\"role\":\"assistant\",\"content\":\"Hé\"},\"done\":false}\n",
            "{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"read\",\"arguments\":{\"path\":\"a\"}}}]},\"done\":false}\n",
            "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"prompt_eval_count\":12,\"eval_count\":3}\n"
        )
        .as_bytes();
        for cut in 0..body.len() {
            let mut decoder = LineDecoder::new("u");
            let mut out = decoder.push(&body[..cut]).unwrap();
            out.extend(decoder.push(&body[cut..]).unwrap());
            out.extend(decoder.finish().unwrap());
            assert_eq!(out.len(), 3, "cut at {cut}");
            assert_eq!(out[0], ModelEvent::Text("Hé".into()));
            assert!(
                matches!(&out[1], ModelEvent::ToolCall { name, arguments, .. }
                if name == "read" && arguments == "{\"path\":\"a\"}")
            );
        }
    }

    #[test]
    fn a_stream_without_done_is_cut() {
        let mut decoder = LineDecoder::new("u");
        decoder
            .push(b"{\"message\":{\"content\":\"x\"},\"done\":false}\n")
            .unwrap();
        assert!(matches!(decoder.finish(), Err(LlmError::StreamCut { .. })));
    }
}
