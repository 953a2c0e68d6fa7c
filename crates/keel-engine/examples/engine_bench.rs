//! The embedded engine's side of `bench/engine.py`: one measurement per invocation,
//! printed as one JSON object.
//!
//! engine_bench speed MODEL THREADS          prefill 512 / decode 128 tokens per second
//! engine_bench constrained MODEL SAMPLES    calls sampled at T=0.8 with and without the
//!                                           grammar: validity and ms per token
//! engine_bench ttft MODEL                   turn-2 vs turn-1 time to first token
//! engine_bench rss MODEL SESSIONS           peak RSS serving SESSIONS sessions at once

#[path = "../tests/common/schema.rs"]
mod schema;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use keel_engine::{Engine, EngineOptions, SamplingOptions};
use keel_llm::ChatRequest;
use keel_protocol::Message;
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: engine_bench speed|constrained|ttft|rss MODEL [N]");
        std::process::exit(2);
    }
    let model = Path::new(&args[2]);
    let n: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(0);
    let out = match args[1].as_str() {
        "speed" => speed(model, n.max(1)),
        "constrained" => constrained(model, n.max(1)),
        "ttft" => ttft(model),
        "rss" => rss(model, n.max(1)),
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    };
    println!("{out}");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn load(model: &Path, opts: EngineOptions) -> Arc<Engine> {
    Engine::load(model, opts).expect("load model")
}

fn speed(model: &Path, threads: usize) -> serde_json::Value {
    let engine = load(
        model,
        EngineOptions {
            threads: Some(threads),
            context_window: Some(4096),
            sampling: SamplingOptions {
                seed: Some(1),
                ignore_eog: true,
                ..SamplingOptions::default()
            },
            ..EngineOptions::default()
        },
    );
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(100);
    let tokens = engine.tokenize(&text, false);
    let prompt = &tokens[..512];
    let mut pp = Vec::new();
    let mut tg = Vec::new();
    for rep in 0..4 {
        let session = format!("s{rep}");
        let p = engine.prefill(&session, prompt).expect("prefill");
        engine.drop_session(&session);
        let mut r = ChatRequest::new(
            format!("g{rep}"),
            vec![Message::user("Tell me a long story.")],
        );
        r.max_tokens = Some(128);
        let g = engine
            .generate(&r, &|| false, &mut |_| {})
            .expect("generate");
        engine.drop_session(&r.session_id);
        if rep == 0 {
            continue; // warm-up
        }
        pp.push(512.0 / p.elapsed.as_secs_f64());
        tg.push(g.completion_tokens as f64 / g.decode_time.as_secs_f64());
    }
    json!({"prefill_tok_s": median(pp), "decode_tok_s": median(tg), "threads": threads})
}

fn constrained(model: &Path, samples: usize) -> serde_json::Value {
    let tools = keel_tools::ToolRegistry::builtin().specs();
    let mut system = format!(
        "You are a coding agent. Call a tool like this:\n{}\nTools:\n",
        keel_llm::calls::call_format(keel_llm::ToolProtocol::Xml)
    );
    for t in &tools {
        system.push_str(&format!(
            "- {}: {} {}\n",
            t.name, t.description, t.parameters
        ));
    }
    let mut result = serde_json::Map::new();
    for constrained in [false, true] {
        let mut valid = 0;
        let (mut tokens, mut secs) = (0usize, 0f64);
        for seed in 0..samples as u32 {
            let engine = load(
                model,
                EngineOptions {
                    context_window: Some(4096),
                    sampling: SamplingOptions {
                        seed: Some(seed),
                        temperature: 0.8,
                        ..SamplingOptions::default()
                    },
                    ..EngineOptions::default()
                },
            );
            let mut r = ChatRequest::new(
                format!("c{seed}"),
                vec![
                    Message::system(system.clone()),
                    Message::user("Run the test suite with pytest, then read src/app.py."),
                ],
            );
            r.max_tokens = Some(160);
            if constrained {
                r.tools = tools.clone();
            }
            let g = engine
                .generate_with_prefix(&r, "<tool_call>", &|| false, &mut |_| {})
                .expect("generate");
            // Only the first call counts: is it complete and valid?
            let first = match g.text.find("</tool_call>") {
                Some(end) => &g.text[..end + "</tool_call>".len()],
                None => &g.text,
            };
            match schema::check_calls(first, &tools) {
                Ok(n) if n >= 1 => valid += 1,
                Ok(_) => eprintln!("no complete call: {first:?}"),
                Err(e) => eprintln!("invalid: {e}"),
            }
            tokens += g.completion_tokens;
            secs += g.decode_time.as_secs_f64();
        }
        let key = if constrained {
            "constrained"
        } else {
            "unconstrained"
        };
        result.insert(
            key.into(),
            json!({"valid": valid, "samples": samples, "ms_per_token": secs * 1000.0 / tokens as f64, "tok_s": tokens as f64 / secs}),
        );
    }
    serde_json::Value::Object(result)
}

fn ttft(model: &Path) -> serde_json::Value {
    let engine = load(
        model,
        EngineOptions {
            context_window: Some(4096),
            sampling: SamplingOptions {
                seed: Some(3),
                ..SamplingOptions::default()
            },
            ..EngineOptions::default()
        },
    );
    let mut ratios = Vec::new();
    let mut first = Vec::new();
    let mut second = Vec::new();
    let mut detail = json!(null);
    for rep in 0..3 {
        let system = format!(
            "Run {rep}. You are a careful coding agent working in a Rust repository. ",
        ) + &"Follow the project's conventions, keep changes small, run the tests after every edit and explain what you changed. ".repeat(75);
        let mut messages = vec![
            Message::system(system),
            Message::user("Where is the parser?"),
        ];
        let session = format!("t{rep}");
        let mut r = ChatRequest::new(session.clone(), messages.clone());
        r.max_tokens = Some(1);
        let g1 = engine.generate(&r, &|| false, &mut |_| {}).expect("turn 1");
        messages.push(Message::assistant(g1.text.clone(), vec![]));
        messages.push(Message::user(
            "Now look at the lexer as well: it mis-handles string escapes in raw strings and nested block comments. Find the function that reads tokens, explain the bug, and propose a fix with a test that covers both cases, keeping the public API unchanged.".to_string(),
        ));
        let mut r = ChatRequest::new(session, messages);
        r.max_tokens = Some(1);
        let g2 = engine.generate(&r, &|| false, &mut |_| {}).expect("turn 2");
        let t1 = g1.time_to_first_token.unwrap_or_default().as_secs_f64();
        let t2 = g2.time_to_first_token.unwrap_or_default().as_secs_f64();
        first.push(t1 * 1000.0);
        second.push(t2 * 1000.0);
        ratios.push(t2 / t1);
        detail = json!({"turn1_prompt": g1.prompt_tokens, "turn2_prompt": g2.prompt_tokens, "turn2_cached": g2.cached_tokens, "turn2_evaluated": g2.prompt_tokens - g2.cached_tokens});
    }
    json!({"turn1_ttft_ms": median(first), "turn2_ttft_ms": median(second), "ratio": median(ratios), "tokens": detail})
}

fn rss(model: &Path, sessions: usize) -> serde_json::Value {
    let engine = load(
        model,
        EngineOptions {
            max_sessions: sessions,
            sampling: SamplingOptions {
                seed: Some(5),
                ignore_eog: true,
                ..SamplingOptions::default()
            },
            ..EngineOptions::default()
        },
    );
    let started = Instant::now();
    let handles: Vec<_> = (0..sessions)
        .map(|i| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut r = ChatRequest::new(
                    format!("r{i}"),
                    vec![
                        Message::system("You are a helpful assistant. ".repeat(60)),
                        Message::user("Write a story about a lighthouse."),
                    ],
                );
                r.max_tokens = Some(64);
                engine
                    .generate(&r, &|| false, &mut |_| {})
                    .expect("generate")
                    .completion_tokens
            })
        })
        .collect();
    let tokens: usize = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    json!({"sessions": sessions, "peak_rss_mb": hwm_kb as f64 / 1024.0, "tokens": tokens, "seconds": started.elapsed().as_secs_f64(), "context_window": engine.context_window()})
}
