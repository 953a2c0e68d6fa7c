//! `keel run`: one task, streamed, with an exit code that says how it ended.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use keel_agent::{Agent, EventSink, Session, StoreSink};
use keel_mcp::{McpServers, ServerState};
use keel_protocol::{Event, Outcome};
use keel_store::Store;
use keel_tools::ToolRegistry;
use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::config::{self, Layer, Settings};
use crate::printer::{JsonLines, Tee, Transcript};
use crate::sessions_cmd::open_store;
use crate::trust::Ask;

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
    let (stored, session_id, dir) = continued(
        &store,
        args.resume.as_deref(),
        args.continue_last,
        args.workspace,
    )?;
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
    let settings = config::load_asking(&dir, flags, Ask::Terminal)?;
    let Some(Built { agent, mcp, .. }) = agent(&settings, Arc::clone(&store)).await? else {
        return Ok(exit_code(Outcome::Failed));
    };
    let agent = agent.with_approver(crate::approve::for_run(args.yes));
    let workspace = settings.workspace.clone();

    let printer: Box<dyn EventSink> = if args.json {
        Box::new(JsonLines)
    } else {
        Box::new(Transcript::new().with_note(sandbox_line(&settings)))
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
    let summary = if args.approve {
        match session.approve_plan(&agent, &sink, &cancel).await {
            Some(summary) => summary,
            None => {
                mcp.shutdown().await;
                return Err(anyhow!(
                    "the session has no plan waiting for approval (make one with `keel run --plan`)"
                ));
            }
        }
    } else if args.plan {
        let task = args.task.unwrap_or_default();
        let planned = session.run_plan(&agent, &task, &sink, &cancel).await;
        match session.pending_plan() {
            // Headless, execution starts at once with --yes, or when the user says so.
            Some(_) if args.yes || crate::approve::confirm("Carry out this plan?") => session
                .approve_plan(&agent, &sink, &cancel)
                .await
                .unwrap_or(planned),
            Some(_) => {
                eprintln!(
                    "keel: the plan is kept with session {}; carry it out with `keel run --resume {} --approve`",
                    session.id(),
                    session.id()
                );
                planned
            }
            None => planned,
        }
    } else {
        let task = args.task.unwrap_or_default();
        session.run_turn(&agent, &task, &sink, &cancel).await
    };
    mcp.shutdown().await;
    Ok(exit_code(summary.outcome))
}

/// The stored session to continue: `--resume ID`, or with `--continue` the workspace's
/// most recent one.
fn stored_session(
    store: &Store,
    resume: Option<&str>,
    continue_last: bool,
    workspace: &Option<PathBuf>,
) -> Result<Option<Vec<Event>>> {
    Ok(match (resume, continue_last) {
        (Some(id), _) => {
            let id = store.resolve(id)?;
            Some(store.events(&id)?)
        }
        (None, true) => {
            let dir = workspace_dir(workspace.clone())?;
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
    })
}

/// The stored session to continue (if any), its id, and the workspace: the flag, else
/// the stored session's, else the current directory.
pub fn continued(
    store: &Store,
    resume: Option<&str>,
    continue_last: bool,
    workspace: Option<PathBuf>,
) -> Result<(Option<Vec<Event>>, Option<String>, PathBuf)> {
    let stored = stored_session(store, resume, continue_last, &workspace)?;
    let (session_id, stored_workspace) = session_of(stored.as_deref());
    let dir = workspace_dir(workspace.or(stored_workspace))?;
    Ok((stored, session_id, dir))
}

/// A stored session's id and workspace.
pub fn session_of(events: Option<&[Event]>) -> (Option<String>, Option<PathBuf>) {
    match events.and_then(|events| events.first()) {
        Some(Event::Session {
            session_id,
            workspace,
            ..
        }) => (Some(session_id.clone()), Some(PathBuf::from(workspace))),
        _ => (None, None),
    }
}

/// How the session's commands run, for the transcript header.
pub fn sandbox_line(settings: &Settings) -> String {
    keel_tools::sandbox::Sandbox::for_workspace(
        &settings.agent.sandbox,
        settings.workspace.root(),
        settings.workspace.extra_roots(),
    )
    .describe()
}

/// What `keel run`, `keel serve` and `keel mcp` work with.
pub struct Built {
    pub agent: Agent,
    /// The model spec in use.
    pub spec: String,
    /// The configured MCP servers (stop them with `shutdown` at the end).
    pub mcp: McpServers,
}

/// The agent `keel run`, `keel serve` and `keel mcp` use: the configured model (and its
/// spec), the built-in tools plus those of the configured MCP servers, project memory
/// in `store`, a context window that fits. The MCP servers start while the model
/// opens; one that fails is reported here, once, and the agent goes on without it.
/// `Ok(None)` when the model cannot be used (the reason is printed): a failed run,
/// where a spec that does not parse or a missing file is a usage error.
pub async fn agent(settings: &Settings, store: Arc<Store>) -> Result<Option<Built>> {
    let spec = crate::model::model_spec(settings.model.clone())?;
    let (client, mcp) = tokio::join!(
        crate::model::open(&spec, settings),
        McpServers::start(settings.mcp.clone(), settings.workspace.root()),
    );
    for report in mcp.reports() {
        if let ServerState::Failed(reason) = &report.state {
            eprintln!(
                "keel: MCP server `{}` did not start ({reason}); going on without its tools",
                report.name
            );
        }
    }
    let client = match client {
        Ok(client) => client,
        Err(crate::model::OpenError::Usage(e)) => {
            mcp.shutdown().await;
            return Err(e);
        }
        Err(crate::model::OpenError::Failed(e)) => {
            eprintln!("keel: {e}");
            mcp.shutdown().await;
            return Ok(None);
        }
    };
    let mut tools = ToolRegistry::builtin();
    tools.register_all(mcp.tools());
    // The `skill` tool only where there are skills: the fixed prompt stays as small.
    let skills =
        keel_agent::skills::discover(settings.workspace.root(), &settings.agent.skill_dirs);
    if !skills.is_empty() {
        tools.register(keel_agent::skills::tool(skills));
    }
    let agent = Agent::new(client, tools, settings.agent.clone()).with_memory(store);
    if let Err(e) = agent.check_context_window() {
        mcp.shutdown().await;
        return Err(e.into());
    }
    Ok(Some(Built { agent, spec, mcp }))
}
