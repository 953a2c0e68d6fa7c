//! `keel run` and `keel doctor` against upstream llama.cpp's server with a real model.

mod common;
#[path = "../../keel-llm/tests/common/llama.rs"]
mod llama;

use common::{Env, parse_lines};
use llama::LlamaServer;
use serde_json::Value;

#[test]
fn the_loop_runs_two_iterations_against_a_real_server() {
    let Some(server) = LlamaServer::start(4096) else {
        return;
    };
    let env = Env::new(&[
        ("README.md", "# demo\n"),
        // A base model rambles: keep each response short.
        (".keel/config.toml", "max_tokens = 48\n"),
    ]);
    let out = env
        .keel()
        .args([
            "run",
            "--json",
            "--no-verify",
            "--max-iterations",
            "2",
            "--model",
        ])
        .arg(server.spec())
        .arg("List the files in this project.")
        .output()
        .unwrap();
    let events = parse_lines(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    assert_eq!(events[0]["type"], "session");
    assert_eq!(events.last().unwrap()["type"], "done");
    let usages: Vec<&Value> = events.iter().filter(|e| e["type"] == "usage").collect();
    assert!(!usages.is_empty());
    for usage in &usages {
        assert!(usage["prompt_tokens"].as_u64().unwrap() > 0, "{usage}");
        assert!(
            usage["completion_tokens"].as_u64().unwrap() <= 48,
            "{usage}"
        );
    }
    assert!(usages[0]["time_to_first_token_ms"].is_u64());
    for call in events.iter().filter(|e| e["type"] == "tool_call") {
        assert!(call["name"].is_string(), "{call}");
        assert!(call["call_id"].is_string(), "{call}");
    }
    assert!(!events.iter().any(|e| e["type"] == "error"), "{events:?}");
}

#[test]
fn a_window_too_small_for_the_system_prompt_is_refused() {
    let Some(server) = LlamaServer::start(1024) else {
        return;
    };
    let env = Env::new(&[("README.md", "# demo\n")]);
    let out = env
        .keel()
        .args(["run", "--json", "--model"])
        .arg(server.spec())
        .arg("anything")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("context window is 1024 tokens"), "{stderr}");
    assert!(stderr.contains("context_window"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing ran");
}

#[test]
fn doctor_checks_a_real_server() {
    let Some(server) = LlamaServer::start(4096) else {
        return;
    };
    let env = Env::new(&[]);
    let out = env.doctor(&server.spec());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let status = |check: &str| {
        stdout
            .lines()
            .find(|l| l[6..].starts_with(check))
            .map(|l| l[..4].to_string())
            .unwrap_or_else(|| panic!("no `{check}` line in:\n{stdout}"))
    };
    assert_eq!(status("model"), "PASS", "{stdout}");
    assert!(stdout.contains("context window 4096 tokens"), "{stdout}");
    assert_eq!(status("store"), "PASS", "{stdout}");
    // Whether the repeats were fast enough is timing (a WARN on a loaded machine); that
    // the server reused the prompt is not.
    assert_ne!(status("prefix cache"), "FAIL", "{stdout}");
    assert!(stdout.contains("prompt tokens reused"), "{stdout}");
    // A base model at temperature 0.8 may spend a call's budget on JSON whitespace
    // (all 3 in a row would be a FAIL); the constraint itself is tested in keel-llm.
    assert_ne!(status("constrained"), "FAIL", "{stdout}");
    assert!(
        stdout.contains("schema-constrained tool calls valid"),
        "{stdout}"
    );
    assert_ne!(status("decode"), "FAIL", "{stdout}");
    assert!(stdout.contains("tok/s"), "{stdout}");
}
