//! Policy → bubblewrap arguments: a pure function, tested without running anything.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::policy::PROTECTED;
use crate::{Layout, Policy};

/// Environment variables the sandboxed command does not get: keel's own secrets.
pub(crate) const SCRUBBED_ENV: &[&str] = &["KEEL_API_KEY"];

/// bubblewrap's arguments (everything before the command) for `policy` on a host laid
/// out as `layout`, running in `cwd`. `exists` says whether a protected directory is
/// there to bind read-only (it is passed in so that this stays pure).
pub fn bwrap_args(
    policy: &Policy,
    layout: &Layout,
    cwd: &Path,
    exists: &dyn Fn(&Path) -> bool,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&dyn AsRef<std::ffi::OsStr>]| {
        for item in items {
            args.push(item.as_ref().to_os_string());
        }
    };
    // Namespaces and privileges: as root, bwrap without a user namespace keeps every
    // capability (the shell could remount `/` read-write).
    push(&[
        &"--unshare-user",
        &"--unshare-pid",
        &"--unshare-ipc",
        &"--unshare-uts",
        &"--unshare-cgroup-try",
    ]);
    if !policy.network {
        push(&[&"--unshare-net"]);
    }
    push(&[
        &"--cap-drop",
        &"ALL",
        &"--die-with-parent",
        &"--new-session",
    ]);
    // The file system: the system read-only, private places masked.
    push(&[
        &"--ro-bind",
        &"/",
        &"/",
        &"--dev",
        &"/dev",
        &"--proc",
        &"/proc",
    ]);
    let writable = policy.writable();
    for masked in &layout.masked {
        push(&[&"--tmpfs", masked]);
    }
    for toolchain in &layout.toolchains {
        push(&[&"--ro-bind", toolchain, toolchain]);
    }
    for root in &writable {
        push(&[&"--bind", root, root]);
    }
    // Keel's data stays hidden, unless a writable root lies inside it (then the root
    // would vanish with it).
    for hidden in &layout.hidden {
        if !writable.iter().any(|w| w.starts_with(hidden)) {
            push(&[&"--tmpfs", hidden]);
        }
    }
    for root in &writable {
        for name in PROTECTED {
            let inner: PathBuf = root.join(name);
            if exists(&inner) {
                push(&[&"--ro-bind", &inner, &inner]);
            }
        }
    }
    for name in SCRUBBED_ENV {
        push(&[&"--unsetenv", name]);
    }
    push(&[&"--chdir", &cwd, &"--"]);
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SandboxMode;

    fn layout() -> Layout {
        Layout {
            masked: vec!["/root".into(), "/tmp".into()],
            toolchains: vec!["/root/.pyenv".into()],
            hidden: vec!["/root/.local/share/keel".into()],
        }
    }

    fn text(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn the_default_policy() {
        let policy = Policy::new("/tmp/ws".into());
        let args = bwrap_args(&policy, &layout(), Path::new("/tmp/ws"), &|p| {
            p.ends_with(".git")
        });
        assert_eq!(
            text(&args),
            "--unshare-user --unshare-pid --unshare-ipc --unshare-uts --unshare-cgroup-try --unshare-net \
             --cap-drop ALL --die-with-parent --new-session \
             --ro-bind / / --dev /dev --proc /proc \
             --tmpfs /root --tmpfs /tmp --ro-bind /root/.pyenv /root/.pyenv \
             --bind /tmp/ws /tmp/ws --tmpfs /root/.local/share/keel \
             --ro-bind /tmp/ws/.git /tmp/ws/.git \
             --unsetenv KEEL_API_KEY --chdir /tmp/ws --"
        );
    }

    #[test]
    fn network_roots_and_read_only() {
        let mut policy = Policy::new("/srv/ws".into());
        policy.network = true;
        policy.writable_roots = vec!["/root/.cache/pip".into()];
        let args = text(&bwrap_args(
            &policy,
            &layout(),
            Path::new("/srv/ws/sub"),
            &|_| true,
        ));
        assert!(!args.contains("--unshare-net"));
        assert!(args.contains("--bind /srv/ws /srv/ws --bind /root/.cache/pip /root/.cache/pip"));
        assert!(
            args.contains(
                "--ro-bind /srv/ws/.git /srv/ws/.git --ro-bind /srv/ws/.keel /srv/ws/.keel"
            )
        );
        assert!(args.contains("--ro-bind /root/.cache/pip/.git /root/.cache/pip/.git"));
        assert!(args.ends_with("--chdir /srv/ws/sub --"));

        policy.mode = SandboxMode::ReadOnly;
        let args = text(&bwrap_args(
            &policy,
            &layout(),
            Path::new("/srv/ws"),
            &|_| true,
        ));
        assert!(!args.contains("--bind "), "{args}");
        assert!(!args.contains(".git"));
    }

    #[test]
    fn a_workspace_inside_keels_data_is_not_hidden() {
        let policy = Policy::new("/root/.local/share/keel/scratch".into());
        let args = text(&bwrap_args(&policy, &layout(), Path::new("/"), &|_| false));
        assert!(!args.contains("--tmpfs /root/.local/share/keel"), "{args}");
        assert!(
            args.contains("--bind /root/.local/share/keel/scratch /root/.local/share/keel/scratch")
        );
    }

    #[test]
    fn capabilities_are_always_dropped_in_a_user_namespace() {
        for network in [false, true] {
            let mut policy = Policy::new("/w".into());
            policy.network = network;
            let args = bwrap_args(&policy, &Layout::default(), Path::new("/w"), &|_| false);
            let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
            assert!(args.contains(&"--unshare-user".to_string()));
            let cap = args.iter().position(|a| a == "--cap-drop").unwrap();
            assert_eq!(args[cap + 1], "ALL");
            assert!(args.contains(&"--die-with-parent".to_string()));
            assert!(args.contains(&"--unshare-pid".to_string()));
        }
    }
}
