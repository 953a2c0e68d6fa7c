//! The system turn's KV cache kept on disk between processes, on a real coding model
//! (Qwen2.5-Coder-0.5B, greedy): an engine that starts empty takes the system turn from
//! the store and answers exactly as the engine that evaluated it; a damaged file is
//! evaluated again and replaced, never used.

#[path = "common/model.rs"]
mod model;

use std::path::Path;
use std::sync::Arc;

use keel_engine::{Engine, EngineOptions, Generation, SamplingOptions};
use keel_llm::ChatRequest;
use keel_protocol::Message;
use model::coding_model;

/// A system turn of a few hundred tokens, like keel's own.
fn system() -> String {
    let mut text = String::from(
        "You are a careful coding assistant working in a Python project. You answer with code only.\n\nRules:\n",
    );
    for n in 1..=30 {
        text.push_str(&format!(
            "{n}. Keep function number {n} short, name its arguments clearly and return a value instead of printing it.\n"
        ));
    }
    text
}

fn engine(store: &Path) -> Arc<Engine> {
    let path = coding_model("qwen2.5-coder-0.5b-instruct.gguf").expect("the 0.5B model");
    let options = EngineOptions {
        context_window: Some(2048),
        prefix_cache: Some(store.to_path_buf()),
        sampling: SamplingOptions {
            temperature: 0.0,
            seed: Some(1),
            ..SamplingOptions::default()
        },
        ..EngineOptions::default()
    };
    Engine::load(&path, options).expect("load")
}

fn ask(engine: &Engine, session: &str, question: &str) -> Generation {
    let mut request = ChatRequest::new(
        session,
        vec![Message::system(system()), Message::user(question)],
    );
    request.max_tokens = Some(24);
    engine
        .generate(&request, &|| false, &mut |_| {})
        .expect("generate")
}

fn saved(store: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(store)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "kv"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_new_engine_takes_the_system_turn_from_the_store_and_answers_the_same() {
    if coding_model("qwen2.5-coder-0.5b-instruct.gguf").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("kv");
    let question = "Write a function that adds two numbers.";

    // The first process: nothing stored, the whole prompt evaluated, the system turn saved.
    let first = ask(&engine(&store), "a", question);
    assert_eq!(first.cached_tokens, 0, "nothing was stored yet");
    let files = saved(&store);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(!first.text.is_empty());

    // A new engine (as a new process has): its empty cache is filled from the store.
    let second = ask(&engine(&store), "b", question);
    assert!(
        second.cached_tokens >= 300 && second.cached_tokens < second.prompt_tokens,
        "{} of {} prompt tokens from the store",
        second.cached_tokens,
        second.prompt_tokens
    );
    assert_eq!(second.text, first.text, "greedy answers must not change");

    // Another task with the same system turn is served from the same file.
    let other = ask(
        &engine(&store),
        "c",
        "Write a function that reverses a string.",
    );
    assert_eq!(other.cached_tokens, second.cached_tokens);
    assert_eq!(saved(&store).len(), 1);

    // A damaged file is not used: evaluated again, same answer, the file rewritten.
    std::fs::write(&files[0], b"not a state file").unwrap();
    let repaired = ask(&engine(&store), "d", question);
    assert_eq!(repaired.cached_tokens, 0);
    assert_eq!(repaired.text, first.text);
    let again = ask(&engine(&store), "e", question);
    assert_eq!(again.cached_tokens, second.cached_tokens);
    assert_eq!(again.text, first.text);
}
