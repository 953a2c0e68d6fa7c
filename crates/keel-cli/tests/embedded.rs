//! `keel` on the embedded engine with the real default model: the registry commands,
//! the default model when none is configured, the agent loop, and bad model files.

mod common;
#[path = "../../keel-engine/tests/common/model.rs"]
mod model;

use common::{Env, parse_lines};
use model::model;
use serde_json::Value;

#[test]
fn model_add_list_and_info() {
    let Some(path) = model() else { return };
    let env = Env::new(&[]);
    let out = env
        .keel()
        .args(["model", "add", "gemma-3-270m"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = env.stdout(&["model", "list"]);
    assert!(list.contains("gemma-3-270m (default)"), "{list}");
    let info: Value =
        serde_json::from_str(&env.stdout(&["model", "info", "gemma-3-270m", "--json"])).unwrap();
    assert_eq!(info["architecture"], "gemma3");
    assert_eq!(info["quantisation"], "Q4_K_M");
    assert_eq!(info["context_length"], 32768);
    assert_eq!(info["chat_template"], false);
    assert_eq!(info["keel_template"], "gemma");
    // Not a GGUF: refused before it is registered.
    std::fs::write(env.repo.path().join("x.gguf"), "nope").unwrap();
    let stderr = usage_error(&env, &["model", "add", "x", "x.gguf"]);
    assert!(stderr.contains("x.gguf"), "{stderr}");
}

#[test]
fn the_default_model_runs_two_iterations_with_well_formed_calls() {
    let Some(path) = model() else { return };
    let env = Env::new(&[
        ("README.md", "# demo\n"),
        // A base model rambles: keep each response short.
        (".keel/config.toml", "max_tokens = 96\n"),
    ]);
    let out = env
        .keel()
        .args(["model", "add", "gemma-3-270m"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    // No --model and nothing configured: the registered default model.
    let out = env
        .keel()
        .args(["run", "--json", "--no-verify", "--max-iterations", "2"])
        .arg("Read README.md with the read tool, then say what it contains.")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    let events = parse_lines(&out.stdout);
    assert_eq!(events[0]["type"], "session");
    assert_eq!(events.last().unwrap()["type"], "done");
    let usages: Vec<&Value> = events.iter().filter(|e| e["type"] == "usage").collect();
    assert!(!usages.is_empty());
    let tools = env.stdout(&["tools", "--json"]);
    let tools: Vec<Value> = serde_json::from_str(&tools).unwrap();
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    for call in events.iter().filter(|e| e["type"] == "tool_call") {
        let name = call["name"].as_str().unwrap();
        assert!(names.contains(&name), "{call}");
        assert!(call["arguments"].is_object(), "{call}");
    }
    // The second request reuses the first one's KV cache.
    if usages.len() > 1 {
        assert!(
            usages[1]["cached_prompt_tokens"].as_u64().unwrap() > 0,
            "{:?}",
            usages[1]
        );
    }
    assert!(!events.iter().any(|e| e["type"] == "error"), "{events:?}");
}

/// Runs `keel ARGS`, expects a usage error (exit 2) and returns its stderr.
fn usage_error(env: &Env, args: &[&str]) -> String {
    let out = env.keel().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn missing_and_corrupt_model_files_are_named() {
    let env = Env::new(&[("README.md", "# demo\n")]);
    let stderr = usage_error(
        &env,
        &["run", "--model", "embedded:/nonexistent/m.gguf", "hi"],
    );
    assert!(stderr.contains("/nonexistent/m.gguf"), "{stderr}");

    std::fs::write(
        env.repo.path().join("bad.gguf"),
        b"GGUF\x03\x00\x00\x00garbage",
    )
    .unwrap();
    let stderr = usage_error(&env, &["run", "--model", "embedded:bad.gguf", "hi"]);
    assert!(
        stderr.contains("bad.gguf") && stderr.contains("cannot load model"),
        "{stderr}"
    );

    // An unknown name lists what is registered (nothing here) and how to add one.
    let stderr = usage_error(&env, &["run", "--model", "embedded:qwen", "hi"]);
    assert!(stderr.contains("keel model add"), "{stderr}");

    // Nothing configured and no default installed: says how to get one.
    let stderr = usage_error(&env, &["run", "hi"]);
    assert!(stderr.contains("scripts/setup.sh"), "{stderr}");
}
