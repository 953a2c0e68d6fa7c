//! Stored sessions through the binary: list/show/export/delete, --resume and
//! --continue, a SIGKILL in the middle of a turn, and a full disk.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{Env, call, gone, parse_lines, running};

const AUTH: &str = "def valid(token):\n    return True\n";

fn integrity(db: &Path) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3; print(sqlite3.connect({:?}).execute('PRAGMA integrity_check').fetchone()[0])",
            db.display().to_string()
        ))
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn sessions_are_listed_shown_exported_and_deleted() {
    let env = Env::new(&[("src/auth.py", AUTH)]);
    let script = env.script("s.jsonl", &[
        json!({"content": format!("Reading.\n{}", call("read", json!({"path": "src/auth.py"})))}),
        json!({"content": "It always returns True."}),
    ]);
    let (code, events) = env.run(&script, &[], "what does valid do?");
    assert_eq!(code, Some(0));
    let id = events[0]["session_id"].as_str().unwrap().to_string();

    let list = env.stdout(&["sessions", "list"]);
    assert!(
        list.contains(&id) && list.contains("completed") && list.contains("1 turn"),
        "{list}"
    );
    let list = env.stdout(&[
        "sessions",
        "list",
        "--json",
        "--workspace",
        env.repo.path().to_str().unwrap(),
    ]);
    let row: Value = serde_json::from_str(list.lines().next().unwrap()).unwrap();
    assert_eq!(row["id"], id.as_str());
    assert_eq!(row["turns"], 1);
    let elsewhere = tempfile::tempdir().unwrap();
    assert_eq!(
        env.stdout(&[
            "sessions",
            "list",
            "--workspace",
            elsewhere.path().to_str().unwrap()
        ]),
        ""
    );

    let show = env.stdout(&["sessions", "show", &id[..13]]);
    assert!(
        show.contains("› what does valid do?") && show.contains("● read src/auth.py"),
        "{show}"
    );
    assert!(show.contains("It always returns True."));

    let exported = parse_lines(env.stdout(&["sessions", "export", &id]).as_bytes());
    assert_eq!(exported, events);

    env.stdout(&["sessions", "delete", &id]);
    let out = env.keel().args(["sessions", "show", &id]).output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no session"));
}

#[test]
fn resume_and_continue_carry_the_whole_history() {
    let env = Env::new(&[("src/auth.py", AUTH)]);
    let first = env.script("first.jsonl", &[
        json!({"content": call("read", json!({"path": "src/auth.py"}))}),
        json!({"content": call("edit", json!({"path": "src/auth.py", "old_string": "return True", "new_string": "return token.expiry > now()"}))}),
        json!({"content": "valid() now checks the expiry."}),
    ]);
    let (code, events) = env.run(&first, &[], "make expired tokens invalid");
    assert_eq!(code, Some(0));
    let id = events[0]["session_id"].as_str().unwrap().to_string();

    // A second process continues the last session of this workspace. The file was
    // read in session 1, so overwriting it is allowed without reading it again.
    let second = env.script("second.jsonl", &[
        json!({"content": call("write", json!({"path": "src/auth.py", "content": "def valid(token):\n    return False\n"}))}),
        json!({"content": "Rewritten."}),
    ]);
    let (code, more) = env.run(&second, &["--continue"], "simplify it");
    assert_eq!(code, Some(0), "{more:#?}");
    assert!(
        more.iter().all(|e| e["type"] != "session"),
        "a resumed session starts no new session"
    );
    let write = more.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!(write["is_error"], false, "{write}");

    let third = env.script("third.jsonl", &[json!({"content": "Done."})]);
    let (code, _) = env.run(&third, &["--resume", &id[..12]], "thanks");
    assert_eq!(code, Some(0));
    let stored = parse_lines(env.stdout(&["sessions", "export", &id]).as_bytes());
    let users: Vec<&str> = stored
        .iter()
        .filter(|e| e["type"] == "user")
        .map(|e| e["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        users,
        ["make expired tokens invalid", "simplify it", "thanks"]
    );
    let list = env.stdout(&["sessions", "list", "--json"]);
    assert_eq!(list.lines().count(), 1);
    let row: Value = serde_json::from_str(list.trim()).unwrap();
    assert_eq!(row["turns"], 3);

    let out = env
        .keel()
        .args(["run", "--model", "replay:x", "--resume", "nope", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no session `nope`"));
    let empty = tempfile::tempdir().unwrap();
    let out = env
        .keel()
        .args([
            "run",
            "--model",
            "replay:x",
            "--continue",
            "-w",
            empty.path().to_str().unwrap(),
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no earlier session"));
}

#[test]
fn a_killed_run_loses_no_event_and_resumes_as_interrupted() {
    let env = Env::new(&[("src/auth.py", AUTH)]);
    let script = env.script("s.jsonl", &[
        json!({"content": format!("Looking.\n{}", call("read", json!({"path": "src/auth.py"})))}),
        json!({"content": call("bash", json!({"command": "echo started > shell.pid; echo working; sleep 302.5"}))}),
    ]);
    let mut child = env
        .keel()
        .args(["run", "--json", "--model"])
        .arg(format!("replay:{}", script.display()))
        .arg("long job")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("\"bash\"") && line.contains("\"tool_call\"");
        seen.push(serde_json::from_str::<Value>(&line).unwrap());
        if done {
            break;
        }
    }
    let pid_file = env.repo.path().join("shell.pid");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pid_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Nothing the killed keel was running outlives it.
    assert!(gone("sleep 302.5"), "{:?}", running("sleep 302.5"));

    assert_eq!(integrity(&env.db()), "ok");
    let id = seen[0]["session_id"].as_str().unwrap().to_string();
    let stored = parse_lines(env.stdout(&["sessions", "export", &id]).as_bytes());
    assert_eq!(
        stored[..seen.len()],
        seen[..],
        "every event emitted before the kill is stored"
    );

    let next = env.script(
        "next.jsonl",
        &[json!({"content": "Picking up where we left off."})],
    );
    let (code, resumed) = env.run(&next, &["--resume", &id], "go on");
    assert_eq!(code, Some(0));
    assert_eq!(resumed[0]["type"], "tool_result");
    assert_eq!(resumed[0]["name"], "bash");
    assert_eq!(resumed[0]["is_error"], true);
    assert!(
        resumed[0]["output"]
            .as_str()
            .unwrap()
            .contains("interrupted")
    );
    // What the cut-off turn changed (the command's file, if it got that far) is
    // checkpointed, so it can be undone.
    let mut next = 1;
    if resumed[1]["type"] == "checkpoint" {
        assert_eq!(resumed[1]["turn"], 1);
        assert_eq!(resumed[1]["files"][0]["path"], "shell.pid");
        next = 2;
    }
    assert_eq!(resumed[next]["type"], "feedback");
    assert_eq!(resumed[next]["reason"], "interrupted");
    assert_eq!(resumed.last().unwrap()["outcome"], "completed");
}

#[test]
fn a_full_disk_ends_the_turn_with_an_error_and_keeps_what_was_stored() {
    let env = Env::new(&[("src/auth.py", AUTH)]);
    // Create the store first, so the limit below only hits this run's writes.
    env.stdout(&["sessions", "list"]);
    let steps: Vec<Value> = (0..60)
        .map(|i| json!({"content": call("bash", json!({"command": format!("head -c 11000 /dev/zero | tr '\\0' '{}'", (b'a' + (i % 26) as u8) as char)}))}))
        .collect();
    let script = env.script("s.jsonl", &steps);
    // The file-size limit (ulimit -f, in 1 KiB blocks) plays the full disk: writes
    // past it fail with EFBIG instead of killing the process (SIGXFSZ ignored).
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 400; exec {} run --json --no-verify --max-iterations 60 --model replay:{} 'fill it'",
            env!("CARGO_BIN_EXE_keel"),
            script.display()
        ))
        .env("HOME", env.home.path())
        .env("KEEL_HOME", env.home.path().join("data"))
        .current_dir(env.repo.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let events = parse_lines(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{:?}", events.last());
    let error = events
        .iter()
        .find(|e| e["type"] == "error")
        .expect("an error event");
    assert_eq!(error["kind"], "internal");
    assert!(
        error["message"].as_str().unwrap().contains("keel.db"),
        "{error}"
    );
    assert_eq!(events.last().unwrap()["outcome"], "failed");

    assert_eq!(integrity(&env.db()), "ok");
    let id = events[0]["session_id"].as_str().unwrap();
    let stored = parse_lines(env.stdout(&["sessions", "export", id]).as_bytes());
    assert!(stored.len() > 5, "{}", stored.len());
    assert_eq!(
        stored[..],
        events[..stored.len()],
        "what was stored is the run's prefix"
    );
}

#[test]
fn a_corrupt_store_is_a_clear_error() {
    let env = Env::new(&[("src/auth.py", AUTH)]);
    std::fs::create_dir_all(env.db().parent().unwrap()).unwrap();
    std::fs::write(env.db(), vec![b'x'; 4096]).unwrap();
    let out = env.keel().args(["sessions", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("keel.db") && message.contains("damaged"),
        "{message}"
    );
    assert_eq!(std::fs::read(env.db()).unwrap(), vec![b'x'; 4096]);
}
