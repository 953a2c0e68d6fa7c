//! The embedded engine on the real default model (Gemma 3 270M, installed by
//! scripts/setup.sh): loading, streaming, KV reuse (counted and checked against cold
//! logits across the sliding-window trap), constrained calls, cancellation, overflow.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use keel_engine::{Engine, EngineError, EngineOptions, SamplingOptions, read_metadata};
use keel_llm::{ChatRequest, LlmError, ModelClient, ModelEvent};
use keel_protocol::Message;
#[path = "common/model.rs"]
mod model;
#[path = "common/schema.rs"]
mod schema;

use model::model;

use schema::check_calls;

fn options(seed: u32) -> EngineOptions {
    EngineOptions {
        context_window: Some(4096),
        sampling: SamplingOptions {
            seed: Some(seed),
            ..SamplingOptions::default()
        },
        ..EngineOptions::default()
    }
}

fn engine(seed: u32) -> Option<Arc<Engine>> {
    Some(Engine::load(&model()?, options(seed)).expect("load"))
}

fn request(session: &str, messages: Vec<Message>, max_tokens: u32) -> ChatRequest {
    let mut r = ChatRequest::new(session, messages);
    r.max_tokens = Some(max_tokens);
    r
}

#[test]
fn metadata_comes_from_the_gguf() {
    let Some(path) = model() else { return };
    let meta = read_metadata(&path).unwrap();
    assert_eq!(meta.architecture, "gemma3");
    assert_eq!(meta.quantisation, "Q4_K_M");
    assert_eq!(meta.context_length, 32768);
    assert_eq!(meta.sliding_window, Some(512));
    assert_eq!(meta.vocabulary, 262_144);
    assert!(!meta.chat_template, "the base model has no template");
    assert_eq!(meta.keel_template.as_deref(), Some("gemma"));
    assert!(
        (200_000_000..400_000_000).contains(&meta.parameters),
        "{}",
        meta.parameters
    );
    assert!(meta.file_bytes > 200_000_000);
}

#[test]
fn missing_and_corrupt_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.gguf");
    let err = Engine::load(&missing, EngineOptions::default()).unwrap_err();
    assert!(matches!(err, EngineError::ModelFile { .. }), "{err}");
    assert!(err.to_string().contains("nope.gguf"), "{err}");

    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "hello, I am not a model").unwrap();
    let err = Engine::load(&text, EngineOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("notes.gguf") && err.to_string().contains("not a GGUF"),
        "{err}"
    );

    // A real header cut short: llama.cpp refuses it and its reason is in the message.
    let Some(path) = model() else { return };
    let head = std::fs::read(&path).unwrap()[..1 << 20].to_vec();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, head).unwrap();
    let err = Engine::load(&cut, EngineOptions::default()).unwrap_err();
    assert!(matches!(err, EngineError::Load { .. }), "{err}");
    assert!(err.to_string().contains("cut.gguf"), "{err}");
}

#[test]
fn generation_streams_piece_by_piece() {
    let Some(engine) = engine(7) else { return };
    let mut pieces = Vec::new();
    let g = engine
        .generate(
            &request(
                "stream",
                vec![Message::user("Write a short poem about the sea.")],
                24,
            ),
            &|| false,
            &mut |p| pieces.push(p.to_string()),
        )
        .unwrap();
    assert!(
        g.completion_tokens > 1 && g.completion_tokens <= 24,
        "{g:?}"
    );
    assert!(pieces.len() > 1, "{pieces:?}");
    assert_eq!(pieces.concat(), g.text);
    assert!(g.time_to_first_token.is_some());
}

#[test]
fn turn_two_evaluates_only_the_new_suffix() {
    let Some(engine) = engine(3) else { return };
    let mut history = vec![
        Message::system("You are a helpful assistant. ".repeat(40)),
        Message::user("Name three colours."),
    ];
    let first = engine
        .generate(&request("kv", history.clone(), 40), &|| false, &mut |_| {})
        .unwrap();
    assert_eq!(first.cached_tokens, 0);
    history.push(Message::assistant(first.text.clone(), vec![]));
    history.push(Message::user("And three animals?"));
    let second = engine
        .generate(&request("kv", history, 8), &|| false, &mut |_| {})
        .unwrap();
    // Cached: the whole first prompt and the reply's own ids. Evaluated: the markup that
    // closes the reply and the new user turn.
    let suffix: usize = [
        ("<end_of_turn>\n", true),
        ("<start_of_turn>user\n", true),
        ("And three animals?", false),
        ("<end_of_turn>\n", true),
        ("<start_of_turn>model\n", true),
    ]
    .iter()
    .map(|(t, special)| engine.tokenize(t, *special).len())
    .sum();
    assert_eq!(
        second.cached_tokens,
        first.prompt_tokens + first.completion_tokens,
        "{second:?}"
    );
    assert_eq!(
        second.prompt_tokens - second.cached_tokens,
        suffix,
        "{second:?}"
    );
}

#[test]
fn a_prompt_is_counted_exactly_as_generation_evaluates_it() {
    let Some(engine) = engine(3) else { return };
    let messages = vec![
        Message::system("You are a careful assistant. ".repeat(20)),
        Message::user("Write <tool_call> and then stop."),
        Message::assistant("Here: <tool_call>{}</tool_call>", vec![]),
        Message::user("Name three colours."),
    ];
    let request = request("count", messages, 4);
    let counted = engine.count_prompt_tokens(&request);
    let generation = engine.generate(&request, &|| false, &mut |_| {}).unwrap();
    assert_eq!(generation.cached_tokens, 0);
    assert_eq!(counted, generation.prompt_tokens);
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Mean absolute logit difference. Batches of different shapes take different matmul
/// kernels, so a correct reuse is close but not always bit-identical to a cold run
/// (measured here: mean 0.01-0.2); reusing a sliding-window cache past its window gives
/// about 1.0.
fn mean_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

#[test]
fn reused_cache_gives_the_logits_of_a_cold_run() {
    let Some(engine) = engine(1) else { return };
    let text =
        "The quick brown fox jumps over the lazy dog while counting sheep and stars. ".repeat(120);
    let all = engine.tokenize(&text, false);
    assert!(all.len() > 1500, "{}", all.len());
    let a = &all[..1500];

    // Appending: only the suffix is evaluated, logits as cold.
    let first = engine.prefill("warm", &a[..1400]).unwrap();
    assert_eq!(first.cached, 0);
    let warm = engine.prefill("warm", a).unwrap();
    assert_eq!(
        (warm.cached, warm.evaluated, warm.rebuilt),
        (1400, 100, false)
    );
    let cold = engine.prefill("cold-a", a).unwrap();
    let d = mean_diff(&warm.logits, &cold.logits);
    assert!(d < 0.4, "appended: mean logit difference {d}");
    engine.drop_session("cold-a");

    // Diverging inside the sliding window (512): reuse is safe.
    let mut b = a[..1450].to_vec();
    b.extend(engine.tokenize(
        &" Then a completely different story begins here, with ships.".repeat(5),
        false,
    ));
    let near = engine.prefill("warm", &b).unwrap();
    assert_eq!((near.cached, near.rebuilt), (1450, false));
    let cold = engine.prefill("cold-b", &b).unwrap();
    let d = mean_diff(&near.logits, &cold.logits);
    assert!(d < 0.4, "near divergence: mean logit difference {d}");
    engine.drop_session("cold-b");

    // Diverging 800 tokens back, far outside the window: the cache must be rebuilt,
    // or the logits would silently be wrong.
    let mut c = a[..700].to_vec();
    c.extend(&all[1500..1500 + 300]);
    c.extend(engine.tokenize(
        &"Something else entirely, about rivers and mountains. ".repeat(40),
        false,
    ));
    let far = engine.prefill("warm", &c).unwrap();
    assert!(far.rebuilt, "{far:?}");
    assert_eq!(far.cached, 0);
    let cold = engine.prefill("cold-c", &c).unwrap();
    // Rebuilt from scratch: exactly the cold computation.
    let d = max_diff(&far.logits, &cold.logits);
    assert!(d < 1e-3, "far divergence: max logit difference {d}");
}

#[test]
fn constrained_calls_match_every_tools_schema_across_seeds() {
    let Some(path) = model() else { return };
    let tools = keel_tools::ToolRegistry::builtin().specs();
    let mut calls = 0;
    for tool in &tools {
        for seed in 0..4u32 {
            let mut opts = options(seed);
            opts.sampling.temperature = 0.8;
            opts.call_budget = 48; // small: the closing path runs too
            let engine = Engine::load(&path, opts).unwrap();
            let system = format!(
                "You can use this tool by writing a call:\n{}\nTool `{}`: {}\nArguments: {}",
                keel_llm::calls::call_format(keel_llm::ToolProtocol::Xml),
                tool.name,
                tool.description,
                tool.parameters
            );
            let mut r = request(
                &format!("{}-{seed}", tool.name),
                vec![
                    Message::system(system),
                    Message::user(format!("Use the {} tool now.", tool.name)),
                ],
                64,
            );
            r.tools = vec![tool.clone()];
            // Start the reply with the call opener so every sample exercises the grammar.
            let g = engine
                .generate_with_prefix(&r, "<tool_call>", &|| false, &mut |_| {})
                .unwrap();
            assert!(g.constrained_calls >= 1, "{g:?}");
            let found = check_calls(&g.text, &tools).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert!(
                found >= 1,
                "no complete call for {} (seed {seed}): {:?}",
                tool.name,
                g.text
            );
            calls += found;
            engine.drop_session(&r.session_id);
        }
    }
    assert!(calls >= tools.len() * 4);
}

#[test]
fn a_reply_that_must_end_with_a_call_gets_one_where_its_prose_ends() {
    // A chat model, which ends its turn (the base model above does not).
    let Some(path) = model::coding_model("qwen2.5-coder-0.5b-instruct.gguf") else {
        return;
    };
    let engine = Engine::load(&path, options(0)).expect("load");
    let tools = keel_tools::ToolRegistry::builtin().specs();
    let messages = vec![
        Message::system("You are a terse assistant."),
        Message::user("Say hello in one short sentence."),
    ];
    // Without the flag: the prose is the whole reply.
    let mut r = request("prose", messages.clone(), 96);
    r.tools = tools.clone();
    let free = engine.generate(&r, &|| false, &mut |_| {}).unwrap();
    assert_eq!(free.stop, keel_engine::Stop::EndOfTurn, "{free:?}");
    assert_eq!(free.constrained_calls, 0, "{free:?}");
    assert!(!free.text.trim().is_empty());
    // With it: the same prose, then a call under the grammar.
    let mut r = request("prose-then-call", messages, 96);
    r.tools = tools.clone();
    r.end_with_call = true;
    let g = engine.generate(&r, &|| false, &mut |_| {}).unwrap();
    assert_eq!(g.constrained_calls, 1, "{g:?}");
    let (prose, _) = g.text.split_once(keel_llm::calls::OPEN).expect("a call");
    assert_eq!(prose.trim(), free.text.trim());
    assert_eq!(check_calls(&g.text, &tools).unwrap(), 1, "{:?}", g.text);
    // A fenced block is the model's own way to write a file: no call forced after it.
    let mut r = request(
        "block",
        vec![
            Message::system("You are a terse assistant."),
            Message::user("Write a Python function that adds two numbers, in a code block."),
        ],
        160,
    );
    r.tools = tools;
    r.end_with_call = true;
    let g = engine.generate(&r, &|| false, &mut |_| {}).unwrap();
    assert!(g.text.contains("```"), "{g:?}");
    assert_eq!(g.stop, keel_engine::Stop::EndOfTurn, "{g:?}");
    assert_eq!(g.constrained_calls, 0, "{g:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_streams_usage_and_cancels_at_once() {
    let Some(path) = model() else { return };
    let client = keel_engine::EmbeddedClient::connect(path.to_str().unwrap(), options(5))
        .await
        .unwrap();
    let info = client.info();
    assert_eq!(info.context_window, Some(4096));
    assert_eq!(info.constraint, Some(keel_llm::Constraint::Grammar));

    use futures_util::StreamExt;
    let mut stream = client.stream(request(
        "c",
        vec![Message::user("Count from one to fifty.")],
        16,
    ));
    let mut text = String::new();
    let mut usage = None;
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            ModelEvent::Text(t) => text.push_str(&t),
            ModelEvent::Usage(u) => usage = Some(u),
            other => panic!("{other:?}"),
        }
    }
    let usage = usage.expect("usage");
    assert!(usage.completion_tokens.unwrap() <= 16 && !text.is_empty());

    // Dropping the stream mid-reply leaves the session usable: the next request on it
    // completes. (That the generation stops within a token is checked through the
    // cancellation hook below.)
    let engine = client.engine().clone();
    let mut stream = client.stream(request(
        "c2",
        vec![Message::user("Count from one to five hundred.")],
        2000,
    ));
    let _ = stream.next().await;
    drop(stream);
    let g = tokio::task::spawn_blocking(move || {
        engine.generate(
            &request("c2", vec![Message::user("Hi")], 4),
            &|| false,
            &mut |_| {},
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert!(g.completion_tokens <= 4);
}

#[test]
fn cancellation_stops_within_one_token() {
    let Some(engine) = engine(9) else { return };
    let pieces = AtomicUsize::new(0);
    let g = engine
        .generate(
            &request(
                "cancel",
                vec![Message::user("Count from one to five hundred.")],
                500,
            ),
            &|| pieces.load(Ordering::Relaxed) >= 5,
            &mut |_| {
                pieces.fetch_add(1, Ordering::Relaxed);
            },
        )
        .unwrap();
    assert_eq!(g.stop, keel_engine::Stop::Cancelled);
    assert!(g.completion_tokens <= 6, "{g:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_overflow_is_an_error_not_a_crash() {
    let Some(path) = model() else { return };
    let mut opts = options(2);
    opts.context_window = Some(256);
    let client = keel_engine::EmbeddedClient::connect(path.to_str().unwrap(), opts)
        .await
        .unwrap();
    use futures_util::StreamExt;
    // A prompt longer than the window.
    let long = "word ".repeat(400);
    let events: Vec<_> = client
        .stream(request("o1", vec![Message::user(long)], 8))
        .collect()
        .await;
    assert!(
        matches!(events.last(), Some(Err(LlmError::ContextOverflow(_)))),
        "{events:?}"
    );
    // A reply that runs into the end of the window.
    let events: Vec<_> = client
        .stream(request(
            "o2",
            vec![Message::user(
                "Count from one to one thousand: 1, 2, 3,".repeat(4),
            )],
            1000,
        ))
        .collect()
        .await;
    assert!(
        matches!(events.last(), Some(Err(LlmError::ContextOverflow(_)))),
        "{:?}",
        events.last()
    );
    // The engine still works afterwards.
    let events: Vec<_> = client
        .stream(request("o3", vec![Message::user("Hi")], 4))
        .collect()
        .await;
    assert!(events.iter().all(Result::is_ok), "{events:?}");
}
