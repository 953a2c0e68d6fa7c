//! What the server backends share: the HTTP client, retries while a model loads,
//! error bodies turned into messages, and a streamed body turned into model events
//! with an idle timeout.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::Value;

use crate::{LlmError, ModelEvent, ModelStream};

/// How keel talks to a model server.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Sent as `Authorization: Bearer`; from configuration or `KEEL_API_KEY`.
    pub api_key: Option<String>,
    /// Context window to assume when the server does not say (and, for Ollama, the
    /// `num_ctx` to ask for).
    pub context_window: Option<u32>,
    /// Longest wait for the next piece of a streamed response (or the first one,
    /// which includes the prompt's prefill).
    pub idle_timeout: Duration,
    /// How long to keep retrying while the server says the model is still loading.
    pub load_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            api_key: None,
            context_window: None,
            idle_timeout: Duration::from_secs(300),
            load_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Longest part of a server's error body quoted in an error.
const BODY_QUOTE: usize = 400;

/// An HTTP client for one model server.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    pub(crate) options: ConnectOptions,
}

impl Http {
    pub(crate) fn new(options: ConnectOptions) -> Result<Self, LlmError> {
        // reqwest is built without a TLS provider of its own; ring is the one we link.
        // An error means a provider is already installed, which is what we need.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .build()
            .map_err(|e| LlmError::Client(e.to_string()))?;
        Ok(Self { client, options })
    }

    fn authorised(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.options.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// GETs a JSON document. `Ok(None)` for a 404 (the server has no such endpoint).
    pub(crate) async fn get_json(&self, url: &str) -> Result<Option<Value>, LlmError> {
        let response = self
            .authorised(self.client.get(url))
            .timeout(self.options.idle_timeout)
            .send()
            .await
            .map_err(|e| transport_error(url, e))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = check_status(url, response).await?;
        let body = response.text().await.map_err(|e| transport_error(url, e))?;
        serde_json::from_str(&body)
            .map(Some)
            .map_err(|_| LlmError::BadResponse {
                url: url.to_string(),
                reason: format!("not JSON: {}", quote(&body)),
            })
    }

    /// POSTs a JSON body, retrying while the server says its model is loading.
    /// Returns the successful response; any other status is an error.
    pub(crate) async fn post(
        &self,
        url: &str,
        body: &Value,
    ) -> Result<reqwest::Response, HttpFailure> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(250);
        let mut resent = false;
        loop {
            let sent = self
                .authorised(self.client.post(url))
                .json(body)
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                // A kept-alive connection the server closed just as this request went
                // out on it (no response at all): sent again once, on a new connection.
                Err(e) if !resent && closed_before_response(&e) => {
                    resent = true;
                    continue;
                }
                Err(e) => return Err(HttpFailure::Other(transport_error(url, e))),
            };
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let text = response.text().await.unwrap_or_default();
            if is_loading(status.as_u16(), &text)
                && started.elapsed() + delay < self.options.load_timeout
            {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(4));
                continue;
            }
            return Err(HttpFailure::Status {
                status: status.as_u16(),
                body: text,
            });
        }
    }
}

/// A POST that did not succeed: a status the backend may interpret, or a transport error.
#[derive(Debug)]
pub(crate) enum HttpFailure {
    Status { status: u16, body: String },
    Other(LlmError),
}

/// Whether the connection closed before any response came (hyper's "incomplete
/// message"), which a pooled connection the server has just closed gives.
fn closed_before_response(error: &reqwest::Error) -> bool {
    error.is_request() && with_causes(error).contains("connection closed before message completed")
}

/// Whether a failed response means "model still loading, try again".
fn is_loading(status: u16, body: &str) -> bool {
    match status {
        502..=504 => true,
        500 => body.to_ascii_lowercase().contains("load"),
        _ => false,
    }
}

/// An error with the chain of its causes, on one line.
fn with_causes(error: &reqwest::Error) -> String {
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        reason = format!("{reason}: {inner}");
        source = inner.source();
    }
    reason
}

pub(crate) fn transport_error(url: &str, error: reqwest::Error) -> LlmError {
    let reason = with_causes(&error);
    if error.is_connect() {
        LlmError::Unreachable {
            url: url.to_string(),
            reason,
        }
    } else {
        LlmError::Transport {
            url: url.to_string(),
            reason,
        }
    }
}

async fn check_status(
    url: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, LlmError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(LlmError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        message: error_message(&body),
    })
}

/// The readable part of an error body: `error.message`, `error` or `detail` of a JSON
/// body, else the body itself, shortened.
pub(crate) fn error_message(body: &str) -> String {
    if let Ok(json) = serde_json::from_str::<Value>(body) {
        let found = json
            .pointer("/error/message")
            .or_else(|| json.get("error"))
            .or_else(|| json.get("detail"))
            .or_else(|| json.get("message"));
        if let Some(found) = found {
            return match found {
                Value::String(s) => quote(s),
                other => quote(&other.to_string()),
            };
        }
    }
    if body.trim().is_empty() {
        "(empty body)".into()
    } else {
        quote(body)
    }
}

/// A body shortened for an error message.
pub(crate) fn quote(body: &str) -> String {
    let body = body.trim();
    if body.chars().count() <= BODY_QUOTE {
        return body.to_string();
    }
    let cut: String = body.chars().take(BODY_QUOTE).collect();
    format!("{cut}… ({} bytes in all)", body.len())
}

/// The wire name of a role (the same in the OpenAI and Ollama APIs).
pub(crate) fn role_name(role: keel_protocol::Role) -> &'static str {
    match role {
        keel_protocol::Role::System => "system",
        keel_protocol::Role::User => "user",
        keel_protocol::Role::Assistant => "assistant",
        keel_protocol::Role::Tool => "tool",
    }
}

/// The `tools` of a native-mode request (the same in the OpenAI and Ollama APIs),
/// or `None` when the request carries none.
pub(crate) fn tool_definitions(request: &crate::ChatRequest) -> Option<Value> {
    if request.protocol != crate::ToolProtocol::Native || request.tools.is_empty() {
        return None;
    }
    Some(
        request
            .tools
            .iter()
            .map(|t| {
                serde_json::json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters,
                }})
            })
            .collect(),
    )
}

/// POSTs `body` to `url` and streams the response through `decoder`; a failed
/// status becomes the error `on_status` makes of it (status code, body).
pub(crate) fn post_stream<D, F, Fut>(
    http: &Http,
    url: String,
    body: Value,
    decoder: D,
    on_status: F,
) -> ModelStream
where
    D: Decoder,
    F: FnOnce(u16, String) -> Fut + Send + 'static,
    Fut: Future<Output = LlmError> + Send,
{
    let client = http.clone();
    let target = url.clone();
    let start = Box::pin(async move {
        match client.post(&target, &body).await {
            Ok(response) => Ok(response),
            Err(HttpFailure::Other(e)) => Err(e),
            Err(HttpFailure::Status { status, body }) => Err(on_status(status, body).await),
        }
    });
    event_stream(start, decoder, url, http.options.idle_timeout)
}

/// Turns the bytes of a streamed body into model events.
pub(crate) trait Decoder: Send + 'static {
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<ModelEvent>, LlmError>;
    /// The body ended (after `done()` or not). Errors when it ended too early.
    fn finish(&mut self) -> Result<Vec<ModelEvent>, LlmError>;
    /// The server said the response is complete; the rest of the body is not read.
    fn done(&self) -> bool;
}

type Start = Pin<Box<dyn Future<Output = Result<reqwest::Response, LlmError>> + Send>>;

enum State<D> {
    Start(Start, D),
    Body {
        body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
        decoder: D,
        queue: VecDeque<ModelEvent>,
    },
    Drain(VecDeque<ModelEvent>),
    End,
}

/// Streams the events of a response. Dropping the stream drops the connection,
/// which is how a cancelled request is closed.
fn event_stream<D: Decoder>(start: Start, decoder: D, url: String, idle: Duration) -> ModelStream {
    stream::unfold(State::Start(start, decoder), move |state| {
        let url = url.clone();
        async move {
            let mut state = state;
            loop {
                match state {
                    State::End => return None,
                    State::Drain(mut queue) => {
                        let item = queue.pop_front()?;
                        return Some((Ok(item), State::Drain(queue)));
                    }
                    State::Start(start, decoder) => match start.await {
                        Ok(response) => {
                            state = State::Body {
                                body: response.bytes_stream().boxed(),
                                decoder,
                                queue: VecDeque::new(),
                            }
                        }
                        Err(e) => return Some((Err(e), State::End)),
                    },
                    State::Body {
                        mut body,
                        mut decoder,
                        mut queue,
                    } => {
                        if let Some(item) = queue.pop_front() {
                            return Some((
                                Ok(item),
                                State::Body {
                                    body,
                                    decoder,
                                    queue,
                                },
                            ));
                        }
                        if decoder.done() {
                            return finish(decoder, queue);
                        }
                        let next = match tokio::time::timeout(idle, body.next()).await {
                            Ok(next) => next,
                            Err(_) => {
                                let secs = idle.as_secs();
                                return Some((Err(LlmError::Idle { url, secs }), State::End));
                            }
                        };
                        match next {
                            None => return finish(decoder, queue),
                            Some(Err(e)) => {
                                return Some((
                                    Err(LlmError::StreamCut {
                                        url,
                                        reason: with_causes(&e),
                                    }),
                                    State::End,
                                ));
                            }
                            Some(Ok(chunk)) => match decoder.push(&chunk) {
                                Ok(events) => {
                                    queue.extend(events);
                                    state = State::Body {
                                        body,
                                        decoder,
                                        queue,
                                    };
                                }
                                Err(e) => return Some((Err(e), State::End)),
                            },
                        }
                    }
                }
            }
        }
    })
    .boxed()
}

fn finish<D: Decoder>(
    mut decoder: D,
    mut queue: VecDeque<ModelEvent>,
) -> Option<(Result<ModelEvent, LlmError>, State<D>)> {
    match decoder.finish() {
        Ok(events) => {
            queue.extend(events);
            let item = queue.pop_front()?;
            Some((Ok(item), State::Drain(queue)))
        }
        Err(e) => Some((Err(e), State::End)),
    }
}
