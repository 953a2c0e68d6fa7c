//! keel as an MCP client of the real reference servers (npm filesystem, PyPI git) and
//! of servers that crash or hang.

mod common;

use std::time::Duration;

use common::*;
use keel_mcp::{McpServers, ServerState};
use serde_json::json;

fn running_tools(servers: &McpServers, name: &str) -> (String, Vec<keel_protocol::ToolSpec>) {
    let reports = servers.reports();
    let report = reports
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no report for {name}"));
    match &report.state {
        ServerState::Running { protocol, tools } => (protocol.clone(), tools.clone()),
        ServerState::Failed(e) => panic!("{name} did not start: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_servers_list_their_tools() {
    if !peers_available() {
        return;
    }
    let dir = git_workspace();
    let servers = McpServers::start(
        vec![fs_server(dir.path()), git_server(dir.path())],
        dir.path(),
    )
    .await;

    let (fs_protocol, fs_tools) = running_tools(&servers, "fs");
    // The npm server only speaks the previous revision: the fallback was taken.
    assert_eq!(fs_protocol, "2025-11-25");
    let names: Vec<&str> = fs_tools.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"fs__read_text_file"), "{names:?}");
    assert!(names.contains(&"fs__write_file"), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "tools are sorted by name");
    let read = fs_tools
        .iter()
        .find(|t| t.name == "fs__read_text_file")
        .unwrap();
    assert!(
        read.read_only,
        "readOnlyHint makes read_text_file parallel-safe"
    );
    assert_eq!(read.parameters["type"], "object");
    assert_eq!(read.parameters["properties"]["path"]["type"], "string");
    let write = fs_tools
        .iter()
        .find(|t| t.name == "fs__write_file")
        .unwrap();
    assert!(!write.read_only);
    // Every property of every tool has a type a small model can follow.
    for tool in &fs_tools {
        for (prop, schema) in tool.parameters["properties"].as_object().unwrap() {
            assert!(
                schema.get("type").is_some(),
                "{}.{prop}: {schema}",
                tool.name
            );
        }
    }

    let (_, git_tools) = running_tools(&servers, "git");
    let names: Vec<&str> = git_tools.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"git__git_status"), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("git__")));

    // The agent's registry offers them next to the built-in tools.
    let mut registry = keel_tools::ToolRegistry::builtin();
    registry.register_all(servers.tools());
    assert!(registry.names().contains(&"fs__read_text_file"));
    assert!(registry.names().contains(&"read"));
    assert!(registry.is_read_only("fs__read_text_file"));
    servers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_trajectory_uses_the_filesystem_and_git_servers() {
    if !peers_available() {
        return;
    }
    let dir = git_workspace();
    let root = dir.path().canonicalize().unwrap();
    let servers = McpServers::start(vec![fs_server(&root), git_server(&root)], &root).await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "do not read").unwrap();
    let steps = [
        call(
            "fs__read_text_file",
            json!({"path": root.join("notes.txt").to_str().unwrap()}),
        ),
        call(
            "git__git_status",
            json!({"repo_path": root.to_str().unwrap()}),
        ),
        call(
            "fs__read_text_file",
            json!({"path": outside.path().join("secret.txt").to_str().unwrap()}),
        ),
        call("fs__read_text_file", json!({"path": "../../etc/passwd"})),
        answer("Read the notes and the status."),
    ];
    let events = run_turn(&root, &servers, &steps).await;
    let results = events.results();
    assert_eq!(results.len(), 4, "{results:#?}");

    let (name, output, is_error) = &results[0];
    assert_eq!(name, "fs__read_text_file");
    assert!(!is_error, "{output}");
    assert_eq!(output.trim_end(), "alpha\nbeta");

    let (name, output, is_error) = &results[1];
    assert_eq!(name, "git__git_status");
    assert!(!is_error, "{output}");
    assert!(output.contains("On branch main"), "{output}");
    assert!(
        output.contains("new.txt"),
        "the untracked file is listed: {output}"
    );

    // Outside the allowed directory: the server's own refusal, as an error.
    for (name, output, is_error) in &results[2..] {
        assert_eq!(name, "fs__read_text_file");
        assert!(is_error, "{output}");
        assert!(output.contains("Access denied"), "{output}");
        assert!(!output.contains("do not read"));
    }
    servers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_crashes_or_hangs_costs_one_call_not_the_session() {
    if !peers_available() {
        return;
    }
    let dir = git_workspace();
    let servers = McpServers::start(vec![faulty_server(Duration::from_secs(3))], dir.path()).await;
    let (_, tools) = running_tools(&servers, "faulty");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["faulty__crash", "faulty__echo", "faulty__hang"]);
    // The very first call kills the server.
    let steps = [
        call("faulty__crash", json!({})),
        call("faulty__echo", json!({"text": "one"})),
        call("faulty__hang", json!({})),
        call("faulty__echo", json!({"text": "two"})),
        call("read", json!({"path": "notes.txt"})),
        answer("Survived."),
    ];
    let events = run_turn(dir.path(), &servers, &steps).await;
    let results = events.results();
    assert_eq!(results.len(), 5, "{results:#?}");
    let pid = |output: &str| {
        output
            .split("(pid ")
            .nth(1)
            .unwrap()
            .trim_end_matches(')')
            .to_string()
    };

    let (_, crash, is_error) = &results[0];
    assert!(is_error);
    assert!(
        crash.contains("MCP server `faulty` failed during `crash`"),
        "{crash}"
    );
    assert!(
        crash.contains("crashing on purpose"),
        "its stderr is quoted: {crash}"
    );
    assert!(crash.contains("started again on the next call"), "{crash}");

    // Restarted: the next call is answered.
    assert!(
        !results[1].2 && results[1].1.starts_with("echo: one"),
        "{:?}",
        results[1]
    );
    let first_pid = pid(&results[1].1);

    let (_, hang, is_error) = &results[2];
    assert!(is_error);
    assert!(
        hang.contains("did not answer `hang` within 3 s") && hang.contains("stopped"),
        "{hang}"
    );
    // Stopped and restarted: a new process answers.
    assert!(
        !results[3].2 && results[3].1.starts_with("echo: two"),
        "{:?}",
        results[3]
    );
    assert_ne!(pid(&results[3].1), first_pid);

    // The session went on with its own tools and finished normally.
    assert!(!results[4].2);
    let done = events.0.lock().unwrap().last().cloned().unwrap();
    assert!(
        matches!(
            done,
            keel_protocol::Event::Done {
                outcome: keel_protocol::Outcome::Completed,
                ..
            }
        ),
        "{done:?}"
    );
    servers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_cannot_start_is_reported_and_the_others_run() {
    if !peers_available() {
        return;
    }
    let dir = git_workspace();
    let mut slow = stdio("slow", "sleep", &["60"]);
    slow.startup_timeout = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let servers = McpServers::start(
        vec![
            stdio("missing", "/nonexistent/mcp-server", &[]),
            slow,
            stdio(
                "quits",
                "python3",
                &["-c", "import sys; sys.stderr.write('no config\\n')"],
            ),
            fs_server(dir.path()),
        ],
        dir.path(),
    )
    .await;
    // Started together: the slow one's timeout bounds the wait.
    assert!(started.elapsed() < Duration::from_secs(25));
    let reports = servers.reports();
    let states: Vec<(&str, &ServerState)> = reports
        .iter()
        .map(|r| (r.name.as_str(), &r.state))
        .collect();
    assert_eq!(states.len(), 4);
    let failed = |name: &str| match states.iter().find(|(n, _)| *n == name).unwrap().1 {
        ServerState::Failed(e) => e.clone(),
        other => panic!("{name}: {other:?}"),
    };
    assert!(failed("missing").contains("cannot start `/nonexistent/mcp-server`"));
    assert!(
        failed("slow").contains("did not start within 2 s"),
        "{}",
        failed("slow")
    );
    let quits = failed("quits");
    assert!(quits.contains("no config"), "its stderr is quoted: {quits}");
    running_tools(&servers, "fs");
    assert!(
        servers
            .tools()
            .iter()
            .all(|t| t.spec().name.starts_with("fs__"))
    );
    servers.shutdown().await;
}

/// The Python SDK's streamable-HTTP server, stopped when dropped.
struct HttpServer {
    child: std::process::Child,
    url: String,
}

impl HttpServer {
    fn start(token: &str) -> Self {
        use std::io::BufRead;
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/http_server.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .env("HTTP_TEST_TOKEN", token)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no port: {line:?}"));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http(name: &str, url: &str, token_env: &str) -> keel_mcp::ServerConfig {
    keel_mcp::ServerConfig {
        name: name.into(),
        transport: keel_mcp::ServerTransport::Http {
            url: url.into(),
            bearer_token_env: Some(token_env.into()),
        },
        startup_timeout: Duration::from_secs(30),
        tool_timeout: Duration::from_secs(30),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamable_http_server_with_a_bearer_token_from_the_environment() {
    if !peers_available() {
        return;
    }
    let server = HttpServer::start("s3cret-token-for-the-test");
    // SAFETY: nextest runs each test in its own process, and nothing else in this
    // one reads the environment while it is set.
    unsafe {
        std::env::set_var("KEEL_TEST_MCP_TOKEN_GOOD", "s3cret-token-for-the-test");
        std::env::set_var("KEEL_TEST_MCP_TOKEN_BAD", "wrong");
    }
    let dir = tempfile::tempdir().unwrap();
    let servers = McpServers::start(
        vec![
            http("remote", &server.url, "KEEL_TEST_MCP_TOKEN_GOOD"),
            http("wrongtoken", &server.url, "KEEL_TEST_MCP_TOKEN_BAD"),
            http("notoken", &server.url, "KEEL_TEST_MCP_TOKEN_UNSET"),
        ],
        dir.path(),
    )
    .await;
    let (_, tools) = running_tools(&servers, "remote");
    assert_eq!(
        tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["remote__add"]
    );
    assert_eq!(tools[0].parameters["properties"]["a"]["type"], "integer");
    let failure = |name: &str| match &servers
        .reports()
        .iter()
        .find(|r| r.name == name)
        .unwrap()
        .state
    {
        ServerState::Failed(e) => e.clone(),
        other => panic!("{name}: {other:?}"),
    };
    assert!(
        failure("wrongtoken").contains("401"),
        "{}",
        failure("wrongtoken")
    );
    assert!(
        failure("notoken").contains("KEEL_TEST_MCP_TOKEN_UNSET"),
        "{}",
        failure("notoken")
    );

    let events = run_turn(
        dir.path(),
        &servers,
        &[call("remote__add", json!({"a": 2, "b": 40})), answer("42")],
    )
    .await;
    let results = events.results();
    assert_eq!(results[0].1, "42", "{results:?}");
    assert!(!results[0].2);
    servers.shutdown().await;
}
