//! Approvals through the loop: `[permissions]` rules, the defaults (a command that
//! wants the network is asked about; approved, it gets the network for that call), and
//! the approver's answer in the events and the tool result.

use std::io::Read as _;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use keel_agent::permissions::{Action, Approver, FixedApprover, PendingApprovals, Rule};
use keel_agent::{Agent, AgentConfig, EventSink, Session};
use keel_llm::ReplayClient;
use keel_protocol::Event;
use keel_tools::{ToolRegistry, Workspace};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn emit(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

fn call(name: &str, input: serde_json::Value) -> String {
    format!("<tool_call>\n<name>{name}</name>\n<input>{input}</input>\n</tool_call>")
}

fn agent(
    replies: &[String],
    config: AgentConfig,
    approver: Option<Arc<dyn Approver>>,
) -> (Agent, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.jsonl");
    let lines: Vec<String> = replies
        .iter()
        .map(|r| json!({"content": r}).to_string())
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    let model = Arc::new(ReplayClient::open(&path, "replay:script.jsonl").unwrap());
    let mut agent = Agent::new(model, ToolRegistry::builtin(), config);
    if let Some(approver) = approver {
        agent = agent.with_approver(approver);
    }
    (agent, dir)
}

fn config(rules: Vec<Rule>) -> AgentConfig {
    AgentConfig {
        verify: false,
        protocol: keel_llm::ProtocolChoice::Fixed(keel_llm::ToolProtocol::Xml),
        permission_rules: rules,
        ..AgentConfig::default()
    }
}

async fn run(agent: &Agent) -> (Vec<Event>, tempfile::TempDir) {
    let ws = tempfile::tempdir().unwrap();
    let sink = Recorder::default();
    let mut session = Session::start(agent, Workspace::new(ws.path()).unwrap(), &sink);
    session
        .run_turn(agent, "Fetch it", &sink, &CancellationToken::new())
        .await;
    (session.events().to_vec(), ws)
}

fn result(events: &[Event]) -> (bool, String) {
    events
        .iter()
        .find_map(|e| match e {
            Event::ToolResult {
                is_error, output, ..
            } => Some((*is_error, output.clone())),
            _ => None,
        })
        .unwrap()
}

fn approvals(events: &[Event]) -> Vec<(bool, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Approval { allowed, by, .. } => Some((*allowed, by.clone())),
            _ => None,
        })
        .collect()
}

/// A listener on the host's loopback and a command that sends it a line.
fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    (
        listener,
        format!("curl -s -m 5 http://127.0.0.1:{port}/ping || echo curl failed"),
    )
}

fn received(listener: &TcpListener) -> bool {
    match listener.accept() {
        Ok((mut stream, _)) => {
            let mut buffer = [0u8; 64];
            let _ = stream.read(&mut buffer);
            true
        }
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_network_command_is_asked_about_and_refused_without_anyone_to_ask() {
    let (listener, command) = listener();
    let replies = [
        call("bash", json!({"command": command})),
        "I could not fetch it.".into(),
    ];
    let (agent, _dir) = agent(&replies, config(Vec::new()), None);
    let (events, _ws) = run(&agent).await;
    let request = events.iter().find_map(|e| match e {
        Event::ApprovalRequest { name, reason, .. } => Some((name.clone(), reason.clone())),
        _ => None,
    });
    let (name, reason) = request.expect("no approval request");
    assert_eq!(name, "bash");
    assert!(reason.contains("network"), "{reason}");
    assert_eq!(approvals(&events), [(false, "no one to ask".to_string())]);
    let (is_error, output) = result(&events);
    assert!(is_error && output.contains("did not approve"), "{output}");
    assert!(!received(&listener));
}

#[tokio::test]
async fn an_approved_network_command_gets_the_network_for_that_call() {
    let (listener, command) = listener();
    let replies = [call("bash", json!({"command": command})), "Fetched.".into()];
    let approver: Arc<dyn Approver> = Arc::new(FixedApprover {
        allow: true,
        by: "test".into(),
    });
    let (agent, _dir) = agent(&replies, config(Vec::new()), Some(approver));
    let server = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if received(&listener) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    });
    let (events, _ws) = run(&agent).await;
    assert_eq!(approvals(&events), [(true, "test".to_string())]);
    assert!(
        server.join().unwrap(),
        "the approved command did not reach the host"
    );
}

#[tokio::test]
async fn rules_deny_and_allow_before_the_defaults() {
    let rules = vec![
        Rule::new("bash", Some("rm *"), Action::Deny).unwrap(),
        Rule::new("write", Some("*.lock"), Action::Deny).unwrap(),
    ];
    let replies = [
        call("bash", json!({"command": "rm -rf notes"})),
        call("write", json!({"path": "deps.lock", "content": "x"})),
        call("write", json!({"path": "ok.txt", "content": "x"})),
        "Done.".into(),
    ];
    let (agent, _dir) = agent(&replies, config(rules), None);
    let (events, ws) = run(&agent).await;
    assert_eq!(
        approvals(&events),
        [(false, "rule".to_string()), (false, "rule".to_string())]
    );
    let results: Vec<(bool, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::ToolResult {
                is_error, output, ..
            } => Some((*is_error, output.clone())),
            _ => None,
        })
        .collect();
    assert!(
        results[0].0 && results[0].1.contains("`rm *`"),
        "{:?}",
        results[0]
    );
    assert!(
        results[1].0 && results[1].1.starts_with("denied"),
        "{:?}",
        results[1]
    );
    assert!(!results[2].0);
    assert!(!ws.path().join("deps.lock").exists());
    assert!(ws.path().join("ok.txt").exists());
}

#[tokio::test]
async fn a_pending_request_waits_for_its_answer() {
    let rules = vec![Rule::new("write", None, Action::Ask).unwrap()];
    let replies = [
        call("write", json!({"path": "a.txt", "content": "x"})),
        "Done.".into(),
    ];
    let pending = Arc::new(PendingApprovals::default());
    let (agent, _dir) = agent(
        &replies,
        config(rules),
        Some(Arc::clone(&pending) as Arc<dyn Approver>),
    );
    let ws = tempfile::tempdir().unwrap();
    let sink = Recorder::default();
    let mut session = Session::start(&agent, Workspace::new(ws.path()).unwrap(), &sink);
    let id = session.id().to_string();
    let answer = tokio::spawn(async move {
        while !pending.answer(&id, "call_1", true) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    session
        .run_turn(&agent, "Write a", &sink, &CancellationToken::new())
        .await;
    answer.await.unwrap();
    assert_eq!(approvals(session.events()), [(true, "user".to_string())]);
    assert!(ws.path().join("a.txt").exists());
}
