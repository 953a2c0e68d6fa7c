//! `keel eval`: the task formats, the scratch workspaces, the check with the original
//! tests restored, the records, the saved run and `--compare` — driven by replay
//! scripts, then once with a real model on a task it can pass and one it cannot.

mod common;
#[path = "../../keel-engine/tests/common/model.rs"]
mod model;

use std::path::{Path, PathBuf};

use common::{Env, call};
use serde_json::{Value, json};

fn tasks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/evals")
}

/// `keel eval ARGS` in `env`: exit code, stdout, stderr.
fn eval(env: &Env, args: &[&str]) -> (Option<i32>, String, String) {
    let out = env.keel().arg("eval").args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn records(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn a_solved_exercise_passes_and_the_run_is_saved_and_compared() {
    let env = Env::new(&[]);
    let fixed = "def hello():\n    return \"Hello, World!\"\n";
    let script = env.script(
        "solve.jsonl",
        &[
            json!({"content": call("write", json!({"path": "hello_world.py", "content": fixed}))}),
            json!({"content": "hello() now says Hello, World!"}),
        ],
    );
    let out_file = env.home.path().join("solved.json");
    let task = tasks_dir().join("hello-world");
    let (code, stdout, stderr) = eval(
        &env,
        &[
            task.to_str().unwrap(),
            "--model",
            &format!("replay:{}", script.display()),
            "--json",
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("[1/1] hello-world: PASS (verified"),
        "{stderr}"
    );
    let records = records(&stdout);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["task"], "hello-world");
    assert_eq!(r["passed"], true);
    assert_eq!(r["outcome"], "verified");
    assert_eq!(r["false_done"], false);
    assert_eq!(r["tool_calls"], 1);
    assert_eq!(r["iterations"], 2);
    assert_eq!(r["malformed_calls"], 0);
    assert!(r["tampered"].as_array().unwrap().is_empty());
    assert!(r["session_id"].is_string());
    // The workspace kept for inspection: committed at the start, .meta never copied.
    let workspace = out_file.with_extension("work").join("hello-world");
    assert!(workspace.join(".git").is_dir());
    assert!(!workspace.join(".meta").exists() && !workspace.join(".docs").exists());
    assert_eq!(
        std::fs::read_to_string(workspace.join("hello_world.py")).unwrap(),
        fixed
    );
    let log = std::process::Command::new("git")
        .args(["log", "--oneline"])
        .current_dir(&workspace)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&log.stdout).contains("task start"));

    // A second run where the agent does nothing; then the two side by side.
    let idle = env.script("idle.jsonl", &vec![json!({"content": "Nothing to do."}); 6]);
    let idle_file = env.home.path().join("idle.json");
    let (code, stdout, _) = eval(
        &env,
        &[
            task.to_str().unwrap(),
            "--model",
            &format!("replay:{}", idle.display()),
            "--max-iterations",
            "3",
            "--out",
            idle_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0));
    assert!(stdout.contains("0/1 passed (0.0 %)"), "{stdout}");
    let (code, stdout, _) = eval(
        &env,
        &[
            "--compare",
            out_file.to_str().unwrap(),
            idle_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0));
    let line = stdout
        .lines()
        .find(|l| l.starts_with("hello-world"))
        .unwrap();
    assert!(
        line.contains("PASS") && line.contains("fail") && line.ends_with('-'),
        "{stdout}"
    );
    assert!(
        stdout.contains("1/1 passed (100.0 %)") && stdout.contains("0/1 passed"),
        "{stdout}"
    );
}

#[test]
fn an_agent_that_edits_the_tests_fails_the_check() {
    let env = Env::new(&[]);
    // The agent tries to "pass" by replacing the test with one that asserts nothing:
    // the write is refused by keel's tamper guard, the same through bash is undone for
    // keel's verification, and the check restores the originals too.
    let weakened = "def test_say_hi():\n    assert True\n";
    let script = env.script(
        "cheat.jsonl",
        &[
            json!({"content": call("write", json!({"path": "hello_world_test.py", "content": weakened}))}),
            json!({"content": call("bash", json!({"command": format!("printf '{}' > hello_world_test.py", weakened.replace('\n', "\\n"))}))}),
            json!({"content": "The tests pass now."}),
        ],
    );
    let out_file = env.home.path().join("cheat.json");
    let (code, stdout, stderr) = eval(
        &env,
        &[
            tasks_dir().join("hello-world").to_str().unwrap(),
            "--model",
            &format!("replay:{}", script.display()),
            "--json",
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let r = &records(&stdout)[0];
    // keel's own verification ran the original tests: no false "verified".
    assert_ne!(r["outcome"], "verified", "{r}");
    assert_eq!(r["passed"], false);
    assert_eq!(r["false_done"], false);
    assert_eq!(r["tampered"], json!(["hello_world_test.py"]));
    assert!(
        r["check_output"]
            .as_str()
            .unwrap()
            .contains("Goodbye, Mars!"),
        "{r}"
    );
    assert!(!stderr.contains("FALSE DONE"), "{stderr}");
}

#[test]
fn a_task_with_a_target_says_whether_the_agent_opened_it() {
    let env = Env::new(&[]);
    let script = env.script(
        "guess.jsonl",
        &[
            json!({"content": call("bash", json!({"command": "ls"}))}),
            json!({"content": call("write", json!({"path": "answer.txt", "content": "42\n"}))}),
            json!({"content": "The answer is written."}),
        ],
    );
    let task = tasks_dir().join("secret-number");
    let model = format!("replay:{}", script.display());
    let (code, stdout, stderr) = eval(&env, &[task.to_str().unwrap(), "--model", &model, "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let r = &records(&stdout)[0];
    assert_eq!(r["passed"], false);
    assert_eq!(r["targeted"], true);
    assert_eq!(r["found_at"], 2, "{r}");
    assert_eq!(r["opened"], json!({"answer.txt": 2}));
    let (_, table, _) = eval(&env, &[task.to_str().unwrap(), "--model", &model]);
    assert!(
        table.contains("opened the file the change belongs in for 1/1 tasks, at iteration 2"),
        "{table}"
    );
}

#[test]
fn bad_task_folders_and_patterns_are_usage_errors() {
    let env = Env::new(&[("README.md", "no tasks here\n")]);
    let (code, _, stderr) = eval(
        &env,
        &[env.repo.path().to_str().unwrap(), "--model", "replay:x"],
    );
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no tasks in"), "{stderr}");
    let (code, _, stderr) = eval(
        &env,
        &[
            tasks_dir().to_str().unwrap(),
            "--tasks",
            "nothing-*",
            "--model",
            "replay:x",
        ],
    );
    assert_eq!(code, Some(2));
    assert!(stderr.contains("matching `nothing-*`"), "{stderr}");
}

/// The real default model, greedy, on a task it may pass and one no agent can: the eval
/// reports both right — each record's pass/fail is what the original tests say of the
/// workspace it left — with no malformed calls and no false done.
#[test]
fn a_real_model_is_reported_right_on_a_passable_and_an_impossible_task() {
    let Some(path) = model::coding_model("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf") else {
        return;
    };
    let env = Env::new(&[]);
    let out_file = env.home.path().join("real.json");
    let (code, stdout, stderr) = eval(
        &env,
        &[
            tasks_dir().to_str().unwrap(),
            "--model",
            &format!("embedded:{}", path.display()),
            "--max-iterations",
            "4",
            "--json",
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let records = records(&stdout);
    let by_name = |name: &str| records.iter().find(|r| r["task"] == name).unwrap().clone();
    let work = out_file.with_extension("work");
    // hello-world: the record says what the original test says of the workspace.
    let hello = by_name("hello-world");
    let green = std::process::Command::new("python3")
        .args(["-m", "pytest", "-q", "hello_world_test.py"])
        .current_dir(work.join("hello-world"))
        .output()
        .unwrap()
        .status
        .success();
    assert_eq!(hello["passed"], green, "{hello}");
    assert!(hello["constrained_calls"].as_u64().unwrap() > 0, "{hello}");
    // secret-number: nobody can pass it.
    let secret = by_name("secret-number");
    assert_eq!(secret["passed"], false, "{secret}");
    for r in &records {
        assert_eq!(r["malformed_calls"], 0, "{r}");
        assert_eq!(r["false_done"], false, "{r}");
    }
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    assert_eq!(saved["records"].as_array().unwrap().len(), 2);
}
