//! A real `keel serve` (in-process, over real HTTP on 127.0.0.1) with the replay
//! model, and a client that reads Server-Sent Events.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use keel_agent::permissions::{Approver, PendingApprovals};
use keel_agent::{Agent, AgentConfig};
use keel_llm::ReplayClient;
use keel_server::Server;
use keel_store::Store;
use keel_tools::{ToolRegistry, Workspace};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;

pub struct TestServer {
    pub base: String,
    pub token: String,
    pub addr: std::net::SocketAddr,
    pub store: Arc<Store>,
    pub workspace: TempDir,
    pub data: TempDir,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// One SSE event: its `id`, `event` name and parsed `data`.
#[derive(Debug, Clone)]
pub struct Sse {
    pub id: u64,
    pub event: String,
    pub data: Value,
}

impl TestServer {
    /// A server whose model replays `script` (JSON Lines) in a workspace holding
    /// `notes.txt`.
    pub async fn start(script: &str) -> Self {
        Self::start_with(script, "127.0.0.1:0", None).await
    }

    /// The same, listening on `addr` with the given token (else a random one).
    pub async fn start_with(script: &str, addr: &str, token: Option<&str>) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let workspace = tempfile::tempdir().unwrap();
        std::fs::write(workspace.path().join("notes.txt"), "alpha\nbeta\n").unwrap();
        let data = tempfile::tempdir().unwrap();
        let script_path = data.path().join("script.jsonl");
        std::fs::write(&script_path, script).unwrap();
        let store = Arc::new(Store::open(&data.path().join("keel.db")).unwrap());
        let model = ReplayClient::open(&script_path, "replay:test").unwrap();
        // As `keel serve` does: calls asked about wait for the browser's answer.
        let approvals = Arc::new(PendingApprovals::default());
        // As `keel serve` does: checkpoints in the data directory.
        let config = AgentConfig {
            checkpoint_dir: Some(data.path().join("checkpoints")),
            ..AgentConfig::default()
        };
        let agent = Agent::new(Arc::new(model), ToolRegistry::builtin(), config)
            .with_approver(Arc::clone(&approvals) as Arc<dyn Approver>);
        let server = Server::bind(
            addr.parse().unwrap(),
            token.map(str::to_string),
            Arc::new(agent),
            Arc::clone(&store),
            Workspace::new(workspace.path()).unwrap(),
        )
        .await
        .unwrap()
        .with_approvals(approvals);
        let addr = server.local_addr();
        let token = server.token().to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(
                    async {
                        let _ = stopped.await;
                    },
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
        });
        Self {
            base: format!("http://127.0.0.1:{}", addr.port()),
            token,
            addr,
            store,
            workspace,
            data,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(&self.token)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.delete(self.url(path)).bearer_auth(&self.token)
    }

    pub fn chat(&self, body: Value) -> reqwest::RequestBuilder {
        self.post("/chat").json(&body)
    }

    /// Starts a new session with `message` and reads its stream up to the first
    /// `tool_call`: the stream (to read on), the events seen, the session id.
    pub async fn begin(&self, message: &str) -> (SseReader, Vec<Sse>, String) {
        let response = self
            .chat(serde_json::json!({ "message": message }))
            .send()
            .await
            .unwrap();
        let mut stream = SseReader::new(response);
        let seen = stream.until("tool_call").await;
        let id = session_id(&seen);
        (stream, seen, id)
    }

    /// A whole turn: POST /chat with `body`, every event to the end.
    pub async fn turn(&self, body: Value) -> Vec<Sse> {
        SseReader::new(self.chat(body).send().await.unwrap())
            .rest()
            .await
    }

    /// `GET /sessions`, parsed.
    pub async fn sessions(&self) -> Value {
        self.get("/sessions")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Stops serving; running turns are cancelled and wound up.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// Reads SSE events from a response as they arrive.
pub struct SseReader {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200, "expected an event stream");
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event; `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, None, String::new());
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                let Some(event) = event else {
                    continue; // a keep-alive comment
                };
                return Some(Sse {
                    id: id.expect("every event has an id"),
                    event,
                    data: serde_json::from_str(&data).expect("event data is JSON"),
                });
            }
            let chunk = tokio::time::timeout(Duration::from_secs(60), self.body.next())
                .await
                .expect("no event for 60 s")?;
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk.expect("stream broke")));
        }
    }

    /// Events until (and including) the first whose name is `name`.
    pub async fn until(&mut self, name: &str) -> Vec<Sse> {
        let mut seen = Vec::new();
        while let Some(event) = self.next().await {
            let last = event.event == name;
            seen.push(event);
            if last {
                return seen;
            }
        }
        panic!("the stream ended before `{name}`: {:?}", names(&seen));
    }

    /// Every remaining event.
    pub async fn rest(&mut self) -> Vec<Sse> {
        let mut seen = Vec::new();
        while let Some(event) = self.next().await {
            seen.push(event);
        }
        seen
    }
}

/// The session id a stream's first (`session`) event carries.
pub fn session_id(events: &[Sse]) -> String {
    assert_eq!(events[0].event, "session");
    events[0].data["session_id"].as_str().unwrap().to_string()
}

pub fn names(events: &[Sse]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

/// A replay script line calling one tool.
pub fn call(name: &str, arguments: Value) -> String {
    serde_json::json!({"content": format!("Calling {name}."), "tool_calls": [{"name": name, "arguments": arguments}]})
        .to_string()
}

pub fn answer(text: &str) -> String {
    serde_json::json!({"content": text}).to_string()
}

pub fn script(lines: &[String]) -> String {
    lines.join("\n") + "\n"
}

pub async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("error bodies are JSON");
    let code = body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_string();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (status, code)
}
