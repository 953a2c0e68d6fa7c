//! A pids cgroup for the commands of one sandbox, where the host lets keel make one:
//! root ignores RLIMIT_NPROC, so a fork bomb run as root is held only by `pids.max`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Where a pids controller can be written: cgroup v2 with `pids` enabled for its
/// children, else the v1 `pids` hierarchy.
fn parent() -> Option<PathBuf> {
    let v2 = Path::new("/sys/fs/cgroup");
    if std::fs::read_to_string(v2.join("cgroup.subtree_control"))
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "pids"))
    {
        return Some(v2.to_path_buf());
    }
    let v1 = Path::new("/sys/fs/cgroup/pids");
    v1.join("cgroup.procs").exists().then(|| v1.to_path_buf())
}

#[derive(Debug)]
pub(crate) struct PidsCgroup {
    dir: PathBuf,
    procs: OwnedFd,
}

impl PidsCgroup {
    /// A new cgroup limited to `max` processes, or `None` where keel may not make one.
    pub(crate) fn create(max: u64) -> Option<Self> {
        let parent = parent()?;
        remove_stale(&parent);
        let dir = parent.join(format!(
            "keel-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).ok()?;
        let made = std::fs::write(dir.join("pids.max"), max.to_string()).is_ok();
        let procs = made
            .then(|| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join("cgroup.procs"))
                    .ok()
            })
            .flatten();
        match procs {
            Some(file) => Some(Self {
                dir,
                procs: file.into(),
            }),
            None => {
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }

    /// The descriptor a child writes `0` into to join (in `pre_exec`).
    pub(crate) fn procs_fd(&self) -> i32 {
        self.procs.as_raw_fd()
    }
}

/// Removes the cgroups left by keel processes that are gone (killed before they could
/// clean up): `keel-PID-N` whose PID no longer runs and that hold no process.
fn remove_stale(parent: &Path) {
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix("keel-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only asks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        let empty = std::fs::read_to_string(entry.path().join("cgroup.procs"))
            .is_ok_and(|procs| procs.trim().is_empty());
        if !alive && empty {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

impl PidsCgroup {
    /// Kills every process in the cgroup (setsid and double forks included), repeating
    /// while new ones appear.
    pub(crate) fn kill_all(&self) {
        for _ in 0..20 {
            let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) else {
                return;
            };
            let pids: Vec<i32> = procs
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // Whatever is left is killed, then the cgroup removed.
        self.kill_all();
        if let Ok(path) = CString::new(self.dir.as_os_str().as_encoded_bytes()) {
            for _ in 0..50 {
                // SAFETY: a valid NUL-terminated path.
                if unsafe { libc::rmdir(path.as_ptr()) } == 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}
