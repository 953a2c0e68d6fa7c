//! The sandbox without bubblewrap: Landlock (file system, TCP) prepared in keel and
//! enforced in the child just before `exec`, with [`crate::seccomp`] for the sockets
//! Landlock does not cover. The rules are a pure function of the policy
//! ([`rules`]); only the ruleset's creation and the enforcement touch the kernel.
//!
//! What it cannot do that bubblewrap does: a private `/tmp` (commands get `TMPDIR` in
//! a directory of their own instead), hiding a place inside a readable one, and a
//! read-only `.git` / `.keel` inside a writable workspace. Landlock only grants, and a
//! grant holds for everything beneath, so when a writable root has a `.git` or `.keel`
//! the root itself is only readable and each of its other entries is writable: the
//! protected directories stay out of reach, at the price that a command cannot create
//! or remove entries at the root's top level (the file tools still can).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::Policy;
use crate::layout::Layout;
use crate::policy::PROTECTED;

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: u32 = 1;

pub(crate) const EXECUTE: u64 = 1 << 0;
pub(crate) const WRITE_FILE: u64 = 1 << 1;
pub(crate) const READ_FILE: u64 = 1 << 2;
pub(crate) const READ_DIR: u64 = 1 << 3;
const REFER: u64 = 1 << 13;
const TRUNCATE: u64 = 1 << 14;
const IOCTL_DEV: u64 = 1 << 15;

const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

/// Readable system places (those that exist).
const SYSTEM: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/var", "/srv",
    "/nix", "/proc", "/sys", "/dev",
];

const READ: u64 = EXECUTE | READ_FILE | READ_DIR;

/// Every file-system right an ABI knows (ABI 1: execute … make-symlink, bits 0–12).
pub(crate) fn all_fs(abi: u32) -> u64 {
    let mut rights = (1 << 13) - 1;
    if abi >= 2 {
        rights |= REFER;
    }
    if abi >= 3 {
        rights |= TRUNCATE;
    }
    if abi >= 5 {
        rights |= IOCTL_DEV;
    }
    rights
}

/// One grant: rights beneath a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub path: PathBuf,
    pub rights: u64,
}

/// The grants for `policy` on a host laid out as `layout`, for Landlock `abi`, with
/// `tmp` the command's own temporary directory. `entries` lists a writable root's
/// top-level entries (passed in, so that this stays pure).
pub fn rules(
    policy: &Policy,
    layout: &Layout,
    abi: u32,
    tmp: &Path,
    entries: &dyn Fn(&Path) -> Vec<PathBuf>,
) -> Vec<Grant> {
    let all = all_fs(abi);
    let mut grants: Vec<Grant> = SYSTEM
        .iter()
        .map(|p| Grant {
            path: PathBuf::from(p),
            rights: READ,
        })
        .collect();
    // /dev/null, /dev/tty and the like are written to.
    if let Some(dev) = grants.iter_mut().find(|g| g.path == Path::new("/dev")) {
        dev.rights |= WRITE_FILE | (all & (TRUNCATE | IOCTL_DEV));
    }
    for toolchain in &layout.toolchains {
        grants.push(Grant {
            path: toolchain.clone(),
            rights: READ,
        });
    }
    grants.push(Grant {
        path: tmp.to_path_buf(),
        rights: all,
    });
    for root in policy.writable() {
        let entries = entries(&root);
        let is_protected = |entry: &Path| {
            entry
                .file_name()
                .is_some_and(|n| PROTECTED.iter().any(|p| n == *p))
        };
        if !entries.iter().any(|e| is_protected(e)) {
            grants.push(Grant {
                path: root.clone(),
                rights: all,
            });
            continue;
        }
        grants.push(Grant {
            path: root.clone(),
            rights: READ,
        });
        for entry in entries.into_iter().filter(|e| !is_protected(e)) {
            grants.push(Grant {
                path: entry,
                rights: all,
            });
        }
    }
    if policy.mode == crate::SandboxMode::ReadOnly {
        grants.push(Grant {
            path: policy.workspace.clone(),
            rights: READ,
        });
    }
    grants
}

/// The kernel's Landlock ABI version, 0 when Landlock is unavailable.
pub(crate) fn abi() -> u32 {
    // SAFETY: the version query takes no pointers.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(version).unwrap_or(0)
}

#[repr(C)]
struct RulesetAttr {
    fs: u64,
    net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed: u64,
    parent_fd: i32,
}

/// A ruleset ready to be enforced in a child.
#[derive(Debug)]
pub(crate) struct Ruleset {
    fd: OwnedFd,
}

impl Ruleset {
    /// Creates the ruleset of `grants` (network denied unless `network`).
    pub(crate) fn create(abi: u32, grants: &[Grant], network: bool) -> std::io::Result<Self> {
        let attr = RulesetAttr {
            fs: all_fs(abi),
            net: if abi >= 4 && !network {
                NET_BIND_TCP | NET_CONNECT_TCP
            } else {
                0
            },
            scoped: if abi >= 6 {
                SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
            } else {
                0
            },
        };
        let size = match abi {
            0..=3 => 8,
            4 | 5 => 16,
            _ => 24,
        };
        // SAFETY: `attr` is valid for `size` bytes (a prefix of the struct).
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                size as usize,
                0u32,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a new descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        for grant in grants {
            let Ok(path) = CString::new(grant.path.as_os_str().as_encoded_bytes()) else {
                continue;
            };
            // SAFETY: a NUL-terminated path.
            let parent = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if parent < 0 {
                continue; // a place this host does not have
            }
            // SAFETY: a new descriptor owned by nobody else.
            let parent = unsafe { OwnedFd::from_raw_fd(parent) };
            let is_dir = grant.path.is_dir();
            // A file only takes the rights a file can have.
            let file_rights = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;
            let allowed = if is_dir {
                grant.rights
            } else {
                grant.rights & file_rights
            } & all_fs(abi);
            let rule = PathBeneathAttr {
                allowed,
                parent_fd: parent.as_raw_fd(),
            };
            // SAFETY: `rule` is a valid path-beneath attribute for the call.
            let added = unsafe {
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    fd.as_raw_fd(),
                    RULE_PATH_BENEATH,
                    &rule as *const PathBeneathAttr,
                    0u32,
                )
            };
            if added < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(Self { fd })
    }

    pub(crate) fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// Enforces the ruleset `fd` on the calling (child) process. Async-signal-safe.
pub(crate) fn restrict_raw(fd: i32) -> std::io::Result<()> {
    // SAFETY: plain system calls on a descriptor the caller keeps open.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_top_level_cannot_lose_git_and_keel_stays_read_only() {
        let policy = Policy::new("/w".into());
        let layout = Layout {
            toolchains: vec!["/root/.pyenv".into()],
            ..Layout::default()
        };
        let entries = |root: &Path| -> Vec<PathBuf> { vec![root.join(".git"), root.join("src")] };
        let grants = rules(&policy, &layout, 7, Path::new("/tmp/keel-x"), &entries);
        let find = |p: &str| {
            grants
                .iter()
                .find(|g| g.path == Path::new(p))
                .map(|g| g.rights)
        };
        assert_eq!(find("/usr"), Some(READ));
        assert_eq!(find("/root/.pyenv"), Some(READ));
        assert_eq!(find("/tmp/keel-x"), Some(all_fs(7)));
        // With a .git the root is only readable, its other entries writable.
        assert_eq!(find("/w"), Some(READ));
        assert_eq!(find("/w/src"), Some(all_fs(7)));
        assert_eq!(find("/w/.git"), None);
        let bare = rules(
            &policy,
            &layout,
            7,
            Path::new("/tmp/keel-x"),
            &|r: &Path| vec![r.join("src")],
        );
        assert!(
            bare.iter()
                .any(|g| g.path == Path::new("/w") && g.rights == all_fs(7))
        );
        assert_eq!(find("/root"), None, "home is not readable");
        assert_eq!(find("/tmp"), None);
        assert!(find("/dev").unwrap() & WRITE_FILE != 0);
    }

    #[test]
    fn rights_follow_the_abi() {
        assert_eq!(all_fs(1), (1 << 13) - 1);
        assert_eq!(all_fs(3) & TRUNCATE, TRUNCATE);
        assert_eq!(all_fs(4) & IOCTL_DEV, 0);
        assert_eq!(all_fs(7) & IOCTL_DEV, IOCTL_DEV);
    }
}
