//! Layered configuration: built-in defaults < `~/.config/keel/config.toml` <
//! `<project>/.keel/config.toml` < `KEEL_*` environment < command-line flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use keel_agent::AgentConfig;
use keel_agent::permissions::{Action, Rule};
use keel_llm::{ConnectOptions, ProtocolChoice};
use keel_mcp::{RawServer, ServerConfig};
use keel_tools::Workspace;
use keel_tools::sandbox::{BackendChoice, SandboxConfig, SandboxMode};

use crate::trust::{self, Ask, PROJECT_CONFIG, TrustStore};
use serde::Deserialize;

/// One layer; every field optional so layers can be merged. Unknown keys are
/// ignored, so a config written for a newer keel still loads.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Layer {
    pub model: Option<String>,
    pub max_iterations: Option<u32>,
    pub tool_protocol: Option<ProtocolChoice>,
    pub test_command: Option<String>,
    pub verify: Option<bool>,
    pub test_timeout_secs: Option<u64>,
    pub bash_timeout_secs: Option<u64>,
    pub bash_max_timeout_secs: Option<u64>,
    pub tool_output_bytes: Option<usize>,
    pub max_tokens: Option<u32>,
    /// The share of the context window at which the conversation is compacted.
    pub compact_at: Option<f32>,
    /// A repo map in the project context of projects too big to show whole.
    pub repo_map: Option<bool>,
    /// Directories outside the workspace that the file tools may also touch.
    pub allowed_roots: Option<Vec<PathBuf>>,
    /// Bearer token for the model server (better: `KEEL_API_KEY`).
    pub api_key: Option<String>,
    /// Context window when the server does not report one; Ollama's `num_ctx`.
    pub context_window: Option<u32>,
    /// Longest silence of a streaming model response before keel gives up.
    pub request_timeout_secs: Option<u64>,
    /// How long to keep retrying while the server is still loading its model.
    pub load_timeout_secs: Option<u64>,
    /// `keel doctor` thresholds.
    pub doctor: Option<DoctorLayer>,
    /// The embedded engine (`embedded:` models).
    pub engine: Option<EngineLayer>,
    /// MCP servers whose tools the agent gets.
    pub mcp: Option<McpLayer>,
    /// How commands run for the model.
    pub sandbox: Option<SandboxLayer>,
    /// Which calls run, are refused, or wait for the user.
    pub permissions: Option<PermissionsLayer>,
}

/// `[permissions]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionsLayer {
    /// First match wins; a later layer's list replaces an earlier one's.
    pub rules: Option<Vec<RuleLayer>>,
    /// What `keel mcp` answers when a call would be asked about: `deny` (default) or
    /// `allow`.
    pub mcp_approval: Option<String>,
}

/// One `[[permissions.rules]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleLayer {
    pub tool: String,
    pub pattern: Option<String>,
    pub action: String,
}

impl PermissionsLayer {
    fn over(self, base: PermissionsLayer) -> PermissionsLayer {
        PermissionsLayer {
            rules: self.rules.or(base.rules),
            mcp_approval: self.mcp_approval.or(base.mcp_approval),
        }
    }
}

/// `[sandbox]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxLayer {
    /// `workspace-write` (default), `read-only` or `off`.
    pub mode: Option<String>,
    /// `auto` (default: bubblewrap where it works, else Landlock), `bubblewrap` or
    /// `landlock`.
    pub backend: Option<String>,
    /// Whether commands may use the network (default false).
    pub network: Option<bool>,
    /// More directories commands may write.
    pub writable_roots: Option<Vec<PathBuf>>,
    /// Writable private memory per process, MiB.
    pub memory_mb: Option<u64>,
    /// Processes at once.
    pub max_processes: Option<u64>,
}

impl SandboxLayer {
    fn over(self, base: SandboxLayer) -> SandboxLayer {
        SandboxLayer {
            mode: self.mode.or(base.mode),
            backend: self.backend.or(base.backend),
            network: self.network.or(base.network),
            writable_roots: self.writable_roots.or(base.writable_roots),
            memory_mb: self.memory_mb.or(base.memory_mb),
            max_processes: self.max_processes.or(base.max_processes),
        }
    }
}

/// `[mcp]`: `[[mcp.servers]]` tables, and `files` in the `mcpServers` JSON shape other
/// MCP hosts write (relative to the configuration file that names them).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpLayer {
    #[serde(default)]
    pub servers: Vec<RawServer>,
    #[serde(default)]
    pub files: Vec<PathBuf>,
}

impl McpLayer {
    /// The servers of the `files` (read now, relative to `dir`), then the tables; a
    /// later one replaces an earlier one of the same name.
    fn resolve(self, dir: &Path) -> Result<McpLayer> {
        let mut servers = Vec::new();
        for file in &self.files {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the MCP servers file {}", path.display()))?;
            let from_file = keel_mcp::parse_mcp_servers_json(&text)
                .with_context(|| format!("in {}", path.display()))?;
            servers = replace_by_name(servers, from_file);
        }
        Ok(McpLayer {
            servers: replace_by_name(servers, self.servers),
            files: Vec::new(),
        })
    }

    fn over(self, base: McpLayer) -> McpLayer {
        McpLayer {
            servers: replace_by_name(base.servers, self.servers),
            files: Vec::new(),
        }
    }
}

/// `base` with each of `top` replacing the server of the same name (or appended).
fn replace_by_name(mut base: Vec<RawServer>, top: Vec<RawServer>) -> Vec<RawServer> {
    for server in top {
        match base.iter_mut().find(|s| s.name == server.name) {
            Some(slot) => *slot = server,
            None => base.push(server),
        }
    }
    base
}

/// `[engine]`: how the embedded engine runs its model.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct EngineLayer {
    /// CPU threads (default: all cores).
    pub threads: Option<usize>,
    /// Built-in chat template (`gemma`, `chatml`, `llama3`) instead of the GGUF's.
    pub chat_template: Option<String>,
    /// Full-size sliding-window KV cache: more memory, never a rebuild on rollback.
    pub swa_full: Option<bool>,
    /// Sessions whose KV cache stays in memory.
    pub max_sessions: Option<usize>,
    /// Tokens a tool call may take before the engine closes it.
    pub call_budget: Option<usize>,
    pub temperature: Option<f32>,
    pub seed: Option<u32>,
}

impl EngineLayer {
    fn over(self, base: EngineLayer) -> EngineLayer {
        EngineLayer {
            threads: self.threads.or(base.threads),
            chat_template: self.chat_template.or(base.chat_template),
            swa_full: self.swa_full.or(base.swa_full),
            max_sessions: self.max_sessions.or(base.max_sessions),
            call_budget: self.call_budget.or(base.call_budget),
            temperature: self.temperature.or(base.temperature),
            seed: self.seed.or(base.seed),
        }
    }
}

/// `[doctor]`: thresholds of `keel doctor`'s checks.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct DoctorLayer {
    /// Decode speed below this is a warning (tokens per second).
    pub min_decode_tokens_per_second: Option<f64>,
    /// Time to first token of a repeated prompt, as a fraction of the first; above
    /// this, prefix caching is reported as not working.
    pub max_cached_ttft_ratio: Option<f64>,
}

impl DoctorLayer {
    fn over(self, base: DoctorLayer) -> DoctorLayer {
        DoctorLayer {
            min_decode_tokens_per_second: self
                .min_decode_tokens_per_second
                .or(base.min_decode_tokens_per_second),
            max_cached_ttft_ratio: self.max_cached_ttft_ratio.or(base.max_cached_ttft_ratio),
        }
    }
}

/// `keel doctor`'s thresholds after layering.
#[derive(Debug, Clone, Copy)]
pub struct DoctorThresholds {
    pub min_decode_tokens_per_second: f64,
    pub max_cached_ttft_ratio: f64,
}

impl Layer {
    /// The flags `keel serve` and `keel mcp` take: a model and an iteration cap.
    pub fn model_flags(model: Option<String>, max_iterations: Option<u32>) -> Layer {
        Layer {
            model,
            max_iterations,
            ..Layer::default()
        }
    }

    fn over(self, base: Layer) -> Layer {
        Layer {
            model: self.model.or(base.model),
            max_iterations: self.max_iterations.or(base.max_iterations),
            tool_protocol: self.tool_protocol.or(base.tool_protocol),
            test_command: self.test_command.or(base.test_command),
            verify: self.verify.or(base.verify),
            test_timeout_secs: self.test_timeout_secs.or(base.test_timeout_secs),
            bash_timeout_secs: self.bash_timeout_secs.or(base.bash_timeout_secs),
            bash_max_timeout_secs: self.bash_max_timeout_secs.or(base.bash_max_timeout_secs),
            tool_output_bytes: self.tool_output_bytes.or(base.tool_output_bytes),
            max_tokens: self.max_tokens.or(base.max_tokens),
            compact_at: self.compact_at.or(base.compact_at),
            repo_map: self.repo_map.or(base.repo_map),
            allowed_roots: self.allowed_roots.or(base.allowed_roots),
            api_key: self.api_key.or(base.api_key),
            context_window: self.context_window.or(base.context_window),
            request_timeout_secs: self.request_timeout_secs.or(base.request_timeout_secs),
            load_timeout_secs: self.load_timeout_secs.or(base.load_timeout_secs),
            doctor: match (self.doctor, base.doctor) {
                (Some(top), Some(base)) => Some(top.over(base)),
                (top, base) => top.or(base),
            },
            engine: match (self.engine, base.engine) {
                (Some(top), Some(base)) => Some(top.over(base)),
                (top, base) => top.or(base),
            },
            mcp: match (self.mcp, base.mcp) {
                (Some(top), Some(base)) => Some(top.over(base)),
                (top, base) => top.or(base),
            },
            sandbox: match (self.sandbox, base.sandbox) {
                (Some(top), Some(base)) => Some(top.over(base)),
                (top, base) => top.or(base),
            },
            permissions: match (self.permissions, base.permissions) {
                (Some(top), Some(base)) => Some(top.over(base)),
                (top, base) => top.or(base),
            },
        }
    }

    /// The layer as an untrusted project may set it: the keys that start a process,
    /// name a network address, read an environment variable, widen file access,
    /// loosen the sandbox or switch verification off are dropped; their names.
    pub fn untrusted(self) -> (Layer, Vec<&'static str>) {
        let mut ignored = Vec::new();
        let mut note = |present: bool, name: &'static str| {
            if present {
                ignored.push(name);
            }
        };
        note(self.model.is_some(), "model");
        note(self.test_command.is_some(), "test_command");
        note(self.verify.is_some(), "verify");
        note(self.allowed_roots.is_some(), "allowed_roots");
        note(self.api_key.is_some(), "api_key");
        note(self.mcp.is_some(), "mcp");
        note(self.sandbox.is_some(), "sandbox");
        note(self.permissions.is_some(), "permissions");
        let harmless = Layer {
            max_iterations: self.max_iterations,
            tool_protocol: self.tool_protocol,
            test_timeout_secs: self.test_timeout_secs,
            bash_timeout_secs: self.bash_timeout_secs,
            bash_max_timeout_secs: self.bash_max_timeout_secs,
            tool_output_bytes: self.tool_output_bytes,
            max_tokens: self.max_tokens,
            compact_at: self.compact_at,
            repo_map: self.repo_map,
            context_window: self.context_window,
            request_timeout_secs: self.request_timeout_secs,
            load_timeout_secs: self.load_timeout_secs,
            doctor: self.doctor,
            engine: self.engine,
            ..Layer::default()
        };
        (harmless, ignored)
    }

    fn from_file(path: &Path) -> Result<Layer> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut layer: Layer = toml::from_str(&text)
                    .with_context(|| format!("invalid configuration in {}", path.display()))?;
                if let Some(mcp) = layer.mcp.take() {
                    let dir = path.parent().unwrap_or(Path::new("."));
                    layer.mcp = Some(mcp.resolve(dir)?);
                }
                Ok(layer)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Layer::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn from_env() -> Result<Layer> {
        fn var(name: &str) -> Option<String> {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        }
        fn parsed<T: std::str::FromStr>(name: &str) -> Result<Option<T>> {
            match var(name) {
                None => Ok(None),
                Some(v) => match v.parse() {
                    Ok(value) => Ok(Some(value)),
                    Err(_) => bail!("invalid value `{v}` for {name}"),
                },
            }
        }
        Ok(Layer {
            model: var("KEEL_MODEL"),
            max_iterations: parsed("KEEL_MAX_ITERATIONS")?,
            tool_protocol: parsed("KEEL_TOOL_PROTOCOL")?,
            test_command: var("KEEL_TEST_COMMAND"),
            verify: parsed("KEEL_VERIFY")?,
            api_key: var("KEEL_API_KEY"),
            context_window: parsed("KEEL_CONTEXT_WINDOW")?,
            engine: parsed::<f32>("KEEL_TEMPERATURE")?.map(|t| EngineLayer {
                temperature: Some(t),
                ..EngineLayer::default()
            }),
            ..Layer::default()
        })
    }
}

/// `$KEEL_CONFIG`, else `$XDG_CONFIG_HOME/keel/config.toml`, else `~/.config/keel/config.toml`.
fn user_config_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KEEL_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("keel/config.toml"))
}

/// Where keel keeps its data: `$KEEL_HOME`, else `$XDG_DATA_HOME/keel`, else
/// `~/.local/share/keel`.
pub fn keel_home() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("KEEL_HOME") {
        return Some(PathBuf::from(home));
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(base.join("keel"))
}

/// The project layer as far as it is trusted: whole when the directory is trusted with
/// this configuration (or the user says so on the terminal), else its harmless keys,
/// with one warning naming the others.
fn trusted_part(workspace: &Path, project: Layer, ask: Ask) -> Layer {
    let (harmless, risky) = project.clone().untrusted();
    if risky.is_empty() {
        return harmless;
    }
    let store = TrustStore::open().ok();
    if store.as_ref().is_some_and(|s| s.is_trusted(workspace)) {
        return project;
    }
    if ask == Ask::Terminal && trust::ask(workspace, &risky) {
        if let Some(Err(e)) = store.as_ref().map(|s| s.trust(workspace)) {
            eprintln!("keel: could not record the trust: {e:#}");
        }
        return project;
    }
    eprintln!(
        "keel: ignoring {} from the untrusted {} (settings that can run programs, reach the network or loosen keel's guards); run `keel trust {}` to allow them",
        risky.join(", "),
        workspace.join(PROJECT_CONFIG).display(),
        workspace.display()
    );
    harmless
}

/// `[sandbox]` → the sandbox settings; keel's own data and configuration hidden.
fn sandbox_config(layer: SandboxLayer) -> Result<SandboxConfig> {
    let mut config = SandboxConfig::default();
    if let Some(mode) = layer.mode {
        config.mode = SandboxMode::parse(&mode).with_context(|| {
            format!("invalid [sandbox] mode `{mode}`: use workspace-write, read-only or off")
        })?;
    }
    if let Some(backend) = layer.backend {
        config.backend = BackendChoice::parse(&backend).with_context(|| {
            format!("invalid [sandbox] backend `{backend}`: use auto, bubblewrap or landlock")
        })?;
    }
    config.network = layer.network.unwrap_or(false);
    for root in layer.writable_roots.unwrap_or_default() {
        let canonical = root
            .canonicalize()
            .with_context(|| format!("cannot use [sandbox] writable root {}", root.display()))?;
        config.writable_roots.push(canonical);
    }
    if let Some(mb) = layer.memory_mb {
        config.limits.memory_bytes = mb.saturating_mul(1 << 20);
    }
    if let Some(n) = layer.max_processes {
        config.limits.processes = n.max(1);
    }
    config.hidden = [
        keel_home(),
        user_config_path().and_then(|p| p.parent().map(Path::to_path_buf)),
    ]
    .into_iter()
    .flatten()
    .collect();
    Ok(config)
}

/// The merged configuration of one run.
pub struct Settings {
    pub model: Option<String>,
    pub agent: AgentConfig,
    /// The workspace, widened by the configured `allowed_roots`.
    pub workspace: Workspace,
    /// How to talk to a model server.
    pub connect: ConnectOptions,
    pub doctor: DoctorThresholds,
    /// `[engine]` as configured (defaults are the engine's).
    pub engine: EngineLayer,
    /// The MCP servers to start, validated.
    pub mcp: Vec<ServerConfig>,
    /// `keel mcp`'s answer to a call a permission asks about.
    pub mcp_approval: bool,
}

/// The merged configuration for a workspace, with `flags` as the top layer; an
/// untrusted project configuration is never asked about (its risky keys are ignored).
pub fn load(workspace: &Path, flags: Layer) -> Result<Settings> {
    load_asking(workspace, flags, Ask::Never)
}

/// [`load`], asking on the terminal about an untrusted project configuration when
/// `ask` says so.
pub fn load_asking(workspace: &Path, flags: Layer, ask: Ask) -> Result<Settings> {
    let user = match user_config_path() {
        Some(path) => Layer::from_file(&path)?,
        None => Layer::default(),
    };
    let project = Layer::from_file(&workspace.join(PROJECT_CONFIG))?;
    let project = trusted_part(workspace, project, ask);
    let merged = flags.over(Layer::from_env()?.over(project.over(user)));

    let mut config = AgentConfig::default();
    if let Some(n) = merged.max_iterations {
        if n == 0 {
            bail!("max_iterations must be at least 1");
        }
        config.max_iterations = n;
    }
    if let Some(protocol) = merged.tool_protocol {
        config.protocol = protocol;
    }
    config.test_command = merged.test_command;
    if let Some(verify) = merged.verify {
        config.verify = verify;
    }
    if let Some(secs) = merged.test_timeout_secs {
        config.test_timeout = Duration::from_secs(secs);
    }
    if let Some(secs) = merged.bash_timeout_secs {
        config.limits.bash_timeout = Duration::from_secs(secs);
    }
    if let Some(secs) = merged.bash_max_timeout_secs {
        config.limits.bash_max_timeout = Duration::from_secs(secs);
    }
    if let Some(bytes) = merged.tool_output_bytes {
        config.limits.output_bytes = bytes.max(1024);
    }
    config.max_tokens = merged.max_tokens;
    if let Some(share) = merged.compact_at {
        config.compact_at = share.clamp(0.2, 1.0);
    }
    if let Some(on) = merged.repo_map {
        config.repo_map = on;
    }
    config.map_cache_dir = keel_home();
    config.checkpoint_dir = keel_home().map(|home| home.join("checkpoints"));
    // The user's skills live next to their configuration file.
    config.skill_dirs = user_config_path()
        .and_then(|p| p.parent().map(|dir| dir.join("skills")))
        .into_iter()
        .collect();
    let mut connect = ConnectOptions {
        api_key: merged.api_key,
        context_window: merged.context_window,
        ..ConnectOptions::default()
    };
    if let Some(secs) = merged.request_timeout_secs {
        connect.idle_timeout = Duration::from_secs(secs.max(1));
    }
    if let Some(secs) = merged.load_timeout_secs {
        connect.load_timeout = Duration::from_secs(secs);
    }
    let doctor = merged.doctor.unwrap_or_default();
    let doctor = DoctorThresholds {
        min_decode_tokens_per_second: doctor.min_decode_tokens_per_second.unwrap_or(5.0),
        max_cached_ttft_ratio: doctor.max_cached_ttft_ratio.unwrap_or(0.5),
    };
    let mcp = keel_mcp::servers(merged.mcp.unwrap_or_default().servers)
        .context("invalid MCP server configuration")?;
    let mut root = Workspace::new(workspace)
        .with_context(|| format!("cannot open workspace {}", workspace.display()))?;
    for extra in merged.allowed_roots.unwrap_or_default() {
        root = root
            .allow(&extra)
            .with_context(|| format!("cannot use allowed root {}", extra.display()))?;
    }
    let sandbox = sandbox_config(merged.sandbox.unwrap_or_default())?;
    config.sandbox = sandbox;
    let permissions = merged.permissions.unwrap_or_default();
    for rule in permissions.rules.unwrap_or_default() {
        let action = Action::parse(&rule.action).with_context(|| {
            format!(
                "invalid [permissions] action `{}`: use allow, ask or deny",
                rule.action
            )
        })?;
        let rule = Rule::new(&rule.tool, rule.pattern.as_deref(), action)
            .map_err(|e| anyhow::anyhow!("invalid [permissions] rule: {e}"))?;
        config.permission_rules.push(rule);
    }
    let mcp_approval = match permissions.mcp_approval.as_deref() {
        None | Some("deny") => false,
        Some("allow") => true,
        Some(other) => bail!("invalid [permissions] mcp_approval `{other}`: use allow or deny"),
    };
    Ok(Settings {
        mcp_approval,
        model: merged.model,
        agent: config,
        workspace: root,
        connect,
        doctor,
        engine: merged.engine.unwrap_or_default(),
        mcp,
    })
}
