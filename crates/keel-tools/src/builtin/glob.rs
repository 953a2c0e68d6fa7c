use std::time::SystemTime;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::{ToolContext, ToolError, TypedTool};

pub(crate) struct Glob;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Args {
    /// Glob such as `**/*.py`; without `/` it matches file names at any depth.
    pattern: String,
    /// Directory to search, relative to the workspace root (default: the root).
    #[serde(default)]
    path: Option<String>,
}

#[async_trait]
impl TypedTool for Glob {
    type Args = Args;
    const NAME: &'static str = "glob";
    const DESCRIPTION: &'static str =
        "List files matching a glob pattern (respects .gitignore), most recently modified first.";
    const READ_ONLY: bool = true;

    async fn run(
        &self,
        ctx: &ToolContext,
        args: Args,
        _cancel: &CancellationToken,
    ) -> Result<String, ToolError> {
        let base = ctx.workspace.resolve(args.path.as_deref().unwrap_or("."))?;
        if !base.is_dir() {
            return Err(ToolError::Failed(format!(
                "{} is not a directory",
                ctx.workspace.display(&base)
            )));
        }
        let pattern = args.pattern.trim().trim_start_matches("./");
        let matcher = globset::GlobBuilder::new(pattern)
            .literal_separator(pattern.contains('/'))
            .build()
            .map_err(|e| ToolError::Failed(format!("invalid glob pattern: {e}")))?
            .compile_matcher();
        let by_name = !pattern.contains('/');

        let mut found: Vec<(SystemTime, String)> = Vec::new();
        for entry in crate::walker(&base).build().flatten() {
            if !entry
                .file_type()
                .is_some_and(|t| t.is_file() || t.is_symlink())
            {
                continue;
            }
            let path = entry.path();
            let Ok(relative) = path.strip_prefix(&base) else {
                continue;
            };
            let hit = if by_name {
                path.file_name().is_some_and(|n| matcher.is_match(n))
            } else {
                matcher.is_match(relative)
            };
            if hit {
                let modified = entry
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                found.push((modified, ctx.workspace.display(path)));
            }
        }
        if found.is_empty() {
            return Ok(format!("no files match `{}`", args.pattern));
        }
        found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let total = found.len();
        let limit = ctx.limits.search_results;
        let mut out: Vec<String> = found.into_iter().take(limit).map(|(_, p)| p).collect();
        if total > limit {
            out.push(format!(
                "[{} more files not shown; narrow the pattern or the path]",
                total - limit
            ));
        }
        Ok(out.join("\n"))
    }
}
