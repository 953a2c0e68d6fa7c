//! `keel doctor` and model-spec errors without a model server.

mod common;

use common::Env;

/// A port on 127.0.0.1 that nothing listens on (it was free a moment ago).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn doctor_fails_when_the_server_is_unreachable() {
    let port = closed_port();
    let env = Env::new(&[]);
    let out = env
        .keel()
        .args([
            "doctor",
            "--model",
            &format!("openai:m@http://127.0.0.1:{port}/v1"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let model = stdout.lines().find(|l| l.contains("model")).unwrap();
    assert!(model.starts_with("FAIL"), "{stdout}");
    assert!(model.contains(&format!("127.0.0.1:{port}")), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("PASS  store")),
        "{stdout}"
    );
}

#[test]
fn doctor_reports_an_unwritable_store() {
    let env = Env::new(&[]);
    let script = env.script("s.jsonl", &[]);
    let data = env.home.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // A directory where the database file should be: it cannot be opened.
    std::fs::create_dir_all(data.join("keel.db")).unwrap();
    let out = env.doctor(&format!("replay:{}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("FAIL  store")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("PASS  model")),
        "{stdout}"
    );
}

#[test]
fn an_unknown_model_spec_lists_the_valid_forms() {
    let env = Env::new(&[]);
    for spec in ["gpt-4", "cloud:x", "openai:m@localhost:8000"] {
        let out = env
            .keel()
            .args(["run", "--model", spec, "task"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{spec}: {stderr}");
        assert!(stderr.contains(spec), "{stderr}");
    }
    let out = env
        .keel()
        .args(["run", "--model", "gpt-4", "task"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("openai:MODEL@BASE_URL") && stderr.contains("ollama:MODEL"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_server_fails_the_run_naming_the_url() {
    let port = closed_port();
    let env = Env::new(&[]);
    let out = env
        .keel()
        .args([
            "run",
            "--model",
            &format!("ollama:qwen@http://127.0.0.1:{port}"),
            "task",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains("is it running?"), "{stderr}");
}

#[test]
fn doctor_checks_memory_across_a_restart_and_the_sample_fix() {
    let env = Env::new(&[]);
    // A scripted model that fixes the sample: doctor's `--fix` runs it in a scratch copy.
    let fix = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/fix-the-test.replay.jsonl");
    let out = env
        .keel()
        .args(["doctor", "--fix", "--model"])
        .arg(format!("replay:{}", fix.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let line = |check: &str| {
        stdout
            .lines()
            .find(|l| l[6..].starts_with(check))
            .unwrap_or_else(|| panic!("no {check} line: {stdout}"))
            .to_string()
    };
    assert!(line("memory").starts_with("PASS"), "{stdout}");
    assert!(line("memory").contains("recalled by a new one"), "{stdout}");
    assert!(line("fix").starts_with("PASS"), "{stdout}");
    assert!(line("fix").contains("verified in"), "{stdout}");

    // A model that never fixes it: FAIL with the outcome, exit 1.
    let idle = env.script(
        "idle.jsonl",
        &vec![serde_json::json!({"content": "Nothing to do."}); 12],
    );
    let out = env
        .keel()
        .args(["doctor", "--fix", "--model"])
        .arg(format!("replay:{}", idle.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let fix = stdout.lines().find(|l| l.contains("  fix ")).unwrap();
    assert!(fix.starts_with("FAIL") && fix.contains("ended"), "{stdout}");
}
