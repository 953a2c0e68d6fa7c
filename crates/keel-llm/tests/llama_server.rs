//! The OpenAI-compatible backend against upstream llama.cpp's own server with a real
//! (tiny, base) model: protocol, streaming, usage, prefix cache, constraints.

mod common;

use common::llama::LlamaServer;
use futures_util::StreamExt;
use keel_llm::{
    ChatRequest, ConnectOptions, Constraint, LlmError, ModelClient, ModelEvent, OpenAiClient,
    ToolProtocol,
};
use keel_protocol::{Message, ToolSpec, Usage};
use serde_json::{Value, json};

async fn connect(server: &LlamaServer) -> OpenAiClient {
    let base = format!("{}/v1", server.url);
    OpenAiClient::connect(&server.spec(), "gemma", &base, ConnectOptions::default())
        .await
        .unwrap()
}

fn request(user: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        max_tokens: Some(max_tokens),
        ..ChatRequest::new(
            "s",
            vec![
                Message::system("You are a terse assistant."),
                Message::user(user),
            ],
        )
    }
}

struct Collected {
    text: String,
    pieces: usize,
    usage: Option<Usage>,
    error: Option<LlmError>,
}

async fn collect(client: &OpenAiClient, request: ChatRequest) -> Collected {
    let mut out = Collected {
        text: String::new(),
        pieces: 0,
        usage: None,
        error: None,
    };
    let mut stream = client.stream(request);
    while let Some(item) = stream.next().await {
        match item {
            Ok(ModelEvent::Text(t)) => {
                out.pieces += 1;
                out.text.push_str(&t);
            }
            Ok(ModelEvent::Usage(u)) => out.usage = Some(u),
            Ok(ModelEvent::ToolCall { .. }) => out.pieces += 1,
            Err(e) => out.error = Some(e),
        }
    }
    out
}

#[tokio::test]
async fn connects_streams_and_reports_usage_and_cache() {
    let Some(server) = LlamaServer::start(4096) else {
        return;
    };
    let client = connect(&server).await;
    let info = client.info();
    assert_eq!(info.context_window, Some(4096));
    assert_eq!(info.server.as_deref(), Some("llama.cpp"));
    assert_eq!(info.constraint, Some(Constraint::Gbnf));

    let prompt = "Write a sentence about the sea. ".repeat(20);
    let first = collect(&client, request(&prompt, 16)).await;
    assert!(first.error.is_none(), "{:?}", first.error);
    assert!(first.pieces >= 2, "streamed in pieces: {}", first.pieces);
    let usage = first.usage.expect("usage reported");
    assert!(usage.prompt_tokens.unwrap() > 100, "{usage:?}");
    assert!(usage.completion_tokens.unwrap() <= 16, "{usage:?}");

    // The same prompt again: the server reuses its KV cache for the prefix.
    let second = collect(&client, request(&prompt, 4)).await;
    let cached = second.usage.unwrap().cached_prompt_tokens.unwrap();
    assert!(cached > 100, "cached tokens: {cached}");
}

#[tokio::test]
async fn a_response_schema_constrains_the_output() {
    let Some(server) = LlamaServer::start(4096) else {
        return;
    };
    let client = connect(&server).await;
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"const": "read"},
            "input": {"type": "object", "properties": {"path": {"type": "string", "maxLength": 20}},
                      "required": ["path"], "additionalProperties": false}
        },
        "required": ["name", "input"],
        "additionalProperties": false
    });
    for _ in 0..3 {
        let mut request = request("Call the read tool on README.md.", 512);
        request.response_schema = Some(schema.clone());
        let out = collect(&client, request).await;
        assert!(out.error.is_none(), "{:?}", out.error);
        let value: Value = serde_json::from_str(&out.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.text));
        assert_eq!(value["name"], "read");
        assert!(value["input"]["path"].is_string());
    }
}

#[tokio::test]
async fn native_mode_sends_tools_and_completes() {
    let Some(server) = LlamaServer::start(4096) else {
        return;
    };
    let client = connect(&server).await;
    let mut request = request("List the files.", 16);
    request.protocol = ToolProtocol::Native;
    request.tools = vec![ToolSpec {
        name: "bash".into(),
        description: "Run a shell command.".into(),
        parameters: json!({"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}),
        read_only: false,
    }];
    let out = collect(&client, request).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(out.usage.is_some());
}

#[tokio::test]
async fn a_prompt_beyond_the_window_is_a_context_overflow() {
    let Some(server) = LlamaServer::start(1024) else {
        return;
    };
    let client = connect(&server).await;
    let out = collect(&client, request(&"The sea is blue. ".repeat(600), 8)).await;
    assert!(
        matches!(out.error, Some(LlmError::ContextOverflow(_))),
        "{:?}",
        out.error
    );
}

#[tokio::test]
async fn a_cancelled_request_leaves_the_server_usable() {
    let Some(server) = LlamaServer::start(4096) else {
        return;
    };
    let client = connect(&server).await;
    let mut stream = client.stream(request("Tell me a long story.", 2000));
    let mut seen = 0;
    while let Some(item) = stream.next().await {
        if matches!(item, Ok(ModelEvent::Text(_))) {
            seen += 1;
            if seen == 3 {
                break;
            }
        }
    }
    drop(stream);
    // One slot: if the cancelled generation were still running this would wait for
    // its 2000 tokens; it answers at once instead.
    let out = collect(&client, request("Say hi.", 4)).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(out.usage.unwrap().completion_tokens.unwrap() <= 4);
}
