use std::ffi::OsStr;
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

/// Options each subcommand may take (an allow-list: anything else is refused). An
/// entry ending in `=` allows `--opt=value`; `Takes` options consume the next argument.
const COMMON: &[&str] = &[
    "--stat",
    "--numstat",
    "--shortstat",
    "--name-only",
    "--name-status",
    "-p",
    "--patch",
    "--summary",
    "-w",
    "--ignore-all-space",
    "--word-diff",
    "--unified=",
    "-U",
    "--function-context",
    "--oneline",
    "--format=",
    "--pretty=",
    "--date=",
    "--no-patch",
    "-s",
    "--abbrev-commit",
];
const STATUS: &[&str] = &[
    "--short",
    "-s",
    "--branch",
    "-b",
    "--porcelain",
    "--long",
    "--untracked-files=",
    "-u",
];
const DIFF: &[&str] = &["--cached", "--staged", "--merge-base"];
const LOG: &[&str] = &[
    "-n",
    "--max-count=",
    "--author=",
    "--since=",
    "--until=",
    "--after=",
    "--before=",
    "--grep=",
    "--follow",
    "--graph",
    "--reverse",
    "--first-parent",
    "--no-merges",
    "--all",
    "--decorate",
    "-i",
    "--regexp-ignore-case",
    "-S",
    "-G",
];
const BLAME: &[&str] = &["-L", "-e", "--show-email", "-l", "-t", "-M", "-C"];
/// Options whose value is the next argument.
const TAKES_VALUE: &[&str] = &["-n", "-L", "-S", "-G", "-U"];

/// Set on every invocation, above the repository's own configuration: nothing the
/// repository configures may run a program or write.
const HARDENING: &[&str] = &[
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.pager=cat",
    "core.editor=false",
    "core.untrackedCache=false",
    "core.sshCommand=false",
    "core.alternateRefsCommand=",
    "diff.external=",
    "log.showSignature=false",
    "gpg.program=false",
    "credential.helper=",
    "protocol.allow=never",
    "color.ui=never",
    "core.quotepath=off",
];

impl Subcommand {
    fn allowed(self) -> [&'static [&'static str]; 2] {
        match self {
            Subcommand::Status => [STATUS, &[]],
            Subcommand::Diff => [COMMON, DIFF],
            Subcommand::Log | Subcommand::Show => [COMMON, LOG],
            Subcommand::Blame => [BLAME, &["-w"]],
        }
    }

    /// Flags that switch off external diff and text conversion drivers.
    fn safety_flags(self) -> &'static [&'static str] {
        match self {
            Subcommand::Status => &[],
            Subcommand::Blame => &["--no-textconv"],
            _ => &["--no-ext-diff", "--no-textconv"],
        }
    }
}

/// Whether `arg` is an allowed option of `command`; `Some(true)` when it takes the next
/// argument as its value.
fn option_allowed(command: Subcommand, arg: &str) -> Option<bool> {
    let lists = command.allowed();
    let all = lists.iter().flat_map(|l| l.iter());
    for allowed in all {
        if let Some(prefix) = allowed.strip_suffix('=') {
            if arg.starts_with(&format!("{prefix}=")) {
                return Some(false);
            }
        } else if arg == *allowed {
            return Some(TAKES_VALUE.contains(allowed));
        } else if TAKES_VALUE.contains(allowed) && arg.starts_with(allowed) && allowed.len() == 2 {
            // `-n5`, `-L10,20`, `-U3`.
            return Some(false);
        }
    }
    // `-5` for log.
    (matches!(command, Subcommand::Log | Subcommand::Show)
        && arg.len() > 1
        && arg[1..].chars().all(|c| c.is_ascii_digit()))
    .then_some(false)
}

/// A revision: characters git allows in ref names and revision syntax, never an option.
fn is_revision(arg: &str) -> bool {
    !arg.is_empty()
        && !arg.starts_with('-')
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./~^@{}-:".contains(c))
}

/// The git argv after the subcommand: allowed options, revisions, then `--` and the
/// paths, each resolved inside the workspace.
fn arguments(
    ctx: &ToolContext,
    command: Subcommand,
    args: &[String],
) -> Result<Vec<String>, ToolError> {
    let refuse = |arg: &str, why: &str| {
        Err(ToolError::Refused(format!(
            "`{arg}` is not allowed: {why} (the git tool is read-only and stays inside the repository)"
        )))
    };
    let mut options = Vec::new();
    let mut revisions = Vec::new();
    let mut paths = Vec::new();
    let mut after_dashes = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--" {
            after_dashes = true;
            continue;
        }
        if !after_dashes && arg.starts_with('-') {
            match option_allowed(command, arg) {
                Some(takes_value) => {
                    options.push(arg.clone());
                    if takes_value {
                        match iter.next() {
                            Some(value) if !value.starts_with('-') || value.len() > 1 => {
                                options.push(value.clone())
                            }
                            _ => return refuse(arg, "it needs a value"),
                        }
                    }
                }
                None => return refuse(arg, "this option is not on the git tool's list"),
            }
            continue;
        }
        // A path when it names something in the workspace (or follows `--`).
        let root = ctx.workspace.root();
        let as_path = ctx.workspace.resolve(arg);
        let exists = as_path.as_ref().is_ok_and(|p| p.exists());
        if after_dashes || exists || (!is_revision(arg) && as_path.is_err()) {
            let resolved = match as_path {
                Ok(path) => path,
                Err(_) => return refuse(arg, "the path is outside the workspace"),
            };
            let relative = resolved
                .strip_prefix(root)
                .map(|p| p.display().to_string())
                .map_err(|_| {
                    ToolError::Refused(format!(
                        "`{arg}` is not allowed: the path is outside the repository"
                    ))
                })?;
            paths.push(if relative.is_empty() {
                ".".into()
            } else {
                relative
            });
        } else if is_revision(arg) {
            revisions.push(arg.clone());
        } else {
            return refuse(arg, "it is neither a revision nor a path in the workspace");
        }
    }
    let mut argv: Vec<String> = command
        .safety_flags()
        .iter()
        .map(|s| s.to_string())
        .collect();
    if args.is_empty() {
        argv.extend(command.default_args().iter().map(|s| s.to_string()));
    }
    argv.extend(options);
    argv.extend(revisions);
    argv.push("--".into());
    argv.extend(paths);
    Ok(argv)
}

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
        let rest = arguments(ctx, args.command, &args.args)?;
        let mut argv: Vec<String> = vec!["--no-pager".into()];
        for setting in HARDENING {
            argv.push("-c".into());
            argv.push((*setting).into());
        }
        argv.push(args.command.name().into());
        argv.extend(rest);
        let mut command = ctx
            .sandbox
            .command("git", argv.iter().map(OsStr::new), ctx.workspace.root())
            .map_err(|e| ToolError::Refused(e.to_string()))?;
        command
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("GIT_PAGER", "cat")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            // The user's global configuration is theirs, not the repository's: it is
            // not read (under Landlock the home directory is not readable at all).
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env_remove("GIT_EXTERNAL_DIFF")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE");
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
