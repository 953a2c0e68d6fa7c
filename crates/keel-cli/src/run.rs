//! `keel run`: one task, streamed, with an exit code that says how it ended.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use keel_agent::{Agent, EventSink, Session};
use keel_protocol::{Event, Outcome};
use keel_store::Store;
use keel_tools::ToolRegistry;
use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::config::{self, Layer, Settings};
use crate::printer::{JsonLines, Tee, Transcript};
use crate::sessions_cmd::open_store;

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
    let store = Arc::new(open_store()?);
    // A resumed session carries its workspace; otherwise it is the flag or the cwd.
    let stored = match (&args.resume, args.continue_last) {
        (Some(id), _) => {
            let id = store.resolve(id)?;
            Some(store.events(&id)?)
        }
        (None, true) => {
            let dir = workspace_dir(args.workspace.clone())?;
            let root = dir
                .canonicalize()
                .with_context(|| format!("cannot open workspace {}", dir.display()))?;
            let last = store
                .sessions(Some(&root.display().to_string()), 1)?
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("no earlier session in {} to continue", root.display()))?;
            Some(store.events(&last.id)?)
        }
        (None, false) => None,
    };
    let (session_id, stored_workspace) = match stored.as_ref().and_then(|events| events.first()) {
        Some(Event::Session {
            session_id,
            workspace,
            ..
        }) => (Some(session_id.clone()), Some(PathBuf::from(workspace))),
        _ => (None, None),
    };
    let dir = workspace_dir(args.workspace.or(stored_workspace))?;
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
    let settings = config::load(&dir, flags)?;
    let Some((agent, _)) = agent(&settings, Arc::clone(&store)).await? else {
        return Ok(exit_code(Outcome::Failed));
    };
    let workspace = settings.workspace.clone();

    let printer: Box<dyn EventSink> = if args.json {
        Box::new(JsonLines)
    } else {
        Box::new(Transcript::new())
    };
    // The store first: whatever was printed has been stored.
    let sink = Tee(vec![Box::new(StoreSink::new(store, session_id)), printer]);

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

    let mut session = match stored {
        Some(events) => Session::resume(&agent, workspace, events, &sink)?,
        None => Session::start(&agent, workspace, &sink),
    };
    let summary = session.run_turn(&agent, &args.task, &sink, &cancel).await;
    Ok(exit_code(summary.outcome))
}

/// The agent `keel run` and `keel serve` use: the configured model (and its spec),
/// the built-in tools, project memory in `store`, a context window that fits.
/// `Ok(None)` when the model cannot be used (the reason is printed): a failed run,
/// where a spec that does not parse or a missing file is a usage error.
pub async fn agent(settings: &Settings, store: Arc<Store>) -> Result<Option<(Agent, String)>> {
    let spec = crate::model::model_spec(settings.model.clone())?;
    let client = match crate::model::open(&spec, settings).await {
        Ok(client) => client,
        Err(crate::model::OpenError::Usage(e)) => return Err(e),
        Err(crate::model::OpenError::Failed(e)) => {
            eprintln!("keel: {e}");
            return Ok(None);
        }
    };
    let agent =
        Agent::new(client, ToolRegistry::builtin(), settings.agent.clone()).with_memory(store);
    agent.check_context_window()?;
    Ok(Some((agent, spec)))
}

/// Appends every event to the store as it happens. After the first failed write it
/// stops (so the stored history stays a consistent prefix) and reports the fault,
/// which ends the turn with an `error` event.
struct StoreSink {
    store: Arc<Store>,
    session_id: Mutex<Option<String>>,
    failure: Mutex<Option<String>>,
}

impl StoreSink {
    fn new(store: Arc<Store>, session_id: Option<String>) -> Self {
        Self {
            store,
            session_id: Mutex::new(session_id),
            failure: Mutex::new(None),
        }
    }
}

impl EventSink for StoreSink {
    fn emit(&self, event: &Event) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if failure.is_some() {
            return;
        }
        let mut id = self.session_id.lock().unwrap_or_else(|e| e.into_inner());
        if let Event::Session { session_id, .. } = event {
            *id = Some(session_id.clone());
        }
        if let Some(id) = id.as_deref()
            && let Err(e) = self.store.append(id, event)
        {
            *failure = Some(format!("{e} (in {})", self.store.path().display()));
        }
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
