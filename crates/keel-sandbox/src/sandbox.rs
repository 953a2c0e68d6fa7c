//! The spawn: a command wrapped in bubblewrap, with rlimits and the pids cgroup set in
//! the child.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::bwrap::SCRUBBED_ENV;
use crate::cgroup::PidsCgroup;
use crate::landlock::{self, Ruleset};
use crate::seccomp;
use crate::{
    BackendChoice, Layout, Limits, Policy, SandboxConfig, SandboxError, SandboxMode, bwrap_args,
};

/// What runs the commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// bubblewrap, at this path.
    Bwrap(PathBuf),
    /// Landlock (this ABI) and seccomp, applied in the child.
    Landlock(u32),
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
    /// The Landlock backend's state: its temporary directory and rulesets.
    landlock: Option<LandlockState>,
}

#[derive(Debug)]
struct LandlockState {
    tmp: PathBuf,
    /// Without and with the network.
    closed: Ruleset,
    open: Ruleset,
}

impl Drop for LandlockState {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

impl LandlockState {
    fn new(policy: &Policy, layout: &Layout, abi: u32) -> Result<Self, String> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let tmp = std::env::temp_dir().join(format!(
            "keel-sandbox-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&tmp)
            .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        let entries = |root: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect()
        };
        let grants = landlock::rules(policy, layout, abi, &tmp, &entries);
        let closed = Ruleset::create(abi, &grants, policy.network)
            .map_err(|e| format!("cannot create the Landlock ruleset: {e}"))?;
        let open = Ruleset::create(abi, &grants, true)
            .map_err(|e| format!("cannot create the Landlock ruleset: {e}"))?;
        Ok(Self { tmp, closed, open })
    }
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
    pub fn new(policy: Policy, hidden: &[PathBuf], choice: BackendChoice) -> Self {
        let layout = Layout::probe(hidden);
        let landlock_backend = |why: String| match landlock::abi() {
            0 => Backend::Unavailable(format!("{why}, and the kernel has no Landlock")),
            abi => Backend::Landlock(abi),
        };
        let mut backend = if policy.mode == SandboxMode::Off {
            Backend::Off
        } else {
            match (choice, probe_bwrap()) {
                (BackendChoice::Landlock, _) => landlock_backend("Landlock was chosen".into()),
                (_, Ok(path)) => Backend::Bwrap(path),
                (BackendChoice::Bubblewrap, Err(reason)) => Backend::Unavailable(reason),
                (BackendChoice::Auto, Err(reason)) => landlock_backend(reason),
            }
        };
        let mut landlock = None;
        if let Backend::Landlock(abi) = backend {
            match LandlockState::new(&policy, &layout, abi) {
                Ok(state) => landlock = Some(state),
                Err(reason) => backend = Backend::Unavailable(reason),
            }
        }
        Self {
            layout,
            policy,
            backend,
            cgroup: OnceLock::new(),
            landlock,
        }
    }

    /// The sandbox of a workspace under `config`.
    pub fn for_workspace(config: &SandboxConfig, workspace: &Path, allowed: &[PathBuf]) -> Self {
        Self::new(
            config.policy(workspace, allowed),
            &config.hidden,
            config.backend,
        )
    }

    /// Kills whatever the sandbox's commands left running (the Landlock backend has no
    /// PID namespace that does it): called when a command's call ends.
    pub fn reap(&self) {
        if let (Backend::Landlock(_), Some(Some(cgroup))) = (&self.backend, self.cgroup.get()) {
            cgroup.kill_all();
        }
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
            Backend::Landlock(abi) => format!(
                "sandbox: Landlock (ABI {abi}) + seccomp, {}, {network}",
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
            Backend::Landlock(_) => return Ok(self.landlocked(program, args, cwd, network)),
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
        let cgroup = self.cgroup_fd();
        // SAFETY: the closure runs between fork and exec and only makes
        // async-signal-safe system calls (setrlimit, write) on memory it owns.
        unsafe {
            command.pre_exec(move || limit_child(cgroup, &limits));
        }
        Ok(command)
    }
}

/// Gives up every capability for good (a root keel's commands are root without any
/// privilege): the bounding set emptied, then the process's own sets. Async-signal-safe;
/// a no-op for a user that has none.
fn drop_capabilities() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // SAFETY: plain system calls; the structs are valid for capset's reads.
    unsafe {
        for cap in 0..64 {
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        let header = Header {
            version: 0x2008_0522,
            pid: 0,
        };
        let data = [
            Data {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
            Data {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
        ];
        libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr());
    }
}

/// Lowers a limit to `value` (never raises it: a hard limit below it stays).
impl Sandbox {
    /// `program args…` restricted by Landlock and seccomp in the child.
    fn landlocked<'a>(
        &self,
        program: &str,
        args: impl IntoIterator<Item = &'a OsStr>,
        cwd: &Path,
        network: bool,
    ) -> Command {
        let mut command = Command::new(program);
        command.args(args).current_dir(cwd);
        for name in SCRUBBED_ENV {
            command.env_remove(name);
        }
        let Some(state) = &self.landlock else {
            return command;
        };
        command.env("TMPDIR", &state.tmp);
        let network = network || self.policy.network;
        let ruleset = if network {
            state.open.raw_fd()
        } else {
            state.closed.raw_fd()
        };
        let filter = (!network).then(seccomp::no_network_filter);
        let limits = self.policy.limits.clone();
        let cgroup = self.cgroup_fd();
        // SAFETY: between fork and exec only async-signal-safe system calls run, on
        // memory the closure owns (the filter was built before the fork).
        unsafe {
            command.pre_exec(move || {
                // Nothing outlives keel: the command dies with its parent.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                limit_child(cgroup, &limits)?;
                drop_capabilities();
                landlock::restrict_raw(ruleset)?;
                if let Some(filter) = &filter {
                    seccomp::install(filter)?;
                }
                Ok(())
            });
        }
        command
    }
}

impl Sandbox {
    /// The descriptor a child writes itself into the sandbox's pids cgroup with (made
    /// on first use), when the host lets keel make one.
    fn cgroup_fd(&self) -> Option<i32> {
        let processes = self.policy.limits.processes;
        self.cgroup
            .get_or_init(|| PidsCgroup::create(processes))
            .as_ref()
            .map(PidsCgroup::procs_fd)
    }
}

/// In the child: joins the pids cgroup and sets the rlimits. Async-signal-safe.
fn limit_child(cgroup: Option<i32>, limits: &Limits) -> std::io::Result<()> {
    if let Some(fd) = cgroup {
        let zero = b"0";
        // SAFETY: writes two bytes we own to a descriptor the parent keeps open.
        unsafe {
            libc::write(fd, zero.as_ptr().cast(), zero.len());
        }
    }
    set_limit(libc::RLIMIT_CPU, limits.cpu_secs)?;
    set_limit(libc::RLIMIT_DATA, limits.memory_bytes)?;
    set_limit(libc::RLIMIT_FSIZE, limits.file_bytes)?;
    set_limit(libc::RLIMIT_NPROC, limits.processes)
}

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
