use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::exec::{self, Ending};
use crate::{ToolContext, ToolError, TypedTool};

pub(crate) struct Bash;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Args {
    /// Shell command, run with bash in the workspace root.
    command: String,
    /// Seconds before the command is killed (default 60).
    #[serde(default)]
    timeout: Option<u64>,
}

#[async_trait]
impl TypedTool for Bash {
    type Args = Args;
    const NAME: &'static str = "bash";
    const DESCRIPTION: &'static str =
        "Run a shell command in the workspace root; returns its output and exit code.";
    const READ_ONLY: bool = false;

    async fn run(
        &self,
        ctx: &ToolContext,
        args: Args,
        cancel: &CancellationToken,
    ) -> Result<String, ToolError> {
        if args.command.trim().is_empty() {
            return Err(ToolError::Refused("the command is empty".into()));
        }
        let limits = &ctx.limits;
        let mut note = String::new();
        let timeout = match args.timeout {
            None => limits.bash_timeout,
            Some(0) => {
                return Err(ToolError::Refused(
                    "timeout must be at least 1 second".into(),
                ));
            }
            Some(secs) if Duration::from_secs(secs) > limits.bash_max_timeout => {
                note = format!(
                    "[timeout lowered to the configured maximum of {} s]\n",
                    limits.bash_max_timeout.as_secs()
                );
                limits.bash_max_timeout
            }
            Some(secs) => Duration::from_secs(secs),
        };
        let root = ctx.workspace.root();
        let command = if ctx.take_network_grant() {
            ctx.sandbox.shell_networked(&args.command, root)
        } else {
            ctx.sandbox.shell(&args.command, root)
        }
        .map_err(|e| ToolError::Refused(e.to_string()))?;
        let result = exec::run(command, timeout, limits.output_bytes, cancel).await;
        // Nothing the command started outlives the call.
        ctx.sandbox.reap();
        let result = result.map_err(|e| ToolError::Failed(format!("could not start bash: {e}")))?;
        let mut text = note;
        text.push_str(&result.output);
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        if result.killed_background {
            text.push_str(
                "[background processes were stopped: nothing a command starts outlives its call]\n",
            );
        }
        match result.ending {
            Ending::TimedOut => Err(ToolError::Failed(format!(
                "{text}[timed out after {} s; the command and its child processes were killed]",
                timeout.as_secs()
            ))),
            Ending::Cancelled => Err(ToolError::Failed(format!(
                "{text}[cancelled by the user; the command and its child processes were killed]"
            ))),
            Ending::Exited => match result.exit_code {
                Some(0) => Ok(format!("{text}[exit code 0]")),
                Some(code) => Err(ToolError::Failed(format!("{text}[exit code {code}]"))),
                None => Err(ToolError::Failed(format!("{text}[killed by a signal]"))),
            },
        }
    }
}
