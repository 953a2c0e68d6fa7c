use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read as _};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::not_found;
use crate::{ToolContext, ToolError, TypedTool};

pub(crate) struct Read;

/// Lines longer than this are shortened.
const MAX_LINE_CHARS: usize = 2000;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Args {
    /// File path, relative to the workspace root.
    path: String,
    /// First line to read, from 1.
    #[serde(default)]
    offset: Option<usize>,
    /// Number of lines to read.
    #[serde(default)]
    limit: Option<usize>,
}

#[async_trait]
impl TypedTool for Read {
    type Args = Args;
    const NAME: &'static str = "read";
    const DESCRIPTION: &'static str = "Read a text file; lines are numbered.";
    const READ_ONLY: bool = true;

    async fn run(
        &self,
        ctx: &ToolContext,
        args: Args,
        _cancel: &CancellationToken,
    ) -> Result<String, ToolError> {
        let path = ctx.workspace.resolve(&args.path)?;
        let shown = ctx.workspace.display(&path);
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(not_found(ctx, &path));
            }
            Err(e) => return Err(ToolError::io("cannot read", &shown, e)),
        };
        if meta.is_dir() {
            return Err(ToolError::Refused(format!(
                "{shown} is a directory; list its files with glob (e.g. {{\"pattern\": \"*\", \"path\": \"{shown}\"}})"
            )));
        }
        let ranged = args.offset.is_some() || args.limit.is_some();
        if meta.len() > ctx.limits.read_max_bytes && !ranged {
            return Err(ToolError::Refused(format!(
                "{shown} is {} bytes, over the {}-byte limit for a whole read; read part of it with offset and limit (e.g. {{\"path\": \"{shown}\", \"offset\": 1, \"limit\": 200}}) or search it with grep",
                meta.len(),
                ctx.limits.read_max_bytes
            )));
        }
        let file = ctx
            .workspace
            .open_read(&path)
            .map_err(|e| ToolError::io("cannot read", &shown, e))?;
        let mut reader = BufReader::new(file);
        let start = reader
            .fill_buf()
            .map_err(|e| ToolError::io("cannot read", &shown, e))?;
        if start.iter().take(8192).any(|&b| b == 0) {
            return Err(ToolError::Refused(format!(
                "{shown} is a binary file ({} bytes); inspect it with bash instead (e.g. `file {shown}` or `xxd {shown} | head`)",
                meta.len()
            )));
        }
        let first = args.offset.unwrap_or(1).max(1);
        let limit = args.limit.unwrap_or(ctx.limits.read_default_lines).max(1);
        let budget = ctx.limits.output_bytes;

        let mut out = String::new();
        let mut number = 0usize;
        let mut line = Vec::new();
        let mut next_offset = None;
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| ToolError::io("cannot read", &shown, e))?;
            if n == 0 {
                break;
            }
            number += 1;
            if number < first {
                continue;
            }
            if number >= first + limit || out.len() >= budget {
                next_offset = Some(number);
                break;
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            let _ = if text.chars().count() > MAX_LINE_CHARS {
                let cut: String = text.chars().take(MAX_LINE_CHARS).collect();
                writeln!(out, "{number:>6}\t{cut}… [line shortened]")
            } else {
                writeln!(out, "{number:>6}\t{text}")
            };
        }
        ctx.mark_read(&path);
        if number == 0 {
            return Ok(format!("({shown} is empty)"));
        }
        if number < first {
            return Ok(format!(
                "({shown} has only {number} lines; offset {first} is past the end)"
            ));
        }
        if let Some(next) = next_offset {
            // Count what is left, unless the file is big enough that this costs.
            let total = if meta.len() <= ctx.limits.read_max_bytes {
                let mut rest = Vec::new();
                let _ = reader.read_to_end(&mut rest);
                let extra = rest.iter().filter(|&&b| b == b'\n').count()
                    + usize::from(!rest.is_empty() && !rest.ends_with(b"\n"));
                format!(" of {}", number + extra)
            } else {
                String::new()
            };
            let _ = write!(
                out,
                "[showing lines {first}-{}{total}; continue with offset {next}]",
                next - 1
            );
        }
        Ok(out)
    }
}
