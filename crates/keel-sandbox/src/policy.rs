//! What a sandboxed command may do.

use std::path::PathBuf;

/// How commands run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// The workspace (and configured roots) writable, the rest read-only or hidden.
    #[default]
    WorkspaceWrite,
    /// Nothing writable but a private `/tmp`.
    ReadOnly,
    /// No sandbox at all (trusted configuration only; every transcript says so).
    Off,
}

impl SandboxMode {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "workspace-write" => Some(Self::WorkspaceWrite),
            "read-only" => Some(Self::ReadOnly),
            "off" => Some(Self::Off),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkspaceWrite => "workspace-write",
            Self::ReadOnly => "read-only",
            Self::Off => "off",
        }
    }
}

/// Resource limits of a sandboxed command (set as rlimits in the child; processes
/// also through a pids cgroup where the host allows one — root ignores RLIMIT_NPROC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// CPU seconds per process.
    pub cpu_secs: u64,
    /// Writable private memory per process (RLIMIT_DATA), bytes.
    pub memory_bytes: u64,
    /// Largest file a process may write, bytes.
    pub file_bytes: u64,
    /// Processes (and threads) at once.
    pub processes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_secs: 900,
            memory_bytes: 4 << 30,
            file_bytes: 1 << 30,
            processes: 512,
        }
    }
}

/// The sandbox policy of one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: SandboxMode,
    /// The workspace root (canonical).
    pub workspace: PathBuf,
    /// More writable directories (canonical), from trusted configuration.
    pub writable_roots: Vec<PathBuf>,
    /// Whether commands may use the network.
    pub network: bool,
    pub limits: Limits,
}

impl Policy {
    /// The default policy for a workspace: writable workspace, no network.
    pub fn new(workspace: PathBuf) -> Self {
        Self {
            mode: SandboxMode::default(),
            workspace,
            writable_roots: Vec::new(),
            network: false,
            limits: Limits::default(),
        }
    }

    /// The writable roots: the workspace and the configured ones (none when read-only).
    pub fn writable(&self) -> Vec<PathBuf> {
        if self.mode == SandboxMode::ReadOnly {
            return Vec::new();
        }
        let mut roots = vec![self.workspace.clone()];
        roots.extend(self.writable_roots.iter().cloned());
        roots
    }
}

/// Directories inside a writable root that stay read-only: what runs next (git hooks
/// and config, keel's project config) must not be planted by the command.
pub(crate) const PROTECTED: &[&str] = &[".git", ".keel"];

/// Which sandbox to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// bubblewrap where it works, else Landlock + seccomp.
    #[default]
    Auto,
    Bubblewrap,
    Landlock,
}

impl BackendChoice {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "auto" => Some(Self::Auto),
            "bubblewrap" | "bwrap" => Some(Self::Bubblewrap),
            "landlock" => Some(Self::Landlock),
            _ => None,
        }
    }
}

/// The sandbox settings of a configuration, before a workspace is known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SandboxConfig {
    pub mode: SandboxMode,
    pub backend: BackendChoice,
    pub network: bool,
    /// Writable beyond the workspace (canonical paths).
    pub writable_roots: Vec<PathBuf>,
    pub limits: Limits,
    /// keel's own directories, hidden from commands.
    pub hidden: Vec<PathBuf>,
}

impl SandboxConfig {
    /// The policy for a workspace; `allowed_roots` (the file tools' extra roots) are
    /// writable too.
    pub fn policy(&self, workspace: &std::path::Path, allowed_roots: &[PathBuf]) -> Policy {
        let mut writable_roots = self.writable_roots.clone();
        writable_roots.extend(allowed_roots.iter().cloned());
        Policy {
            mode: self.mode,
            workspace: workspace.to_path_buf(),
            writable_roots,
            network: self.network,
            limits: self.limits.clone(),
        }
    }
}
