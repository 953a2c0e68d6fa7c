//! Running a command the way an agent needs it: its own process group (so a timeout
//! or Ctrl-C kills the children and grandchildren too), stdin closed, stdout and
//! stderr sharing one pipe (so they interleave in the order they were written), and
//! output captured head+tail with bounded memory.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::CappedOutput;

/// How long to wait for the output pipe to close after the command has exited.
/// Processes it left in the background that still hold the pipe are then killed.
const PIPE_GRACE: Duration = Duration::from_millis(300);
/// How long to wait for the rest of the output once nothing of the group is left.
const PIPE_DRAIN_LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The command exited by itself.
    Exited,
    /// The timeout passed; the process group was killed.
    TimedOut,
    /// The caller cancelled; the process group was killed.
    Cancelled,
}

#[derive(Debug)]
pub struct ExecResult {
    /// Interleaved stdout and stderr, capped.
    pub output: String,
    /// `None` when the process was killed by a signal.
    pub exit_code: Option<i32>,
    pub ending: Ending,
    /// Background processes still holding the output were killed after the exit.
    pub killed_background: bool,
    pub duration: Duration,
}

impl ExecResult {
    pub fn success(&self) -> bool {
        self.ending == Ending::Exited && self.exit_code == Some(0)
    }
}

/// Runs `command` to completion, timeout or cancellation.
pub async fn run(
    mut command: Command,
    timeout: Duration,
    output_limit: usize,
    cancel: &CancellationToken,
) -> std::io::Result<ExecResult> {
    let started = Instant::now();
    let (reader, writer) = std::io::pipe()?;
    command
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .process_group(0);
    let mut child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()?;
    // `spawn` consumed the command, and with it our copies of the pipe's write end:
    // the reader sees EOF once every process that inherited it is gone.
    let pgid = child.id().map(|id| id as i32);

    let captured = Arc::new(Mutex::new(CappedOutput::new(output_limit)));
    let reader_task = {
        let captured = Arc::clone(&captured);
        tokio::task::spawn_blocking(move || drain(reader, &captured))
    };

    let (ending, status) = tokio::select! {
        status = child.wait() => (Ending::Exited, Some(status?)),
        _ = tokio::time::sleep(timeout) => (Ending::TimedOut, None),
        _ = cancel.cancelled() => (Ending::Cancelled, None),
    };
    let status = match status {
        Some(status) => status,
        None => {
            kill_group(pgid);
            child.wait().await?
        }
    };

    let mut reader_task = reader_task;
    let mut killed_background = false;
    if tokio::time::timeout(PIPE_GRACE, &mut reader_task)
        .await
        .is_err()
    {
        if group_alive(pgid) {
            killed_background = ending == Ending::Exited;
            kill_group(pgid);
        }
        // A process that escaped the group (setsid) may still hold the pipe; stop
        // waiting for it rather than hang the agent.
        let _ = tokio::time::timeout(PIPE_DRAIN_LIMIT, &mut reader_task).await;
    }
    let output = captured.lock().unwrap_or_else(|e| e.into_inner()).render();
    Ok(ExecResult {
        output,
        exit_code: status.code(),
        ending,
        killed_background,
        duration: started.elapsed(),
    })
}

fn drain(mut reader: std::io::PipeReader, captured: &Mutex<CappedOutput>) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => captured
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Whether any process of the group is still running.
fn group_alive(pgid: Option<i32>) -> bool {
    // SAFETY: signal 0 only checks that the group exists; no memory is involved.
    pgid.filter(|&p| p > 0)
        .is_some_and(|pgid| unsafe { libc::killpg(pgid, 0) } == 0)
}

fn kill_group(pgid: Option<i32>) {
    if let Some(pgid) = pgid.filter(|&p| p > 0) {
        // SAFETY: killpg has no memory-safety preconditions; a stale group id only
        // yields ESRCH, which is fine to ignore.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sh(script: &str, timeout: Duration) -> ExecResult {
        let dir = std::env::temp_dir();
        run(
            {
                let mut command = Command::new("bash");
                command.arg("-c").arg(script).current_dir(&dir);
                command
            },
            timeout,
            10_000,
            &CancellationToken::new(),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn stdout_and_stderr_interleave_in_order() {
        let result = sh(
            "echo one; echo two >&2; echo three; exit 3",
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(result.output, "one\ntwo\nthree\n");
        assert_eq!(result.exit_code, Some(3));
        assert_eq!(result.ending, Ending::Exited);
    }

    #[tokio::test]
    async fn stdin_is_closed() {
        let result = sh("cat; echo after", Duration::from_secs(10)).await;
        assert_eq!(result.output, "after\n");
    }

    #[tokio::test]
    async fn background_holders_of_the_output_are_killed() {
        let result = sh("sleep 30 & echo started", Duration::from_secs(10)).await;
        assert_eq!(result.output, "started\n");
        assert!(result.killed_background);
        assert!(result.duration < Duration::from_secs(10));
    }
}
