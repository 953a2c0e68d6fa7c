//! `keel run` end to end through the binary, with the replay model, on sample
//! repositories created in the test.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{Env, call, gone, parse_lines, running};

/// `keel run --json` (tests verified) with a replay script.
fn run_json(env: &Env, script: &Path, extra: &[&str], task: &str) -> (Output, Vec<Value>) {
    let output = env
        .keel()
        .arg("run")
        .arg("--json")
        .arg("--model")
        .arg(format!("replay:{}", script.display()))
        .args(extra)
        .arg(task)
        .output()
        .unwrap();
    let events = parse_lines(&output.stdout);
    (output, events)
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn done(events: &[Value]) -> &Value {
    let last = events.last().expect("no events");
    assert_eq!(last["type"], "done", "{events:#?}");
    last
}

const PY_BUGGY: &str = "def add(a, b):\n    return a - b\n";
const PY_TEST: &str = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n";
const PYPROJECT: &str = "[tool.pytest.ini_options]\npythonpath = [\".\"]\n";

fn python_repo() -> Env {
    Env::new(&[
        ("calc.py", PY_BUGGY),
        ("tests/test_calc.py", PY_TEST),
        ("pyproject.toml", PYPROJECT),
    ])
}

#[test]
fn python_trajectory_reads_edits_and_is_verified() {
    let env = python_repo();
    let script = env.script("script.jsonl", &[
        json!({"content": format!("Let me look.\n{}", call("read", json!({"path": "calc.py"})))}),
        json!({"content": call("edit", json!({"path": "calc.py", "old_string": "a - b", "new_string": "a + b"}))}),
        json!({"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": "python3 -m pytest -q"}}]}),
        json!({"content": "Fixed add()."}),
    ]);
    let (output, events) = run_json(&env, &script, &[], "Fix the failing test");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(done(&events)["outcome"], "verified");
    assert_eq!(done(&events)["iterations"], 4);
    assert_eq!(
        std::fs::read_to_string(env.repo.path().join("calc.py")).unwrap(),
        "def add(a, b):\n    return a + b\n"
    );

    let kinds = types(&events);
    assert_eq!(kinds[..3], ["session", "context", "user"]);
    for kind in [
        "thinking",
        "delta",
        "tool_call",
        "tool_result",
        "usage",
        "verification",
        "response",
    ] {
        assert!(kinds.contains(&kind), "no {kind} event in {kinds:?}");
    }
    let call = events.iter().find(|e| e["type"] == "tool_call").unwrap();
    assert_eq!(call["name"], "read");
    assert_eq!(call["arguments"], json!({"path": "calc.py"}));
    assert!(call["call_id"].is_string());
    let result = events.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!(result["call_id"], call["call_id"]);
    assert_eq!(result["is_error"], false);
    assert!(result["duration_ms"].is_u64());
    assert!(result["output"].as_str().unwrap().contains("return a - b"));
    let pytest = events
        .iter()
        .filter(|e| e["type"] == "tool_result")
        .nth(2)
        .unwrap();
    assert!(
        pytest["output"].as_str().unwrap().contains("1 passed"),
        "{pytest}"
    );
    // Delta text never carries tool-call markup.
    assert!(
        events
            .iter()
            .filter(|e| e["type"] == "delta")
            .all(|e| !e["text"].as_str().unwrap().contains("<tool"))
    );
    let response = events.iter().find(|e| e["type"] == "response").unwrap();
    assert_eq!(response["content"], "Fixed add().");

    // The store under $KEEL_HOME holds the same events.
    let session_id = events[0]["session_id"].as_str().unwrap();
    let export = env
        .keel()
        .args(["sessions", "export", session_id])
        .output()
        .unwrap();
    let stored: Vec<Value> = String::from_utf8(export.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(stored, events);
}

#[test]
fn finishing_without_fixing_gets_the_red_tests_back_and_is_never_verified() {
    let env = python_repo();
    let steps: Vec<Value> = (0..8)
        .map(|_| json!({"content": "All done, the bug is fixed."}))
        .collect();
    let script = env.script("script.jsonl", &steps);
    let (output, events) = run_json(
        &env,
        &script,
        &["--max-iterations", "4"],
        "Fix the failing test",
    );
    assert_eq!(output.status.code(), Some(3));
    let outcome = done(&events)["outcome"].as_str().unwrap();
    assert!(
        outcome == "max_iterations" || outcome == "stalled",
        "{outcome}"
    );
    assert!(!events.iter().any(|e| e["type"] == "response"));
    let verifications: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "verification")
        .collect();
    assert!(!verifications.is_empty());
    assert!(verifications.iter().all(|v| v["passed"] == false));
    // The first two claims come before any work: asked again; then the tests run.
    let reasons: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "feedback")
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert_eq!(
        reasons[..3],
        ["no_action", "no_action", "tests_failed"],
        "{reasons:?}"
    );
    let feedback = events
        .iter()
        .find(|e| e["type"] == "feedback" && e["reason"] == "tests_failed")
        .unwrap();
    let text = feedback["content"].as_str().unwrap();
    assert!(
        text.contains("test_add") && text.contains("assert"),
        "{text}"
    );
}

#[test]
fn rust_trajectory_is_verified_by_cargo_test() {
    let env = Env::new(&[
        (
            "Cargo.toml",
            "[package]\nname = \"sample\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
        ),
        (
            "src/lib.rs",
            "pub fn is_even(n: u32) -> bool {\n    n % 2 == 1\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn four_is_even() {\n        assert!(super::is_even(4));\n    }\n}\n",
        ),
    ]);
    let script = env.script("script.jsonl", &[
        json!({"content": "", "tool_calls": [{"name": "grep", "arguments": {"pattern": "fn is_even", "glob": "*.rs"}}]}),
        json!({"content": call("read", json!({"path": "src/lib.rs", "offset": 1, "limit": 3}))}),
        json!({"content": call("edit", json!({"path": "src/lib.rs", "old_string": "n % 2 == 1", "new_string": "n % 2 == 0"}))}),
        json!({"content": "is_even now checks for a zero remainder."}),
    ]);
    let (output, events) = run_json(&env, &script, &[], "make the test pass");
    assert_eq!(output.status.code(), Some(0), "{events:#?}");
    assert_eq!(done(&events)["outcome"], "verified");
    let verification = events.iter().find(|e| e["type"] == "verification").unwrap();
    assert_eq!(verification["command"], "cargo test");
    assert!(
        verification["output"]
            .as_str()
            .unwrap()
            .contains("test result: ok")
    );
}

#[test]
fn a_project_without_tests_completes() {
    let env = Env::new(&[("notes.md", "hello\n")]);
    let script = env.script("script.jsonl", &[json!({"content": "Nothing to do."})]);
    let (output, events) = run_json(&env, &script, &[], "say hi");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(done(&events)["outcome"], "completed");
}

#[test]
fn a_model_failure_exits_1_with_an_error_event() {
    let env = Env::new(&[("notes.md", "hello\n")]);
    let script = env.script(
        "script.jsonl",
        &[json!({"content": call("read", json!({"path": "notes.md"}))})],
    );
    let (output, events) = run_json(&env, &script, &[], "read");
    assert_eq!(output.status.code(), Some(1));
    let error = events.iter().find(|e| e["type"] == "error").unwrap();
    assert_eq!(error["kind"], "model");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("no response left")
    );
    assert_eq!(done(&events)["outcome"], "failed");
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    let env = Env::new(&[]);
    let out = env.keel().args(["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = env.keel().args(["run", "task"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model configured"));
    let out = env
        .keel()
        .args(["run", "--model", "gpt", "task"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid model spec"));
    let out = env
        .keel()
        .args(["run", "--model", "replay:/no/such/file", "task"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read replay script"));
    let out = env
        .keel()
        .args([
            "run",
            "--model",
            "replay:x",
            "--workspace",
            "/no/such/dir",
            "task",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
}

#[test]
fn configuration_layers_apply() {
    let env = Env::new(&[("notes.md", "hello\n")]);
    let script = env.script("script.jsonl", &[json!({"content": "done"})]);
    // The project config names the model and a (failing) test command.
    std::fs::create_dir_all(env.repo.path().join(".keel")).unwrap();
    std::fs::write(
        env.repo.path().join(".keel/config.toml"),
        format!(
            "model = \"replay:{}\"\ntest_command = \"false\"\nmax_iterations = 1\n",
            script.display()
        ),
    )
    .unwrap();
    env.trust();
    let out = env.keel().args(["run", "--json", "task"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The environment overrides the project; a flag overrides the environment.
    let out = env
        .keel()
        .env("KEEL_TEST_COMMAND", "true")
        .args(["run", "task"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env
        .keel()
        .env("KEEL_TEST_COMMAND", "true")
        .args(["run", "--test-command", "false", "task"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let out = env
        .keel()
        .args(["run", "--no-verify", "task"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    std::fs::write(
        env.repo.path().join(".keel/config.toml"),
        "max_iterations = \"many\"\n",
    )
    .unwrap();
    let out = env.keel().args(["run", "task"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid configuration"));
}

#[test]
fn the_transcript_is_readable_and_plain_when_piped() {
    let env = python_repo();
    let script = env.script(
        "script.jsonl",
        &[
            json!({"content": format!("Reading.\n{}", call("read", json!({"path": "calc.py"})))}),
            json!({"content": "Looks fine."}),
        ],
    );
    let out = env
        .keel()
        .args(["run", "--no-verify", "--model"])
        .arg(format!("replay:{}", script.display()))
        .arg("look")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "colour codes when piped: {text:?}");
    assert!(text.contains("Reading.\n● read calc.py\n"), "{text}");
    assert!(text.contains("     1\tdef add(a, b):"), "{text}");
    assert!(text.contains("Looks fine."));
    assert!(
        text.trim_end().ends_with("✓ completed · 2 iterations"),
        "{text}"
    );
}

#[test]
fn ctrl_c_stops_the_running_tool_and_exits_130() {
    let env = Env::new(&[("notes.md", "hello\n")]);
    let script = env.script(
        "script.jsonl",
        &[json!({"content": call("bash", json!({"command": "echo started > shell.pid; sleep 301.25"}))})],
    );
    let mut child = env
        .keel()
        .args(["run", "--json", "--model"])
        .arg(format!("replay:{}", script.display()))
        .arg("wait")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Wait until the tool is running (its pid file written), then interrupt.
    for line in lines.by_ref() {
        if line.unwrap().contains("\"tool_call\"") {
            break;
        }
    }
    let pid_file = env.repo.path().join("shell.pid");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pid_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc_kill(child.id() as i32, 2) };
    let rest: Vec<Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(done(&rest)["outcome"], "cancelled");
    let result = rest.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!(result["is_error"], true);
    // The command running in the tool is gone.
    assert!(gone("sleep 301.25"), "{:?}", running("sleep 301.25"));
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

#[test]
fn version_and_tool_listing() {
    let env = Env::new(&[]);
    let out = env.keel().arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("keel {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = env.keel().args(["tools", "--json"]).output().unwrap();
    let specs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(specs.len(), 7);
    let out = env
        .keel()
        .args(["tool", "grep", r#"{"pattern": "x"}"#, "-w", "/no/such"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn allowed_roots_widen_the_workspace_only_when_configured() {
    let env = Env::new(&[("notes.md", "hello\n")]);
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("spec.txt"), "shared spec\n").unwrap();
    let path = shared.path().join("spec.txt");
    let args = json!({"path": path.to_str().unwrap()}).to_string();
    let out = env.keel().args(["tool", "read", &args]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("outside the workspace"));
    std::fs::create_dir_all(env.repo.path().join(".keel")).unwrap();
    std::fs::write(
        env.repo.path().join(".keel/config.toml"),
        format!("allowed_roots = [{:?}]\n", shared.path().to_str().unwrap()),
    )
    .unwrap();
    // Untrusted, the project cannot widen the workspace.
    let out = env.keel().args(["tool", "read", &args]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ignoring allowed_roots"));
    env.trust();
    let out = env.keel().args(["tool", "read", &args]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("shared spec"));
}

#[test]
fn secrets_are_masked_for_the_model_and_the_store_and_not_written() {
    let key_body = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW";
    let key = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{key_body}\n-----END OPENSSH PRIVATE KEY-----\n"
    );
    let env = Env::new(&[("deploy/id_ed25519", key.as_str()), ("notes.md", "hello\n")]);
    let script = env.script("script.jsonl", &[
        json!({"content": call("read", json!({"path": "deploy/id_ed25519"}))}),
        json!({"content": call("bash", json!({"command": "cat deploy/id_ed25519; echo AKIAIOSFODNN7EXAMPLE"}))}),
        json!({"content": call("write", json!({"path": "config.py", "content": "KEY = 'AKIAIOSFODNN7EXAMPLE'\n"}))}),
        json!({"content": "Done."}),
    ]);
    let (output, events) = run_json(&env, &script, &["--no-verify"], "what is in deploy/?");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "tool_result")
        .collect();
    for result in &results[..2] {
        let text = result["output"].as_str().unwrap();
        assert!(text.contains("[secret masked: private-key]"), "{text}");
        assert!(text.contains("[keel masked"), "{text}");
    }
    assert!(
        results[1]["output"]
            .as_str()
            .unwrap()
            .contains("[secret masked: aws-access-key-id]")
    );
    let refused = results[2]["output"].as_str().unwrap();
    assert!(
        results[2]["is_error"].as_bool().unwrap() && refused.contains("looks like a secret"),
        "{refused}"
    );
    assert!(!env.repo.path().join("config.py").exists());
    // Neither the events printed nor the store hold the key (the AWS id is in the
    // script's own calls, so only the results are checked for it).
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains(key_body));
    assert!(results.iter().all(|r| {
        !r["output"]
            .as_str()
            .unwrap()
            .contains("AKIAIOSFODNN7EXAMPLE")
    }));
    let id = events[0]["session_id"].as_str().unwrap();
    let stored = env.stdout(&["sessions", "export", id]);
    assert!(!stored.contains(key_body), "the store holds the key");
    assert!(stored.contains("[secret masked: private-key]"));
}

#[test]
fn a_pytest_project_without_tests_ends_completed() {
    let env = Env::new(&[("calc.py", PY_BUGGY), ("pyproject.toml", PYPROJECT)]);
    let script = env.script("script.jsonl", &[json!({"content": "Nothing to do."})]);
    let (output, events) = run_json(&env, &script, &[], "What does calc.py do?");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verification = events.iter().find(|e| e["type"] == "verification").unwrap();
    assert_eq!(verification["exit_code"], 5);
    assert_eq!(done(&events)["outcome"], "completed");
    assert_eq!(
        done(&events)["iterations"],
        1,
        "no loop on a project without tests"
    );
}

#[test]
fn a_preexisting_failure_does_not_block_a_fix_of_another_test() {
    let env = Env::new(&[
        (
            "calc.py",
            "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a + b\n",
        ),
        (
            "tests/test_calc.py",
            "from calc import add, mul\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n",
        ),
        ("pyproject.toml", PYPROJECT),
    ]);
    let script = env.script("script.jsonl", &[
        json!({"content": call("edit", json!({"path": "calc.py", "old_string": "return a - b", "new_string": "return a + b"}))}),
        json!({"content": "Fixed add."}),
    ]);
    let (output, events) = run_json(&env, &script, &[], "Fix add in calc.py");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(done(&events)["outcome"], "verified");
    let verification = events.iter().find(|e| e["type"] == "verification").unwrap();
    assert_eq!(verification["passed"], true);
    assert_eq!(
        verification["preexisting"],
        json!(["tests/test_calc.py::test_mul"])
    );
    // Doing nothing is not an improvement: the same red run is not verified.
    let env = Env::new(&[
        ("calc.py", "def add(a, b):\n    return a - b\n"),
        ("tests/test_calc.py", PY_TEST),
        ("pyproject.toml", PYPROJECT),
    ]);
    let script = env.script(
        "script.jsonl",
        &[
            json!({"content": call("read", json!({"path": "calc.py"}))}),
            json!({"content": "Done."}),
        ],
    );
    let (_, events) = run_json(
        &env,
        &script,
        &["--max-iterations", "2"],
        "Fix add in calc.py",
    );
    let verification = events.iter().find(|e| e["type"] == "verification").unwrap();
    assert_eq!(verification["passed"], false);
    assert_ne!(done(&events)["outcome"], "verified");

    // A task about the tests in a file: a failure left in it is the task's, not excused.
    let env = Env::new(&[
        (
            "calc.py",
            "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a + b\n",
        ),
        (
            "tests/test_calc.py",
            "from calc import add, mul\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n",
        ),
        ("pyproject.toml", PYPROJECT),
    ]);
    let script = env.script("script.jsonl", &[
        json!({"content": call("edit", json!({"path": "calc.py", "old_string": "return a - b", "new_string": "return a + b"}))}),
        // The run after the edit was red; nothing changed since, so the first "done" is
        // answered without a run and the second runs the tests.
        json!({"content": "Fixed."}),
        json!({"content": "Fixed."}),
    ]);
    let (_, events) = run_json(
        &env,
        &script,
        &["--max-iterations", "3"],
        "Make calc.py pass the tests in tests/test_calc.py",
    );
    assert!(
        events.iter().any(|e| e["type"] == "feedback"
            && e["content"]
                .as_str()
                .is_some_and(|c| c.contains("exactly as they were when the tests failed"))),
        "{events:?}"
    );
    let verification = events.iter().find(|e| e["type"] == "verification").unwrap();
    assert_eq!(verification["passed"], false, "{verification}");
    assert_ne!(done(&events)["outcome"], "verified");
}

#[test]
fn a_missing_test_runner_is_an_environment_error_not_a_loop() {
    let env = Env::new(&[("notes.md", "hello\n")]);
    let script = env.script("script.jsonl", &[json!({"content": "Done."})]);
    let (output, events) = run_json(
        &env,
        &script,
        &["--test-command", "no-such-test-runner-xyz"],
        "What is in notes.md?",
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let error = events.iter().find(|e| e["type"] == "error").unwrap();
    assert_eq!(error["kind"], "environment");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("command not found"),
        "{error}"
    );
    assert_eq!(done(&events)["outcome"], "completed");
    assert_eq!(done(&events)["iterations"], 1);
}

#[test]
fn an_edit_that_breaks_the_syntax_is_refused_and_the_file_unchanged() {
    let files = [
        ("calc.py", "def add(a, b):\n    return a + b\n"),
        (
            "src/lib.rs",
            "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
        ),
        (
            "web/app.js",
            "export function add(a, b) {\n  return a + b;\n}\n",
        ),
    ];
    let env = Env::new(&files);
    let script = env.script("script.jsonl", &[
        json!({"content": call("edit", json!({"path": "calc.py", "old_string": "return a + b", "new_string": "return (a + b"}))}),
        json!({"content": call("edit", json!({"path": "src/lib.rs", "old_string": "a + b\n}", "new_string": "a + b\n"}))}),
        json!({"content": call("read", json!({"path": "web/app.js"}))}),
        json!({"content": call("write", json!({"path": "web/app.js", "content": "export function add(a, b {\n  return a + b;\n}\n"}))}),
        // A new file that does not parse is written, with a note.
        json!({"content": call("write", json!({"path": "draft.py", "content": "def f(:\n"}))}),
        json!({"content": "Done."}),
    ]);
    let (output, events) = run_json(&env, &script, &["--no-verify"], "Refactor add");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "tool_result")
        .collect();
    for (index, language) in [(0, "Python"), (1, "Rust"), (3, "JavaScript")] {
        let text = results[index]["output"].as_str().unwrap();
        assert_eq!(results[index]["is_error"], true, "{text}");
        assert!(
            text.contains("unparsable")
                && text.contains(&format!("{language} syntax error at line")),
            "{text}"
        );
    }
    for (path, content) in files {
        assert_eq!(
            std::fs::read_to_string(env.repo.path().join(path)).unwrap(),
            content,
            "{path} changed"
        );
    }
    let draft = results[4]["output"].as_str().unwrap();
    assert!(
        draft.starts_with("created draft.py") && draft.contains("does not parse"),
        "{draft}"
    );
}

#[test]
fn the_dependency_guard_refuses_a_typo_and_lets_a_known_package_in() {
    let env = Env::new(&[("app.py", "print('hi')\n")]);
    let script = env.script("script.jsonl", &[
        json!({"content": call("bash", json!({"command": "pip install reqeusts"}))}),
        json!({"content": call("write", json!({"path": "requirements.txt", "content": "reqeusts>=2\n"}))}),
        json!({"content": call("write", json!({"path": "requirements.txt", "content": "requests>=2\n"}))}),
        json!({"content": "Done."}),
    ]);
    let (output, events) = run_json(&env, &script, &["--no-verify"], "Add an HTTP client");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "tool_result")
        .collect();
    for refused in &results[..2] {
        let text = refused["output"].as_str().unwrap();
        assert_eq!(refused["is_error"], true);
        assert!(
            text.contains("dependency guard") && text.contains("`requests`"),
            "{text}"
        );
    }
    assert_eq!(results[2]["is_error"], false, "{}", results[2]["output"]);
    assert_eq!(
        std::fs::read_to_string(env.repo.path().join("requirements.txt")).unwrap(),
        "requests>=2\n"
    );
    let approvals: Vec<&Value> = events.iter().filter(|e| e["type"] == "approval").collect();
    assert_eq!(approvals.len(), 2);
    assert!(approvals.iter().all(|a| a["by"] == "dependency guard"));
}

#[test]
fn a_weakened_test_is_refused_and_verification_runs_the_original_tests() {
    let env = python_repo();
    let script = env.script("script.jsonl", &[
        // Weakening through the file tools is refused.
        json!({"content": call("edit", json!({"path": "tests/test_calc.py", "old_string": "assert add(2, 3) == 5", "new_string": "assert True"}))}),
        // Through bash it happens, but verification runs the original test (red), plus
        // the test the agent added (which runs: it fails too).
        json!({"content": call("bash", json!({"command": "printf 'def test_add():\\n    pass\\n' > tests/test_calc.py && printf 'def test_new():\\n    assert 1 == 2\\n' > tests/test_new.py"}))}),
        // The tests ran red after that change; the first "done" with nothing changed
        // since is answered without a run, the second is verified.
        json!({"content": "Done."}),
        json!({"content": "Done."}),
    ]);
    let (_, events) = run_json(
        &env,
        &script,
        &["--max-iterations", "4"],
        "Fix the bug in calc.py",
    );
    let results: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "tool_result")
        .collect();
    let refused = results[0]["output"].as_str().unwrap();
    assert!(
        refused.contains("test file") && refused.contains("cannot fail"),
        "{refused}"
    );
    let verification = events.iter().find(|e| e["type"] == "verification").unwrap();
    assert_eq!(verification["passed"], false);
    let output = verification["output"].as_str().unwrap();
    assert!(
        output.contains("test_add") && output.contains("test_new"),
        "{output}"
    );
    // The verification's feedback (the last), which names the test file put back.
    let feedback = events
        .iter()
        .rev()
        .find(|e| e["type"] == "feedback" && e["reason"] == "tests_failed")
        .unwrap();
    assert!(
        feedback["content"]
            .as_str()
            .unwrap()
            .contains("tests/test_calc.py"),
        "{feedback}"
    );
    // The agent's versions are back after the run.
    assert_eq!(
        std::fs::read_to_string(env.repo.path().join("tests/test_calc.py")).unwrap(),
        "def test_add():\n    pass\n"
    );
    assert_ne!(done(&events)["outcome"], "verified");
}

#[test]
fn a_slow_baseline_runs_in_the_background_and_still_counts() {
    let env = Env::new(&[
        (
            "calc.py",
            "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a + b\n",
        ),
        (
            "tests/test_calc.py",
            "from calc import add, mul\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n",
        ),
        ("pyproject.toml", PYPROJECT),
    ]);
    let script = env.script("script.jsonl", &[
        json!({"content": call("edit", json!({"path": "calc.py", "old_string": "return a - b", "new_string": "return a + b"}))}),
        json!({"content": "Fixed add."}),
    ]);
    // Longer than the first request waits for it: the context goes without it, the edit
    // waits for it, and verification compares with it.
    let (output, events) = run_json(
        &env,
        &script,
        &["--test-command", "sleep 7; python3 -m pytest -q"],
        "Fix add in calc.py",
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let context = events.iter().find(|e| e["type"] == "context").unwrap();
    assert!(
        !context["content"]
            .as_str()
            .unwrap()
            .contains("at the start"),
        "{context}"
    );
    let verification = events.iter().find(|e| e["type"] == "verification").unwrap();
    assert_eq!(
        verification["preexisting"],
        json!(["tests/test_calc.py::test_mul"])
    );
    assert_eq!(done(&events)["outcome"], "verified");
}

#[test]
fn run_plan_waits_for_approve_without_a_terminal_and_runs_the_plan_after_it() {
    let env = Env::new(&[("calc.py", PY_BUGGY)]);
    let script = env.script(
        "plan.jsonl",
        &[json!({"content": "1. Change `a - b` to `a + b` in calc.py.\n2. Done."})],
    );
    let (code, events) = env.run(&script, &["--plan"], "fix add");
    assert_eq!(code, Some(0));
    let plan = events
        .iter()
        .find(|e| e["type"] == "plan")
        .expect("a plan event");
    assert_eq!(plan["steps"][0], "Change `a - b` to `a + b` in calc.py.");
    assert_eq!(
        std::fs::read_to_string(env.repo.path().join("calc.py")).unwrap(),
        PY_BUGGY
    );
    let id = events[0]["session_id"].as_str().unwrap().to_string();

    // Approved later: the plan is the next turn's task (the replay starts over: the
    // edit is its first line now).
    let script = env.script(
        "approve.jsonl",
        &[
            json!({"content": call("edit", json!({"path": "calc.py", "old_string": "a - b", "new_string": "a + b"}))}),
            json!({"content": "Done."}),
        ],
    );
    let out = env
        .keel()
        .args([
            "run",
            "--json",
            "--no-verify",
            "--approve",
            "--resume",
            &id,
            "--model",
        ])
        .arg(format!("replay:{}", script.display()))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = parse_lines(&out.stdout);
    let user = events.iter().find(|e| e["type"] == "user").unwrap();
    assert!(
        user["content"]
            .as_str()
            .unwrap()
            .starts_with("Carry out this approved plan for the task: fix add")
    );
    assert_eq!(
        std::fs::read_to_string(env.repo.path().join("calc.py")).unwrap(),
        "def add(a, b):\n    return a + b\n"
    );
    // Nothing left to approve.
    let out = env
        .keel()
        .args(["run", "--approve", "--resume", &id, "--model"])
        .arg(format!("replay:{}", script.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no plan waiting"));
}

#[test]
fn run_plan_with_yes_carries_the_plan_out_at_once() {
    let env = Env::new(&[("calc.py", PY_BUGGY)]);
    let script = env.script(
        "plan.jsonl",
        &[
            json!({"content": "1. Change `a - b` to `a + b` in calc.py."}),
            json!({"content": call("edit", json!({"path": "calc.py", "old_string": "a - b", "new_string": "a + b"}))}),
            json!({"content": "Done."}),
        ],
    );
    let (code, events) = env.run(&script, &["--plan", "--yes"], "fix add");
    assert_eq!(code, Some(0));
    let kinds = types(&events);
    let plan_at = kinds.iter().position(|k| *k == "plan").unwrap();
    assert!(kinds[plan_at..].contains(&"checkpoint"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "done").count(), 2);
}
