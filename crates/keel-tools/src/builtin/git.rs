use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::exec::{self, Ending};
use crate::{ToolContext, ToolError, TypedTool};

pub(crate) struct Git;

const GIT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Deserialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Subcommand {
    Status,
    Diff,
    Log,
    Show,
    Blame,
}

impl Subcommand {
    fn name(self) -> &'static str {
        match self {
            Subcommand::Status => "status",
            Subcommand::Diff => "diff",
            Subcommand::Log => "log",
            Subcommand::Show => "show",
            Subcommand::Blame => "blame",
        }
    }

    fn default_args(self) -> &'static [&'static str] {
        match self {
            Subcommand::Status => &["--short", "--branch"],
            Subcommand::Log => &["-n", "20", "--format=%h %ad %an: %s", "--date=short"],
            _ => &[],
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Args {
    /// Read-only git subcommand.
    command: Subcommand,
    /// Extra arguments, e.g. ["--stat", "HEAD~1"].
    #[serde(default)]
    args: Vec<String>,
}

/// Options that would write files, run programs or read outside the repository.
const REFUSED_OPTIONS: &[&str] = &[
    "--output",
    "--ext-diff",
    "--textconv",
    "--no-index",
    "--exec",
    "-o",
];

#[async_trait]
impl TypedTool for Git {
    type Args = Args;
    const NAME: &'static str = "git";
    const DESCRIPTION: &'static str =
        "Inspect the git repository (read-only): status, diff, log, show or blame.";
    const READ_ONLY: bool = true;

    async fn run(
        &self,
        ctx: &ToolContext,
        args: Args,
        cancel: &CancellationToken,
    ) -> Result<String, ToolError> {
        if let Some(bad) = args.args.iter().find(|a| {
            REFUSED_OPTIONS
                .iter()
                .any(|r| a.as_str() == *r || a.starts_with(&format!("{r}=")))
        }) {
            return Err(ToolError::Refused(format!(
                "`{bad}` is not allowed: the git tool is read-only and stays inside the repository"
            )));
        }
        let mut command = std::process::Command::new("git");
        command
            .current_dir(ctx.workspace.root())
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("GIT_PAGER", "cat")
            .env("GIT_TERMINAL_PROMPT", "0")
            .args([
                "--no-pager",
                "-c",
                "color.ui=never",
                "-c",
                "core.quotepath=off",
            ])
            .arg(args.command.name());
        if args.args.is_empty() {
            command.args(args.command.default_args());
        } else {
            command.args(&args.args);
        }
        let result = exec::run(command, GIT_TIMEOUT, ctx.limits.output_bytes, cancel)
            .await
            .map_err(|e| ToolError::Failed(format!("could not run git: {e}")))?;
        match (result.ending, result.exit_code) {
            (Ending::Exited, Some(0)) if result.output.trim().is_empty() => {
                Ok(format!("(git {} printed nothing)", args.command.name()))
            }
            (Ending::Exited, Some(0)) => Ok(result.output),
            (Ending::TimedOut, _) => Err(ToolError::Failed(format!(
                "git {} timed out after {} s",
                args.command.name(),
                GIT_TIMEOUT.as_secs()
            ))),
            (Ending::Cancelled, _) => Err(ToolError::Failed("cancelled".into())),
            (_, code) => Err(ToolError::Failed(format!(
                "{}[git exit code {}]",
                result.output,
                code.map_or("none".into(), |c| c.to_string())
            ))),
        }
    }
}
