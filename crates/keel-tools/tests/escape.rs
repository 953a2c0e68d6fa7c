//! The escape suite: what a hostile repository or a misled model would try, through the
//! real tools and the real sandbox (bubblewrap). Every attempt asserts that nothing
//! outside the workspace changed and that no secret reached the tool output (what the
//! model and the store see). Needs bubblewrap: without it the sandbox refuses commands
//! and these tests fail — they never pass by skipping. Every attempt runs twice: under
//! bubblewrap and under the Landlock + seccomp fallback.

mod common;

use common::{gone, running};
use std::io::Read as _;
use std::net::TcpListener;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use keel_tools::sandbox::{Backend, BackendChoice, SandboxConfig};
use keel_tools::{Limits, ToolContext, ToolOutput, ToolRegistry, Workspace};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "keel-escape-secret-7f3a";

struct Fixture {
    /// Holds `ws/` (the workspace) and `outside/` side by side.
    base: tempfile::TempDir,
    ctx: ToolContext,
    tools: ToolRegistry,
}

impl Fixture {
    fn with(choice: BackendChoice) -> Self {
        let base = tempfile::tempdir().unwrap();
        let ws = base.path().join("ws");
        let outside = base.path().join("outside");
        std::fs::create_dir_all(ws.join("src")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(ws.join("src/app.py"), "def add(a, b):\n    return a + b\n").unwrap();
        std::fs::write(outside.join("secret.txt"), format!("{SECRET}\n")).unwrap();
        git(&ws, &["init", "-q"]);
        git(&ws, &["add", "."]);
        git(
            &ws,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-qm",
                "start",
            ],
        );
        std::fs::create_dir_all(ws.join(".keel")).unwrap();
        std::fs::write(ws.join(".keel/config.toml"), "max_iterations = 5\n").unwrap();
        let config = SandboxConfig {
            backend: choice,
            ..SandboxConfig::default()
        };
        let ctx =
            ToolContext::with_sandbox(Workspace::new(&ws).unwrap(), Limits::default(), &config);
        let expected = match ctx.sandbox.backend() {
            Backend::Bwrap(_) => choice == BackendChoice::Bubblewrap,
            Backend::Landlock(_) => choice == BackendChoice::Landlock,
            _ => false,
        };
        assert!(
            expected,
            "the escape suite needs bubblewrap and Landlock: {}",
            ctx.sandbox.describe()
        );
        Self {
            base,
            ctx,
            tools: ToolRegistry::builtin(),
        }
    }

    fn ws(&self) -> PathBuf {
        self.ctx.workspace.root().to_path_buf()
    }

    fn outside(&self) -> PathBuf {
        self.base.path().join("outside").canonicalize().unwrap()
    }

    async fn call(&self, name: &str, args: Value) -> ToolOutput {
        self.tools
            .call(&self.ctx, name, args, &CancellationToken::new())
            .await
    }

    async fn bash(&self, command: &str) -> ToolOutput {
        self.call("bash", json!({"command": command, "timeout": 30}))
            .await
    }

    /// Nothing outside the workspace changed: the outside folder holds only the secret,
    /// unchanged, and the files an attack names do not exist.
    fn outside_untouched(&self, also: &[&Path]) {
        let names: Vec<String> = std::fs::read_dir(self.outside())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["secret.txt"], "something was written outside");
        assert_eq!(
            std::fs::read_to_string(self.outside().join("secret.txt")).unwrap(),
            format!("{SECRET}\n")
        );
        for path in also {
            assert!(!path.exists(), "{} was created", path.display());
        }
    }
}

fn git(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

fn no_secret(out: &ToolOutput) {
    assert!(
        !out.content.contains(SECRET),
        "the secret reached the output: {}",
        out.content
    );
}

async fn bash_cannot_write_outside_by_absolute_path_or_dotdot(choice: BackendChoice) {
    let f = Fixture::with(choice);
    let target = f.outside().join("planted");
    let out = f
        .bash(&format!("echo x > {}; echo y > ../outside/planted2; touch /etc/keel-escape; touch $HOME/keel-escape", target.display()))
        .await;
    assert!(
        out.content.contains("Read-only file system") || out.content.contains("Permission denied"),
        "{}",
        out.content
    );
    f.outside_untouched(&[&target, Path::new("/etc/keel-escape")]);
    assert!(
        !std::env::var("HOME")
            .map(|h| Path::new(&h).join("keel-escape").exists())
            .unwrap_or(false)
    );
}

async fn bash_cannot_read_outside_by_absolute_path_dotdot_or_proc(choice: BackendChoice) {
    let f = Fixture::with(choice);
    let secret = f.outside().join("secret.txt");
    for command in [
        format!("cat {}", secret.display()),
        "cat ../outside/secret.txt".to_string(),
        format!("cat /proc/self/root{}", secret.display()),
        format!("cat /proc/1/root{}", secret.display()),
        // keel's own process (the test) is not in the sandbox's pid namespace.
        format!(
            "ls /proc/{0}/cwd/; cat /proc/{0}/root{1}",
            std::process::id(),
            secret.display()
        ),
    ] {
        let out = f.bash(&command).await;
        no_secret(&out);
    }
    f.outside_untouched(&[]);
}

async fn a_symlink_made_by_bash_does_not_lead_the_file_tools_outside(choice: BackendChoice) {
    let f = Fixture::with(choice);
    let out = f
        .bash(&format!(
            "ln -s {0} src/link_out; ln -s {1} src/dir_out",
            f.outside().join("secret.txt").display(),
            f.outside().display()
        ))
        .await;
    assert!(!out.is_error, "{}", out.content);
    let read = f.call("read", json!({"path": "src/link_out"})).await;
    assert!(read.is_error);
    no_secret(&read);
    let write = f
        .call(
            "write",
            json!({"path": "src/dir_out/planted", "content": "x"}),
        )
        .await;
    assert!(write.is_error, "{}", write.content);
    let edit = f
        .call(
            "edit",
            json!({"path": "src/link_out", "old_string": SECRET, "new_string": "gone"}),
        )
        .await;
    assert!(edit.is_error);
    no_secret(&edit);
    f.outside_untouched(&[]);
}

async fn the_root_file_system_cannot_be_remounted_nor_namespaces_escaped(choice: BackendChoice) {
    let f = Fixture::with(choice);
    for command in [
        "mount -o remount,rw / && touch /etc/keel-escape",
        "unshare -rm sh -c 'mount -o remount,rw / && touch /etc/keel-escape'",
        "unshare -rm sh -c 'mount -t tmpfs none /etc && touch /etc/keel-escape'; ls /etc/keel-escape",
        "nsenter -t 1 -a touch /etc/keel-escape",
        "nsenter -t 1 -m touch /etc/keel-escape",
    ] {
        let out = f.bash(command).await;
        assert!(out.is_error, "{command}: {}", out.content);
        assert!(!Path::new("/etc/keel-escape").exists(), "{command}");
    }
    f.outside_untouched(&[]);
}

async fn the_network_is_off_loopback_and_dns_included(choice: BackendChoice) {
    let f = Fixture::with(choice);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = f
        .bash(&format!("echo hello > /dev/tcp/127.0.0.1/{port}"))
        .await;
    assert!(out.is_error, "{}", out.content);
    assert!(listener.accept().is_err(), "a connection reached the host");
    let out = f
        .bash("python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)\"")
        .await;
    assert!(out.is_error);
    // bubblewrap: a network namespace without a route; Landlock: seccomp refuses the socket.
    assert!(
        out.content.contains("Network is unreachable") || out.content.contains("Permission denied"),
        "{}",
        out.content
    );
    let out = f.bash("getent hosts pypi.org").await;
    assert!(out.is_error, "{}", out.content);
}

async fn a_process_flood_and_a_memory_hog_are_held_by_limits(choice: BackendChoice) {
    let f = Fixture::with(choice);
    // A bounded fork bomb: 2,000 processes against a limit of 512.
    let out = f
        .bash("python3 -c \"import os, time\nn = 0\nfor i in range(2000):\n    try:\n        pid = os.fork()\n    except OSError as e:\n        print('fork failed:', e)\n        break\n    if pid == 0:\n        time.sleep(306.5)\n        os._exit(0)\n    n += 1\nprint('forked', n)\"")
        .await;
    let count: usize = out
        .content
        .lines()
        .find_map(|l| l.strip_prefix("forked ")?.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        count > 0 && count < 520,
        "{count} processes ran: {}",
        out.content
    );
    assert!(out.content.contains("fork failed"), "{}", out.content);
    assert!(gone("time.sleep(306.5)"));
    let out = f
        .bash("python3 -c 'b = bytearray(8 * 1024 ** 3); print(len(b))'")
        .await;
    assert!(out.is_error, "{}", out.content);
    assert!(out.content.contains("MemoryError"), "{}", out.content);
}

async fn nothing_a_command_starts_outlives_its_call(choice: BackendChoice) {
    let f = Fixture::with(choice);
    let out = f
        .bash("setsid nohup sleep 304.5 > /dev/null 2>&1 & (sleep 305.5 > /dev/null 2>&1 &) ; echo started")
        .await;
    assert!(out.content.contains("started"), "{}", out.content);
    assert!(gone("sleep 304.5"), "setsid: {:?}", running("sleep 304.5"));
    assert!(
        gone("sleep 305.5"),
        "double fork: {:?}",
        running("sleep 305.5")
    );
}

async fn git_reads_nothing_outside_the_repository(choice: BackendChoice) {
    let f = Fixture::with(choice);
    let secret = f.outside().join("secret.txt");
    let secret = secret.to_str().unwrap();
    for args in [
        json!({"command": "diff", "args": ["--no-index", "/dev/null", secret]}),
        json!({"command": "diff", "args": ["/dev/null", secret]}),
        json!({"command": "diff", "args": ["--", "../outside/secret.txt"]}),
        json!({"command": "blame", "args": ["--contents", secret, "--", "src/app.py"]}),
        json!({"command": "log", "args": ["--output=/tmp/keel-escape"]}),
        json!({"command": "show", "args": ["--ext-diff"]}),
    ] {
        let out = f.call("git", args.clone()).await;
        assert!(out.is_error, "{args}: {}", out.content);
        no_secret(&out);
    }
    assert!(!Path::new("/tmp/keel-escape").exists());
    // The read-only work still works.
    let out = f
        .call(
            "git",
            json!({"command": "log", "args": ["--oneline", "-n", "1"]}),
        )
        .await;
    assert!(
        !out.is_error && out.content.contains("start"),
        "{}",
        out.content
    );
    let out = f
        .call("git", json!({"command": "blame", "args": ["src/app.py"]}))
        .await;
    assert!(
        !out.is_error && out.content.contains("return a + b"),
        "{}",
        out.content
    );
}

async fn git_configuration_cannot_run_commands(choice: BackendChoice) {
    let f = Fixture::with(choice);
    let ws = f.ws();
    let ran = |name: &str| ws.join(name);
    let config = format!(
        "[core]\n\tfsmonitor = \"touch {0}\"\n\tpager = \"touch {1}\"\n[diff]\n\texternal = \"touch {2}\"\n[diff \"evil\"]\n\ttextconv = \"sh -c 'touch {3}; cat'\"\n",
        ran("fsmonitor-ran").display(),
        ran("pager-ran").display(),
        ran("external-ran").display(),
        ran("textconv-ran").display()
    );
    std::fs::write(ws.join(".gitattributes"), "*.txt diff=evil\n").unwrap();
    std::fs::write(ws.join("a.txt"), "one\n").unwrap();
    git(&ws, &["add", "a.txt", ".gitattributes"]);
    git(
        &ws,
        &[
            "-c",
            "core.fsmonitor=false",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "txt",
        ],
    );
    let mut text = std::fs::read_to_string(ws.join(".git/config")).unwrap();
    text.push_str(&config);
    std::fs::write(ws.join(".git/config"), text).unwrap();
    std::fs::write(ws.join("a.txt"), "two\n").unwrap();
    for args in [
        json!({"command": "status"}),
        json!({"command": "diff"}),
        json!({"command": "log", "args": ["-p", "-n", "1"]}),
        json!({"command": "show", "args": ["HEAD"]}),
    ] {
        let out = f.call("git", args.clone()).await;
        assert!(!out.is_error, "{args}: {}", out.content);
    }
    for name in ["fsmonitor-ran", "pager-ran", "external-ran", "textconv-ran"] {
        assert!(!ran(name).exists(), "{name}");
    }
}

async fn what_runs_next_cannot_be_planted(choice: BackendChoice) {
    let f = Fixture::with(choice);
    let ws = f.ws();
    for path in [
        ".git/hooks/pre-commit",
        ".git/config",
        ".keel/config.toml",
        ".keel/new.toml",
    ] {
        let out = f
            .call(
                "write",
                json!({"path": path, "content": "#!/bin/sh\ntouch /tmp/pwned\n"}),
            )
            .await;
        assert!(
            out.is_error && out.content.contains("may not change"),
            "{path}: {}",
            out.content
        );
    }
    let out = f
        .call(
            "edit",
            json!({"path": ".keel/config.toml", "old_string": "5", "new_string": "500"}),
        )
        .await;
    assert!(out.is_error, "{}", out.content);
    // Through bash: .git and .keel are read-only in the sandbox.
    let out = f
        .bash("echo 'touch /tmp/pwned' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit; echo 'model = \"openai:x@http://evil/v1\"' >> .keel/config.toml; rm -rf .git")
        .await;
    assert!(out.is_error, "{}", out.content);
    assert!(!ws.join(".git/hooks/pre-commit").exists());
    assert_eq!(
        std::fs::read_to_string(ws.join(".keel/config.toml")).unwrap(),
        "max_iterations = 5\n"
    );
    assert!(ws.join(".git/HEAD").exists());
    // The workspace itself stays writable (under Landlock, below its top level).
    let out = f
        .bash("echo ok > src/written.txt && cat src/written.txt")
        .await;
    assert!(!out.is_error, "{}", out.content);
}

async fn keels_secrets_do_not_reach_commands(choice: BackendChoice) {
    // SAFETY: nextest runs each test in its own process; nothing else reads the
    // environment concurrently here.
    unsafe { std::env::set_var("KEEL_API_KEY", SECRET) };
    let f = Fixture::with(choice);
    let out = f
        .bash("echo \"key=$KEEL_API_KEY\"; env | grep KEEL_API_KEY; true")
        .await;
    no_secret(&out);
    assert!(out.content.contains("key=\n"), "{}", out.content);
}

async fn a_symlink_swapped_in_a_loop_never_leads_a_file_tool_outside(choice: BackendChoice) {
    let f = Fixture::with(choice);
    let ws = f.ws();
    let secret = f.outside().join("secret.txt");
    std::fs::write(ws.join("inside.txt"), "inside\n").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = Arc::clone(&stop);
        let ws = ws.clone();
        std::thread::spawn(move || {
            let link = ws.join("target.txt");
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::remove_file(&link);
                let _ = std::fs::copy(ws.join("inside.txt"), &link);
                let _ = std::fs::remove_file(&link);
                let _ = symlink(&secret, &link);
            }
        })
    };
    let mut reads = 0;
    for i in 0..300 {
        let out = f.call("read", json!({"path": "target.txt"})).await;
        no_secret(&out);
        if !out.is_error {
            reads += 1;
        }
        let _ = f
            .call(
                "write",
                json!({"path": "target.txt", "content": format!("write {i}\n")}),
            )
            .await;
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    let mut text = String::new();
    std::fs::File::open(f.outside().join("secret.txt"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, format!("{SECRET}\n"), "the secret was overwritten");
    f.outside_untouched(&[]);
    // Some reads landed on the inside file: the race was really run.
    let _ = reads;
}

/// Every attempt, once per backend.
macro_rules! under_both {
    ($($name:ident),* $(,)?) => {
        /// Each attempt under bubblewrap.
        mod bubblewrap {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(BackendChoice::Bubblewrap).await;
                }
            )*
        }

        /// Each attempt under Landlock + seccomp (no bubblewrap).
        mod landlock {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(BackendChoice::Landlock).await;
                }
            )*
        }
    };
}

under_both!(
    bash_cannot_write_outside_by_absolute_path_or_dotdot,
    bash_cannot_read_outside_by_absolute_path_dotdot_or_proc,
    a_symlink_made_by_bash_does_not_lead_the_file_tools_outside,
    the_root_file_system_cannot_be_remounted_nor_namespaces_escaped,
    the_network_is_off_loopback_and_dns_included,
    a_process_flood_and_a_memory_hog_are_held_by_limits,
    nothing_a_command_starts_outlives_its_call,
    git_reads_nothing_outside_the_repository,
    git_configuration_cannot_run_commands,
    what_runs_next_cannot_be_planted,
    keels_secrets_do_not_reach_commands,
    a_symlink_swapped_in_a_loop_never_leads_a_file_tool_outside,
);
