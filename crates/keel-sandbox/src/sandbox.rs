//! The spawn: a command wrapped in bubblewrap, with rlimits and the pids cgroup set in
//! the child.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::bwrap::SCRUBBED_ENV;
use crate::cgroup::PidsCgroup;
use crate::{Layout, Policy, SandboxConfig, SandboxError, SandboxMode, bwrap_args};

/// What runs the commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// bubblewrap, at this path.
    Bwrap(PathBuf),
    /// Commands run unsandboxed: the user's configuration says `mode = "off"`.
    Off,
    /// No sandbox could be made; commands are refused.
    Unavailable(String),
}

#[derive(Debug)]
pub struct Sandbox {
    policy: Policy,
    backend: Backend,
    layout: Layout,
    cgroup: OnceLock<Option<PidsCgroup>>,
}

/// Whether bubblewrap is installed and can make a user namespace here (checked once
/// per process).
fn probe_bwrap() -> Result<PathBuf, String> {
    static PROBE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let bwrap = std::env::split_paths(&path)
                .map(|dir| dir.join("bwrap"))
                .find(|p| p.is_file())
                .ok_or_else(|| "bubblewrap (bwrap) is not installed".to_string())?;
            let output = Command::new(&bwrap)
                .args([
                    "--unshare-user",
                    "--unshare-pid",
                    "--cap-drop",
                    "ALL",
                    "--ro-bind",
                    "/",
                    "/",
                    "--proc",
                    "/proc",
                    "--",
                    "true",
                ])
                .output()
                .map_err(|e| format!("bubblewrap cannot start: {e}"))?;
            if output.status.success() {
                Ok(bwrap)
            } else {
                Err(format!(
                    "bubblewrap cannot make a user namespace here: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ))
            }
        })
        .clone()
}

impl Sandbox {
    /// The sandbox for `policy` on this host; `hidden` are keel's own directories
    /// (data, configuration), never visible to a command.
    pub fn new(policy: Policy, hidden: &[PathBuf]) -> Self {
        let backend = if policy.mode == SandboxMode::Off {
            Backend::Off
        } else {
            match probe_bwrap() {
                Ok(path) => Backend::Bwrap(path),
                Err(reason) => Backend::Unavailable(reason),
            }
        };
        Self {
            layout: Layout::probe(hidden),
            policy,
            backend,
            cgroup: OnceLock::new(),
        }
    }

    /// The sandbox of a workspace under `config`.
    pub fn for_workspace(config: &SandboxConfig, workspace: &Path, allowed: &[PathBuf]) -> Self {
        Self::new(config.policy(workspace, allowed), &config.hidden)
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// One line for a transcript header: how commands run.
    pub fn describe(&self) -> String {
        let network = if self.policy.network {
            "network on"
        } else {
            "network off"
        };
        match &self.backend {
            Backend::Bwrap(_) => format!(
                "sandbox: bubblewrap, {}, {network}",
                self.policy.mode.as_str()
            ),
            Backend::Off => {
                "sandbox: OFF — commands run with your full rights and network".to_string()
            }
            Backend::Unavailable(reason) => {
                format!("sandbox: unavailable ({reason}) — commands are refused")
            }
        }
    }

    /// `bash -c script` in `cwd`, sandboxed.
    pub fn shell(&self, script: &str, cwd: &Path) -> Result<Command, SandboxError> {
        self.command("bash", [OsStr::new("-c"), OsStr::new(script)], cwd)
    }

    /// `bash -c script` in `cwd`, sandboxed but with the network (an approved call).
    pub fn shell_networked(&self, script: &str, cwd: &Path) -> Result<Command, SandboxError> {
        self.build("bash", [OsStr::new("-c"), OsStr::new(script)], cwd, true)
    }

    /// `program args…` in `cwd`, sandboxed (or plain where the sandbox is off).
    pub fn command<'a>(
        &self,
        program: &str,
        args: impl IntoIterator<Item = &'a OsStr>,
        cwd: &Path,
    ) -> Result<Command, SandboxError> {
        self.build(program, args, cwd, false)
    }

    fn build<'a>(
        &self,
        program: &str,
        args: impl IntoIterator<Item = &'a OsStr>,
        cwd: &Path,
        network: bool,
    ) -> Result<Command, SandboxError> {
        let bwrap = match &self.backend {
            Backend::Off => {
                let mut command = Command::new(program);
                command.args(args).current_dir(cwd);
                return Ok(command);
            }
            Backend::Unavailable(reason) => {
                return Err(SandboxError::Unavailable {
                    reason: reason.clone(),
                });
            }
            Backend::Bwrap(path) => path,
        };
        let mut command = Command::new(bwrap);
        let networked;
        let policy = if network && !self.policy.network {
            networked = Policy {
                network: true,
                ..self.policy.clone()
            };
            &networked
        } else {
            &self.policy
        };
        command
            .args(bwrap_args(policy, &self.layout, cwd, &|p| p.is_dir()))
            .arg(program)
            .args(args)
            .current_dir(cwd);
        for name in SCRUBBED_ENV {
            command.env_remove(name);
        }
        let limits = self.policy.limits.clone();
        let cgroup = self
            .cgroup
            .get_or_init(|| PidsCgroup::create(limits.processes))
            .as_ref()
            .map(PidsCgroup::procs_fd);
        // SAFETY: the closure runs between fork and exec and only makes
        // async-signal-safe system calls (setrlimit, write) on memory it owns.
        unsafe {
            command.pre_exec(move || {
                if let Some(fd) = cgroup {
                    let zero = b"0";
                    libc::write(fd, zero.as_ptr().cast(), zero.len());
                }
                set_limit(libc::RLIMIT_CPU, limits.cpu_secs)?;
                set_limit(libc::RLIMIT_DATA, limits.memory_bytes)?;
                set_limit(libc::RLIMIT_FSIZE, limits.file_bytes)?;
                set_limit(libc::RLIMIT_NPROC, limits.processes)?;
                Ok(())
            });
        }
        Ok(command)
    }
}

/// Lowers a limit to `value` (never raises it: a hard limit below it stays).
fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(resource, &mut current) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let value = value.min(current.rlim_max);
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads the struct we pass; nothing else.
    if unsafe { libc::setrlimit(resource, &limit) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
