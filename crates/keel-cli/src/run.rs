//! `keel run`: one task, streamed, with an exit code that says how it ended.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow};
use keel_agent::{Agent, EventSink, Session};
use keel_protocol::Outcome;
use keel_tools::{ToolRegistry, Workspace};
use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::config::{self, Layer};
use crate::printer::{JsonLines, LogFile, Tee, Transcript};

pub fn exit_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Completed | Outcome::Verified => 0,
        Outcome::MaxIterations | Outcome::Stalled => 3,
        Outcome::Cancelled => 130,
        Outcome::Failed => 1,
    }
}

pub fn workspace_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    let dir = match flag {
        Some(dir) => dir,
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    if !dir.is_dir() {
        return Err(anyhow!("workspace {} is not a directory", dir.display()));
    }
    Ok(dir)
}

pub async fn run(args: RunArgs) -> Result<u8> {
    let dir = workspace_dir(args.workspace)?;
    let flags = Layer {
        model: args.model,
        max_iterations: args.max_iterations,
        tool_protocol: args
            .tool_protocol
            .map(|p| p.parse())
            .transpose()
            .map_err(|e: String| anyhow!(e))?,
        test_command: args.test_command,
        verify: args.no_verify.then_some(false),
        ..Layer::default()
    };
    let (model, config) = config::load(&dir, flags)?;
    let model = model.ok_or_else(|| {
        anyhow!(
            "no model configured: pass --model SPEC (e.g. --model replay:script.jsonl), set KEEL_MODEL, or set `model` in ~/.config/keel/config.toml"
        )
    })?;
    let client = keel_llm::connect(&model)?;
    let workspace =
        Workspace::new(&dir).with_context(|| format!("cannot open workspace {}", dir.display()))?;
    let agent = Agent::new(client, ToolRegistry::builtin(), config);

    let printer: Box<dyn EventSink> = if args.json {
        Box::new(JsonLines)
    } else {
        Box::new(Transcript::new())
    };
    let log = SessionLog::default();
    let sink = Tee(vec![printer, Box::new(log.clone())]);

    let cancel = CancellationToken::new();
    let on_interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_interrupt.cancel();
            // A second Ctrl-C does not wait for the clean stop.
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });

    let mut session = Session::start(&agent, workspace, &sink);
    log.open(session.id(), session.events());
    let summary = session.run_turn(&agent, &args.task, &sink, &cancel).await;
    Ok(exit_code(summary.outcome))
}

/// The session's events as JSON Lines under `$KEEL_HOME/sessions/`. The log is
/// opened once the session id is known; events before that are written then.
#[derive(Clone, Default)]
struct SessionLog(std::sync::Arc<Mutex<Option<LogFile>>>);

impl SessionLog {
    fn open(&self, session_id: &str, earlier: &[keel_protocol::Event]) {
        let Some(home) = config::keel_home() else {
            return;
        };
        let dir = home.join("sessions");
        let file = std::fs::create_dir_all(&dir).and_then(|_| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{session_id}.jsonl")))
        });
        match file {
            Ok(file) => {
                let log = LogFile(Mutex::new(file));
                for event in earlier {
                    log.emit(event);
                }
                *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(log);
            }
            Err(e) => eprintln!(
                "keel: warning: cannot write the session log in {}: {e}",
                dir.display()
            ),
        }
    }
}

impl EventSink for SessionLog {
    fn emit(&self, event: &keel_protocol::Event) {
        if let Some(log) = self.0.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            log.emit(event);
        }
    }
}
