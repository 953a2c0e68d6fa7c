//! Malformed `xml` calls repaired by a constrained second request, through the
//! OpenAI-compatible backend and a scripted server (a real model will not write a
//! malformed call on demand).

#[path = "../../keel-llm/tests/common/mock.rs"]
mod mock;

use std::sync::{Arc, Mutex};

use keel_agent::{Agent, AgentConfig, EventSink, Session};
use keel_llm::{ConnectOptions, OpenAiClient};
use keel_protocol::Event;
use keel_tools::{ToolRegistry, Workspace};
use mock::{MockServer, Reply};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn emit(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

fn answer(text: &str) -> Reply {
    let chunk =
        json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]});
    Reply::sse_in_pieces(&format!("data: {chunk}\n\ndata: [DONE]\n\n"), 17)
}

async fn run(replies: Vec<Reply>) -> (MockServer, Vec<Event>) {
    let server = MockServer::start().await;
    server.always(
        "/v1/models",
        Reply::json(
            200,
            r#"{"data":[{"id":"m","owned_by":"vllm","max_model_len":32768}]}"#,
        ),
    );
    for reply in replies {
        server.push("/v1/chat/completions", reply);
    }
    let base = format!("{}/v1", server.url);
    let model = OpenAiClient::connect("openai:m", "m", &base, ConnectOptions::default())
        .await
        .unwrap();
    let config = AgentConfig {
        verify: false,
        ..AgentConfig::default()
    };
    let agent = Agent::new(Arc::new(model), ToolRegistry::builtin(), config);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "alpha\nbeta\n").unwrap();
    let sink = Recorder::default();
    let mut session = Session::start(&agent, Workspace::new(dir.path()).unwrap(), &sink);
    session
        .run_turn(&agent, "read notes.txt", &sink, &CancellationToken::new())
        .await;
    let events = sink.0.lock().unwrap().clone();
    (server, events)
}

const MALFORMED: &str =
    "Reading it.\n<tool_call>\n<name>read</name>\n<input>path = notes.txt</input>\n</tool_call>";

#[tokio::test]
async fn a_malformed_call_is_repaired_by_a_constrained_request() {
    let (server, events) = run(vec![
        answer(MALFORMED),
        answer(r#"{"name": "read", "input": {"path": "notes.txt"}}"#),
        answer("It says alpha and beta."),
    ])
    .await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Repair { repaired: true, .. })),
        "{events:?}"
    );
    let result = events
        .iter()
        .find_map(|e| match e {
            Event::ToolResult {
                output, is_error, ..
            } => Some((output.clone(), *is_error)),
            _ => None,
        })
        .unwrap();
    assert!(!result.1 && result.0.contains("alpha"), "{result:?}");

    let requests = server.requests("/v1/chat/completions");
    assert_eq!(requests.len(), 3);
    let repair: Value = serde_json::from_str(&requests[1].body).unwrap();
    assert_eq!(repair["response_format"]["type"], "json_schema");
    let variants = repair["response_format"]["json_schema"]["schema"]["anyOf"]
        .as_array()
        .unwrap();
    assert!(
        variants
            .iter()
            .any(|v| v["properties"]["name"]["const"] == "read")
    );
    let note = repair["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap();
    assert!(note.contains("could not be read"), "{note}");

    // From then on the model sees its call in the canonical form, not the broken one.
    let next: Value = serde_json::from_str(&requests[2].body).unwrap();
    let text = next.to_string();
    assert!(
        text.contains(r#"<input>{\"path\": \"notes.txt\"}</input>"#),
        "{text}"
    );
    assert!(!text.contains("path = notes.txt"), "{text}");
    assert!(next.get("response_format").is_none());
}

#[tokio::test]
async fn a_failed_repair_leaves_the_malformed_call_error_for_the_model() {
    let (_, events) = run(vec![
        answer(MALFORMED),
        answer(r#"{"name": "rm", "input": {}}"#),
        answer("Giving up."),
    ])
    .await;
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Repair {
            repaired: false,
            ..
        }
    )));
    let (output, is_error) = events
        .iter()
        .find_map(|e| match e {
            Event::ToolResult {
                output, is_error, ..
            } => Some((output.clone(), *is_error)),
            _ => None,
        })
        .unwrap();
    assert!(
        is_error && output.contains("malformed tool call"),
        "{output}"
    );
}
