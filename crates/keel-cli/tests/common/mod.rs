//! The harness the `keel` binary tests share: a scratch repository and a scratch
//! `HOME`/`KEEL_HOME`, replay scripts, and the binary run in that isolation.
#![allow(dead_code)] // each test file uses part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

pub struct Env {
    pub home: tempfile::TempDir,
    pub repo: tempfile::TempDir,
}

impl Env {
    /// A repository holding `files` (path, content).
    pub fn new(files: &[(&str, &str)]) -> Self {
        let env = Self {
            home: tempfile::tempdir().unwrap(),
            repo: tempfile::tempdir().unwrap(),
        };
        for (path, content) in files {
            let full = env.repo.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, content).unwrap();
        }
        env
    }

    /// Writes a replay script (one JSON response per line) and returns its path.
    pub fn script(&self, name: &str, steps: &[Value]) -> PathBuf {
        let path = self.home.path().join(name);
        let lines: Vec<String> = steps.iter().map(Value::to_string).collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }

    /// `keel` in the repository, with nothing of the caller's configuration.
    pub fn keel(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keel"));
        command
            .env("HOME", self.home.path())
            .env("KEEL_HOME", self.home.path().join("data"))
            .env("CARGO_TARGET_DIR", self.home.path().join("target"))
            .env_remove("KEEL_MODEL")
            .env_remove("KEEL_MODELS_DIR")
            .env_remove("KEEL_CONFIG")
            .env_remove("KEEL_TEST_COMMAND")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .current_dir(self.repo.path())
            .stdin(Stdio::null());
        command
    }

    /// `keel run --json --no-verify` with a replay script: exit code and events.
    pub fn run(&self, script: &Path, extra: &[&str], task: &str) -> (Option<i32>, Vec<Value>) {
        let out = self
            .keel()
            .args(["run", "--json", "--no-verify", "--model"])
            .arg(format!("replay:{}", script.display()))
            .args(extra)
            .arg(task)
            .output()
            .unwrap();
        (out.status.code(), parse_lines(&out.stdout))
    }

    /// `keel doctor --model SPEC`.
    pub fn doctor(&self, model: &str) -> std::process::Output {
        self.keel()
            .args(["doctor", "--model", model])
            .output()
            .unwrap()
    }

    /// stdout of a `keel` command that must succeed.
    pub fn stdout(&self, args: &[&str]) -> String {
        let out = self.keel().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "keel {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Trusts the repository's own configuration (`keel trust .`), as its user would.
    pub fn trust(&self) {
        self.stdout(&["trust", "."]);
    }

    /// The store's database file.
    pub fn db(&self) -> PathBuf {
        self.home.path().join("data/keel.db")
    }
}

/// JSON Lines to values.
pub fn parse_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// A tool call in the `xml` protocol.
pub fn call(name: &str, input: Value) -> String {
    format!("<tool_call>\n<name>{name}</name>\n<input>{input}</input>\n</tool_call>")
}

/// Host processes whose command line holds `marker` (pids inside the sandbox are
/// namespaced, so tests find their processes by what they run).
pub fn running(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z');
        if cmdline.contains(marker) && !zombie {
            found.push(pid);
        }
    }
    found
}

/// Waits up to 10 s for every process holding `marker` to be gone.
pub fn gone(marker: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !running(marker).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    running(marker).is_empty()
}
