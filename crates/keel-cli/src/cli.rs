use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// keel — a coding agent that runs entirely on your own hardware.
#[derive(Parser, Debug)]
#[command(name = "keel", version, about, propagate_version = true)]
pub struct Cli {
    /// Without a command: the conversation in the terminal (`keel chat`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// A conversation with the agent in the terminal (also `keel` alone): streamed
    /// replies, per-turn diffs, /undo and /redo, /plan, history. /help lists commands.
    Chat(ChatArgs),
    /// Run one task to the end and exit (0 done, 3 stopped, 130 cancelled, 1 failed).
    Run(RunArgs),
    /// Call one tool directly, as the agent would (for debugging and benchmarks).
    Tool(ToolArgs),
    /// List the tools the model is offered.
    Tools(ToolsArgs),
    /// Stored sessions: list, show, export, delete.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Project memory: facts and the change log.
    Memory(MemoryArgs),
    /// Check the configured model (reachable, context window, speed, prefix cache,
    /// constrained calls) and the session store. Exit 1 when a check fails.
    Doctor(DoctorArgs),
    /// Models for the embedded engine: list, add, info.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Serve the agent over HTTP: POST /chat streams events (SSE), sessions API, and a
    /// browser UI at /. Prints a URL with the access token.
    Serve(ServeArgs),
    /// MCP: serve keel's tools and a whole-task tool (`keel_task`) over stdio to another
    /// MCP host; `keel mcp list` shows the configured MCP servers and their tools.
    Mcp(McpArgs),
    /// Run a set of tasks (Exercism exercises, keel's plain tasks) against a model and
    /// report how the agent did: pass/fail with the original tests restored, outcome,
    /// iterations, calls, tokens, time. `--compare A B` puts two saved runs side by side.
    Eval(EvalArgs),
    /// Trust a directory's own configuration (`.keel/config.toml`): until then it may
    /// only set harmless keys. `--list` shows the trusted directories, `--revoke DIR`
    /// forgets one. A changed configuration is untrusted again.
    Trust(TrustArgs),
    /// Print the repo map of a project: its definitions ranked for a focus, within a
    /// token budget (what the agent's project context carries for a big project).
    Map(MapArgs),
}

#[derive(Args, Debug)]
pub struct MapArgs {
    /// Project directory (default: the current directory).
    #[arg(long, short = 'w', value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// A file (relative path) the map is ranked towards; repeatable.
    #[arg(long, value_name = "PATH")]
    pub focus: Vec<String>,
    /// A name the map is ranked towards; repeatable.
    #[arg(long, value_name = "NAME")]
    pub name: Vec<String>,
    /// Token budget of the map.
    #[arg(long, value_name = "N", default_value_t = 2048)]
    pub tokens: usize,
    /// Do not read or write the cache in keel's data directory.
    #[arg(long)]
    pub no_cache: bool,
    /// Print how long building took and how many files were parsed (to stderr).
    #[arg(long)]
    pub stats: bool,
}

#[derive(Args, Debug)]
pub struct TrustArgs {
    /// The directory to trust (default: the current one).
    #[arg(value_name = "DIR", conflicts_with_all = ["list", "revoke"])]
    pub dir: Option<PathBuf>,
    /// List the trusted directories.
    #[arg(long)]
    pub list: bool,
    /// Stop trusting this directory.
    #[arg(long, value_name = "DIR", conflicts_with = "list")]
    pub revoke: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A folder of tasks, or one task folder.
    #[arg(value_name = "DIR", required_unless_present = "compare")]
    pub tasks_dir: Option<PathBuf>,
    /// Model spec, as for `keel run` [default: KEEL_MODEL, else the default embedded model].
    #[arg(long, short = 'm', value_name = "SPEC")]
    pub model: Option<String>,
    /// Only the tasks whose folder name matches this glob (e.g. `b*`).
    #[arg(long, value_name = "GLOB")]
    pub tasks: Option<String>,
    /// Only the first N tasks (in name order, after --tasks).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Model requests per task before giving up.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_iterations: u32,
    /// Seconds a task's session may take before it is stopped (the check still runs).
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    pub timeout: u64,
    /// Tasks run at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 1)]
    pub jobs: usize,
    /// Sampling temperature of the embedded engine (0: greedy, reproducible).
    #[arg(long, value_name = "T", default_value_t = 0.0)]
    pub temperature: f32,
    /// One JSON record per task on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Where to save the run [default: $KEEL_HOME/evals/TIME-MODEL.json].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Run each task's session with this `keel` binary instead of this one (A/B runs:
    /// an older build as the baseline); it must take `run --json --workspace --model
    /// --max-iterations --test-command|--no-verify`.
    #[arg(long, value_name = "PATH")]
    pub keel: Option<PathBuf>,
    /// Compare two saved runs task by task instead of running anything.
    #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with = "tasks_dir")]
    pub compare: Option<Vec<PathBuf>>,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct McpArgs {
    #[command(subcommand)]
    pub command: Option<McpCommand>,
    /// Project directory [default: current directory].
    #[arg(long, short = 'w', value_name = "DIR", global = true)]
    pub workspace: Option<PathBuf>,
    /// Model spec for `keel_task`, as for `keel run` [default: the configured model].
    #[arg(long, short = 'm', value_name = "SPEC")]
    pub model: Option<String>,
    /// Model requests per `keel_task` before giving up [default: 20].
    #[arg(long, value_name = "N")]
    pub max_iterations: Option<u32>,
}

#[derive(Subcommand, Debug)]
pub enum McpCommand {
    /// Start the configured MCP servers and show their state and tools (exit 1 when
    /// one does not start).
    List {
        /// One JSON object per server.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Model spec, as for `keel run` [default: the configured model].
    #[arg(long, short = 'm', value_name = "SPEC")]
    pub model: Option<String>,
    /// Project directory the agent works in [default: current directory].
    #[arg(long, short = 'w', value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Address to listen on. Anything but loopback needs --token.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Port to listen on (0: any free port).
    #[arg(long, short = 'p', value_name = "N", default_value_t = 7700)]
    pub port: u16,
    /// Access token (at least 16 characters) [default: a random one per start].
    #[arg(long, value_name = "T", env = "KEEL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Model requests per turn before giving up [default: 20].
    #[arg(long, value_name = "N")]
    pub max_iterations: Option<u32>,
}

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Registered models (`embedded:NAME`).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Register a GGUF file under a name.
    Add { name: String, path: PathBuf },
    /// What a model's GGUF says: architecture, parameters, quantisation, context,
    /// chat template.
    Info {
        /// A registered name or a path to a GGUF file.
        model: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Model spec to check [default: the configured model].
    #[arg(long, short = 'm', value_name = "SPEC")]
    pub model: Option<String>,
    /// Project whose configuration applies [default: current directory].
    #[arg(long, short = 'w', value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Also fix the sample bug end to end with the model in a scratch copy (a minute or
    /// more on a CPU; PASS when verified within 3 minutes).
    #[arg(long)]
    pub fix: bool,
}

#[derive(Args, Debug)]
pub struct MemoryArgs {
    /// The project [default: current directory].
    #[arg(long, short = 'w', value_name = "DIR", global = true)]
    pub workspace: Option<PathBuf>,
    #[command(subcommand)]
    pub command: MemoryCommand,
}

#[derive(Subcommand, Debug)]
pub enum MemoryCommand {
    /// The project's memories, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Full-text search, best match first.
    Search { query: String },
    /// Keep a fact about the project.
    Add { text: String },
    /// Forget one memory.
    Forget { id: i64 },
    /// Re-check every memory's files and mark the changed ones possibly stale.
    Reindex,
}

#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// Sessions, most recently active first.
    List {
        /// Only sessions of this workspace.
        #[arg(long, short = 'w', value_name = "DIR")]
        workspace: Option<PathBuf>,
        /// At most this many sessions.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per session.
        #[arg(long)]
        json: bool,
    },
    /// A readable transcript of a session.
    Show {
        /// Session id (or a unique prefix of it).
        id: String,
    },
    /// A session's events as JSON Lines (the `keel run --json` format).
    Export {
        /// Session id (or a unique prefix of it).
        id: String,
    },
    /// Delete a session and its events.
    Delete {
        /// Session id (or a unique prefix of it).
        id: String,
    },
}

#[derive(Args, Debug, Default)]
pub struct ChatArgs {
    /// Project directory the agent works in [default: current directory].
    #[arg(long, short = 'w', value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Model spec, as for `keel run` [default: the configured model].
    #[arg(long, short = 'm', value_name = "SPEC")]
    pub model: Option<String>,
    /// Model requests per turn before giving up [default: 20].
    #[arg(long, value_name = "N")]
    pub max_iterations: Option<u32>,
    /// Continue the stored session with this id (or unique id prefix).
    #[arg(long, value_name = "ID", conflicts_with = "continue_last")]
    pub resume: Option<String>,
    /// Continue the most recent session of this workspace.
    #[arg(long = "continue", short = 'c')]
    pub continue_last: bool,
    /// Allow every call a permission would ask about.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The task, in plain words.
    #[arg(required_unless_present = "approve")]
    pub task: Option<String>,
    /// Plan first: the agent reads (read-only tools) and ends with a numbered plan,
    /// carried out at once with --yes, after a yes on the terminal, or later with
    /// `--resume ID --approve`.
    #[arg(long, conflicts_with = "approve")]
    pub plan: bool,
    /// Carry out the plan the resumed session is waiting on.
    #[arg(long, requires = "resume_or_continue")]
    pub approve: bool,
    /// Project directory the agent works in [default: current directory].
    #[arg(long, short = 'w', value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Model spec: embedded:NAME_OR_GGUF, openai:MODEL@BASE_URL, ollama:MODEL[@BASE_URL]
    /// or replay:FILE [default: the registered model qwen2.5-coder-1.5b].
    #[arg(long, short = 'm', value_name = "SPEC")]
    pub model: Option<String>,
    /// Model requests per turn before giving up [default: 20].
    #[arg(long, value_name = "N")]
    pub max_iterations: Option<u32>,
    /// Print one JSON object per event on stdout instead of a transcript.
    #[arg(long)]
    pub json: bool,
    /// How tool calls travel: auto (the model's own dialect, the default), hermes, xml
    /// (keel's own, any model) or native (the server's function calling).
    #[arg(long, value_name = "auto|hermes|xml|native")]
    pub tool_protocol: Option<String>,
    /// The project's test command [default: detected from the project files].
    #[arg(long, value_name = "CMD")]
    pub test_command: Option<String>,
    /// Do not re-run the tests when the model says it is done.
    #[arg(long)]
    pub no_verify: bool,
    /// Allow every call a permission would ask about (without a terminal, and
    /// without this flag, they are refused).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Continue the stored session with this id (or unique id prefix).
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "continue_last",
        group = "resume_or_continue"
    )]
    pub resume: Option<String>,
    /// Continue the most recent session of this workspace.
    #[arg(long = "continue", short = 'c', group = "resume_or_continue")]
    pub continue_last: bool,
}

#[derive(Args, Debug)]
pub struct ToolArgs {
    /// Tool name, e.g. grep.
    pub name: String,
    /// Arguments as a JSON object, e.g. '{"pattern": "fn main"}'.
    #[arg(default_value = "{}")]
    pub arguments: String,
    /// Workspace root [default: current directory].
    #[arg(long, short = 'w', value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ToolsArgs {
    /// Print the tool specs (with JSON schemas) as JSON.
    #[arg(long)]
    pub json: bool,
}
