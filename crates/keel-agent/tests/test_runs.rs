//! The tests run after each change when they are quick, and a model that writes code
//! whose tests already failed is told so and sampled hotter for its next reply — with
//! the replay model, through the whole loop.

use std::sync::{Arc, Mutex};

use keel_agent::{Agent, AgentConfig, EventSink, Session, TurnSummary};
use keel_llm::{
    ChatRequest, ModelClient, ModelInfo, ModelStream, ProtocolChoice, ReplayClient, ToolProtocol,
    calls,
};
use keel_protocol::{Event, FeedbackReason, Message, Outcome, Role};
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

/// The replay model, and the temperature and messages of each request.
struct Temperatures {
    replay: ReplayClient,
    seen: Mutex<Vec<Option<f32>>>,
    messages: Mutex<Vec<Vec<Message>>>,
    /// The tools a call was required of, for each request that required one.
    required: Mutex<Vec<Option<Vec<String>>>>,
    /// Whether each request asked for a reply that ends with a call.
    end_with_call: Mutex<Vec<bool>>,
    /// The tools each request offered the backend.
    tools: Mutex<Vec<Vec<String>>>,
    /// Say the backend constrains calls with a grammar (as the embedded engine does).
    grammar: bool,
}

impl ModelClient for Temperatures {
    fn info(&self) -> ModelInfo {
        let mut info = self.replay.info();
        if self.grammar {
            info.constraint = Some(keel_llm::Constraint::Grammar);
        }
        info
    }

    fn stream(&self, request: ChatRequest) -> ModelStream {
        self.seen.lock().unwrap().push(request.temperature);
        self.messages.lock().unwrap().push(request.messages.clone());
        self.required.lock().unwrap().push(
            request
                .require_call
                .then(|| request.tools.iter().map(|t| t.name.clone()).collect()),
        );
        self.end_with_call
            .lock()
            .unwrap()
            .push(request.end_with_call);
        self.tools
            .lock()
            .unwrap()
            .push(request.tools.iter().map(|t| t.name.clone()).collect());
        self.replay.stream(request)
    }
}

struct Run {
    session: Session,
    summary: TurnSummary,
    temperatures: Vec<Option<f32>>,
    requests: Vec<Vec<Message>>,
    required: Vec<Option<Vec<String>>>,
    end_with_call: Vec<bool>,
    tools: Vec<Vec<String>>,
    dir: tempfile::TempDir,
}

impl Run {
    fn reasons(&self) -> Vec<FeedbackReason> {
        self.feedback().into_iter().map(|(r, _)| r).collect()
    }

    fn feedback(&self) -> Vec<(FeedbackReason, String)> {
        self.session
            .events()
            .iter()
            .filter_map(|e| match e {
                Event::Feedback { reason, content } => Some((*reason, content.clone())),
                _ => None,
            })
            .collect()
    }
}

async fn run(replies: &[String], files: &[(&str, &str)], test_command: &str) -> Run {
    run_on(replies, files, test_command, false).await
}

async fn run_on(
    replies: &[String],
    files: &[(&str, &str)],
    test_command: &str,
    grammar: bool,
) -> Run {
    let scripts = tempfile::tempdir().unwrap();
    let path = scripts.path().join("script.jsonl");
    let lines: Vec<String> = replies
        .iter()
        .map(|r| json!({"content": r}).to_string())
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    let model = Arc::new(Temperatures {
        replay: ReplayClient::open(&path, "replay:script.jsonl").unwrap(),
        seen: Mutex::default(),
        messages: Mutex::default(),
        required: Mutex::default(),
        end_with_call: Mutex::default(),
        tools: Mutex::default(),
        grammar,
    });
    let config = AgentConfig {
        protocol: ProtocolChoice::Fixed(ToolProtocol::Hermes),
        verify: true,
        test_command: Some(test_command.into()),
        ..AgentConfig::default()
    };
    let agent = Agent::new(model.clone(), ToolRegistry::builtin(), config);
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let sink = Recorder::default();
    let mut session = Session::start(&agent, Workspace::new(dir.path()).unwrap(), &sink);
    let summary = session
        .run_turn(
            &agent,
            "Fix calc.txt so the tests pass",
            &sink,
            &CancellationToken::new(),
        )
        .await;
    let temperatures = model.seen.lock().unwrap().clone();
    let requests = model.messages.lock().unwrap().clone();
    let required = model.required.lock().unwrap().clone();
    let end_with_call = model.end_with_call.lock().unwrap().clone();
    let tools = model.tools.lock().unwrap().clone();
    Run {
        session,
        summary,
        temperatures,
        requests,
        required,
        end_with_call,
        tools,
        dir,
    }
}

fn write(path: &str, content: &str) -> String {
    calls::render_call(
        ToolProtocol::Hermes,
        "write",
        &json!({"path": path, "content": content}),
    )
}

fn call(name: &str, arguments: Value) -> String {
    calls::render_call(ToolProtocol::Hermes, name, &arguments)
}

#[tokio::test]
async fn quick_tests_run_after_each_change_and_failing_code_written_again_is_named() {
    let replies = [
        write("calc.txt", "still broken\n"),
        // The same bytes again: the state whose tests just failed.
        write("calc.txt", "still broken\n"),
        write("calc.txt", "fixed\n"),
        "Done: calc.txt is fixed.".to_string(),
    ];
    let run = run(
        &replies,
        &[("calc.txt", "broken\n")],
        "grep -q fixed calc.txt",
    )
    .await;
    assert_eq!(
        run.summary.outcome,
        Outcome::Verified,
        "{:?}",
        run.feedback()
    );
    // Failed, then repeated: that attempt is over, and the task starts afresh.
    assert_eq!(
        run.reasons(),
        [
            FeedbackReason::TestRun,
            FeedbackReason::Repeat,
            FeedbackReason::FreshStart,
            FeedbackReason::TestRun
        ]
    );
    let feedback = run.feedback();
    assert!(
        feedback[0].1.contains("they fail") && feedback[0].1.contains("grep -q fixed calc.txt"),
        "{}",
        feedback[0].1
    );
    assert!(feedback[3].1.contains("they pass"), "{}", feedback[3].1);
    // Every reply of the new attempt is sampled warm.
    assert_eq!(run.temperatures, [None, None, Some(0.7), Some(0.7)]);
    assert_eq!(
        std::fs::read_to_string(run.dir.path().join("calc.txt")).unwrap(),
        "fixed\n"
    );
}

#[tokio::test]
async fn an_attempt_that_failed_twice_starts_afresh_from_the_original_files() {
    let replies = [
        write("calc.txt", "wrong one\n"),
        write("calc.txt", "wrong two\n"),
        // Succeeds only on the original bytes: the fresh start put them back.
        call(
            "edit",
            json!({"path": "calc.txt", "old_string": "broken", "new_string": "fixed"}),
        ),
        "Done.".to_string(),
    ];
    let run = run_on(
        &replies,
        &[("calc.txt", "broken\n")],
        "grep -q fixed calc.txt",
        true,
    )
    .await;
    assert_eq!(
        run.summary.outcome,
        Outcome::Verified,
        "{:?}",
        run.feedback()
    );
    assert_eq!(
        run.reasons(),
        [
            FeedbackReason::TestRun,
            FeedbackReason::TestRun,
            FeedbackReason::FreshStart,
            FeedbackReason::TestRun
        ]
    );
    let note = &run.feedback()[2].1;
    assert!(
        note.contains("keel has put calc.txt back as it was when the task started"),
        "{note}"
    );
    // The new attempt's request: the context and the task with the note, no trace of
    // the failed code.
    let fresh = &run.requests[2];
    let turn: Vec<Role> = fresh.iter().map(|m| m.role).collect();
    assert_eq!(turn.last(), Some(&Role::User), "{turn:?}");
    assert!(!turn.contains(&Role::Assistant) && !turn.contains(&Role::Tool));
    let task = &fresh.last().unwrap().content;
    assert!(
        task.contains("\n\nFix calc.txt so the tests pass\n\nNote from keel: An earlier attempt"),
        "{task}"
    );
    assert!(
        !fresh
            .iter()
            .any(|m| m.content.contains("wrong one") || m.content.contains("wrong two"))
    );
    assert_eq!(run.temperatures, [None, None, Some(0.7), Some(0.7)]);
    // The new attempt's first reply may explain (no call required at its start), but
    // it ends with a call, and that call can only change a file.
    assert_eq!(run.required, [None, None, None, None]);
    assert_eq!(run.end_with_call, [false, true, true, false]);
    assert_eq!(run.tools[2], ["edit", "write"]);
    assert!(run.tools[3].len() > 2, "{:?}", run.tools[3]);
    // A resumed session renders the same conversation.
    let rebuilt = keel_protocol::conversation(run.session.events());
    assert!(rebuilt.iter().any(|m| {
        m.content
            .starts_with("Fix calc.txt so the tests pass\n\nNote from keel")
    }));
    assert_eq!(
        std::fs::read_to_string(run.dir.path().join("calc.txt")).unwrap(),
        "fixed\n"
    );
}

#[tokio::test]
async fn a_failing_test_run_of_the_models_own_marks_the_code_and_a_word_for_word_reply_is_sampled_hotter()
 {
    let test = call("bash", json!({"command": "grep -q fixed calc.txt"}));
    let replies = [
        // Read-only work and the model's own red test run: no test run of keel's.
        call("read", json!({"path": "calc.txt"})),
        test.clone(),
        // The same reply word for word.
        test,
        // Reverting to the code the model's own run found red.
        write("calc.txt", "broken\n"),
        write("calc.txt", "fixed\n"),
        "Done.".to_string(),
    ];
    let run = run(
        &replies,
        &[("calc.txt", "broken\n")],
        "grep -q fixed calc.txt",
    )
    .await;
    assert_eq!(
        run.summary.outcome,
        Outcome::Verified,
        "{:?}",
        run.feedback()
    );
    assert_eq!(
        run.reasons(),
        [FeedbackReason::Repeat, FeedbackReason::TestRun]
    );
    assert_eq!(
        run.temperatures,
        [None, None, None, Some(0.6), Some(0.8), None]
    );
}

#[tokio::test]
async fn a_loop_of_calls_that_change_nothing_while_the_tests_fail_must_end_in_a_change() {
    let test = call("bash", json!({"command": "grep -q fixed calc.txt"}));
    let replies = [
        test.clone(),
        test.clone(),
        // The third time: a stall, and the next reply must write or edit.
        test,
        write("calc.txt", "fixed\n"),
        "Done.".to_string(),
    ];
    let run = run_on(
        &replies,
        &[("calc.txt", "broken\n")],
        "grep -q fixed calc.txt",
        true,
    )
    .await;
    assert_eq!(
        run.summary.outcome,
        Outcome::Verified,
        "{:?}",
        run.feedback()
    );
    let stall = run
        .feedback()
        .into_iter()
        .find(|(r, _)| *r == FeedbackReason::Stall)
        .unwrap();
    assert!(
        stall
            .1
            .ends_with("your next reply must change the code: call edit or write."),
        "{}",
        stall.1
    );
    assert_eq!(
        run.required,
        [
            None,
            None,
            None,
            Some(vec!["edit".to_string(), "write".to_string()]),
            None
        ]
    );
}

#[tokio::test]
async fn an_empty_reply_to_a_task_is_asked_again_and_not_counted() {
    let replies = [
        String::new(),
        write("calc.txt", "fixed\n"),
        // Empty twice in a row: the second is taken as the end of the turn.
        String::new(),
        String::new(),
    ];
    let run = run(
        &replies,
        &[("calc.txt", "broken\n")],
        "grep -q fixed calc.txt",
    )
    .await;
    // Four replies, two iterations (a constraining backend opens the asked-again
    // reply with a call: `required_call_request`).
    assert_eq!(run.temperatures.len(), 4);
    assert_eq!(run.summary.outcome, Outcome::Verified);
    assert_eq!(run.summary.iterations, 2);
}

/// Four tests of `add` and `sub`; the replies: a version failing 2 of them (the best),
/// then `second`, then the fix of `sub` that passes only on the best version (so it
/// passes when a fresh start went back to it), then "Done.".
async fn best_then(second: &str) -> Run {
    let tests = "from calc import add, sub\n\ndef test_add():\n    assert add(1, 2) == 3\n\ndef test_add_again():\n    assert add(2, 2) == 4\n\ndef test_sub():\n    assert sub(3, 1) == 2\n\ndef test_sub_zero():\n    assert sub(5, 5) == 0\n";
    let half = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a + b\n";
    let replies = [
        write("calc.py", half),
        write("calc.py", second),
        call(
            "edit",
            json!({"path": "calc.py", "old_string": "def sub(a, b):\n    return a + b", "new_string": "def sub(a, b):\n    return a - b"}),
        ),
        "Done.".to_string(),
    ];
    run(
        &replies,
        &[
            (
                "calc.py",
                "def add(a, b):\n    return 0\n\n\ndef sub(a, b):\n    return 1\n",
            ),
            ("test_calc.py", tests),
        ],
        "python3 -m pytest -q test_calc.py",
    )
    .await
}

#[tokio::test]
async fn a_fresh_start_goes_back_to_the_best_attempt_and_shows_it() {
    // Worse than the best: 4 failing. The attempt is over. (Nothing that passed breaks,
    // so no part of either change is taken back.)
    let run = best_then("def add(a, b):\n    return 99\n\n\ndef sub(a, b):\n    return 99\n").await;
    assert_eq!(
        run.summary.outcome,
        Outcome::Verified,
        "{:?}",
        run.feedback()
    );
    assert_eq!(
        run.reasons(),
        [
            FeedbackReason::TestRun,
            FeedbackReason::TestRun,
            FeedbackReason::FreshStart,
            FeedbackReason::TestRun
        ]
    );
    let note = &run.feedback()[2].1;
    assert!(
        note.contains("with 2 failing tests (not what the project context above shows):\n\ncalc.py:\n```\ndef add(a, b):\n    return a + b"),
        "{note}"
    );
    assert!(note.contains("test_sub: assert 4 == 2"), "{note}");
    assert!(!note.contains("return 99"));
}

/// The eval's pascals-triangle: a version whose tests could not even be collected (the
/// module fails on import) reads as "1 error", and was gone back to as the best version
/// "with 1 failing test" over one that passed 7 of 10.
#[tokio::test]
async fn a_version_whose_tests_could_not_run_is_never_the_best() {
    // Fails on import: no test runs. The attempt is over.
    let run = best_then("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\n\nraise RuntimeError('not yet')\n").await;
    let feedback = run.feedback();
    assert_eq!(run.summary.outcome, Outcome::Verified, "{feedback:?}");
    assert_eq!(
        run.reasons(),
        [
            FeedbackReason::TestRun,
            FeedbackReason::TestRun,
            FeedbackReason::FreshStart,
            FeedbackReason::TestRun
        ],
        "{feedback:?}"
    );
    let note = &feedback[2].1;
    assert!(note.contains("with 2 failing tests"), "{note}");
    assert!(!note.contains("not yet"), "{note}");
}

/// find-the-code's `overselling` (Qwen2.5-Coder 1.5B): the rewrite added the missing
/// stock check and changed `return stock[sku]` to `return stock` on the way, so a test
/// that passed before failed, and the fix was thrown away with the attempt.
#[tokio::test]
async fn the_part_of_a_change_that_broke_a_passing_test_is_taken_back() {
    let check = "fail=0\ngrep -q check calc.txt || { echo 'FAILED t.py::test_check - no check'; fail=1; }\ngrep -q 'return stock.sku.' calc.txt || { echo 'FAILED t.py::test_return - wrong return'; fail=1; }\nexit $fail\n";
    let original = "def reserve():\n    take()\n    return stock[sku]\n";
    let replies = [
        write(
            "calc.txt",
            "def reserve():\n    check()\n    take()\n    return stock\n",
        ),
        "Done: reserve checks the stock.".to_string(),
    ];
    let trimmed = run(
        &replies,
        &[("calc.txt", original), ("check.sh", check)],
        "sh check.sh",
    )
    .await;
    let feedback = trimmed.feedback();
    assert_eq!(trimmed.summary.outcome, Outcome::Verified, "{feedback:?}");
    assert_eq!(trimmed.reasons(), [FeedbackReason::TestRun], "{feedback:?}");
    assert!(
        feedback[0].1.starts_with("Your change to calc.txt made test t.py::test_return fail, which passed before it. Without this part of the change test t.py::test_return passes, so keel took it back and kept the rest of your change:\nat line 4:\n-     return stock[sku]\n+     return stock\n"),
        "{}",
        feedback[0].1
    );
    assert!(feedback[0].1.contains("they pass"), "{}", feedback[0].1);
    assert_eq!(
        std::fs::read_to_string(trimmed.dir.path().join("calc.txt")).unwrap(),
        "def reserve():\n    check()\n    take()\n    return stock[sku]\n"
    );

    // A change of one run of lines is the model's to mend: left as it wrote it.
    let replies = [
        write(
            "calc.txt",
            "def reserve():\n    check()\n    return stock\n",
        ),
        "Done.".to_string(),
    ];
    let one = run(
        &replies,
        &[("calc.txt", original), ("check.sh", check)],
        "sh check.sh",
    )
    .await;
    let feedback = one.feedback();
    assert!(!feedback[0].1.contains("took it back"), "{}", feedback[0].1);
    assert!(feedback[0].1.contains("they fail"), "{}", feedback[0].1);
    assert_eq!(
        std::fs::read_to_string(one.dir.path().join("calc.txt")).unwrap(),
        "def reserve():\n    check()\n    return stock\n"
    );
}

#[tokio::test]
async fn done_said_with_nothing_changed_since_red_tests_is_not_run_again_but_must_change() {
    let replies = [
        write("calc.txt", "still broken\n"),
        // The small model's way to ask for a test run: the command as prose.
        "python3 -m pytest -q".to_string(),
        write("calc.txt", "fixed\n"),
        "Done.".to_string(),
    ];
    let run = run_on(
        &replies,
        &[("calc.txt", "broken\n")],
        "grep -q fixed calc.txt",
        true,
    )
    .await;
    assert_eq!(
        run.summary.outcome,
        Outcome::Verified,
        "{:?}",
        run.feedback()
    );
    let told = run
        .feedback()
        .into_iter()
        .find(|(r, _)| *r == FeedbackReason::TestsFailed)
        .unwrap();
    assert!(
        told.1.contains("the files are exactly as they were when the tests failed (`grep -q fixed calc.txt`, above)"),
        "{}",
        told.1
    );
    // Verified once, at the end: the unchanged red workspace was not run again.
    let verifications = run
        .session
        .events()
        .iter()
        .filter(|e| matches!(e, Event::Verification { .. }))
        .count();
    assert_eq!(verifications, 1);
    assert_eq!(
        run.required,
        [
            None,
            None,
            Some(vec!["edit".to_string(), "write".to_string()]),
            None
        ]
    );
}

#[tokio::test]
async fn done_said_twice_in_the_same_red_state_runs_the_tests_the_second_time() {
    let replies = [
        write("calc.txt", "still broken\n"),
        "Done.".to_string(),
        "Done.".to_string(),
    ];
    let run = run(
        &replies,
        &[("calc.txt", "broken\n")],
        "grep -q fixed calc.txt",
    )
    .await;
    let failed: Vec<String> = run
        .feedback()
        .into_iter()
        .filter(|(r, _)| *r == FeedbackReason::TestsFailed)
        .map(|(_, c)| c)
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed[0].contains("exactly as they were"));
    assert!(
        failed[1].starts_with("You said you are done, but the tests fail"),
        "{}",
        failed[1]
    );
    assert_ne!(run.summary.outcome, Outcome::Verified);
}

#[tokio::test]
async fn a_reply_after_red_tests_may_say_the_cause_but_must_end_with_a_call() {
    let replies = [
        write("calc.txt", "still broken\n"),
        // Reads change nothing: still red, still a call to end with.
        call("read", json!({"path": "calc.txt"})),
        write("calc.txt", "fixed\n"),
        "Done.".to_string(),
    ];
    let run = run_on(
        &replies,
        &[("calc.txt", "broken\n")],
        "grep -q fixed calc.txt",
        true,
    )
    .await;
    assert_eq!(
        run.summary.outcome,
        Outcome::Verified,
        "{:?}",
        run.feedback()
    );
    // Before any run, nothing asked; after the red run, every request until a change
    // made the tests pass; not after the green one.
    assert_eq!(run.end_with_call, [false, true, true, false]);
    assert_eq!(run.required, [None, None, None, None]);
}
