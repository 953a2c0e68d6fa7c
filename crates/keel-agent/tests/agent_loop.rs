//! The loop with the replay model, in-process.

use std::path::Path;
use std::sync::{Arc, Mutex};

use keel_agent::{Agent, AgentConfig, EventSink, Session};
use keel_llm::ReplayClient;
use keel_protocol::{Event, FeedbackReason, Outcome, Role};
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

/// Runs one turn of `script` in a fresh workspace.
async fn run_script(
    script: &[serde_json::Value],
    config: AgentConfig,
    task: &str,
) -> (Session, keel_agent::TurnSummary) {
    run_cancellable(script, config, task, &CancellationToken::new()).await
}

async fn run_cancellable(
    script: &[serde_json::Value],
    config: AgentConfig,
    task: &str,
    cancel: &CancellationToken,
) -> (Session, keel_agent::TurnSummary) {
    let scripts = tempfile::tempdir().unwrap();
    let agent = agent(scripts.path(), script, config);
    let (dir, ws) = workspace();
    let sink = Recorder::default();
    let mut session = Session::start(&agent, ws, &sink);
    let summary = session.run_turn(&agent, task, &sink, cancel).await;
    drop(dir);
    (session, summary)
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
    let script = [
        json!({"content": "<tool_call><name>read</name><input>{\"path\": </input></tool_call>"}),
        json!({"content": call("frobnicate", json!({}))}),
        json!({"content": call("read", json!({"file": "notes.txt"}))}),
        json!({"content": call("read", json!({"path": "notes.txt"}))}),
        json!({"content": "Done."}),
    ];
    let (session, summary) = run_script(&script, no_tests(), "read it").await;
    assert_eq!(summary.outcome, Outcome::Completed);
    let results = results(&session);
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

/// (is_error, output) of every tool result, in order.
fn results(session: &Session) -> Vec<(bool, String)> {
    session
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::ToolResult {
                is_error, output, ..
            } => Some((*is_error, output.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn calls_of_one_response_keep_their_order() {
    let content = [
        call("write", json!({"path": "a.txt", "content": "one\n"})),
        call("read", json!({"path": "a.txt"})),
        call("grep", json!({"pattern": "one"})),
        call("bash", json!({"command": "echo two >> a.txt"})),
        call("read", json!({"path": "a.txt"})),
        call("glob", json!({"pattern": "a.*"})),
    ]
    .join("\n");
    let script = [json!({"content": content}), json!({"content": "ok"})];
    let (session, _) = run_script(&script, no_tests(), "go").await;
    let outputs: Vec<String> = results(&session).into_iter().map(|(_, o)| o).collect();
    assert_eq!(outputs.len(), 6);
    assert!(outputs[0].starts_with("created a.txt"));
    assert_eq!(outputs[1], "     1\tone\n");
    assert_eq!(outputs[2], "a.txt:1:one");
    assert_eq!(outputs[4], "     1\tone\n     2\ttwo\n");
    assert_eq!(outputs[5], "a.txt");
    let ids: Vec<String> = session
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::ToolResult { call_id, .. } => Some(call_id.clone()),
            _ => None,
        })
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6, "{ids:?}");
}

#[tokio::test]
async fn repeating_the_same_call_warns_then_stalls() {
    let same = json!({"content": call("read", json!({"path": "notes.txt"}))});
    let (session, summary) = run_script(&vec![same; 10], no_tests(), "loop").await;
    assert_eq!((summary.outcome, summary.iterations), (Outcome::Stalled, 4));
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
    let script = [json!({"content": call("read", json!({"path": "notes.txt"}))})];
    let (session, summary) = run_script(&script, no_tests(), "go").await;
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
    let steps: Vec<_> = (0..5)
        .map(|i| json!({"content": call("bash", json!({"command": format!("echo {i}")}))}))
        .collect();
    let config = AgentConfig {
        max_iterations: 3,
        ..no_tests()
    };
    let (_, summary) = run_script(&steps, config, "go").await;
    assert_eq!(
        (summary.outcome, summary.iterations),
        (Outcome::MaxIterations, 3)
    );
}

#[tokio::test]
async fn red_tests_go_back_to_the_model_and_green_ones_verify() {
    let script = [
        json!({"content": "All done!"}),
        json!({"content": call("bash", json!({"command": "touch fixed"}))}),
        json!({"content": "Now it is done."}),
    ];
    let config = AgentConfig {
        test_command: Some("test -f fixed || { echo 'FAILED test_fixed'; exit 1; }".into()),
        ..AgentConfig::default()
    };
    // A question, so the prose answer is taken (and verified) at once.
    let (session, summary) = run_script(&script, config, "is it fixed?").await;
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
    let script = [json!({"content": call("bash", json!({"command": "sleep 120"}))})];
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let (session, summary) = run_cancellable(&script, no_tests(), "wait", &cancel).await;
    assert_eq!(summary.outcome, Outcome::Cancelled);
    let results = results(&session);
    assert!(
        results[0].0 && results[0].1.contains("cancelled"),
        "{results:?}"
    );
}
