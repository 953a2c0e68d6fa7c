//! A long session in a small window: the conversation is compacted before it overflows,
//! never in a loop, and a resumed session goes on — with the replay model, which fails
//! any request that does not fit its window, as a server would.

use std::path::Path;
use std::sync::{Arc, Mutex};

use keel_agent::{Agent, AgentConfig, EventSink, Session};
use keel_llm::{
    ChatRequest, ModelClient, ModelInfo, ModelStream, ProtocolChoice, ReplayClient, ToolProtocol,
    calls,
};
use keel_protocol::{Event, Outcome};
use keel_tools::{ToolRegistry, Workspace};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const WINDOW: u32 = 4096;

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn emit(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

/// The replay model in a 4k window, recording each main-session request's size.
struct Windowed {
    replay: ReplayClient,
    sizes: Mutex<Vec<u32>>,
}

impl ModelClient for Windowed {
    fn info(&self) -> ModelInfo {
        self.replay.info()
    }

    fn stream(&self, request: ChatRequest) -> ModelStream {
        if !request.session_id.ends_with(":compact") {
            self.sizes
                .lock()
                .unwrap()
                .push(keel_llm::replay_tokens(&request));
        }
        self.replay.stream(request)
    }
}

fn model(dir: &Path, replies: &[String]) -> Arc<Windowed> {
    let path = dir.join("script.jsonl");
    let lines: Vec<String> = replies
        .iter()
        .map(|r| json!({"content": r}).to_string())
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    Arc::new(Windowed {
        replay: ReplayClient::open(&path, "replay:script.jsonl")
            .unwrap()
            .with_context_window(Some(WINDOW)),
        sizes: Mutex::default(),
    })
}

/// Writes a 400-byte note and reads it back, over and over, then says it is done.
fn script(steps: usize, tag: &str) -> Vec<String> {
    let mut replies = Vec::new();
    for i in 0..steps {
        let path = format!("notes/{tag}{}.txt", i / 2);
        let reply = if i % 2 == 0 {
            let content = format!("note {i}: {}\n", "lorem ipsum dolor sit amet ".repeat(14));
            calls::render_call(
                ToolProtocol::Hermes,
                "write",
                &json!({"path": path, "content": content}),
            )
        } else {
            calls::render_call(ToolProtocol::Hermes, "read", &json!({"path": path}))
        };
        replies.push(format!("Step {i}.\n{reply}"));
    }
    replies.push("All notes written.".into());
    replies
}

fn agent(model: Arc<Windowed>, iterations: u32) -> Agent {
    let config = AgentConfig {
        protocol: ProtocolChoice::Fixed(ToolProtocol::Hermes),
        verify: false,
        max_iterations: iterations,
        max_tokens: Some(256),
        ..AgentConfig::default()
    };
    Agent::new(model, ToolRegistry::builtin(), config)
}

fn check(events: &[Event], sizes: &[u32]) -> usize {
    assert!(
        !events.iter().any(|e| matches!(e, Event::Error { .. })),
        "{:?}",
        events.iter().find(|e| matches!(e, Event::Error { .. }))
    );
    assert!(sizes.iter().all(|&s| s + 256 <= WINDOW), "{sizes:?}");
    let compactions: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Compaction {
                tokens_before,
                tokens_after,
                ..
            } => Some((*tokens_before, *tokens_after)),
            _ => None,
        })
        .collect();
    // Each one frees room, and between two rounds of compaction the model works.
    assert!(compactions.iter().all(|(before, after)| after < before));
    let mut in_a_row = 0;
    for event in events {
        match event {
            Event::Compaction { .. } => {
                in_a_row += 1;
                assert!(in_a_row <= 3, "compacting in a loop");
            }
            Event::Assistant { .. } => in_a_row = 0,
            _ => {}
        }
    }
    compactions.len()
}

#[tokio::test]
async fn a_200_iteration_session_in_a_4k_window_compacts_and_goes_on_when_resumed() {
    let scripts = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = model(scripts.path(), &script(199, "a"));
    let agent = agent(model.clone(), 200);
    let sink = Recorder::default();
    let mut session = Session::start(&agent, Workspace::new(dir.path()).unwrap(), &sink);
    let summary = session
        .run_turn(
            &agent,
            "Write the notes and read each back",
            &sink,
            &CancellationToken::new(),
        )
        .await;
    assert_eq!(summary.outcome, Outcome::Completed);
    assert_eq!(summary.iterations, 200);
    let sizes = model.sizes.lock().unwrap().clone();
    let compactions = check(session.events(), &sizes);
    eprintln!(
        "COMPACTIONS {compactions} max size {:?}",
        sizes.iter().max()
    );
    assert!(compactions >= 5, "{compactions} compactions");
    assert!(compactions < 100, "{compactions} compactions");
    assert!(dir.path().join("notes/a99.txt").exists());

    // Resumed from its events, as a new process would: it goes on in the same window.
    let events = session.events().to_vec();
    let scripts = tempfile::tempdir().unwrap();
    let model = model_again(scripts.path());
    let agent = agent_for(model.clone());
    let sink = Recorder::default();
    let mut resumed =
        Session::resume(&agent, Workspace::new(dir.path()).unwrap(), events, &sink).unwrap();
    let summary = resumed
        .run_turn(&agent, "Write two more", &sink, &CancellationToken::new())
        .await;
    assert_eq!(summary.outcome, Outcome::Completed);
    let sizes = model.sizes.lock().unwrap().clone();
    check(resumed.events(), &sizes);
    assert!(dir.path().join("notes/b1.txt").exists());
}

fn model_again(dir: &Path) -> Arc<Windowed> {
    model(dir, &script(4, "b"))
}

fn agent_for(model: Arc<Windowed>) -> Agent {
    agent(model, 20)
}

#[tokio::test]
async fn a_tool_output_bigger_than_the_room_left_is_cut_head_and_tail() {
    let scripts = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let big: String = (0..2000).map(|i| format!("row {i}\n")).collect();
    std::fs::write(dir.path().join("big.txt"), &big).unwrap();
    let replies = vec![
        calls::render_call(ToolProtocol::Hermes, "read", &json!({"path": "big.txt"})),
        "Read it.".to_string(),
    ];
    let model = model(scripts.path(), &replies);
    let agent = agent(model.clone(), 5);
    let sink = Recorder::default();
    let mut session = Session::start(&agent, Workspace::new(dir.path()).unwrap(), &sink);
    let summary = session
        .run_turn(&agent, "Read big.txt", &sink, &CancellationToken::new())
        .await;
    assert_eq!(summary.outcome, Outcome::Completed);
    let output = session
        .events()
        .iter()
        .find_map(|e| match e {
            Event::ToolResult { output, .. } => Some(output.clone()),
            _ => None,
        })
        .unwrap();
    // The read tool's own cap is 12,000 bytes; the window leaves less room than that.
    assert!(output.len() < 6000, "{}", output.len());
    assert!(
        output.contains("row 0\n")
            && output.contains("[The output was cut to fit the context window")
    );
    let sizes = model.sizes.lock().unwrap().clone();
    check(session.events(), &sizes);
}
