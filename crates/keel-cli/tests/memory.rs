//! Project memory across separate `keel` processes.

use serde_json::{Value, json};

mod common;

use common::{Env, call};

const AUTH: &str = "def valid(token):\n    return True\n";

/// Runs a replay script given as steps; returns the events.
fn run(env: &Env, name: &str, steps: &[Value], extra: &[&str], task: &str) -> Vec<Value> {
    env.run(&env.script(name, steps), extra, task).1
}

fn result_of<'a>(events: &'a [Value], tool: &str) -> &'a str {
    events
        .iter()
        .find(|e| e["type"] == "tool_result" && e["name"] == tool)
        .and_then(|e| e["output"].as_str())
        .unwrap_or_else(|| panic!("no {tool} result in {events:#?}"))
}

#[test]
fn the_next_session_knows_what_the_last_one_changed() {
    let env = Env::new(&[("src/auth.py", AUTH)]);
    let first = run(
        &env,
        "one.jsonl",
        &[
            json!({"content": call("edit", json!({"path": "src/auth.py", "old_string": "return True", "new_string": "return not token.expired"}))}),
            json!({"content": "valid() now rejects expired tokens."}),
        ],
        &[],
        "reject expired tokens",
    );
    assert_eq!(first.last().unwrap()["outcome"], "completed");

    // A new session in a new process.
    let second = run(
        &env,
        "two.jsonl",
        &[
            json!({"content": call("recall", json!({"query": "what did we change last session"}))}),
            json!({"content": "Last session changed src/auth.py."}),
        ],
        &[],
        "what did we change last session?",
    );
    assert_ne!(second[0]["session_id"], first[0]["session_id"]);
    let context = second.iter().find(|e| e["type"] == "context").unwrap()["content"]
        .as_str()
        .unwrap();
    assert!(
        context.contains("What the last session changed:"),
        "{context}"
    );
    assert!(
        context.contains("src/auth.py (+1 -1)")
            && context.contains("valid() now rejects expired tokens."),
        "{context}"
    );
    let recalled = result_of(&second, "recall");
    assert!(
        recalled.contains("src/auth.py")
            && recalled.contains("valid() now rejects expired tokens."),
        "{recalled}"
    );
    assert!(
        recalled.contains("Request: reject expired tokens"),
        "{recalled}"
    );
}

#[test]
fn a_turn_without_an_answer_still_gets_a_change_log_entry() {
    let env = Env::new(&[("src/auth.py", AUTH)]);
    let events = run(
        &env,
        "s.jsonl",
        &[
            json!({"content": call("bash", json!({"command": "printf 'x\\ny\\n' > notes.txt"}))}),
            json!({"content": call("bash", json!({"command": "echo more >> notes.txt"}))}),
        ],
        &["--max-iterations", "2"],
        "take notes",
    );
    assert_eq!(events.last().unwrap()["outcome"], "max_iterations");
    let list = env.stdout(&["memory", "list"]);
    assert!(
        list.contains("change") && list.contains("notes.txt (+3 -0)"),
        "{list}"
    );
    assert!(list.contains("Summary: wrote notes.txt (+3)"), "{list}");
}

#[test]
fn facts_are_kept_recalled_flagged_stale_and_forgotten() {
    let env = Env::new(&[("src/auth.py", AUTH)]);
    let events = run(
        &env,
        "s.jsonl",
        &[
            json!({"content": call("remember", json!({"text": "token checks live in src/auth.py"}))}),
            json!({"content": "Noted."}),
        ],
        &[],
        "remember where auth is",
    );
    assert!(result_of(&events, "remember").starts_with("remembered (memory "));
    env.stdout(&["memory", "add", "tests run with `make check`"]);

    let found = env.stdout(&["memory", "search", "where are the token checks?"]);
    let first = found.lines().next().unwrap();
    assert!(
        first.contains("token checks live in src/auth.py") && !first.contains("stale"),
        "{found}"
    );

    std::fs::write(
        env.repo.path().join("src/auth.py"),
        "def valid(token):\n    return False\n",
    )
    .unwrap();
    let list = env.stdout(&["memory", "list"]);
    assert!(
        list.contains("possibly stale: src/auth.py changed"),
        "{list}"
    );
    assert_eq!(
        env.stdout(&["memory", "reindex"]).trim(),
        "checked 2 memories: 1 possibly stale"
    );

    let id = first.split_whitespace().next().unwrap();
    env.stdout(&["memory", "forget", id]);
    let list = env.stdout(&["memory", "list"]);
    assert!(
        !list.contains("token checks") && list.contains("make check"),
        "{list}"
    );
    let out = env
        .keel()
        .args(["memory", "forget", "99999"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));

    // Memories are per project.
    let elsewhere = tempfile::tempdir().unwrap();
    assert_eq!(
        env.stdout(&["memory", "list", "-w", elsewhere.path().to_str().unwrap()]),
        ""
    );
}
