use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{WHOLE_FILE_LINES, numbered};
use crate::{ToolContext, ToolError, TypedTool};

pub(crate) struct Write;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Args {
    /// File path, relative to the workspace root.
    path: String,
    /// The complete new content of the file.
    content: String,
}

#[async_trait]
impl TypedTool for Write {
    type Args = Args;
    const NAME: &'static str = "write";
    const DESCRIPTION: &'static str = "Create a file or replace its whole content (read an existing file first). Creates parent directories.";
    const READ_ONLY: bool = false;

    async fn run(
        &self,
        ctx: &ToolContext,
        args: Args,
        _cancel: &CancellationToken,
    ) -> Result<String, ToolError> {
        let path = ctx.workspace.resolve(&args.path)?;
        let shown = ctx.workspace.display(&path);
        if ctx.workspace.is_protected(&path) {
            return Err(super::protected(&shown));
        }
        super::check_secrets(&shown, &args.content)?;
        let existed = match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                return Err(ToolError::Refused(format!("{shown} is a directory")));
            }
            Ok(_) => true,
            Err(_) => false,
        };
        if existed && !ctx.was_read(&path) {
            // A small file is shown in the refusal, and so is read: a small model told
            // to read first often writes blind again instead.
            let small = super::read_text(ctx, &path)
                .ok()
                .filter(|text| text.lines().count() <= WHOLE_FILE_LINES);
            return Err(ToolError::Refused(match small {
                Some(text) => {
                    ctx.mark_read(&path);
                    format!(
                        "refused: {shown} already exists and had not been read in this session, so this write could lose what it holds. It holds now:\n{}Write it again, starting from this content, or change part of it with edit.",
                        numbered(&text, 1, text.lines().count().max(1))
                    )
                }
                None => format!(
                    "refused: {shown} already exists and has not been read in this session; read it first, or change part of it with edit"
                ),
            }));
        }
        let before = if existed {
            super::read_text(ctx, &path).ok()
        } else {
            None
        };
        let unchanged = before.as_deref() == Some(args.content.as_str());
        if unchanged {
            ctx.mark_read(&path);
            return Ok(format!(
                "{shown} already had exactly this content: nothing changed"
            ));
        }
        let (content, mended) = super::mend(&path, before.as_deref(), args.content);
        if before.as_deref() == Some(content.as_str()) {
            // The slip mended is the file as it is: the same code again.
            ctx.mark_read(&path);
            return Ok(format!(
                "{shown} already had exactly this content once keel mended it: nothing changed{mended}"
            ));
        }
        let note = super::check_syntax(&path, &shown, before.as_deref(), &content)?;
        super::check_importers(ctx, &path, &shown, before.as_deref(), &content)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ToolError::io("cannot create directory", parent, e))?;
        }
        ctx.workspace
            .open_write(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, content.as_bytes()))
            .map_err(|e| ToolError::io("cannot write", &shown, e))?;
        ctx.mark_read(&path);
        let lines = content.lines().count();
        let verb = if existed { "overwrote" } else { "created" };
        Ok(format!(
            "{verb} {shown} ({lines} lines, {} bytes){mended}{note}",
            content.len()
        ))
    }
}
