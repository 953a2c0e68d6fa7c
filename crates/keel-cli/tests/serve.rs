//! `keel serve` as users start it: the printed URL, the address rules, and the browser
//! UI in a real chromium (Debian's, driven by playwright-core from npm).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::Env;
use serde_json::json;

/// A running `keel serve`, stopped (SIGTERM) when dropped.
struct Served {
    child: Child,
    /// The lines it printed on start.
    banner: Vec<String>,
}

impl Served {
    fn start(env: &Env, script: &Path, extra: &[&str], token: Option<&str>) -> Self {
        let mut command = env.keel();
        command
            .args(["serve", "--port", "0", "--model"])
            .arg(format!("replay:{}", script.display()))
            .args(extra)
            .env_remove("KEEL_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(token) = token {
            command.env("KEEL_TOKEN", token);
        }
        let mut child = command.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut banner = Vec::new();
        for _ in 0..2 {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            if line.is_empty() {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("keel serve did not start: {err}");
            }
            banner.push(line.trim_end().to_string());
        }
        Self { child, banner }
    }

    /// The URL it printed to open in a browser.
    fn login_url(&self) -> String {
        let line = &self.banner[1];
        line.strip_prefix("open ").unwrap().to_string()
    }

    fn port(&self) -> u16 {
        let url = self.login_url();
        let rest = url.strip_prefix("http://127.0.0.1:").unwrap();
        rest[..rest.find('/').unwrap()].parse().unwrap()
    }

    /// Stops it as a process manager would; its exit code.
    fn terminate(mut self) -> Option<i32> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap().code()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET over a plain socket: status line and body.
fn get(port: u16, path: &str, token: Option<&str>) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

fn browser_script() -> Vec<serde_json::Value> {
    let call = |name: &str, arguments: serde_json::Value| json!({"content": format!("Let me use {name}."), "tool_calls": [{"name": name, "arguments": arguments}]});
    vec![
        call("read", json!({"path": "notes.txt"})),
        call("read", json!({"path": "missing.txt"})),
        json!({"content": "notes.txt holds two lines:\n```\nalpha\nbeta\n```\nand `missing.txt` does not exist."}),
        call(
            "bash",
            json!({"command": "curl -s -m 5 http://127.0.0.1:9/ ; sleep 30"}),
        ),
        json!({"content": "done waiting"}),
    ]
}

#[test]
fn keel_serve_prints_a_login_url_and_serves_until_terminated() {
    let env = Env::new(&[("notes.txt", "alpha\nbeta\n")]);
    let script = env.script("script.jsonl", &browser_script());
    let served = Served::start(&env, &script, &[], None);
    assert!(
        served.banner[0].starts_with("keel serve: 127.0.0.1:"),
        "{:?}",
        served.banner
    );
    let url = served.login_url();
    let token = url.split("?token=").nth(1).unwrap().to_string();
    assert_eq!(token.len(), 64);
    let port = served.port();
    let (status, _) = get(port, "/health", None);
    assert!(status.contains("401"), "{status}");
    let (status, body) = get(port, "/health", Some(&token));
    assert!(status.contains("200"), "{status}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(
        health["workspace"],
        env.repo
            .path()
            .canonicalize()
            .unwrap()
            .display()
            .to_string()
    );
    assert_eq!(served.terminate(), Some(0));
}

#[test]
fn keel_serve_needs_a_token_to_listen_beyond_loopback() {
    let env = Env::new(&[]);
    let script = env.script("script.jsonl", &browser_script());
    let out = env
        .keel()
        .args(["serve", "--host", "0.0.0.0", "--port", "0", "--model"])
        .arg(format!("replay:{}", script.display()))
        .env_remove("KEEL_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without a token") && err.contains("--token"),
        "{err}"
    );

    // With KEEL_TOKEN it starts, and does not print the user's token.
    let token = "user-chosen-token-0123456789";
    let served = Served::start(&env, &script, &["--host", "0.0.0.0"], Some(token));
    assert!(
        served.banner[0].starts_with("keel serve: 0.0.0.0:"),
        "{:?}",
        served.banner
    );
    assert!(!served.banner.join("\n").contains(token));
    let port: u16 = served.banner[0]
        .strip_prefix("keel serve: 0.0.0.0:")
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    let (status, _) = get(port, "/health", Some(token));
    assert!(status.contains("200"), "{status}");
}

/// Where the browser test's npm packages are installed (by scripts/setup.sh).
fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

/// Chromium's path when chromium, node and playwright-core are there; `None` (the
/// test skips) only when KEEL_REQUIRE_BROWSER is not set.
fn chromium() -> Option<String> {
    let chromium = std::env::var("KEEL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = Path::new(&chromium).exists()
        && browser_dir().join("node_modules/playwright-core").exists()
        && Command::new("node").arg("--version").output().is_ok();
    if !ready {
        assert!(
            std::env::var_os("KEEL_REQUIRE_BROWSER").is_none(),
            "KEEL_REQUIRE_BROWSER is set but chromium, node or playwright-core is missing: run scripts/setup.sh"
        );
        eprintln!(
            "skipped: chromium, node or playwright-core missing (scripts/setup.sh installs them)"
        );
        return None;
    }
    Some(chromium)
}

#[test]
fn the_browser_ui_plans_shows_a_turns_diff_and_undoes_it() {
    let Some(chromium) = chromium() else { return };
    let env = Env::new(&[("notes.txt", "alpha\nbeta\n")]);
    let call = |name: &str, arguments: serde_json::Value| json!({"content": "", "tool_calls": [{"name": name, "arguments": arguments}]});
    let script = env.script(
        "script.jsonl",
        &[
            call("read", json!({"path": "notes.txt"})),
            json!({"content": "Plan:\n1. Replace beta with gamma in notes.txt.\n2. Read the file back."}),
            call("edit", json!({"path": "notes.txt", "old_string": "beta", "new_string": "gamma"})),
            json!({"content": "Done."}),
        ],
    );
    let served = Served::start(&env, &script, &[], None);
    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artefacts");
    let out = Command::new("node")
        .arg(browser_dir().join("diff_undo.mjs"))
        .arg(served.login_url())
        .arg(&artefacts)
        .arg(env.repo.path())
        .env("KEEL_CHROMIUM", &chromium)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the UI test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(env.repo.path().join("notes.txt")).unwrap(),
        "alpha\ngamma\n"
    );
    assert_eq!(served.terminate(), Some(0));
}

#[test]
fn the_browser_ui_streams_a_turn_in_chromium() {
    let dir = browser_dir();
    let Some(chromium) = chromium() else { return };
    let env = Env::new(&[("notes.txt", "alpha\nbeta\n")]);
    let script = env.script("script.jsonl", &browser_script());
    let served = Served::start(&env, &script, &[], None);
    // The screenshots are kept as the test's artefacts.
    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artefacts");
    let out = Command::new("node")
        .arg(dir.join("ui.mjs"))
        .arg(served.login_url())
        .arg(&artefacts)
        .env("KEEL_CHROMIUM", &chromium)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the UI test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(artefacts.join("keel-serve-ui.png").exists());
    assert_eq!(served.terminate(), Some(0));
}
