use std::time::Duration;

use keel_llm::ProtocolChoice;
use keel_tools::Limits;
use keel_tools::sandbox::SandboxConfig;

use crate::permissions::Rule;

/// How the loop behaves. Built by the front end from layered configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Model requests per turn before the turn ends `max_iterations`.
    pub max_iterations: u32,
    /// How tool calls travel; `Auto` speaks the model's own dialect.
    pub protocol: ProtocolChoice,
    /// The project's test command; `None` means detect it from the project files.
    pub test_command: Option<String>,
    /// Re-run the tests when the model says it is done.
    pub verify: bool,
    /// Longest time the verification run may take.
    pub test_timeout: Duration,
    pub limits: Limits,
    /// Completion-token cap per model request, when the backend honours one.
    pub max_tokens: Option<u32>,
    /// Where `bash`, `git` and the test command run.
    pub sandbox: SandboxConfig,
    /// `[permissions]` rules, first match wins.
    pub permission_rules: Vec<Rule>,
    /// The share of the context window at which the conversation is compacted.
    pub compact_at: f32,
    /// The user's skills directories (the project's `.keel/skills` is always read).
    pub skill_dirs: Vec<std::path::PathBuf>,
    /// Where the repo map caches its tags (keel's data directory); `None`: no cache.
    pub map_cache_dir: Option<std::path::PathBuf>,
    /// Put a repo map in the project context of projects too big to show whole.
    pub repo_map: bool,
    /// Where each turn's checkpoints are kept (keel's data directory), so that a turn
    /// can be undone; `None`: no checkpoints.
    pub checkpoint_dir: Option<std::path::PathBuf>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            max_iterations: 20,
            protocol: ProtocolChoice::Auto,
            test_command: None,
            verify: true,
            test_timeout: Duration::from_secs(600),
            limits: Limits::default(),
            max_tokens: None,
            sandbox: SandboxConfig::default(),
            permission_rules: Vec::new(),
            compact_at: crate::budget::COMPACT_AT,
            skill_dirs: Vec::new(),
            map_cache_dir: None,
            repo_map: true,
            checkpoint_dir: None,
        }
    }
}
