//! The real MCP servers the tests run (installed by `scripts/setup.sh`) and an agent
//! with a replay model to drive them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_agent::{Agent, AgentConfig, EventSink, Session};
use keel_llm::ReplayClient;
use keel_mcp::{McpServers, ServerConfig, ServerTransport};
use keel_protocol::Event;
use keel_tools::{ToolRegistry, Workspace};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether the npm and PyPI servers are installed; without them a test is skipped
/// unless `KEEL_REQUIRE_MCP_PEERS=1` (set by `scripts/test.sh`) makes that a failure.
pub fn peers_available() -> bool {
    let fs = fs_binary().exists();
    let git = std::process::Command::new("python3")
        .args(["-c", "import mcp_server_git, mcp"])
        .status()
        .is_ok_and(|s| s.success());
    if fs && git {
        return true;
    }
    if std::env::var("KEEL_REQUIRE_MCP_PEERS").is_ok_and(|v| v == "1") {
        panic!(
            "the MCP peers are not installed (filesystem server: {fs}, python mcp + mcp-server-git: {git}); run scripts/setup.sh"
        );
    }
    eprintln!("skipped: the MCP peers are not installed (run scripts/setup.sh)");
    false
}

fn fs_binary() -> PathBuf {
    repo_root().join("tests/mcp/node_modules/.bin/mcp-server-filesystem")
}

pub fn stdio(name: &str, command: &str, args: &[&str]) -> ServerConfig {
    ServerConfig {
        name: name.to_string(),
        transport: ServerTransport::Stdio {
            command: command.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Default::default(),
            cwd: None,
        },
        startup_timeout: Duration::from_secs(30),
        tool_timeout: Duration::from_secs(30),
    }
}

/// npm `@modelcontextprotocol/server-filesystem`, allowed only `dir`.
pub fn fs_server(dir: &Path) -> ServerConfig {
    stdio(
        "fs",
        fs_binary().to_str().unwrap(),
        &[dir.to_str().unwrap()],
    )
}

/// PyPI `mcp-server-git` on the repository at `dir`.
pub fn git_server(dir: &Path) -> ServerConfig {
    stdio(
        "git",
        "python3",
        &[
            "-m",
            "mcp_server_git",
            "--repository",
            dir.to_str().unwrap(),
        ],
    )
}

/// The test server built on the Python SDK whose tools crash, hang or echo.
pub fn faulty_server(tool_timeout: Duration) -> ServerConfig {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/faulty.py");
    let mut config = stdio("faulty", "python3", &[script.to_str().unwrap()]);
    config.tool_timeout = tool_timeout;
    config
}

/// A workspace that is a git repository with one committed file and one change.
pub fn git_workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.path().join("notes.txt"), "alpha\nbeta\n").unwrap();
    git(&["add", "notes.txt"]);
    git(&["commit", "-q", "-m", "first"]);
    std::fs::write(dir.path().join("new.txt"), "untracked\n").unwrap();
    dir
}

/// One replay step calling `name` with `arguments`.
pub fn call(name: &str, arguments: Value) -> String {
    json!({"content": "", "tool_calls": [{"name": name, "arguments": arguments}]}).to_string()
}

pub fn answer(text: &str) -> String {
    json!({ "content": text }).to_string()
}

#[derive(Default)]
pub struct Collect(pub Mutex<Vec<Event>>);

impl EventSink for Collect {
    fn emit(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Collect {
    /// `(name, output, is_error)` of every tool result.
    pub fn results(&self) -> Vec<(String, String, bool)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::ToolResult {
                    name,
                    output,
                    is_error,
                    ..
                } => Some((name.clone(), output.clone(), *is_error)),
                _ => None,
            })
            .collect()
    }
}

/// Runs one turn of `steps` (replay lines) with the built-in tools plus `servers`'.
pub async fn run_turn(workspace: &Path, servers: &McpServers, steps: &[String]) -> Collect {
    let data = tempfile::tempdir().unwrap();
    let script = data.path().join("script.jsonl");
    std::fs::write(&script, steps.join("\n")).unwrap();
    let model = ReplayClient::open(&script, "replay:test").unwrap();
    let mut tools = ToolRegistry::builtin();
    tools.register_all(servers.tools());
    let config = AgentConfig {
        verify: false,
        ..AgentConfig::default()
    };
    let agent = Agent::new(Arc::new(model), tools, config);
    let sink = Collect::default();
    let mut session = Session::start(&agent, Workspace::new(workspace).unwrap(), &sink);
    session
        .run_turn(&agent, "go", &sink, &CancellationToken::new())
        .await;
    sink
}
