use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use grep_regex::RegexMatcherBuilder;
use grep_searcher::sinks::Lossy;
use grep_searcher::{BinaryDetection, SearcherBuilder};
use ignore::WalkState;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::{ToolContext, ToolError, TypedTool};

pub(crate) struct Grep;

/// Matches kept in memory before sorting; beyond this they are only counted.
const KEEP_MATCHES: u64 = 5_000;
/// Matched lines longer than this are shortened.
const MAX_LINE_CHARS: usize = 300;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Args {
    /// Regular expression (Rust regex syntax).
    pattern: String,
    /// File or directory to search, relative to the workspace root (default: the root).
    #[serde(default)]
    path: Option<String>,
    /// Only search files whose name matches this glob, e.g. `*.py`.
    #[serde(default)]
    glob: Option<String>,
    /// Ignore case.
    #[serde(default)]
    ignore_case: Option<bool>,
}

#[async_trait]
impl TypedTool for Grep {
    type Args = Args;
    const NAME: &'static str = "grep";
    const DESCRIPTION: &'static str =
        "Search file contents with a regex (respects .gitignore); returns path:line:text.";
    const READ_ONLY: bool = true;

    async fn run(
        &self,
        ctx: &ToolContext,
        args: Args,
        _cancel: &CancellationToken,
    ) -> Result<String, ToolError> {
        let base = ctx.workspace.resolve(args.path.as_deref().unwrap_or("."))?;
        if !base.exists() {
            return Err(super::not_found(ctx, &base));
        }
        let matcher = RegexMatcherBuilder::new()
            .case_insensitive(args.ignore_case.unwrap_or(false))
            .line_terminator(Some(b'\n'))
            .build(&args.pattern)
            .map_err(|e| {
                ToolError::Failed(format!(
                    "invalid regex: {e}\n(escape special characters such as ( [ {{ . with a backslash to match them literally)"
                ))
            })?;
        let file_filter = match &args.glob {
            Some(glob) => Some(
                globset::Glob::new(glob)
                    .map_err(|e| ToolError::Failed(format!("invalid glob: {e}")))?
                    .compile_matcher(),
            ),
            None => None,
        };
        let search = Search {
            matcher,
            file_filter,
            kept: Mutex::new(Vec::new()),
            total: AtomicU64::new(0),
        };
        let root = ctx.workspace.root().to_path_buf();
        let search = tokio::task::spawn_blocking(move || {
            search.run(&base);
            search
        })
        .await
        .map_err(|e| ToolError::Failed(format!("search failed: {e}")))?;

        let total = search.total.load(Ordering::Relaxed);
        if total == 0 {
            return Ok(format!("no matches for `{}`", args.pattern));
        }
        let mut kept = search.kept.into_inner().unwrap_or_else(|e| e.into_inner());
        kept.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let limit = ctx.limits.search_results;
        let mut out = String::new();
        for (path, line, text) in kept.iter().take(limit) {
            let shown = path.strip_prefix(&root).unwrap_or(path).display();
            out.push_str(&format!("{shown}:{line}:{text}\n"));
        }
        if total > limit as u64 {
            out.push_str(&format!(
                "[{} more matches not shown ({total} in all); narrow the pattern, path or glob]",
                total - limit as u64
            ));
        }
        Ok(out.trim_end().to_string())
    }
}

struct Search {
    matcher: grep_regex::RegexMatcher,
    file_filter: Option<globset::GlobMatcher>,
    kept: Mutex<Vec<(PathBuf, u64, String)>>,
    total: AtomicU64,
}

impl Search {
    fn run(&self, base: &Path) {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        crate::walker(base)
            .threads(threads)
            .build_parallel()
            .run(|| {
                let mut searcher = SearcherBuilder::new()
                    .binary_detection(BinaryDetection::quit(0))
                    .line_number(true)
                    .build();
                Box::new(move |entry| {
                    let Ok(entry) = entry else {
                        return WalkState::Continue;
                    };
                    if !entry.file_type().is_some_and(|t| t.is_file()) {
                        return WalkState::Continue;
                    }
                    let path = entry.path();
                    if let Some(filter) = &self.file_filter
                        && !path.file_name().is_some_and(|n| filter.is_match(n))
                    {
                        return WalkState::Continue;
                    }
                    let mut found = Vec::new();
                    let _ = searcher.search_path(
                        &self.matcher,
                        path,
                        Lossy(|line, text| {
                            found.push((line, shorten(text.trim_end_matches(['\n', '\r']))));
                            Ok(true)
                        }),
                    );
                    if !found.is_empty() {
                        let before = self.total.fetch_add(found.len() as u64, Ordering::Relaxed);
                        if before < KEEP_MATCHES {
                            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
                            kept.extend(found.into_iter().map(|(l, t)| (path.to_path_buf(), l, t)));
                        }
                    }
                    WalkState::Continue
                })
            });
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_LINE_CHARS {
        return text.to_string();
    }
    let cut: String = text.chars().take(MAX_LINE_CHARS).collect();
    format!("{cut}…")
}
