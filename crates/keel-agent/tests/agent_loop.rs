//! The loop with the replay model, in-process.

use std::path::Path;
use std::sync::{Arc, Mutex};

use keel_agent::{Agent, AgentConfig, EventSink, Session};
use keel_llm::ReplayClient;
use keel_protocol::{Event, FeedbackReason, Outcome, Role};
use keel_tools::{ToolRegistry, Workspace};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn emit(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

fn agent(dir: &Path, script: &[serde_json::Value], config: AgentConfig) -> Agent {
    let path = dir.join("script.jsonl");
    let lines: Vec<String> = script.iter().map(|v| v.to_string()).collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    let model = Arc::new(ReplayClient::open(&path, "replay:script.jsonl").unwrap());
    Agent::new(model, ToolRegistry::builtin(), config)
}

fn call(name: &str, input: serde_json::Value) -> String {
    format!("<tool_call>\n<name>{name}</name>\n<input>{input}</input>\n</tool_call>")
}

fn workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "alpha\nbeta\n").unwrap();
    let ws = Workspace::new(dir.path()).unwrap();
    (dir, ws)
}

fn no_tests() -> AgentConfig {
    AgentConfig {
        verify: false,
        ..AgentConfig::default()
    }
}

#[tokio::test]
async fn system_prompt_is_byte_identical_and_the_prompt_only_grows() {
    let scripts = tempfile::tempdir().unwrap();
    let agent = agent(
        scripts.path(),
        &[
            serde_json::json!({"content": format!("Reading.\n{}", call("read", serde_json::json!({"path": "notes.txt"})))}),
            serde_json::json!({"content": "", "tool_calls": [{"name": "grep", "arguments": {"pattern": "beta"}}]}),
            serde_json::json!({"content": "It says alpha and beta."}),
            serde_json::json!({"content": "You are welcome."}),
        ],
        no_tests(),
    );
    let (_a, ws_a) = workspace();
    let (_b, ws_b) = workspace();
    let sink = Recorder::default();
    let mut session = Session::start(&agent, ws_a, &sink);
    let start = session.request(&agent);
    let summary = session
        .run_turn(
            &agent,
            "What is in notes.txt?",
            &sink,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(summary.outcome, Outcome::Completed);
    assert_eq!(summary.iterations, 3);
    let before = session.request(&agent);
    session
        .run_turn(&agent, "Thanks", &sink, &CancellationToken::new())
        .await;
    let after = session.request(&agent);
    let other = Session::start(&agent, ws_b, &sink).request(&agent);

    assert_eq!(before.messages[0].role, Role::System);
    assert_eq!(start.messages[0].content, after.messages[0].content);
    assert_eq!(before.messages[0].content, after.messages[0].content);
    assert_eq!(before.messages[0].content, other.messages[0].content);
    assert!(!before.messages[0].content.contains(session.id()));
    // Append-only: every earlier message is unchanged, in place.
    assert_eq!(after.messages[..before.messages.len()], before.messages[..]);
    let roles: Vec<Role> = after.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::User,
            Role::Assistant,
            Role::User,
            Role::Assistant,
            Role::User,
            Role::Assistant
        ]
    );
    assert!(
        after.messages[3]
            .content
            .contains("<tool_result name=\"read\">\n     1\talpha")
    );
    // The native call is shown to an xml-mode model in its own format.
    assert!(after.messages[4].content.contains("<name>grep</name>"));
    assert!(after.messages[5].content.contains("notes.txt:2:beta"));
}

#[tokio::test]
async fn malformed_calls_become_error_results_and_the_loop_goes_on() {
    let scripts = tempfile::tempdir().unwrap();
    let agent = agent(
        scripts.path(),
        &[
            serde_json::json!({"content": "<tool_call><name>read</name><input>{\"path\": </input></tool_call>"}),
            serde_json::json!({"content": call("frobnicate", serde_json::json!({}))}),
            serde_json::json!({"content": call("read", serde_json::json!({"file": "notes.txt"}))}),
            serde_json::json!({"content": call("read", serde_json::json!({"path": "notes.txt"}))}),
            serde_json::json!({"content": "Done."}),
        ],
        no_tests(),
    );
    let (_d, ws) = workspace();
    let sink = Recorder::default();
    let mut session = Session::start(&agent, ws, &sink);
    let summary = session
        .run_turn(&agent, "read it", &sink, &CancellationToken::new())
        .await;
    assert_eq!(summary.outcome, Outcome::Completed);
    let results: Vec<(bool, String)> = session
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::ToolResult {
                is_error, output, ..
            } => Some((*is_error, output.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 4);
    assert!(
        results[0].0
            && results[0].1.contains("not valid JSON")
            && results[0].1.contains("<name>TOOL_NAME</name>")
    );
    assert!(results[1].0 && results[1].1.contains("unknown tool `frobnicate`"));
    assert!(
        results[2].0
            && results[2].1.contains("unknown field `file`")
            && results[2].1.contains(r#"{"path": string"#)
    );
    assert!(!results[3].0 && results[3].1.contains("alpha"));
}

#[tokio::test]
async fn repeating_the_same_call_warns_then_stalls() {
    let scripts = tempfile::tempdir().unwrap();
    let same =
        serde_json::json!({"content": call("read", serde_json::json!({"path": "notes.txt"}))});
    let agent = agent(scripts.path(), &vec![same; 10], no_tests());
    let (_d, ws) = workspace();
    let sink = Recorder::default();
    let mut session = Session::start(&agent, ws, &sink);
    let summary = session
        .run_turn(&agent, "loop", &sink, &CancellationToken::new())
        .await;
    assert_eq!(summary.outcome, Outcome::Stalled);
    assert_eq!(summary.iterations, 4);
    let warnings = session
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Feedback {
                    reason: FeedbackReason::Stall,
                    ..
                }
            )
        })
        .count();
    assert_eq!(warnings, 1);
}

#[tokio::test]
async fn an_exhausted_script_is_an_error_not_a_hang() {
    let scripts = tempfile::tempdir().unwrap();
    let agent = agent(
        scripts.path(),
        &[serde_json::json!({"content": call("read", serde_json::json!({"path": "notes.txt"}))})],
        no_tests(),
    );
    let (_d, ws) = workspace();
    let sink = Recorder::default();
    let mut session = Session::start(&agent, ws, &sink);
    let summary = session
        .run_turn(&agent, "go", &sink, &CancellationToken::new())
        .await;
    assert_eq!(summary.outcome, Outcome::Failed);
    let error = session.events().iter().find_map(|e| match e {
        Event::Error { message, .. } => Some(message.clone()),
        _ => None,
    });
    assert!(error.unwrap().contains("no response left"));
    assert!(matches!(
        session.events().last(),
        Some(Event::Done {
            outcome: Outcome::Failed,
            iterations: 2
        })
    ));
}

#[tokio::test]
async fn the_iteration_cap_ends_the_turn() {
    let scripts = tempfile::tempdir().unwrap();
    let steps: Vec<_> = (0..5)
        .map(|i| serde_json::json!({"content": call("bash", serde_json::json!({"command": format!("echo {i}")}))}))
        .collect();
    let agent = agent(
        scripts.path(),
        &steps,
        AgentConfig {
            max_iterations: 3,
            ..no_tests()
        },
    );
    let (_d, ws) = workspace();
    let sink = Recorder::default();
    let mut session = Session::start(&agent, ws, &sink);
    let summary = session
        .run_turn(&agent, "go", &sink, &CancellationToken::new())
        .await;
    assert_eq!(
        (summary.outcome, summary.iterations),
        (Outcome::MaxIterations, 3)
    );
}

#[tokio::test]
async fn red_tests_go_back_to_the_model_and_green_ones_verify() {
    let scripts = tempfile::tempdir().unwrap();
    let agent = agent(
        scripts.path(),
        &[
            serde_json::json!({"content": "All done!"}),
            serde_json::json!({"content": call("bash", serde_json::json!({"command": "touch fixed"}))}),
            serde_json::json!({"content": "Now it is done."}),
        ],
        AgentConfig {
            test_command: Some("test -f fixed || { echo 'FAILED test_fixed'; exit 1; }".into()),
            ..AgentConfig::default()
        },
    );
    let (_d, ws) = workspace();
    let sink = Recorder::default();
    let mut session = Session::start(&agent, ws, &sink);
    let summary = session
        .run_turn(&agent, "fix", &sink, &CancellationToken::new())
        .await;
    assert_eq!(
        (summary.outcome, summary.iterations),
        (Outcome::Verified, 3)
    );
    let feedback = session.events().iter().find_map(|e| match e {
        Event::Feedback {
            reason: FeedbackReason::TestsFailed,
            content,
        } => Some(content.clone()),
        _ => None,
    });
    assert!(feedback.unwrap().contains("FAILED test_fixed"));
    let responses: Vec<&Event> = session
        .events()
        .iter()
        .filter(|e| matches!(e, Event::Response { .. }))
        .collect();
    assert_eq!(
        responses,
        [&Event::Response {
            content: "Now it is done.".into()
        }]
    );
}

#[tokio::test]
async fn cancelling_stops_the_running_tool() {
    let scripts = tempfile::tempdir().unwrap();
    let agent = agent(
        scripts.path(),
        &[
            serde_json::json!({"content": call("bash", serde_json::json!({"command": "sleep 120"}))}),
        ],
        no_tests(),
    );
    let (_d, ws) = workspace();
    let sink = Recorder::default();
    let mut session = Session::start(&agent, ws, &sink);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let summary = session.run_turn(&agent, "wait", &sink, &cancel).await;
    assert_eq!(summary.outcome, Outcome::Cancelled);
    assert!(session.events().iter().any(|e| matches!(e, Event::ToolResult { is_error: true, output, .. } if output.contains("cancelled"))));
}
