//! What small models really write, through the whole loop with the replay model: every
//! accepted call form, the canonical history, a prose "done" before any work, a plain
//! question, stall detection that lets edit → test loops run, and arguments holding the
//! closing tag.

use std::sync::{Arc, Mutex};

use keel_agent::{Agent, AgentConfig, EventSink, Session, TurnSummary};
use keel_llm::{ProtocolChoice, ReplayClient, ToolProtocol, calls};
use keel_protocol::{Event, FeedbackReason, Outcome};
use keel_tools::{ToolRegistry, Workspace};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn emit(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

struct Run {
    session: Session,
    summary: TurnSummary,
    dir: tempfile::TempDir,
}

impl Run {
    fn events(&self) -> &[Event] {
        self.session.events()
    }

    fn calls(&self) -> Vec<(String, Value)> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                Event::ToolCall {
                    name, arguments, ..
                } => Some((name.clone(), arguments.clone())),
                _ => None,
            })
            .collect()
    }

    fn feedback(&self, reason: FeedbackReason) -> Vec<String> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                Event::Feedback { reason: r, content } if *r == reason => Some(content.clone()),
                _ => None,
            })
            .collect()
    }

    fn file(&self, path: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(path)).unwrap()
    }
}

/// One turn of `replies` (the model's texts) in a workspace holding `files`.
async fn run(
    replies: &[String],
    protocol: ToolProtocol,
    files: &[(&str, &str)],
    test_command: Option<&str>,
    task: &str,
) -> Run {
    let scripts = tempfile::tempdir().unwrap();
    let path = scripts.path().join("script.jsonl");
    let lines: Vec<String> = replies
        .iter()
        .map(|r| json!({"content": r}).to_string())
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    let model = Arc::new(ReplayClient::open(&path, "replay:script.jsonl").unwrap());
    let config = AgentConfig {
        protocol: ProtocolChoice::Fixed(protocol),
        verify: test_command.is_some(),
        test_command: test_command.map(str::to_string),
        ..AgentConfig::default()
    };
    let agent = Agent::new(model, ToolRegistry::builtin(), config);
    let dir = tempfile::tempdir().unwrap();
    // More than a small project, so the context does not show the files whole.
    std::fs::write(dir.path().join("padding.txt"), "x\n".repeat(5000)).unwrap();
    for (name, content) in files {
        let full = dir.path().join(name);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    let sink = Recorder::default();
    let mut session = Session::start(&agent, Workspace::new(dir.path()).unwrap(), &sink);
    let summary = session
        .run_turn(&agent, task, &sink, &CancellationToken::new())
        .await;
    Run {
        session,
        summary,
        dir,
    }
}

/// The task most tests here give: `add` in calc.py subtracts; the check greps for the fix.
async fn fix_add(replies: &[String], protocol: ToolProtocol) -> Run {
    run(
        replies,
        protocol,
        &[("calc.py", "def add(a, b):\n    return a - b\n")],
        Some("grep -q 'a + b' calc.py"),
        "Fix add in calc.py",
    )
    .await
}

/// The call that fixes `add`, in `protocol`'s form.
fn the_fix(protocol: ToolProtocol) -> String {
    calls::render_call(
        protocol,
        "edit",
        &json!({"path": "calc.py", "old_string": "a - b", "new_string": "a + b"}),
    )
}

fn hermes(name: &str, args: Value) -> String {
    calls::render_call(ToolProtocol::Hermes, name, &args)
}

fn xml(name: &str, args: Value) -> String {
    calls::render_call(ToolProtocol::Xml, name, &args)
}

#[tokio::test]
async fn every_accepted_form_becomes_a_call_and_the_history_shows_the_canonical_one() {
    let read = json!({"path": "notes.txt"});
    let replies = [
        format!(
            "I'll look.\n```json\n{}\n```",
            json!({"name": "read", "arguments": read})
        ),
        json!({"name": "grep", "input": {"pattern": "alpha"}}).to_string(),
        "<name>glob</name>\n<input>{\"pattern\": \"*.txt\"}</input>".to_string(),
        format!(
            "```tool_call\n{}\n```",
            json!({"name": "glob", "parameters": {"pattern": "*.md"}})
        ),
        xml("read", json!({"path": "notes.txt", "limit": 1})),
        hermes("read", json!({"path": "notes.txt", "offset": 2})),
        "Done: notes.txt holds two lines.".to_string(),
    ];
    let run = run(
        &replies,
        ToolProtocol::Hermes,
        &[("notes.txt", "alpha\nbeta\n")],
        None,
        "what is in notes.txt?",
    )
    .await;
    assert_eq!(run.summary.outcome, Outcome::Completed);
    let names: Vec<String> = run.calls().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["read", "grep", "glob", "glob", "read", "read"]);
    assert_eq!(run.calls()[0].1, read);
    // Every stored reply with a call is in Hermes form, prose kept.
    let replies: Vec<&str> = run
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Assistant { content, .. } if content.contains("<tool_call>") => {
                Some(content.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 6);
    for reply in &replies {
        let parsed = calls::parse_response(reply);
        assert!(parsed.is_canonical(ToolProtocol::Hermes), "{reply}");
        assert!(!reply.contains("```"), "{reply}");
    }
    assert!(
        replies[0].starts_with("I'll look.\n\n<tool_call>\n{\"name\": \"read\""),
        "{}",
        replies[0]
    );
    // No result is an error: every call ran.
    assert!(
        !run.events()
            .iter()
            .any(|e| matches!(e, Event::ToolResult { is_error: true, .. }))
    );
}

#[tokio::test]
async fn a_prose_done_before_any_work_is_asked_again() {
    let replies = [
        "I fixed the function and ran the tests again. The test passed.".to_string(),
        the_fix(ToolProtocol::Xml),
        "Fixed: add now adds.".to_string(),
    ];
    let run = fix_add(&replies, ToolProtocol::Xml).await;
    // The file was never read: the edit needs no read, the claim was refused once.
    assert_eq!(run.feedback(FeedbackReason::NoAction).len(), 1);
    assert_eq!(
        (run.summary.outcome, run.summary.iterations),
        (Outcome::Verified, 3)
    );
    assert!(run.file("calc.py").contains("a + b"));
}

#[tokio::test]
async fn a_claim_that_is_repeated_is_taken_after_the_bounded_asks() {
    let replies = vec!["All done.".to_string(); 3];
    let run = run(&replies, ToolProtocol::Xml, &[], None, "Fix the bug").await;
    assert_eq!(run.feedback(FeedbackReason::NoAction).len(), 2);
    assert_eq!(
        (run.summary.outcome, run.summary.iterations),
        (Outcome::Completed, 3)
    );
}

#[tokio::test]
async fn a_plain_question_is_answered_at_once() {
    let replies = ["It keeps notes: alpha and beta.".to_string()];
    let run = run(
        &replies,
        ToolProtocol::Hermes,
        &[("notes.txt", "alpha\nbeta\n")],
        None,
        "What does this project do?",
    )
    .await;
    assert_eq!(
        (run.summary.outcome, run.summary.iterations),
        (Outcome::Completed, 1)
    );
    assert!(run.feedback(FeedbackReason::NoAction).is_empty());
}

#[tokio::test]
async fn edit_and_test_loops_run_on_and_a_true_loop_stops() {
    let test = json!({"command": "grep -c v calc.py"});
    let mut replies = vec![hermes("read", json!({"path": "calc.py"}))];
    for i in 0..3 {
        replies.push(hermes(
            "edit",
            json!({"path": "calc.py", "old_string": format!("v{i}"), "new_string": format!("v{}", i + 1)}),
        ));
        replies.push(hermes("bash", test.clone()));
    }
    replies.push("Done.".into());
    let run1 = run(
        &replies,
        ToolProtocol::Hermes,
        &[("calc.py", "x = 'v0'\n")],
        None,
        "Bump the version three times",
    )
    .await;
    assert!(
        run1.feedback(FeedbackReason::Stall).is_empty(),
        "{:?}",
        run1.events()
    );
    assert_eq!(run1.summary.outcome, Outcome::Completed);
    assert_eq!(run1.file("calc.py"), "x = 'v3'\n");

    // A command that changes files counts as a change too.
    let touch = json!({"command": "echo 1 >> log.txt"});
    let replies: Vec<String> = (0..5)
        .map(|_| hermes("bash", touch.clone()))
        .chain(["Done.".to_string()])
        .collect();
    let run2 = run(
        &replies,
        ToolProtocol::Hermes,
        &[],
        None,
        "Append to the log five times",
    )
    .await;
    assert!(run2.feedback(FeedbackReason::Stall).is_empty());
    assert_eq!(run2.file("log.txt"), "1\n1\n1\n1\n1\n");

    // The same read with nothing in between: a warning, then the end.
    let read = hermes("read", json!({"path": "calc.py"}));
    let run3 = run(
        &vec![read; 5],
        ToolProtocol::Hermes,
        &[("calc.py", "x = 1\n")],
        None,
        "Fix calc.py",
    )
    .await;
    assert_eq!(run3.feedback(FeedbackReason::Stall).len(), 1);
    assert_eq!(
        (run3.summary.outcome, run3.summary.iterations),
        (Outcome::Stalled, 4)
    );
}

#[tokio::test]
async fn a_reply_that_goes_round_in_a_loop_is_stopped_and_asked_again() {
    // Qwen2.5-Coder 0.5B at greedy decoding, in the eval: 2,144 tokens of this.
    let looping = format!(
        "<tool_call>\n{{\"name\": \"bash\", \"arguments\": {{\"command\": \"echo abc {}",
        "| tr -d ' ' ".repeat(400)
    );
    let replies = [
        looping,
        the_fix(ToolProtocol::Hermes),
        "Fixed: add now adds.".to_string(),
    ];
    let run = fix_add(&replies, ToolProtocol::Hermes).await;
    let looped = run.feedback(FeedbackReason::Looped);
    assert_eq!(looped.len(), 1);
    assert!(looped[0].contains("`| tr -d ' '`"), "{}", looped[0]);
    // Nothing of the looped reply ran, and the history keeps one piece of the loop.
    let names: Vec<String> = run.calls().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["edit"]);
    let first = run
        .events()
        .iter()
        .find_map(|e| match e {
            Event::Assistant { content, .. } => Some(content.clone()),
            _ => None,
        })
        .unwrap();
    assert!(first.len() < 120, "{first}");
    assert_eq!(first.matches("tr -d").count(), 1, "{first}");
    assert_eq!(
        (run.summary.outcome, run.summary.iterations),
        (Outcome::Verified, 3)
    );
}

#[tokio::test]
async fn a_stall_while_the_tests_fail_starts_the_task_afresh_once() {
    // The eval's `change`: the same unparsable write, refused four times (there an
    // apostrophe in a single-quoted string, which keel now re-quotes; here a slip no
    // mend fixes).
    let broken = hermes(
        "write",
        json!({"path": "calc.py", "content": "def add(a, b):\n    return (a +* b\n"}),
    );
    let mut replies = vec![broken.clone(); 4];
    replies.push(the_fix(ToolProtocol::Hermes));
    replies.push("Fixed: add now adds.".to_string());
    let run = fix_add(&replies, ToolProtocol::Hermes).await;
    assert_eq!(run.feedback(FeedbackReason::Stall).len(), 1);
    let fresh = run.feedback(FeedbackReason::FreshStart);
    assert_eq!(fresh.len(), 1, "{:?}", run.events());
    assert!(
        fresh[0].contains("went round in circles") && fresh[0].contains("No file was changed."),
        "{}",
        fresh[0]
    );
    assert_eq!(
        (run.summary.outcome, run.summary.iterations),
        (Outcome::Verified, 6)
    );
    // The conversation the model sees now holds the task and the note, not the circling.
    let request = keel_protocol::conversation(run.events());
    assert!(
        !request.iter().any(|m| m.content.contains("(a +* b")),
        "{request:?}"
    );

    // Circling again after the new start: the end.
    let run = fix_add(&vec![broken; 9], ToolProtocol::Hermes).await;
    assert_eq!(run.feedback(FeedbackReason::FreshStart).len(), 1);
    assert_eq!(run.summary.outcome, Outcome::Stalled);
}

#[tokio::test]
async fn a_write_may_hold_the_closing_tag() {
    let content = "A call ends with </tool_call>; its input with </input>.\n```\nfenced\n```\n";
    for protocol in [ToolProtocol::Xml, ToolProtocol::Hermes] {
        let replies = [
            calls::render_call(
                protocol,
                "write",
                &json!({"path": "FORMAT.md", "content": content}),
            ),
            "Wrote FORMAT.md.".to_string(),
        ];
        let run = run(&replies, protocol, &[], None, "Write FORMAT.md").await;
        assert_eq!(run.summary.outcome, Outcome::Completed, "{protocol:?}");
        assert_eq!(run.file("FORMAT.md"), content, "{protocol:?}");
    }
}

#[test]
fn tools_protocol_resolves_to_the_models_dialect() {
    let mut info = keel_llm::ModelInfo::named("m");
    assert_eq!(ProtocolChoice::Auto.resolve(&info), ToolProtocol::Xml);
    info.dialect = Some(ToolProtocol::Hermes);
    assert_eq!(ProtocolChoice::Auto.resolve(&info), ToolProtocol::Hermes);
    assert_eq!(
        ProtocolChoice::Fixed(ToolProtocol::Xml).resolve(&info),
        ToolProtocol::Xml
    );
}

#[tokio::test]
async fn a_code_block_in_prose_is_written_to_the_file_it_defines() {
    let replies = [
        // Red tests first: the model answers the way chat models do.
        "The bug is in `add`. Here's the updated code:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nThis returns the sum.".to_string(),
        "Fixed: add now adds.".to_string(),
    ];
    let run = run(
        &replies,
        ToolProtocol::Hermes,
        &[
            ("calc.py", "import math\n\n\ndef add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n"),
            ("calc_test.py", "from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"),
        ],
        Some("grep -q 'a + b' calc.py"),
        "Fix add in calc.py",
    )
    .await;
    assert_eq!(
        (run.summary.outcome, run.summary.iterations),
        (Outcome::Verified, 2)
    );
    // Only `add` replaced: the file was never read, keel placed the block itself.
    assert_eq!(
        run.file("calc.py"),
        "import math\n\n\ndef add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
    );
    assert_eq!(run.calls()[0].0, "write");
    assert!(run.feedback(FeedbackReason::NoAction).is_empty());
    // The stored reply shows the call in the canonical form, the prose kept.
    let stored = run
        .events()
        .iter()
        .find_map(|e| match e {
            Event::Assistant { content, .. } if content.contains("<tool_call>") => {
                Some(content.clone())
            }
            _ => None,
        })
        .unwrap();
    assert!(!stored.contains("```"), "{stored}");
    assert!(stored.starts_with("The bug is in `add`."), "{stored}");
    assert!(calls::parse_response(&stored).is_canonical(ToolProtocol::Hermes));
}

#[tokio::test]
async fn a_block_that_names_its_file_beside_a_call_is_written_first() {
    let fixed = "import math\n\n\ndef add(a, b):\n    return a + b\n";
    let replies = [
        // The file as a block, then the tests: the file first, then the run.
        format!(
            "calc.py\n```python\n{fixed}```\n{}",
            hermes("bash", json!({"command": "grep -c 'a + b' calc.py"}))
        ),
        // A block that names no file beside a call is an illustration.
        format!(
            "Like this:\n```python\ndef add(a, b):\n    return b\n```\n{}",
            hermes("read", json!({"path": "calc.py"}))
        ),
        "Fixed.".to_string(),
    ];
    let run = run(
        &replies,
        ToolProtocol::Hermes,
        &[(
            "calc.py",
            "import math\n\n\ndef add(a, b):\n    return a - b\n",
        )],
        Some("grep -q 'a + b' calc.py"),
        "Fix add in calc.py",
    )
    .await;
    assert_eq!(run.summary.outcome, Outcome::Verified);
    let names: Vec<String> = run.calls().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["write", "bash", "read"]);
    // Written byte for byte: blank runs and all.
    assert_eq!(run.file("calc.py"), fixed);
    let bash = run
        .events()
        .iter()
        .find_map(|e| match e {
            Event::ToolResult { name, output, .. } if name == "bash" => Some(output.clone()),
            _ => None,
        })
        .unwrap();
    assert!(bash.starts_with('1'), "the run saw the new file: {bash}");
    // Stored with the write as a call in the canonical form, before the run.
    let stored = run
        .events()
        .iter()
        .find_map(|e| match e {
            Event::Assistant { content, .. } => Some(content.clone()),
            _ => None,
        })
        .unwrap();
    let parsed = calls::parse_response(&stored);
    assert!(parsed.is_canonical(ToolProtocol::Hermes), "{stored}");
    let stored_calls: Vec<String> = parsed.calls.into_iter().flatten().map(|c| c.name).collect();
    assert_eq!(stored_calls, ["write", "bash"], "{stored}");
    assert!(!stored.contains("```"), "{stored}");
}

#[tokio::test]
async fn a_code_block_answering_a_question_writes_nothing() {
    let replies =
        ["Use it like this:\n```python\ndef add(a, b):\n    return a + b\n```".to_string()];
    let run = run(
        &replies,
        ToolProtocol::Hermes,
        &[("calc.py", "def add(a, b):\n    return a - b\n")],
        None,
        "How would add look if it added?",
    )
    .await;
    assert_eq!(run.summary.outcome, Outcome::Completed);
    assert!(run.calls().is_empty());
    assert!(run.file("calc.py").contains("a - b"));
}
