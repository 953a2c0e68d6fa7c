//! What a tool call can see of its session: the workspace, the limits, and which
//! files the agent has read (the blind-overwrite guard of `write`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_sandbox::{Sandbox, SandboxConfig};

use crate::Workspace;

/// Limits applied by the built-in tools.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `bash` timeout when the call names none.
    pub bash_timeout: Duration,
    /// The longest timeout a `bash` call may ask for.
    pub bash_max_timeout: Duration,
    /// Bytes of tool output the model sees (head and tail kept, middle cut).
    pub output_bytes: usize,
    /// Files larger than this are only read by range.
    pub read_max_bytes: u64,
    /// Lines returned by `read` when no limit is given.
    pub read_default_lines: usize,
    /// Results shown by `glob` and `grep`.
    pub search_results: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            bash_timeout: Duration::from_secs(60),
            bash_max_timeout: Duration::from_secs(600),
            output_bytes: 12_000,
            read_max_bytes: 256 * 1024,
            read_default_lines: 2000,
            search_results: 100,
        }
    }
}

/// Per-session state shared by all tool calls of that session.
#[derive(Debug)]
pub struct ToolContext {
    pub workspace: Workspace,
    pub limits: Limits,
    /// The session the calls belong to, when there is one.
    pub session_id: Option<String>,
    /// Where `bash`, `git` and the test command run.
    pub sandbox: Sandbox,
    read_files: Mutex<HashSet<PathBuf>>,
    /// Fingerprints of changes refused once with "send it again to do it anyway".
    warned: Mutex<HashSet<u64>>,
    /// The next `bash` call may use the network (the user approved it).
    network_grant: AtomicBool,
}

impl ToolContext {
    /// A context with the default sandbox (workspace writable, no network).
    pub fn new(workspace: Workspace, limits: Limits) -> Self {
        Self::with_sandbox(workspace, limits, &SandboxConfig::default())
    }

    /// A context whose commands run under `sandbox` settings.
    pub fn with_sandbox(workspace: Workspace, limits: Limits, sandbox: &SandboxConfig) -> Self {
        let sandbox = Sandbox::for_workspace(sandbox, workspace.root(), workspace.extra_roots());
        Self {
            workspace,
            limits,
            session_id: None,
            sandbox,
            read_files: Mutex::new(HashSet::new()),
            warned: Mutex::new(HashSet::new()),
            network_grant: AtomicBool::new(false),
        }
    }

    pub fn with_session(mut self, session_id: &str) -> Self {
        self.session_id = Some(session_id.to_string());
        self
    }

    /// Records that the agent has seen (or written) this file's current content.
    pub fn mark_read(&self, path: &Path) {
        self.read_files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_path_buf());
    }

    /// Lets the next `bash` call use the network (an approved request).
    pub fn grant_network_once(&self) {
        self.network_grant.store(true, Ordering::SeqCst);
    }

    /// Whether this call has the network; the grant is used up.
    pub fn take_network_grant(&self) -> bool {
        self.network_grant.swap(false, Ordering::SeqCst)
    }

    /// Whether the change with this fingerprint is refused now: the first time it is
    /// (the refusal says so), a second attempt goes through.
    pub(crate) fn first_attempt(&self, fingerprint: u64) -> bool {
        self.warned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fingerprint)
    }

    pub fn was_read(&self, path: &Path) -> bool {
        self.read_files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(path)
    }
}
