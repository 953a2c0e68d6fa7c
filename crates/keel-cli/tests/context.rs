//! What the model is given to work with, through the real binary: skills listed and
//! loaded, and a long session in a small window compacted and resumed in a new process
//! (with a scripted model, and with a real one writing the summary).

mod common;
#[path = "../../keel-engine/tests/common/model.rs"]
mod model;

use common::Env;
use serde_json::{Value, json};

fn call(name: &str, arguments: Value) -> Value {
    json!({"content": "", "tool_calls": [{"name": name, "arguments": arguments}]})
}

/// The project context the session started with.
fn context_of(events: &[Value]) -> String {
    events.iter().find(|e| e["type"] == "context").unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string()
}

fn errors(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["type"] == "error").collect()
}

#[test]
fn skills_are_listed_in_the_context_and_loaded_by_the_skill_tool() {
    let env = Env::new(&[
        ("app.py", "print('hi')\n"),
        (
            ".keel/skills/release/SKILL.md",
            "---\nname: release\ndescription: How to cut a release of this project\n---\nBump the version in app.py, then tag it.\n",
        ),
    ]);
    let user = env.home.path().join(".config/keel/skills/review");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(
        user.join("SKILL.md"),
        "---\ndescription: Review a change for bugs\n---\nRead the diff twice.\n",
    )
    .unwrap();
    let script = env.script(
        "s.jsonl",
        &[
            call("skill", json!({"name": "release"})),
            json!({"content": "Loaded the release steps."}),
        ],
    );
    let (code, events) = env.run(&script, &["--tool-protocol", "native"], "Cut a release");
    assert_eq!(code, Some(0), "{events:?}");
    let context = context_of(&events);
    assert!(
        context.contains(
            "- release: How to cut a release of this project\n- review: Review a change for bugs\n"
        ),
        "{context}"
    );
    let result = events.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!(result["name"], "skill");
    assert_eq!(result["is_error"], false);
    assert_eq!(
        result["output"],
        "Skill `release`:\nBump the version in app.py, then tag it."
    );

    // Without skills there is no `skill` tool and no list.
    let plain = Env::new(&[("app.py", "print('hi')\n")]);
    let script = plain.script("s.jsonl", &[call("skill", json!({"name": "release"}))]);
    let (_, events) = plain.run(
        &script,
        &["--tool-protocol", "native", "--max-iterations", "1"],
        "Cut a release",
    );
    let context = context_of(&events);
    assert!(!context.contains("Skills"), "{context}");
    let result = events.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!(result["is_error"], true, "{result}");
}

/// Writes a 400-byte note and reads it back, `steps` times in all, then says it is done.
fn notes(tag: &str, steps: usize) -> Vec<Value> {
    let mut script = Vec::new();
    for i in 0..steps {
        let path = format!("notes/{tag}{}.txt", i / 2);
        script.push(if i % 2 == 0 {
            call(
                "write",
                json!({"path": path, "content": format!("note {i}: {}\n", "lorem ipsum dolor sit amet ".repeat(14))}),
            )
        } else {
            call("read", json!({"path": path}))
        });
    }
    script.push(json!({"content": "All notes written."}));
    script
}

#[test]
fn a_long_session_in_a_4k_window_is_compacted_and_goes_on_in_a_new_process() {
    let env = Env::new(&[("README.md", "notes\n")]);
    let first = env.script("first.jsonl", &notes("a", 59));
    let window = ["--tool-protocol", "native", "--max-iterations", "60"];
    let mut command = env.keel();
    command
        .env("KEEL_CONTEXT_WINDOW", "4096")
        .args(["run", "--json", "--no-verify", "--model"])
        .arg(format!("replay:{}", first.display()))
        .args(window)
        .arg("Write the notes");
    let out = command.output().unwrap();
    let events = common::parse_lines(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{:?}", errors(&events));
    assert!(errors(&events).is_empty(), "{:?}", errors(&events));
    let compactions = events.iter().filter(|e| e["type"] == "compaction").count();
    assert!(compactions >= 2, "{compactions} compactions");
    let usage = events.iter().find(|e| e["type"] == "usage").unwrap();
    assert_eq!(usage["context_window"], 4096);

    // A new process resumes the session: its compacted context fits, and it goes on.
    let second = env.script("second.jsonl", &notes("b", 5));
    let mut command = env.keel();
    command
        .env("KEEL_CONTEXT_WINDOW", "4096")
        .args(["run", "--json", "--no-verify", "--continue", "--model"])
        .arg(format!("replay:{}", second.display()))
        .args(window)
        .arg("Write three more");
    let out = command.output().unwrap();
    let events = common::parse_lines(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{:?}", errors(&events));
    assert!(errors(&events).is_empty());
    assert!(env.repo.path().join("notes/b2.txt").exists());
}

/// The summary written by a real model: a long scripted session (so its history is
/// known) continued with the real Qwen2.5-Coder-0.5B, greedy, in a 4k window. Before
/// the first request the history is past the compaction mark: old tool results become
/// stubs, the older messages a summary the model writes (prose, no calls), and the turn
/// goes on within the window.
#[test]
fn a_real_model_summarises_a_session_that_no_longer_fits_its_window() {
    let Some(path) = model::coding_model("qwen2.5-coder-0.5b-instruct.gguf") else {
        return;
    };
    let env = Env::new(&[("README.md", "notes\n")]);
    let first = env.script("first.jsonl", &notes("a", 24));
    let out = env
        .keel()
        .args([
            "run",
            "--json",
            "--no-verify",
            "--tool-protocol",
            "native",
            "--model",
        ])
        .arg(format!("replay:{}", first.display()))
        .args(["--max-iterations", "30", "Write the notes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let mut command = env.keel();
    command
        .env("KEEL_CONTEXT_WINDOW", "4096")
        .args(["run", "--json", "--no-verify", "--continue", "--model"])
        .arg(format!("embedded:{}", path.display()))
        .args(["--max-iterations", "1", "How many notes are there now?"]);
    let out = command.output().unwrap();
    let events = common::parse_lines(&out.stdout);
    assert!(errors(&events).is_empty(), "{:?}", errors(&events));
    let compactions: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "compaction")
        .collect();
    let by_model = compactions
        .iter()
        .find(|e| e["by_model"] == true)
        .unwrap_or_else(|| panic!("no summary by the model: {compactions:?}"));
    let summary = by_model["summary"].as_str().unwrap();
    assert!(summary.len() >= 20, "{summary}");
    assert!(!summary.contains("<tool_call>"), "{summary}");
    assert!(
        by_model["tokens_after"].as_u64() < by_model["tokens_before"].as_u64(),
        "{by_model}"
    );
    let usage = events.iter().find(|e| e["type"] == "usage").unwrap();
    assert!(usage["prompt_tokens"].as_u64().unwrap() < 4096, "{usage}");
    assert!(events.iter().any(|e| e["type"] == "done"));
}

#[test]
fn nested_agents_files_come_with_the_first_call_that_touches_their_files() {
    let env = Env::new(&[
        ("CLAUDE.md", "Root rules.\n"),
        ("web/AGENTS.md", "Use two spaces in web/.\n"),
        ("web/app.js", "let a = 1;\n"),
        ("web/util.js", "let b = 2;\n"),
        ("main.py", "print(1)\n"),
    ]);
    let script = env.script(
        "s.jsonl",
        &[
            call("read", json!({"path": "main.py"})),
            call("read", json!({"path": "web/app.js"})),
            call("read", json!({"path": "web/util.js"})),
            json!({"content": "Read them."}),
        ],
    );
    let (code, events) = env.run(&script, &["--tool-protocol", "native"], "Look around");
    assert_eq!(code, Some(0), "{events:?}");
    let context = context_of(&events);
    assert!(
        context.contains("Instructions from CLAUDE.md:\nRoot rules.\n"),
        "{context}"
    );
    let outputs: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "tool_result")
        .map(|e| e["output"].as_str().unwrap())
        .collect();
    let marker = "[Instructions from web/AGENTS.md, for the files under web/";
    assert!(!outputs[0].contains(marker));
    assert!(
        outputs[1].ends_with("where they differ):\nUse two spaces in web/.]"),
        "{}",
        outputs[1]
    );
    assert!(!outputs[2].contains(marker), "given once");
}

#[test]
fn a_big_project_gets_a_repo_map_ranked_for_the_task() {
    // More files than a project shown whole.
    let mut files: Vec<(String, String)> = (0..20)
        .map(|i| {
            (
                format!("pkg/mod{i}.py"),
                format!("def helper_{i}(x):\n    return x + {i}\n"),
            )
        })
        .collect();
    files.push((
        "pkg/billing.py".into(),
        "from pkg.mod3 import helper_3\n\n\ndef compute_total(items):\n    return sum(helper_3(i) for i in items)\n".into(),
    ));
    files.push((
        "app.py".into(),
        "from pkg.billing import compute_total\n\n\ndef main():\n    print(compute_total([1, 2]))\n".into(),
    ));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let env = Env::new(&refs);
    let script = env.script("s.jsonl", &[json!({"content": "Looked."})]);
    let (code, events) = env.run(
        &script,
        &[],
        "Why does compute_total in app.py add too much?",
    );
    assert_eq!(code, Some(0), "{events:?}");
    let context = context_of(&events);
    let map = context
        .split("Repo map (definitions ranked for this task")
        .nth(1)
        .unwrap_or_else(|| panic!("{context}"));
    assert!(
        map.contains("pkg/billing.py:\n    4│ def compute_total(items):\n"),
        "{map}"
    );
    // What the task's function uses ranks above what nothing uses.
    let used = map.find("def helper_3(x):").unwrap();
    assert!(
        map.find("def helper_17(x):")
            .is_none_or(|other| other > used),
        "{map}"
    );

    // `keel map` prints the same kind of map, and keeps its cache in keel's data dir.
    let out = env
        .keel()
        .args(["map", "--focus", "app.py", "--tokens", "200", "--stats"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("pkg/billing.py:\n"), "{text}");
    let stats = String::from_utf8_lossy(&out.stderr);
    assert!(stats.contains("22 files, 0 parsed"), "{stats}");
}
