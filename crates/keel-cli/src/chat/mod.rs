//! `keel chat` (and `keel` alone): a conversation with the agent in the terminal.
//!
//! The prompt is a line editor (see `input`); a turn streams through the same
//! transcript as `keel run`, with one numbered line per tool call. Ctrl-C during a turn
//! cancels it and keeps the session; at the prompt, twice (or Ctrl-D) leaves.

mod attach;
mod commands;
mod input;
mod status;

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use keel_agent::{Agent, EventSink, Session, StoreSink};
use keel_mcp::McpServers;
use keel_protocol::Event;
use keel_store::Store;
use tokio_util::sync::CancellationToken;

use crate::cli::ChatArgs;
use crate::config::{self, Layer, Settings};
use crate::printer::{Transcript, files_line};
use crate::run::{Built, continued, sandbox_line, session_of};
use crate::sessions_cmd::open_store;
use crate::trust::Ask;
use commands::{COMMANDS, Command};
use input::Input;
use status::Status;

/// Everything the chat's events go to: the store first, then the screen.
struct ChatSink {
    store: StoreSink,
    view: Arc<Transcript>,
    status: Arc<Status>,
}

impl EventSink for ChatSink {
    fn emit(&self, event: &Event) {
        self.store.emit(event);
        self.status.observe(event);
        self.view.emit(event);
    }

    fn failure(&self) -> Option<String> {
        self.store.failure()
    }
}

struct Chat {
    store: Arc<Store>,
    settings: Settings,
    agent: Agent,
    spec: String,
    mcp: McpServers,
    yes: bool,
    session: Session,
    sink: ChatSink,
}

pub async fn run(args: ChatArgs) -> Result<u8> {
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(anyhow!(
            "keel chat needs a terminal on stdin and stdout; without one, run a task with `keel run \"TASK\"` (add --json for events)"
        ));
    }
    let store = Arc::new(open_store()?);
    let (stored, _, dir) = continued(
        &store,
        args.resume.as_deref(),
        args.continue_last,
        args.workspace.clone(),
    )?;
    let flags = Layer {
        model: args.model.clone(),
        max_iterations: args.max_iterations,
        ..Layer::default()
    };
    let settings = config::load_asking(&dir, flags, Ask::Terminal)?;
    let Some(built) = crate::run::agent(&settings, Arc::clone(&store)).await? else {
        return Ok(1);
    };
    let agent = built.agent.with_approver(crate::approve::for_run(args.yes));
    let status = Arc::new(Status::default());
    let (session, sink) = open_session(&store, &settings, &agent, stored, &status)?;
    let mut chat = Chat {
        store,
        settings,
        agent,
        spec: built.spec,
        mcp: built.mcp,
        yes: args.yes,
        session,
        sink,
    };
    let code = chat.converse().await;
    chat.mcp.shutdown().await;
    Ok(code)
}

/// A session (new, or stored `events`) and the sink its events go to.
fn open_session(
    store: &Arc<Store>,
    settings: &Settings,
    agent: &Agent,
    events: Option<Vec<Event>>,
    status: &Arc<Status>,
) -> Result<(Session, ChatSink)> {
    let (session_id, _) = session_of(events.as_deref());
    // Calls are numbered on from those the stored session already made.
    let calls = events.as_ref().map_or(0, |events| {
        events
            .iter()
            .filter(|e| matches!(e, Event::ToolCall { .. }))
            .count()
    });
    let sink = ChatSink {
        store: StoreSink::new(Arc::clone(store), session_id),
        view: Arc::new(
            Transcript::new()
                .with_note(sandbox_line(settings))
                .compact(calls),
        ),
        status: Arc::clone(status),
    };
    let session = match events {
        Some(events) => {
            let session = Session::resume(agent, settings.workspace.clone(), events, &sink)?;
            sink.view.say(
                "2",
                &format!(
                    "keel · resumed session {} · {} turns · {}",
                    session.id(),
                    session.turns(),
                    settings.workspace.root().display()
                ),
            );
            session
        }
        None => Session::start(agent, settings.workspace.clone(), &sink),
    };
    Ok((session, sink))
}

impl Chat {
    async fn converse(&mut self) -> u8 {
        let root = self.settings.workspace.root().to_path_buf();
        let history = input::history_path(config::keel_home().as_deref(), &root);
        let mut editor = match input::editor(&root, history.as_deref()) {
            Ok(editor) => Some(editor),
            Err(e) => {
                eprintln!("keel: cannot open the line editor: {e}");
                return 1;
            }
        };
        self.say(
            "2",
            "Type a task, /help for commands; Alt-Enter or a trailing \\ for a new line.",
        );
        self.status_line();
        let mut interrupted = false;
        loop {
            let Some(mut ed) = editor.take() else {
                return 1;
            };
            let read = tokio::task::spawn_blocking(move || {
                let line = input::read(&mut ed, "› ");
                (ed, line)
            })
            .await;
            let Ok((ed, line)) = read else { return 1 };
            editor = Some(ed);
            let line = match line {
                Ok(Input::Line(line)) => line,
                Ok(Input::Eof) => return 0,
                Ok(Input::Interrupted) if interrupted => return 0,
                Ok(Input::Interrupted) => {
                    interrupted = true;
                    self.say(
                        "2",
                        "(line cleared; Ctrl-C again, Ctrl-D or /exit to leave)",
                    );
                    continue;
                }
                Err(e) => {
                    eprintln!("keel: cannot read the terminal: {e}");
                    return 1;
                }
            };
            interrupted = false;
            // A trailing `\` continued the line: the backslashes go.
            let line = line.replace("\\\n", "\n");
            if line.trim().is_empty() {
                continue;
            }
            if let Some(ed) = editor.as_mut() {
                input::remember(ed, history.as_deref(), &line);
            }
            if !self.command(commands::parse(&line)).await {
                return 0;
            }
        }
    }

    fn say(&self, code: &str, text: &str) {
        self.sink.view.say(code, text);
    }

    fn status_line(&self) {
        let model = self.agent.model().info().name;
        self.say("2", &self.sink.status.line(&model, self.session.id()));
    }

    /// Runs one command; `false` to leave.
    async fn command(&mut self, command: Command) -> bool {
        match command {
            Command::Exit => return false,
            Command::Help => {
                let width = COMMANDS.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
                let mut text = String::new();
                for (name, what) in COMMANDS {
                    text.push_str(&format!("  {name:<width$}  {what}\n"));
                }
                text.push_str(
                    "  @path attaches a file to a message; Tab completes commands and paths.",
                );
                self.say("0", &text);
            }
            Command::Unknown(why) => self.say("31", &why),
            Command::Message(message) => {
                let message = self.attach(&message);
                match self.session.pending_plan() {
                    // An answer to a plan: a new plan with the user's changes.
                    Some((task, _)) => {
                        let task = format!("{task}\n\nChanges to the plan: {message}");
                        self.turn(Turn::Plan(task)).await;
                    }
                    None => {
                        self.turn(Turn::Task(message)).await;
                    }
                }
            }
            Command::Plan(task) => {
                let task = self.attach(&task);
                self.turn(Turn::Plan(task)).await;
            }
            Command::Approve => self.turn(Turn::Approve).await,
            Command::Undo => match self.session.undo(&self.agent, &self.sink) {
                Ok(restored) => self.changed_since(&restored.changed_since, "/redo"),
                Err(e) => self.say("31", &format!("nothing undone: {e}")),
            },
            Command::Redo => match self.session.redo(&self.agent, &self.sink) {
                Ok(restored) => self.changed_since(&restored.changed_since, "/undo"),
                Err(e) => self.say("31", &format!("nothing redone: {e}")),
            },
            Command::Diff => match self.session.last_diff(&self.agent) {
                Ok((turn, files, diff)) => {
                    self.say("1", &format!("turn {turn}: {}", files_line(&files)));
                    self.say("0", &colour_diff(&diff, self.sink.view.colour()));
                }
                Err(e) => self.say("31", &format!("no diff: {e}")),
            },
            Command::Show(n) => self.show(n),
            Command::New => {
                self.switch(None);
            }
            Command::Resume(id) => {
                let events = self
                    .store
                    .resolve(&id)
                    .and_then(|id| self.store.events(&id));
                match events {
                    Ok(events) => self.switch(Some(events)),
                    Err(e) => self.say("31", &format!("cannot resume {id}: {e}")),
                }
            }
            Command::Sessions => self.sessions(),
            Command::Model(None) => self.say("0", &format!("model: {}", self.spec)),
            Command::Model(Some(spec)) => self.switch_model(spec).await,
            Command::Memory => self.memory(),
            Command::Tools => {
                let mut text = String::new();
                for spec in self.agent.tool_specs() {
                    let first = spec.description.lines().next().unwrap_or("");
                    text.push_str(&format!("  {:<10} {first}\n", spec.name));
                }
                self.say("0", text.trim_end());
            }
        }
        true
    }

    /// Says which files had changed since keel last left them (their bytes are kept).
    fn changed_since(&self, files: &[String], back: &str) {
        if !files.is_empty() {
            self.say(
                "33",
                &format!(
                    "note: {} had changed since; what was there is kept ({back} brings it back)",
                    files.join(", ")
                ),
            );
        }
    }

    /// The message with the files it names with `@` attached.
    fn attach(&self, message: &str) -> String {
        let (message, attached, refused) = attach::expand(&self.settings.workspace, message);
        if !attached.is_empty() {
            self.say("2", &format!("attached {}", attached.join(", ")));
        }
        for why in refused {
            self.say("33", &why);
        }
        message
    }

    async fn turn(&mut self, turn: Turn) {
        let cancel = CancellationToken::new();
        let on_interrupt = cancel.clone();
        let watcher = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_interrupt.cancel();
                // A second Ctrl-C does not wait for the clean stop.
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        match turn {
            Turn::Task(message) => {
                self.session
                    .run_turn(&self.agent, &message, &self.sink, &cancel)
                    .await;
            }
            Turn::Plan(task) => {
                self.session
                    .run_plan(&self.agent, &task, &self.sink, &cancel)
                    .await;
                if self.session.pending_plan().is_some() {
                    self.say(
                        "2",
                        "/approve to carry out this plan, or say what to change",
                    );
                }
            }
            Turn::Approve => {
                let approved = self
                    .session
                    .approve_plan(&self.agent, &self.sink, &cancel)
                    .await;
                if approved.is_none() {
                    self.say(
                        "31",
                        "no plan waits for approval (make one with /plan TASK)",
                    );
                }
            }
        }
        watcher.abort();
        if cancel.is_cancelled() {
            self.say("33", "turn cancelled; the session goes on");
        }
        self.status_line();
    }

    /// `/show N`: tool call N of the session, whole.
    fn show(&self, n: usize) {
        let events = self.session.events();
        let call = events
            .iter()
            .filter_map(|e| match e {
                Event::ToolCall {
                    call_id,
                    name,
                    arguments,
                } => Some((call_id, name, arguments)),
                _ => None,
            })
            .nth(n.wrapping_sub(1));
        let Some((call_id, name, arguments)) = call else {
            self.say("31", &format!("no tool call [{n}] in this session"));
            return;
        };
        let result = events.iter().find_map(|e| match e {
            Event::ToolResult {
                call_id: id,
                output,
                is_error,
                ..
            } if id == call_id => Some((output, *is_error)),
            _ => None,
        });
        let arguments = serde_json::to_string_pretty(arguments).unwrap_or_default();
        self.say("33", &format!("[{n}] {name} {arguments}"));
        match result {
            Some((output, is_error)) => {
                self.say(if is_error { "31" } else { "0" }, output.trim_end())
            }
            None => self.say("2", "(no result)"),
        }
    }

    /// `/new` and `/resume`: another session, in the same process.
    fn switch(&mut self, events: Option<Vec<Event>>) {
        if let Some(Some(Event::Session { workspace, .. })) = events.as_ref().map(|e| e.first())
            && std::path::Path::new(workspace) != self.settings.workspace.root()
        {
            self.say(
                "31",
                &format!("that session is in {workspace}; run `keel chat` there to resume it"),
            );
            return;
        }
        let status = Arc::new(Status::default());
        match open_session(&self.store, &self.settings, &self.agent, events, &status) {
            Ok((session, sink)) => {
                self.session = session;
                self.sink = sink;
                self.status_line();
            }
            Err(e) => self.say("31", &format!("{e:#}")),
        }
    }

    fn sessions(&self) {
        let root = self.settings.workspace.root().display().to_string();
        match self.store.sessions(Some(&root), 10) {
            Ok(sessions) if sessions.is_empty() => self.say("2", "no sessions yet"),
            Ok(sessions) => {
                let mut text = String::new();
                for s in sessions {
                    let mark = if s.id == self.session.id() { "*" } else { " " };
                    text.push_str(&format!(
                        "{mark} {}  {} turns  {}  {}\n",
                        s.id,
                        s.turns,
                        s.outcome.unwrap_or_else(|| "-".into()),
                        s.model
                    ));
                }
                self.say("0", text.trim_end());
            }
            Err(e) => self.say("31", &format!("cannot list sessions: {e}")),
        }
    }

    fn memory(&self) {
        let project = self.settings.workspace.root().display().to_string();
        match self.store.memories(&project, 20) {
            Ok(memories) if memories.is_empty() => self.say("2", "nothing remembered yet"),
            Ok(memories) => {
                let text: Vec<String> = memories
                    .iter()
                    .map(|m| format!("{:>5}  {}", m.id, m.text))
                    .collect();
                self.say("0", &text.join("\n"));
            }
            Err(e) => self.say("31", &format!("cannot read the memory: {e}")),
        }
    }

    /// `/model SPEC`: the session goes on with another model.
    async fn switch_model(&mut self, spec: String) {
        let previous = self.settings.model.replace(spec.clone());
        let built = crate::run::agent(&self.settings, Arc::clone(&self.store)).await;
        let failed = |chat: &mut Self, why: String| {
            chat.settings.model = previous.clone();
            chat.say("31", &format!("{why}; still on {}", chat.spec));
        };
        match built {
            Ok(Some(Built { agent, spec, mcp })) => {
                let agent = agent.with_approver(crate::approve::for_run(self.yes));
                let events = self.session.events().to_vec();
                match Session::resume(&agent, self.settings.workspace.clone(), events, &self.sink) {
                    Ok(session) => {
                        let old = std::mem::replace(&mut self.mcp, mcp);
                        old.shutdown().await;
                        self.session = session;
                        self.agent = agent;
                        self.spec = spec;
                        self.status_line();
                    }
                    Err(e) => {
                        mcp.shutdown().await;
                        failed(self, e.to_string());
                    }
                }
            }
            Ok(None) => failed(self, format!("cannot use {spec}")),
            Err(e) => failed(self, format!("{e:#}")),
        }
    }
}

enum Turn {
    Task(String),
    Plan(String),
    Approve,
}

/// A unified diff with added lines green, removed red, hunks cyan.
fn colour_diff(diff: &str, colour: bool) -> String {
    if !colour {
        return diff.trim_end().to_string();
    }
    diff.trim_end()
        .lines()
        .map(|line| {
            let code = if line.starts_with("+++")
                || line.starts_with("---")
                || line.starts_with("diff ")
            {
                "1"
            } else if line.starts_with('+') {
                "32"
            } else if line.starts_with('-') {
                "31"
            } else if line.starts_with("@@") {
                "36"
            } else {
                return line.to_string();
            };
            format!("\x1b[{code}m{line}\x1b[0m")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
