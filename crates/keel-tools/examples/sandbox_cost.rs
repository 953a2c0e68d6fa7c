//! The sandbox's cost per `bash` call: `true` through the real tool, sandboxed
//! (bubblewrap) and not, interleaved in the same run. Run by `bench/sandbox.sh`.

use std::time::{Duration, Instant};

use keel_tools::sandbox::{BackendChoice, SandboxConfig, SandboxMode};
use keel_tools::{Limits, ToolContext, ToolRegistry, Workspace};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().expect("a scratch workspace");
    let workspace = Workspace::new(dir.path()).expect("the workspace");
    // The second argument picks the backend: `auto` (default), `bubblewrap`, `landlock`.
    let backend = std::env::args()
        .nth(2)
        .and_then(|b| BackendChoice::parse(&b))
        .unwrap_or_default();
    let sandboxed = ToolContext::with_sandbox(
        workspace.clone(),
        Limits::default(),
        &SandboxConfig {
            backend,
            ..SandboxConfig::default()
        },
    );
    let off = ToolContext::with_sandbox(
        workspace,
        Limits::default(),
        &SandboxConfig {
            mode: SandboxMode::Off,
            ..SandboxConfig::default()
        },
    );
    println!("{}", sandboxed.sandbox.describe());
    let tools = ToolRegistry::builtin();
    let cancel = CancellationToken::new();
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (ctx, times) in [(&sandboxed, &mut with), (&off, &mut without)] {
            let started = Instant::now();
            let out = tools
                .call(ctx, "bash", json!({"command": "true"}), &cancel)
                .await;
            assert!(!out.is_error, "{}", out.content);
            times.push(started.elapsed());
        }
    }
    let (with, without) = (median(with), median(without));
    println!(
        "bash `true`, median of {rounds}: sandboxed {:.1} ms, unsandboxed {:.1} ms, added {:.1} ms ({:.2}x)",
        with.as_secs_f64() * 1e3,
        without.as_secs_f64() * 1e3,
        (with.as_secs_f64() - without.as_secs_f64()) * 1e3,
        with.as_secs_f64() / without.as_secs_f64()
    );
}
