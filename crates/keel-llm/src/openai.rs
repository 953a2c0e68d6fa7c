//! The OpenAI-compatible backend: streaming Chat Completions over SSE, as served by
//! vLLM, SGLang, llama.cpp's server, LM Studio and Ollama's `/v1`.

use std::collections::BTreeMap;

use keel_protocol::{Message, Role, Usage};
use serde_json::{Value, json};

use crate::frames::SseParser;
use crate::http::{
    ConnectOptions, Decoder, Http, error_message, post_stream, role_name, tool_definitions,
};
use crate::{ChatRequest, Constraint, LlmError, ModelClient, ModelEvent, ModelInfo, ModelStream};

/// A model behind an OpenAI-compatible server.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    http: Http,
    model: String,
    /// The base URL as given, without a trailing slash (usually ending in `/v1`).
    base_url: String,
    info: ModelInfo,
}

impl OpenAiClient {
    /// Connects: asks the server which models it serves and how large their context
    /// window is. Fails when the server cannot be reached or does not serve `model`.
    pub async fn connect(
        spec: &str,
        model: &str,
        base_url: &str,
        options: ConnectOptions,
    ) -> Result<Self, LlmError> {
        let http = Http::new(options)?;
        let base_url = base_url.trim_end_matches('/').to_string();
        let models_url = format!("{base_url}/models");
        let listing = http.get_json(&models_url).await?;
        let entries = listing.as_ref().map(model_entries).unwrap_or_default();
        let entry = entries
            .iter()
            .find(|e| names_of(e).iter().any(|n| n == model));
        let owner = |e: &Value| {
            e.get("owned_by")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_ascii_lowercase()
        };
        let server = entries.first().map(owner).and_then(|o| match o.as_str() {
            "llamacpp" => Some("llama.cpp".to_string()),
            "vllm" => Some("vllm".to_string()),
            "sglang" => Some("sglang".to_string()),
            "library" | "ollama" => Some("ollama".to_string()),
            _ => None,
        });
        // llama.cpp's server answers to any model name when it serves one model.
        let lenient = server.as_deref() == Some("llama.cpp") && entries.len() == 1;
        let entry = match entry {
            Some(entry) => Some(entry),
            None if entries.is_empty() || lenient => entries.first(),
            None => {
                return Err(LlmError::UnknownModel {
                    model: model.to_string(),
                    url: base_url,
                    available: entries.iter().flat_map(names_of).collect(),
                });
            }
        };
        let mut context_window = entry.and_then(|e| {
            e.get("max_model_len")
                .or_else(|| e.get("context_length"))
                .or_else(|| e.pointer("/meta/n_ctx"))
                .and_then(Value::as_u64)
        });
        let mut dialect = None;
        if server.as_deref() == Some("llama.cpp") || server.is_none() {
            // llama.cpp's `/props` gives the context of one slot, which is what a
            // request gets (the `/models` figure is all slots together), and the
            // model's chat template, which tells its call dialect.
            let root = base_url.strip_suffix("/v1").unwrap_or(&base_url);
            if let Ok(Some(props)) = http.get_json(&format!("{root}/props")).await {
                if let Some(n_ctx) = props
                    .pointer("/default_generation_settings/n_ctx")
                    .and_then(Value::as_u64)
                {
                    context_window = Some(n_ctx);
                }
                dialect = props
                    .get("chat_template")
                    .and_then(Value::as_str)
                    .and_then(crate::ToolProtocol::of_template);
            }
        }
        let context_window = context_window
            .map(|n| n.min(u32::MAX as u64) as u32)
            .or(http.options.context_window);
        let constraint = if server.as_deref() == Some("llama.cpp") {
            Constraint::Gbnf
        } else {
            Constraint::ResponseFormat
        };
        Ok(Self {
            info: ModelInfo {
                name: spec.to_string(),
                context_window,
                server,
                constraint: Some(constraint),
                dialect,
            },
            http,
            model: model.to_string(),
            base_url,
        })
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let messages: Vec<Value> = request.messages.iter().map(wire_message).collect();
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if let Some(max) = request.max_tokens {
            body["max_tokens"] = json!(max);
        }
        if let Some(temperature) = request.temperature {
            body["temperature"] = json!(temperature);
        }
        if let Some(tools) = tool_definitions(request) {
            body["tools"] = tools;
            if request.require_call {
                body["tool_choice"] = json!("required");
            }
        }
        let grammar = match (&request.response_schema, self.info.constraint) {
            (Some(schema), Some(Constraint::Gbnf)) => crate::gbnf::from_json_schema(schema),
            _ => None,
        };
        if let Some(grammar) = grammar {
            body["grammar"] = json!(grammar);
        } else if let Some(schema) = &request.response_schema {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": "keel_response", "strict": true, "schema": schema},
            });
        }
        body
    }

    /// The error for a failed chat request, with the server's model list when the
    /// model name was wrong.
    async fn failure(&self, url: &str, status: u16, body: String) -> LlmError {
        let message = error_message(&body);
        let lower = body.to_ascii_lowercase();
        if lower.contains("exceed_context_size")
            || lower.contains("context length")
            || lower.contains("context window")
            || lower.contains("maximum context")
        {
            return LlmError::ContextOverflow(message);
        }
        if status == 404 && lower.contains("model") {
            let models_url = format!("{}/models", self.base_url);
            let available = match self.http.get_json(&models_url).await {
                Ok(Some(listing)) => model_entries(&listing).iter().flat_map(names_of).collect(),
                _ => Vec::new(),
            };
            return LlmError::UnknownModel {
                model: self.model.clone(),
                url: self.base_url.clone(),
                available,
            };
        }
        LlmError::Status {
            url: url.to_string(),
            status,
            message,
        }
    }
}

impl ModelClient for OpenAiClient {
    fn info(&self) -> ModelInfo {
        self.info.clone()
    }

    fn stream(&self, request: ChatRequest) -> ModelStream {
        let url = format!("{}/chat/completions", self.base_url);
        let client = self.clone();
        let target = url.clone();
        post_stream(
            &self.http,
            url.clone(),
            self.body(&request),
            ChunkDecoder::new(&url),
            move |status, body| async move { client.failure(&target, status, body).await },
        )
    }
}

/// The entries of a `/v1/models` listing.
fn model_entries(listing: &Value) -> Vec<Value> {
    listing
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The names a listed model answers to: its id and any aliases (llama.cpp).
fn names_of(entry: &Value) -> Vec<String> {
    let mut names: Vec<String> = entry
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .into_iter()
        .collect();
    if let Some(aliases) = entry.get("aliases").and_then(Value::as_array) {
        names.extend(aliases.iter().filter_map(Value::as_str).map(str::to_string));
    }
    names
}

/// A provider-neutral message in the Chat Completions shape.
fn wire_message(message: &Message) -> Value {
    let mut wire = json!({"role": role_name(message.role), "content": message.content});
    if message.role == Role::Assistant && !message.tool_calls.is_empty() {
        if message.content.is_empty() {
            wire["content"] = Value::Null;
        }
        wire["tool_calls"] = message
            .tool_calls
            .iter()
            .map(|c| {
                json!({"id": c.id, "type": "function", "function": {
                    "name": c.name, "arguments": c.arguments.to_string(),
                }})
            })
            .collect();
    }
    if message.role == Role::Tool {
        if let Some(id) = &message.tool_call_id {
            wire["tool_call_id"] = json!(id);
        }
        if let Some(name) = &message.name {
            wire["name"] = json!(name);
        }
    }
    wire
}

/// A native tool call being assembled from streamed fragments.
#[derive(Debug, Default)]
struct PartialCall {
    id: Option<String>,
    name: String,
    arguments: String,
}

/// Decodes a streamed Chat Completions body.
struct ChunkDecoder {
    url: String,
    sse: SseParser,
    calls: BTreeMap<u64, PartialCall>,
    usage: Option<Usage>,
    finished: bool,
    done: bool,
}

impl ChunkDecoder {
    fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            sse: SseParser::default(),
            calls: BTreeMap::new(),
            usage: None,
            finished: false,
            done: false,
        }
    }

    fn data(&mut self, data: &str, out: &mut Vec<ModelEvent>) -> Result<(), LlmError> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| LlmError::BadResponse {
            url: self.url.clone(),
            reason: format!(
                "a stream chunk is not JSON ({e}): {}",
                crate::http::quote(data)
            ),
        })?;
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| error.to_string());
            return Err(if message.to_ascii_lowercase().contains("context") {
                LlmError::ContextOverflow(message)
            } else {
                LlmError::Server(message)
            });
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let number = |v: Option<&Value>| v.and_then(Value::as_u64);
            let cached = number(usage.pointer("/prompt_tokens_details/cached_tokens"))
                .or_else(|| number(chunk.pointer("/timings/cache_n")));
            self.usage = Some(Usage {
                prompt_tokens: number(usage.get("prompt_tokens")),
                cached_prompt_tokens: cached,
                completion_tokens: number(usage.get("completion_tokens")),
                constrained_calls: None,
            });
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return Ok(());
        };
        let delta = choice.get("delta").or_else(|| choice.get("message"));
        if let Some(delta) = delta {
            if let Some(text) = delta.get("content").and_then(Value::as_str)
                && !text.is_empty()
            {
                out.push(ModelEvent::Text(text.to_string()));
            }
            for fragment in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let index = fragment
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(self.calls.len() as u64);
                let call = self.calls.entry(index).or_default();
                if let Some(id) = fragment.get("id").and_then(Value::as_str)
                    && !id.is_empty()
                {
                    call.id = Some(id.to_string());
                }
                let function = fragment.get("function");
                // Some servers repeat the whole name in every fragment: names are set,
                // never concatenated. Only the arguments arrive in pieces.
                if let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str)
                    && !name.is_empty()
                {
                    call.name = name.to_string();
                }
                match function.and_then(|f| f.get("arguments")) {
                    Some(Value::String(piece)) => call.arguments.push_str(piece),
                    Some(object @ Value::Object(_)) => call.arguments = object.to_string(),
                    _ => {}
                }
            }
        }
        if choice
            .get("finish_reason")
            .is_some_and(|reason| !reason.is_null())
        {
            self.finished = true;
        }
        Ok(())
    }

    fn flush_calls(&mut self, out: &mut Vec<ModelEvent>) {
        for (_, call) in std::mem::take(&mut self.calls) {
            out.push(ModelEvent::ToolCall {
                id: call.id,
                name: call.name,
                arguments: if call.arguments.trim().is_empty() {
                    "{}".into()
                } else {
                    call.arguments
                },
            });
        }
    }
}

impl Decoder for ChunkDecoder {
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<ModelEvent>, LlmError> {
        let mut out = Vec::new();
        for event in self.sse.push(chunk) {
            if self.done {
                break;
            }
            self.data(&event.data, &mut out)?;
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<ModelEvent>, LlmError> {
        let mut out = Vec::new();
        if !self.done
            && let Some(event) = self.sse.finish()
        {
            self.data(&event.data, &mut out)?;
        }
        if !self.done && !self.finished {
            return Err(LlmError::StreamCut {
                url: self.url.clone(),
                reason: "the body ended before the response was complete (no `finish_reason`, no `[DONE]`)".into(),
            });
        }
        self.flush_calls(&mut out);
        if let Some(usage) = self.usage.take() {
            out.push(ModelEvent::Usage(usage));
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

    fn decode(body: &str) -> Result<Vec<ModelEvent>, LlmError> {
        let mut decoder = ChunkDecoder::new("http://test/v1/chat/completions");
        let mut out = decoder.push(body.as_bytes())?;
        out.extend(decoder.finish()?);
        Ok(out)
    }

    #[test]
    fn null_content_and_repeated_call_fragments() {
        let body = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"read\",\"arguments\":\"{\\\"pa\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"read\",\"arguments\":\"th\\\": \\\"a.py\\\"}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        assert_eq!(
            decode(body).unwrap(),
            vec![ModelEvent::ToolCall {
                id: Some("c1".into()),
                name: "read".into(),
                arguments: "{\"path\": \"a.py\"}".into()
            }]
        );
    }

    #[test]
    fn a_cut_stream_is_an_error() {
        let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n";
        assert!(matches!(decode(body), Err(LlmError::StreamCut { .. })));
    }

    #[test]
    fn done_without_finish_reason_ends_cleanly() {
        let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n";
        assert_eq!(decode(body).unwrap(), vec![ModelEvent::Text("Hi".into())]);
    }

    #[test]
    fn usage_with_cached_tokens() {
        let body = concat!(
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":45,\"completion_tokens\":8,\"prompt_tokens_details\":{\"cached_tokens\":40}}}\n\n",
            "data: [DONE]\n\n"
        );
        assert_eq!(
            decode(body).unwrap(),
            vec![ModelEvent::Usage(Usage {
                prompt_tokens: Some(45),
                cached_prompt_tokens: Some(40),
                completion_tokens: Some(8),
                constrained_calls: None
            })]
        );
    }

    #[test]
    fn an_error_chunk_is_reported() {
        let body = "data: {\"error\":{\"message\":\"boom\"}}\n\n";
        assert!(matches!(decode(body), Err(LlmError::Server(m)) if m == "boom"));
    }
}
