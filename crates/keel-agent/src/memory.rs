//! Project memory inside a session: the `remember` and `recall` tools, the memory
//! section of the project context, and the change-log entry written at the end of a
//! turn that changed files.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use keel_store::{FileRef, Memory, MemoryKind, Store, file_hash};
use keel_tools::{ToolContext, ToolError, TypedTool, Workspace};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// Memories shown in the session context besides the last session's changes.
const CONTEXT_MEMORIES: usize = 5;
const RECALLED: usize = 8;

/// The project key: the canonical workspace root.
pub(crate) fn project_key(root: &Path) -> String {
    root.display().to_string()
}

/// One memory as the model reads it, with a staleness warning when its files changed.
pub(crate) fn render(store: &Store, root: &Path, memory: &mut Memory) -> String {
    let kind = match memory.kind {
        MemoryKind::Fact => "fact",
        MemoryKind::Change => "change",
    };
    let mut line = format!("[{kind} {}] {}", memory.id, memory.text);
    if let Ok(changed) = store.check_staleness(root, memory)
        && !changed.is_empty()
    {
        let _ = write!(
            line,
            " (possibly stale: {} changed since)",
            changed.join(", ")
        );
    }
    line
}

/// The memory section of the project context.
pub(crate) fn context_section(store: &Store, root: &Path, task: &str, session_id: &str) -> String {
    let project = project_key(root);
    let last = store
        .last_session_changes(&project, Some(session_id))
        .unwrap_or_default();
    let mut relevant = store
        .search(&project, task, CONTEXT_MEMORIES * 2)
        .unwrap_or_default();
    if relevant.len() < CONTEXT_MEMORIES {
        relevant.extend(
            store
                .memories(&project, CONTEXT_MEMORIES)
                .unwrap_or_default(),
        );
    }
    let mut seen: Vec<i64> = last.iter().map(|m| m.id).collect();
    relevant.retain(|m| {
        let fresh = !seen.contains(&m.id);
        seen.push(m.id);
        fresh
    });
    relevant.truncate(CONTEXT_MEMORIES);
    if last.is_empty() && relevant.is_empty() {
        return String::new();
    }
    let mut out = String::from("\nMemory from earlier sessions (search it with recall):\n");
    if !last.is_empty() {
        out.push_str("What the last session changed:\n");
        for mut memory in last {
            let _ = writeln!(out, "- {}", render(store, root, &mut memory));
        }
    }
    if !relevant.is_empty() {
        out.push_str("Other memories:\n");
        for mut memory in relevant {
            let _ = writeln!(out, "- {}", render(store, root, &mut memory));
        }
    }
    out
}

/// Paths named in a text that are files of the project, with their hashes: a fact
/// that names files is flagged possibly stale once they change.
pub fn files_named_in(workspace: &Workspace, text: &str) -> Vec<FileRef> {
    let root = workspace.root();
    let mut files: Vec<FileRef> = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || "`'\",;:()[]{}<>".contains(c)) {
        let word = word.trim_end_matches('.');
        if word.is_empty() || !(word.contains('/') || word.contains('.')) {
            continue;
        }
        let Ok(resolved) = workspace.resolve(word) else {
            continue;
        };
        if !resolved.is_file() {
            continue;
        }
        let relative = workspace.display(&resolved);
        if files.iter().all(|f| f.path != relative) {
            files.push(FileRef {
                hash: file_hash(root, &relative),
                path: relative,
                added: None,
                removed: None,
            });
        }
    }
    files
}

pub(crate) struct Remember(pub Arc<Store>);

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RememberArgs {
    /// A fact worth knowing in later sessions, e.g. "tests run with `make check`".
    text: String,
}

#[async_trait]
impl TypedTool for Remember {
    type Args = RememberArgs;
    const NAME: &'static str = "remember";
    const DESCRIPTION: &'static str = "Keep a fact about this project for later sessions.";
    const READ_ONLY: bool = false;

    async fn run(
        &self,
        ctx: &ToolContext,
        args: RememberArgs,
        _cancel: &CancellationToken,
    ) -> Result<String, ToolError> {
        let text = args.text.trim();
        if text.is_empty() {
            return Err(ToolError::Refused("text is empty".into()));
        }
        let files = files_named_in(&ctx.workspace, text);
        let project = project_key(ctx.workspace.root());
        let id = self
            .0
            .add_fact(&project, text, ctx.session_id.as_deref(), &files)
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        Ok(format!("remembered (memory {id})"))
    }
}

pub(crate) struct Recall(pub Arc<Store>);

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecallArgs {
    /// What to look for, e.g. "what did we change last session".
    query: String,
}

#[async_trait]
impl TypedTool for Recall {
    type Args = RecallArgs;
    const NAME: &'static str = "recall";
    const DESCRIPTION: &'static str =
        "Search this project's memory: kept facts and what earlier sessions changed.";
    const READ_ONLY: bool = true;

    async fn run(
        &self,
        ctx: &ToolContext,
        args: RecallArgs,
        _cancel: &CancellationToken,
    ) -> Result<String, ToolError> {
        let root = ctx.workspace.root();
        let found = self
            .0
            .search(&project_key(root), &args.query, RECALLED)
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        if found.is_empty() {
            return Ok(format!("nothing in memory matches `{}`", args.query));
        }
        let lines: Vec<String> = found
            .into_iter()
            .map(|mut m| render(&self.0, root, &mut m))
            .collect();
        Ok(lines.join("\n"))
    }
}
