//! `keel mcp` driven by the official MCP Python SDK, `keel mcp list`, and `keel run`
//! with MCP servers from the project configuration (the npm filesystem server).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Env, call, parse_lines};
use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fs_server_binary() -> PathBuf {
    repo_root().join("tests/mcp/node_modules/.bin/mcp-server-filesystem")
}

/// The npm filesystem server and the Python SDK are installed by `scripts/setup.sh`;
/// without them the test is skipped, unless `KEEL_REQUIRE_MCP_PEERS` makes that a
/// failure.
fn peers_available() -> bool {
    let python = Command::new("python3")
        .args(["-c", "import mcp"])
        .status()
        .is_ok_and(|s| s.success());
    if python && fs_server_binary().exists() {
        return true;
    }
    assert!(
        std::env::var_os("KEEL_REQUIRE_MCP_PEERS").is_none(),
        "KEEL_REQUIRE_MCP_PEERS is set but the MCP peers are missing: run scripts/setup.sh"
    );
    eprintln!("skipped: the MCP peers are missing (scripts/setup.sh installs them)");
    false
}

/// Runs the SDK client script against `keel mcp --model replay:SCRIPT` and returns what
/// it saw.
fn drive_keel_mcp(env: &Env, mode: &str, script: &Path) -> Value {
    let keel = env.keel();
    let mut python = Command::new("python3");
    python
        .arg(repo_root().join("tests/mcp/keel_client.py"))
        .arg(mode)
        .arg(keel.get_program())
        .args(["mcp", "--model"])
        .arg(format!("replay:{}", script.display()))
        .current_dir(env.repo.path());
    for (key, value) in keel.get_envs() {
        match value {
            Some(value) => python.env(key, value),
            None => python.env_remove(key),
        };
    }
    let out = python.output().unwrap();
    assert!(
        out.status.success(),
        "the SDK client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn the_python_sdk_client_uses_keel_mcp_in_both_protocol_revisions() {
    if !peers_available() {
        return;
    }
    for (mode, protocol) in [("auto", "2026-07-28"), ("legacy", "2025-11-25")] {
        let env = Env::new(&[("notes.txt", "alpha\nbeta\n")]);
        let script = env.script(
            "script.jsonl",
            &[
                json!({"content": call("write", json!({"path": "hello.txt", "content": "hello\n"}))}),
                json!({"content": "I wrote hello.txt."}),
                json!({"content": call("read", json!({"path": "hello.txt"}))}),
                json!({"content": "It says hello."}),
            ],
        );
        let seen = drive_keel_mcp(&env, mode, &script);
        assert_eq!(seen["protocol"], protocol, "{mode}: {seen}");
        assert_eq!(seen["server"], "keel");

        let tools = seen["tools"].as_object().unwrap();
        let mut names: Vec<&str> = tools.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "bash",
                "edit",
                "git",
                "glob",
                "grep",
                "keel_task",
                "read",
                "write"
            ]
        );
        assert_eq!(tools["read"]["read_only"], true);
        assert_eq!(tools["write"]["read_only"], false);
        assert_eq!(tools["keel_task"]["schema"]["required"], json!(["task"]));

        assert_eq!(seen["read"]["is_error"], false, "{seen}");
        assert!(seen["read"]["text"].as_str().unwrap().contains("alpha"));
        // Containment holds over MCP as it does inside keel.
        assert_eq!(seen["read_outside"]["is_error"], true, "{seen}");
        assert!(
            seen["read_outside"]["text"]
                .as_str()
                .unwrap()
                .contains("outside the workspace"),
            "{seen}"
        );

        let task = &seen["task"];
        assert_eq!(task["is_error"], false, "{task}");
        let report = &task["structured"];
        assert_eq!(report["outcome"], "completed");
        assert_eq!(report["answer"], "I wrote hello.txt.");
        assert_eq!(report["changed_files"][0]["path"], "hello.txt");
        assert_eq!(report["changed_files"][0]["status"], "changed");
        assert!(
            task["text"]
                .as_str()
                .unwrap()
                .contains("outcome: completed")
        );
        assert!(task["text"].as_str().unwrap().contains("hello.txt"));
        // The task's steps arrived as progress notifications, in order.
        let messages: Vec<&str> = task["progress"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["message"].as_str().unwrap())
            .collect();
        assert!(
            messages.iter().any(|m| m.starts_with("write {")),
            "{messages:?}"
        );
        assert!(messages.contains(&"write: ok"), "{messages:?}");
        assert_eq!(messages.last(), Some(&"done: completed"), "{messages:?}");
        let values: Vec<f64> = task["progress"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["progress"].as_f64().unwrap())
            .collect();
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
        assert_eq!(
            std::fs::read_to_string(env.repo.path().join("hello.txt")).unwrap(),
            "hello\n"
        );

        // The same session continued, and stored like any other.
        let continued = &seen["continued"]["structured"];
        assert_eq!(continued["session_id"], report["session_id"]);
        assert_eq!(continued["answer"], "It says hello.");
        assert_eq!(continued["changed_files"], json!([]));
        let id = report["session_id"].as_str().unwrap();
        let exported = env.stdout(&["sessions", "export", id]);
        let users = parse_lines(exported.as_bytes())
            .into_iter()
            .filter(|e| e["type"] == "user")
            .count();
        assert_eq!(users, 2);

        assert_eq!(seen["bad_session"]["is_error"], true);
        assert!(
            seen["bad_session"]["text"]
                .as_str()
                .unwrap()
                .contains("no session no-such-session")
        );
    }
}

/// A project configuration with the npm filesystem server and one that cannot start.
fn configure_servers(env: &Env) {
    let config = format!(
        r#"[[mcp.servers]]
name = "fs"
command = "{}"
args = ["."]

[[mcp.servers]]
name = "broken"
command = "/nonexistent/mcp-server"
"#,
        fs_server_binary().display()
    );
    std::fs::create_dir_all(env.repo.path().join(".keel")).unwrap();
    std::fs::write(env.repo.path().join(".keel/config.toml"), config).unwrap();
    env.trust();
}

#[test]
fn keel_run_gets_the_configured_servers_tools() {
    if !peers_available() {
        return;
    }
    let env = Env::new(&[("notes.txt", "alpha\nbeta\n")]);
    configure_servers(&env);
    let root = env.repo.path().canonicalize().unwrap();
    let script = env.script(
        "script.jsonl",
        &[
            json!({"content": call("fs__read_text_file", json!({"path": root.join("notes.txt")}))}),
            json!({"content": call("fs__read_text_file", json!({"path": "/etc/hostname"}))}),
            json!({"content": "Read it."}),
        ],
    );
    let out = env
        .keel()
        .args(["run", "--json", "--no-verify", "--model"])
        .arg(format!("replay:{}", script.display()))
        .arg("read the notes")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("MCP server `broken` did not start").count(),
        1,
        "reported once: {stderr}"
    );
    let results: Vec<Value> = parse_lines(&out.stdout)
        .into_iter()
        .filter(|e| e["type"] == "tool_result")
        .collect();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["name"], "fs__read_text_file");
    assert_eq!(results[0]["is_error"], false, "{}", results[0]);
    assert!(results[0]["output"].as_str().unwrap().contains("beta"));
    assert_eq!(results[1]["is_error"], true);
    assert!(
        results[1]["output"]
            .as_str()
            .unwrap()
            .contains("Access denied")
    );
}

#[test]
fn keel_mcp_list_shows_state_and_tools() {
    if !peers_available() {
        return;
    }
    let env = Env::new(&[("notes.txt", "alpha\n")]);
    let out = env.keel().args(["mcp", "list"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no MCP servers configured"));

    configure_servers(&env);
    let out = env.keel().args(["mcp", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a server failed to start");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("fs: running, 14 tools, protocol 2025-11-25"),
        "{text}"
    );
    assert!(text.contains("fs__read_text_file"), "{text}");
    assert!(
        text.contains("broken: failed: cannot start `/nonexistent/mcp-server`"),
        "{text}"
    );

    // `keel doctor` starts them as `keel run` would and reports each.
    let script = env.script("script.jsonl", &[json!({"content": "hi"})]);
    let out = env.doctor(&format!("replay:{}", script.display()));
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("PASS  mcp fs        running, 14 tools"),
        "{text}"
    );
    assert!(text.contains("FAIL  mcp broken    cannot start"), "{text}");

    let out = env.keel().args(["mcp", "list", "--json"]).output().unwrap();
    let servers = parse_lines(&out.stdout);
    assert_eq!(servers.len(), 2);
    let fs = servers.iter().find(|s| s["name"] == "fs").unwrap();
    assert_eq!(fs["state"], "running");
    let read = fs["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "fs__read_text_file")
        .unwrap();
    assert_eq!(read["read_only"], true);
    assert_eq!(read["parameters"]["type"], "object");
}
