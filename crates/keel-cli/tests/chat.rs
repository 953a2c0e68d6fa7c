//! `keel chat` driven in a pseudo-terminal with the replay model: turns, Ctrl-C,
//! /diff, /undo and /redo (also after --continue in a new process), plan mode, history.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{Env, call};
use rexpect::reader::Options;
use rexpect::session::{PtySession, spawn_with_options};
use serde_json::json;

const CALC: &str = "def add(a, b):\n    return a - b\n";
const GONE: &str = "delete me\n";

/// `keel chat` in a terminal, with the replay script and `extra` arguments.
fn chat(env: &Env, script: &Path, extra: &[&str]) -> PtySession {
    chat_saying(env, script, extra, "keel · session")
}

/// `keel chat`, once it has printed `first`.
fn chat_saying(env: &Env, script: &Path, extra: &[&str], first: &str) -> PtySession {
    let mut command = env.keel();
    command
        .args(["chat", "--yes", "--model"])
        .arg(format!("replay:{}", script.display()))
        .args(extra)
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .stdin(Stdio::inherit());
    let mut session = spawn_with_options(
        command,
        Options::new()
            .timeout_ms(Some(60_000))
            .strip_ansi_escape_codes(true),
    )
    .unwrap();
    exp(&mut session, first);
    exp(&mut session, "/help for commands");
    session
}

/// Waits for `text` on the terminal (rexpect reads bytes as Latin-1 characters).
fn exp(session: &mut PtySession, text: &str) {
    let latin1: String = text.bytes().map(char::from).collect();
    if let Err(e) = session.exp_string(&latin1) {
        panic!("waiting for {text:?}: {e}");
    }
}

fn prompt(session: &mut PtySession) {
    exp(session, "› ");
}

fn exit(mut session: PtySession) {
    session.send_line("/exit").unwrap();
    session.exp_eof().unwrap();
}

fn read(env: &Env, path: &str) -> Option<String> {
    std::fs::read_to_string(env.repo.path().join(path)).ok()
}

/// A turn that edits calc.py, deletes gone.txt through bash and creates pkg/new.py.
fn changing_turn() -> Vec<serde_json::Value> {
    vec![
        json!({"content": call("edit", json!({"path": "calc.py", "old_string": "a - b", "new_string": "a + b"}))}),
        json!({"content": call("bash", json!({"command": "rm gone.txt"}))}),
        json!({"content": call("write", json!({"path": "pkg/new.py", "content": "X = 1\n"}))}),
        json!({"content": "Fixed add, removed gone.txt, added pkg/new.py."}),
    ]
}

#[test]
fn two_turns_then_diff_undo_and_redo_restore_exact_bytes() {
    let env = Env::new(&[("calc.py", CALC), ("gone.txt", GONE)]);
    let mut steps = changing_turn();
    steps.push(
        json!({"content": call("write", json!({"path": "notes.md", "content": "# notes\n"}))}),
    );
    steps.push(json!({"content": "Noted."}));
    let script = env.script("chat.jsonl", &steps);
    let fixed = "def add(a, b):\n    return a + b\n";
    let mut session = chat(&env, &script, &[]);
    prompt(&mut session);
    session.send_line("fix add").unwrap();
    exp(&mut session, "[1] edit calc.py");
    exp(&mut session, "[2] bash rm gone.txt");
    exp(
        &mut session,
        "changed calc.py +1 −1, gone.txt (deleted) +0 −1, pkg/new.py (new) +1 −0",
    );
    exp(&mut session, "completed");
    exp(&mut session, "session ");
    prompt(&mut session);
    session.send_line("take a note").unwrap();
    exp(&mut session, "Noted.");
    exp(&mut session, "changed notes.md (new) +1 −0");
    prompt(&mut session);

    // The last turn's diff; /show expands a call.
    session.send_line("/diff").unwrap();
    exp(&mut session, "turn 2: notes.md");
    exp(&mut session, "+# notes");
    prompt(&mut session);
    session.send_line("/show 2").unwrap();
    exp(&mut session, "\"command\": \"rm gone.txt\"");
    prompt(&mut session);

    // Undo walks back turn by turn; /diff follows. A file changed since the turn is put
    // back all the same, and said to be (its bytes are kept for /redo).
    std::fs::write(env.repo.path().join("notes.md"), "# notes\nmine\n").unwrap();
    session.send_line("/undo").unwrap();
    exp(&mut session, "undid turn 2: notes.md");
    exp(&mut session, "note: notes.md had changed since");
    prompt(&mut session);
    assert_eq!(read(&env, "notes.md"), None);
    assert_eq!(read(&env, "calc.py").as_deref(), Some(fixed));
    session.send_line("/diff").unwrap();
    exp(&mut session, "turn 1: calc.py");
    exp(&mut session, "-    return a - b");
    exp(&mut session, "+    return a + b");
    exp(&mut session, "+++ b/pkg/new.py");
    prompt(&mut session);
    session.send_line("/undo").unwrap();
    exp(&mut session, "undid turn 1");
    prompt(&mut session);
    assert_eq!(read(&env, "calc.py").as_deref(), Some(CALC));
    assert_eq!(read(&env, "gone.txt").as_deref(), Some(GONE));
    assert!(!env.repo.path().join("pkg").exists());
    session.send_line("/undo").unwrap();
    exp(&mut session, "nothing undone");
    prompt(&mut session);

    // Redo walks forward again.
    session.send_line("/redo").unwrap();
    exp(&mut session, "redid turn 1");
    prompt(&mut session);
    assert_eq!(read(&env, "calc.py").as_deref(), Some(fixed));
    assert_eq!(read(&env, "gone.txt"), None);
    assert_eq!(read(&env, "pkg/new.py").as_deref(), Some("X = 1\n"));
    assert_eq!(read(&env, "notes.md"), None);
    session.send_line("/redo").unwrap();
    exp(&mut session, "redid turn 2");
    prompt(&mut session);
    assert_eq!(read(&env, "notes.md").as_deref(), Some("# notes\nmine\n"));
    exit(session);

    // A new process continues the session: its undo stack came with it.
    let mut session = chat_saying(&env, &script, &["--continue"], "resumed session");
    prompt(&mut session);
    session.send_line("/undo").unwrap();
    exp(&mut session, "undid turn 2");
    prompt(&mut session);
    session.send_line("/undo").unwrap();
    exp(&mut session, "undid turn 1");
    prompt(&mut session);
    assert_eq!(read(&env, "calc.py").as_deref(), Some(CALC));
    assert_eq!(read(&env, "gone.txt").as_deref(), Some(GONE));
    assert_eq!(read(&env, "notes.md"), None);
    assert!(!env.repo.path().join("pkg").exists());
    exit(session);
}

#[test]
fn ctrl_c_cancels_a_long_call_and_the_next_turn_works() {
    let env = Env::new(&[("calc.py", CALC)]);
    let script = env.script(
        "chat.jsonl",
        &[
            json!({"content": call("bash", json!({"command": "sleep 45 && echo keel-chat-slept"}))}),
            json!({"content": "Hello again."}),
        ],
    );
    let mut session = chat(&env, &script, &[]);
    prompt(&mut session);
    session.send_line("wait a while").unwrap();
    exp(&mut session, "[1] bash sleep 45");
    std::thread::sleep(std::time::Duration::from_millis(500));
    session.send_control('c').unwrap();
    exp(&mut session, "cancelled");
    exp(&mut session, "the session goes on");
    prompt(&mut session);
    session.send_line("still there?").unwrap();
    exp(&mut session, "Hello again.");
    prompt(&mut session);
    // Ctrl-C on a line being typed clears it; on the empty prompt it leaves.
    session.send("half a message").unwrap();
    session.flush().unwrap();
    exp(&mut session, "half a message");
    session.send_control('c').unwrap();
    exp(&mut session, "Ctrl-C again");
    prompt(&mut session);
    session.send_control('c').unwrap();
    session.exp_eof().unwrap();
    assert!(common::gone("keel-chat-slept"));
}

#[test]
fn a_plan_is_made_read_only_then_carried_out_after_approve() {
    let env = Env::new(&[("calc.py", CALC)]);
    let script = env.script(
        "chat.jsonl",
        &[
            // Planning: a read, and a write that plan mode refuses.
            json!({"content": call("read", json!({"path": "calc.py"}))}),
            json!({"content": call("write", json!({"path": "calc.py", "content": "oops\n"}))}),
            json!({"content": "Plan:\n1. Change `a - b` to `a + b` in calc.py.\n2. Check add(2, 3) == 5."}),
            // The approved plan.
            json!({"content": call("edit", json!({"path": "calc.py", "old_string": "a - b", "new_string": "a + b"}))}),
            json!({"content": "Done as planned."}),
        ],
    );
    let mut session = chat(&env, &script, &[]);
    prompt(&mut session);
    session.send_line("/plan fix add").unwrap();
    exp(&mut session, "[1] read calc.py");
    exp(&mut session, "plan mode: `write`");
    exp(&mut session, "1. Change `a - b` to `a + b` in calc.py.");
    exp(&mut session, "/approve to carry out this plan");
    prompt(&mut session);
    assert_eq!(read(&env, "calc.py").as_deref(), Some(CALC));
    session.send_line("/approve").unwrap();
    exp(&mut session, "Done as planned.");
    prompt(&mut session);
    assert_eq!(
        read(&env, "calc.py").as_deref(),
        Some("def add(a, b):\n    return a + b\n")
    );
    exit(session);
    // The plan is kept with the session, and the approved turn's task carried it.
    let out = env.stdout(&["sessions", "list", "--json"]);
    let id = serde_json::from_str::<serde_json::Value>(out.lines().next().unwrap()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let events = common::parse_lines(env.stdout(&["sessions", "export", &id]).as_bytes());
    let plan = events.iter().find(|e| e["type"] == "plan").unwrap();
    assert_eq!(plan["task"], "fix add");
    assert_eq!(plan["steps"][1], "Check add(2, 3) == 5.");
    let last_user = events.iter().rev().find(|e| e["type"] == "user").unwrap();
    assert!(last_user["content"].as_str().unwrap().starts_with(
        "Carry out this approved plan for the task: fix add\n\n1. Change `a - b` to `a + b` in calc.py.\n"
    ));
}

#[test]
fn history_is_kept_across_runs() {
    let env = Env::new(&[("calc.py", CALC)]);
    let script = env.script(
        "chat.jsonl",
        &[json!({"content": "Hi."}), json!({"content": "Hi again."})],
    );
    let mut session = chat(&env, &script, &[]);
    prompt(&mut session);
    session.send_line("remember this line").unwrap();
    exp(&mut session, "Hi.");
    prompt(&mut session);
    exit(session);
    let mut session = chat(&env, &script, &[]);
    prompt(&mut session);
    // Up arrow twice (past `/exit`): the message of the last run, sent again.
    session.send("\x1b[A").unwrap();
    session.flush().unwrap();
    exp(&mut session, "/exit");
    session.send("\x1b[A").unwrap();
    session.flush().unwrap();
    exp(&mut session, "remember this line");
    session.send_line("").unwrap();
    exp(&mut session, "Hi.");
    prompt(&mut session);
    exit(session);
}

#[test]
fn without_a_terminal_chat_points_to_keel_run() {
    let env = Env::new(&[]);
    let out = env.keel().arg("chat").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("keel run"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_turn_cut_off_by_a_crash_can_still_be_undone() {
    let env = Env::new(&[("calc.py", CALC)]);
    let script = env.script(
        "run.jsonl",
        &[
            json!({"content": call("edit", json!({"path": "calc.py", "old_string": "a - b", "new_string": "a + b"}))}),
            json!({"content": call("bash", json!({"command": "sleep 60 && echo keel-crash-marker"}))}),
        ],
    );
    let mut child = env
        .keel()
        .args(["run", "--json", "--yes", "--no-verify", "--model"])
        .arg(format!("replay:{}", script.display()))
        .arg("fix add")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Killed mid-turn, after the edit, while the command runs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while common::running("keel-crash-marker").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for pid in common::running("keel-crash-marker") {
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    assert_ne!(read(&env, "calc.py").as_deref(), Some(CALC));

    let resume = env.script("chat.jsonl", &[json!({"content": "ok"})]);
    // The resumed session shows what the cut-off turn changed.
    let mut session = chat_saying(&env, &resume, &["--continue"], "changed calc.py +1 −1");
    prompt(&mut session);
    session.send_line("/undo").unwrap();
    exp(&mut session, "undid turn 1");
    prompt(&mut session);
    assert_eq!(read(&env, "calc.py").as_deref(), Some(CALC));
    exit(session);
}
