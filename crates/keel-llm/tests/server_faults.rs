//! The server backends against a scripted HTTP server: every fault of the stream and
//! of the server that the issue lists, over real TCP on 127.0.0.1.

mod common;

use std::time::Duration;

use common::mock::{MockServer, Part, Reply};
use futures_util::StreamExt;
use keel_llm::{
    ChatRequest, ConnectOptions, LlmError, ModelClient, ModelEvent, OllamaClient, OpenAiClient,
    ToolProtocol,
};
use keel_protocol::{Message, ToolCall, ToolSpec, Usage};
use serde_json::{Value, json};

const MODELS: &str = r#"{"object":"list","data":[{"id":"coder","object":"model","owned_by":"vllm","max_model_len":16384}]}"#;

fn chunk(delta: Value) -> String {
    format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
    )
}

fn finish(reason: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
    )
}

async fn server() -> MockServer {
    let server = MockServer::start().await;
    server.always("/v1/models", Reply::json(200, MODELS));
    server
}

fn options() -> ConnectOptions {
    ConnectOptions {
        idle_timeout: Duration::from_secs(10),
        load_timeout: Duration::from_secs(10),
        ..ConnectOptions::default()
    }
}

async fn client(server: &MockServer, options: ConnectOptions) -> OpenAiClient {
    let base = format!("{}/v1", server.url);
    OpenAiClient::connect(&format!("openai:coder@{base}"), "coder", &base, options)
        .await
        .unwrap()
}

/// Makes `request` a native-mode request offering one tool named `name`.
fn native_tool(request: &mut ChatRequest, name: &str) {
    request.protocol = ToolProtocol::Native;
    request.tools = vec![ToolSpec {
        name: name.into(),
        description: format!("the {name} tool"),
        parameters: json!({"type": "object"}),
        read_only: true,
    }];
}

fn request() -> ChatRequest {
    ChatRequest::new("s", vec![Message::system("sys"), Message::user("hi")])
}

async fn collect(
    client: &dyn ModelClient,
    request: ChatRequest,
) -> Vec<Result<ModelEvent, LlmError>> {
    client.stream(request).collect().await
}

fn text_of(events: &[Result<ModelEvent, LlmError>]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Ok(ModelEvent::Text(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn reads_the_window_from_the_server_listing() {
    let server = server().await;
    let client = client(&server, options()).await;
    assert_eq!(client.info().context_window, Some(16384));
    assert_eq!(client.info().server.as_deref(), Some("vllm"));
}

#[tokio::test]
async fn chunks_split_anywhere_with_keepalives_and_utf8() {
    let server = server().await;
    let body = [
        ": ping\n\n".to_string(),
        chunk(json!({"role": "assistant", "content": null})),
        chunk(json!({"content": "Grüße "})),
        ": keep-alive\n\n".to_string(),
        chunk(json!({"content": "🎉 done"})),
        finish("stop"),
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":4,\"prompt_tokens_details\":{\"cached_tokens\":16}}}\n\n".to_string(),
        "data: [DONE]\n\n".to_string(),
    ]
    .concat();
    // Every piece size from 1 byte (inside each UTF-8 character and `data:` line) up.
    for size in [1, 2, 3, 5, 7, 64] {
        server.push("/v1/chat/completions", Reply::sse_in_pieces(&body, size));
    }
    let client = client(&server, options()).await;
    for size in [1, 2, 3, 5, 7, 64] {
        let events = collect(&client, request()).await;
        assert_eq!(text_of(&events), "Grüße 🎉 done", "pieces of {size}");
        assert!(
            events.iter().all(Result::is_ok),
            "pieces of {size}: {events:?}"
        );
        assert_eq!(
            events.last().unwrap().as_ref().unwrap(),
            &ModelEvent::Usage(Usage {
                prompt_tokens: Some(20),
                cached_prompt_tokens: Some(16),
                completion_tokens: Some(4),
                constrained_calls: None
            })
        );
    }
}

#[tokio::test]
async fn done_without_finish_reason_is_a_clean_end() {
    let server = server().await;
    let body = [chunk(json!({"content": "Hi"})), "data: [DONE]\n\n".into()].concat();
    server.push("/v1/chat/completions", Reply::sse_in_pieces(&body, 4));
    let client = client(&server, options()).await;
    let events = collect(&client, request()).await;
    assert_eq!(events.len(), 1);
    assert_eq!(text_of(&events), "Hi");
}

#[tokio::test]
async fn a_stream_cut_midway_is_an_error_after_the_text_so_far() {
    let server = server().await;
    let body = [chunk(json!({"content": "Hel"})), "data: {\"choi".into()].concat();
    server.push("/v1/chat/completions", Reply::sse_in_pieces(&body, 8));
    let client = client(&server, options()).await;
    let events = collect(&client, request()).await;
    assert_eq!(text_of(&events), "Hel");
    let last = events.last().unwrap();
    assert!(
        matches!(
            last,
            Err(LlmError::BadResponse { .. }) | Err(LlmError::StreamCut { .. })
        ),
        "{last:?}"
    );
}

#[tokio::test]
async fn native_call_fragments_repeating_id_and_name_are_assembled() {
    let server = server().await;
    let fragment = |args: &str| {
        chunk(json!({"content": null, "tool_calls": [
            {"index": 0, "id": "call_7", "type": "function",
             "function": {"name": "grep", "arguments": args}}]}))
    };
    let body = [
        fragment(""),
        fragment("{\"pattern\": "),
        fragment("\"fn main\"}"),
        finish("tool_calls"),
        "data: [DONE]\n\n".into(),
    ]
    .concat();
    server.push("/v1/chat/completions", Reply::sse_in_pieces(&body, 13));
    let client = client(&server, options()).await;
    let mut request = request();
    native_tool(&mut request, "grep");
    request.messages.push(Message::assistant(
        "",
        vec![ToolCall {
            id: "call_1".into(),
            name: "read".into(),
            arguments: json!({"path": "a"}),
        }],
    ));
    request
        .messages
        .push(Message::tool("call_1", "read", "1| x"));
    let events = collect(&client, request).await;
    assert_eq!(
        events.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        vec![ModelEvent::ToolCall {
            id: Some("call_7".into()),
            name: "grep".into(),
            arguments: "{\"pattern\": \"fn main\"}".into()
        }]
    );
    // What was sent: the tools, and the earlier call and result in OpenAI's shape.
    let sent: Value =
        serde_json::from_str(&server.requests("/v1/chat/completions")[0].body).unwrap();
    assert_eq!(sent["tools"][0]["function"]["name"], "grep");
    assert_eq!(
        sent["messages"][2]["tool_calls"][0]["function"]["arguments"],
        "{\"path\":\"a\"}"
    );
    assert_eq!(sent["messages"][3]["role"], "tool");
    assert_eq!(sent["messages"][3]["tool_call_id"], "call_1");
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn a_loading_model_is_retried() {
    let server = server().await;
    server.push(
        "/v1/chat/completions",
        Reply::json(
            503,
            r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#,
        ),
    );
    server.push(
        "/v1/chat/completions",
        Reply::json(500, r#"{"error":"model is loading"}"#),
    );
    let body = [chunk(json!({"content": "ready"})), finish("stop")].concat();
    server.push("/v1/chat/completions", Reply::sse_in_pieces(&body, 100));
    let client = client(&server, options()).await;
    let events = collect(&client, request()).await;
    assert_eq!(text_of(&events), "ready");
    assert_eq!(server.requests("/v1/chat/completions").len(), 3);
}

#[tokio::test]
async fn a_connection_closed_before_the_response_is_tried_again_once() {
    let server = server().await;
    server.push("/v1/chat/completions", Reply::close());
    let body = [chunk(json!({"content": "ready"})), finish("stop")].concat();
    server.push("/v1/chat/completions", Reply::sse_in_pieces(&body, 100));
    let client = client(&server, options()).await;
    let events = collect(&client, request()).await;
    assert_eq!(text_of(&events), "ready");
    assert_eq!(server.requests("/v1/chat/completions").len(), 2);
    // Closed twice in a row: an error naming the URL, not a loop.
    server.push("/v1/chat/completions", Reply::close());
    server.push("/v1/chat/completions", Reply::close());
    let events = collect(&client, request()).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Err(LlmError::Transport { url, .. }) if url.contains("/v1/chat/completions"))),
        "{events:?}"
    );
    assert_eq!(server.requests("/v1/chat/completions").len(), 4);
}

#[tokio::test]
async fn connection_refused_names_the_url() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}/v1");
    let error = OpenAiClient::connect("openai:m", "m", &base, options())
        .await
        .unwrap_err();
    assert!(matches!(error, LlmError::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
}

#[tokio::test]
async fn an_idle_stream_times_out_with_an_error() {
    let server = server().await;
    server.push(
        "/v1/chat/completions",
        Reply::stream(
            "text/event-stream",
            vec![
                Part::Bytes(chunk(json!({"content": "thinking"})).into_bytes()),
                Part::Hang,
            ],
        ),
    );
    let client = client(
        &server,
        ConnectOptions {
            idle_timeout: Duration::from_millis(300),
            ..options()
        },
    )
    .await;
    let events = collect(&client, request()).await;
    assert_eq!(text_of(&events), "thinking");
    assert!(matches!(events.last().unwrap(), Err(LlmError::Idle { .. })));
}

#[tokio::test]
async fn dropping_the_stream_closes_the_request() {
    let server = server().await;
    server.push(
        "/v1/chat/completions",
        Reply::stream(
            "text/event-stream",
            vec![
                Part::Bytes(chunk(json!({"content": "a"})).into_bytes()),
                Part::KeepAliveUntilClosed,
            ],
        ),
    );
    let client = client(&server, options()).await;
    let mut stream = client.stream(request());
    assert_eq!(
        stream.next().await.unwrap().unwrap(),
        ModelEvent::Text("a".into())
    );
    drop(stream);
    for _ in 0..500 {
        if server.client_gone() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server never saw the connection close");
}

#[tokio::test]
async fn a_wrong_model_name_lists_the_served_models() {
    let server = server().await;
    let base = format!("{}/v1", server.url);
    let error = OpenAiClient::connect("openai:gpt-4", "gpt-4", &base, options())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("gpt-4"), "{error}");
    assert!(error.to_string().contains("serves: coder"), "{error}");

    // The same when the server only says so at request time.
    server.push(
        "/v1/chat/completions",
        Reply::json(
            404,
            r#"{"error":{"message":"The model `coder` does not exist."}}"#,
        ),
    );
    let client = client(&server, options()).await;
    let events = collect(&client, request()).await;
    let error = events.last().unwrap().as_ref().unwrap_err();
    assert!(matches!(error, LlmError::UnknownModel { available, .. } if available == &["coder"]));
}

#[tokio::test]
async fn non_json_error_bodies_are_shown_shortened() {
    let server = server().await;
    let page = format!("<html><body>Bad gateway {}</body></html>", "x".repeat(5000));
    server.push("/v1/chat/completions", Reply::text(418, &page));
    let client = client(&server, options()).await;
    let events = collect(&client, request()).await;
    let message = events.last().unwrap().as_ref().unwrap_err().to_string();
    assert!(message.contains("HTTP 418"), "{message}");
    assert!(message.contains("<html><body>Bad gateway"), "{message}");
    assert!(message.contains("bytes in all"), "{message}");
    assert!(message.len() < 1000, "{}", message.len());
}

#[tokio::test]
async fn context_overflow_is_its_own_error() {
    let server = server().await;
    server.push(
        "/v1/chat/completions",
        Reply::json(400, r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}}"#),
    );
    let client = client(&server, options()).await;
    let events = collect(&client, request()).await;
    assert!(matches!(
        events.last().unwrap(),
        Err(LlmError::ContextOverflow(_))
    ));
}

#[tokio::test]
async fn the_api_key_the_response_schema_and_a_raised_temperature_are_sent() {
    let server = server().await;
    for _ in 0..2 {
        server.push(
            "/v1/chat/completions",
            Reply::sse_in_pieces(
                &[chunk(json!({"content": "{}"})), finish("stop")].concat(),
                50,
            ),
        );
    }
    let client = client(
        &server,
        ConnectOptions {
            api_key: Some("sk-local".into()),
            ..options()
        },
    )
    .await;
    let mut request = request();
    request.response_schema = Some(json!({"type": "object"}));
    request.temperature = Some(0.6);
    collect(&client, request).await;
    collect(&client, self::request()).await;
    let sent = &server.requests("/v1/chat/completions")[0];
    assert!(
        sent.headers
            .to_ascii_lowercase()
            .contains("authorization: bearer sk-local")
    );
    let body: Value = serde_json::from_str(&sent.body).unwrap();
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(
        body["response_format"]["json_schema"]["schema"],
        json!({"type": "object"})
    );
    assert!((body["temperature"].as_f64().unwrap() - 0.6).abs() < 1e-6);
    // Unraised, the server's own setting stands.
    let body: Value =
        serde_json::from_str(&server.requests("/v1/chat/completions")[1].body).unwrap();
    assert!(body.get("temperature").is_none(), "{body}");
}

// ---- Ollama ----------------------------------------------------------------------

const SHOW: &str = r#"{"model_info":{"general.architecture":"qwen2","qwen2.context_length":131072},"parameters":"stop \"<|im_end|>\""}"#;

async fn ollama(server: &MockServer, options: ConnectOptions) -> OllamaClient {
    OllamaClient::connect("ollama:qwen", "qwen", &server.url, options)
        .await
        .unwrap()
}

#[tokio::test]
async fn ollama_always_sends_num_ctx() {
    let server = MockServer::start().await;
    server.always("/api/show", Reply::json(200, SHOW));
    let lines = concat!(
        "{\"message\":{\"role\":\"assistant\",\"content\":\"Hé\"},\"done\":false}\n",
        "{\"message\":{\"role\":\"assistant\",\"content\":\"llo\"},\"done\":false}\n",
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":30,\"eval_count\":2}\n"
    );
    server.always("/api/chat", Reply::sse_in_pieces(lines, 3));

    // The model's window, capped, when nothing is configured.
    let client = ollama(&server, options()).await;
    assert_eq!(client.info().context_window, Some(32768));
    let events = collect(&client, request()).await;
    assert_eq!(text_of(&events), "Héllo");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Ok(ModelEvent::Usage(u)) if u.prompt_tokens == Some(30)))
    );
    let body: Value = serde_json::from_str(&server.requests("/api/chat")[0].body).unwrap();
    assert_eq!(body["options"]["num_ctx"], 32768);

    // The configured window wins.
    let client = ollama(
        &server,
        ConnectOptions {
            context_window: Some(8192),
            ..options()
        },
    )
    .await;
    collect(&client, request()).await;
    let body: Value = serde_json::from_str(&server.requests("/api/chat")[1].body).unwrap();
    assert_eq!(body["options"]["num_ctx"], 8192);
}

#[tokio::test]
async fn ollama_retries_while_loading_and_reads_native_calls() {
    let server = MockServer::start().await;
    server.always("/api/show", Reply::json(200, SHOW));
    server.push(
        "/api/chat",
        Reply::json(500, r#"{"error":"llama runner process is loading model"}"#),
    );
    let lines = concat!(
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"read\",\"arguments\":{\"path\":\"a.py\"}}}]},\"done\":false}\n",
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"prompt_eval_count\":9,\"eval_count\":5}\n"
    );
    server.push("/api/chat", Reply::sse_in_pieces(lines, 7));
    let client = ollama(&server, options()).await;
    let mut request = request();
    native_tool(&mut request, "read");
    request.response_schema = Some(json!({"type": "object"}));
    let events = collect(&client, request).await;
    assert!(
        matches!(&events[0], Ok(ModelEvent::ToolCall { name, arguments, .. })
        if name == "read" && arguments == "{\"path\":\"a.py\"}"),
        "{events:?}"
    );
    assert_eq!(server.requests("/api/chat").len(), 2);
    let body: Value = serde_json::from_str(&server.requests("/api/chat")[1].body).unwrap();
    assert_eq!(body["tools"][0]["function"]["name"], "read");
    assert_eq!(body["format"], json!({"type": "object"}));
}

#[tokio::test]
async fn ollama_unknown_model_lists_the_pulled_ones() {
    let server = MockServer::start().await;
    server.always(
        "/api/show",
        Reply::json(404, r#"{"error":"model 'qwen' not found"}"#),
    );
    server.always(
        "/api/tags",
        Reply::json(
            200,
            r#"{"models":[{"name":"llama3.2:3b"},{"name":"qwen2.5-coder:7b"}]}"#,
        ),
    );
    let error = OllamaClient::connect("ollama:qwen", "qwen", &server.url, options())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("llama3.2:3b, qwen2.5-coder:7b"),
        "{error}"
    );
}

#[tokio::test]
async fn ollama_mid_stream_error_and_cut_stream() {
    let server = MockServer::start().await;
    server.always("/api/show", Reply::json(200, SHOW));
    server.push(
        "/api/chat",
        Reply::sse_in_pieces(
            "{\"message\":{\"content\":\"a\"},\"done\":false}\n{\"error\":\"out of memory\"}\n",
            5,
        ),
    );
    server.push(
        "/api/chat",
        Reply::sse_in_pieces("{\"message\":{\"content\":\"a\"},\"done\":false}\n", 5),
    );
    let client = ollama(&server, options()).await;
    let events = collect(&client, request()).await;
    assert!(matches!(events.last().unwrap(), Err(LlmError::Server(m)) if m == "out of memory"));
    let events = collect(&client, request()).await;
    assert!(matches!(
        events.last().unwrap(),
        Err(LlmError::StreamCut { .. })
    ));
}
