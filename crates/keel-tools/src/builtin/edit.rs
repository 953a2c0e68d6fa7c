//! `edit`: replace one exact, unique occurrence. When nothing matches exactly, a
//! whitespace-tolerant pass (trailing spaces, then indentation) is tried, and used only
//! if it finds exactly one place; otherwise the model is shown the closest lines.

use std::fmt::Write as _;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{WHOLE_FILE_LINES, numbered, read_text};
use crate::{ToolContext, ToolError, TypedTool};

pub(crate) struct Edit;

/// Files with more lines than this get no "closest lines" suggestion (it costs).
const SUGGEST_MAX_LINES: usize = 20_000;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Args {
    /// File path, relative to the workspace root.
    path: String,
    /// Exact text to replace; must occur exactly once.
    old_string: String,
    /// Replacement text.
    new_string: String,
}

#[async_trait]
impl TypedTool for Edit {
    type Args = Args;
    const NAME: &'static str = "edit";
    const DESCRIPTION: &'static str =
        "Replace one exact, unique occurrence of old_string in a file with new_string.";
    const READ_ONLY: bool = false;

    async fn run(
        &self,
        ctx: &ToolContext,
        args: Args,
        _cancel: &CancellationToken,
    ) -> Result<String, ToolError> {
        if args.old_string.is_empty() {
            return Err(ToolError::Refused(
                "old_string is empty; to create a file use write".into(),
            ));
        }
        if args.old_string == args.new_string {
            return Err(ToolError::Refused(
                "old_string and new_string are identical; there is nothing to change".into(),
            ));
        }
        let path = ctx.workspace.resolve(&args.path)?;
        let shown = ctx.workspace.display(&path);
        if ctx.workspace.is_protected(&path) {
            return Err(super::protected(&shown));
        }
        super::check_secrets(&shown, &args.new_string)?;
        let content = read_text(ctx, &path)?;
        let (old, new) = if content.contains("\r\n") && !args.old_string.contains("\r\n") {
            (
                args.old_string.replace('\n', "\r\n"),
                args.new_string.replace('\n', "\r\n"),
            )
        } else {
            (args.old_string, args.new_string)
        };

        let replacement = match find(&content, &old) {
            Found::Exact(start) => Replacement {
                start,
                end: start + old.len(),
                text: new,
                note: "",
            },
            Found::Several(starts) => {
                let lines: Vec<String> = starts
                    .iter()
                    .take(10)
                    .map(|&s| line_of(&content, s).to_string())
                    .collect();
                return Err(ToolError::Failed(format!(
                    "old_string occurs {} times in {shown} (at lines {}); include more surrounding lines so that it matches exactly once",
                    starts.len(),
                    lines.join(", ")
                )));
            }
            Found::None => match tolerant_match(&content, &old, &new) {
                Tolerant::One(replacement) => replacement,
                Tolerant::Several(count) => {
                    return Err(ToolError::Failed(format!(
                        "old_string does not occur exactly in {shown}, and ignoring whitespace it matches {count} places; copy it exactly from the file, with more surrounding lines"
                    )));
                }
                Tolerant::None => {
                    let (message, whole) = no_match_message(&content, &old, &shown);
                    if whole {
                        // The model has now seen all of it: a rewrite with `write` is
                        // no blind overwrite.
                        ctx.mark_read(&path);
                    }
                    return Err(ToolError::Failed(message));
                }
            },
        };

        let mut updated = String::with_capacity(content.len() + replacement.text.len());
        updated.push_str(&content[..replacement.start]);
        updated.push_str(&replacement.text);
        updated.push_str(&content[replacement.end..]);
        let unmended = updated.len();
        let (updated, mended) = super::mend(&path, Some(&content), updated);
        let note = super::check_syntax(&path, &shown, Some(&content), &updated)?;
        super::check_importers(ctx, &path, &shown, Some(&content), &updated)?;
        ctx.workspace
            .open_write(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, updated.as_bytes()))
            .map_err(|e| ToolError::io("cannot write", &shown, e))?;
        ctx.mark_read(&path);

        // A mend adds lines above the edit (carried imports) or none (a re-quote).
        let moved = replacement.start + updated.len().saturating_sub(unmended);
        let start = if updated
            .get(moved..)
            .is_some_and(|r| r.starts_with(&replacement.text))
        {
            moved
        } else {
            replacement.start.min(updated.len())
        };
        let first = line_of(&updated, start);
        let last = line_of(&updated, start + replacement.text.len()).max(first);
        let mut out = format!("edited {shown}{}:\n", replacement.note);
        out.push_str(&numbered(
            &updated,
            first.saturating_sub(2).max(1),
            last + 2,
        ));
        out.push_str(&mended);
        out.push_str(&note);
        Ok(out)
    }
}

enum Found {
    Exact(usize),
    Several(Vec<usize>),
    None,
}

fn find(content: &str, old: &str) -> Found {
    let starts: Vec<usize> = content.match_indices(old).map(|(i, _)| i).collect();
    match starts.len() {
        0 => Found::None,
        1 => Found::Exact(starts[0]),
        _ => Found::Several(starts),
    }
}

struct Replacement {
    start: usize,
    end: usize,
    text: String,
    note: &'static str,
}

enum Tolerant {
    One(Replacement),
    Several(usize),
    None,
}

/// Byte range of each line's text (without its terminator).
fn line_spans(content: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    for line in content.split_inclusive('\n') {
        let text = line.trim_end_matches(['\n', '\r']);
        spans.push((start, start + text.len()));
        start += line.len();
    }
    spans
}

fn tolerant_match(content: &str, old: &str, new: &str) -> Tolerant {
    let old_lines: Vec<&str> = old
        .trim_end_matches(['\n', '\r'])
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .collect();
    if old_lines.iter().all(|l| l.trim().is_empty()) {
        return Tolerant::None;
    }
    let spans = line_spans(content);
    let file_lines: Vec<&str> = spans.iter().map(|&(s, e)| &content[s..e]).collect();
    let windows = |same: &dyn Fn(&str, &str) -> bool| -> Vec<usize> {
        if file_lines.len() < old_lines.len() {
            return Vec::new();
        }
        (0..=file_lines.len() - old_lines.len())
            .filter(|&i| {
                old_lines
                    .iter()
                    .enumerate()
                    .all(|(j, o)| same(file_lines[i + j], o))
            })
            .collect()
    };
    let trailing = windows(&|f, o| f.trim_end() == o.trim_end());
    let (found, reindent) = if trailing.is_empty() {
        (windows(&|f, o| f.trim() == o.trim()), true)
    } else {
        (trailing, false)
    };
    match found.len() {
        0 => Tolerant::None,
        1 => {
            let i = found[0];
            let start = spans[i].0;
            let end = spans[i + old_lines.len() - 1].1;
            let mut text = new.to_string();
            if old.ends_with('\n') && text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            let note = if reindent {
                let first = old_lines
                    .iter()
                    .position(|l| !l.trim().is_empty())
                    .unwrap_or(0);
                text = reindent_text(
                    &text,
                    indent(old_lines[first]),
                    indent(file_lines[i + first]),
                );
                " (matched ignoring indentation; new_string was re-indented to fit)"
            } else {
                " (matched ignoring trailing whitespace)"
            };
            Tolerant::One(Replacement {
                start,
                end,
                text,
                note,
            })
        }
        n => Tolerant::Several(n),
    }
}

fn indent(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

fn reindent_text(text: &str, from: &str, to: &str) -> String {
    text.split('\n')
        .map(|line| match line.strip_prefix(from) {
            Some(rest) if !line.trim().is_empty() => format!("{to}{rest}"),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// 1-based line number of a byte offset.
fn line_of(content: &str, offset: usize) -> usize {
    let bytes = &content.as_bytes()[..offset.min(content.len())];
    bytes.iter().filter(|&&b| b == b'\n').count() + 1
}

/// Why `old` matched nothing, with the closest lines (the whole file when it is small),
/// and whether the whole file was shown.
fn no_match_message(content: &str, old: &str, shown: &str) -> (String, bool) {
    let mut message = format!("no match for old_string in {shown}");
    let old_lines: Vec<&str> = old.trim_end().lines().collect();
    let file_lines: Vec<&str> = content.lines().collect();
    let k = old_lines.len().max(1);
    if file_lines.is_empty() || file_lines.len() > SUGGEST_MAX_LINES {
        message.push_str("; read the file and copy old_string exactly");
        return (message, false);
    }
    let windows = file_lines.len().saturating_sub(k) + 1;
    let best = (0..windows)
        .map(|i| {
            let score: f64 = old_lines
                .iter()
                .enumerate()
                .map(|(j, o)| {
                    file_lines
                        .get(i + j)
                        .map(|f| strsim::sorensen_dice(f.trim(), o.trim()))
                        .unwrap_or(0.0)
                })
                .sum();
            (i, score)
        })
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
        .filter(|(_, score)| *score > 0.0);
    let closest = best.map(|(i, _)| (i + 1, (i + k).min(file_lines.len())));
    if file_lines.len() <= WHOLE_FILE_LINES {
        // A small file whole: the model copies old_string from what it sees.
        match closest {
            Some((first, last)) => {
                let _ = write!(message, "; the closest lines are {first}-{last}.");
            }
            None => message.push_str("; nothing in the file resembles it."),
        }
        let _ = write!(
            message,
            " The whole file now:\n{}Copy old_string exactly from these lines.",
            numbered(content, 1, file_lines.len())
        );
        return (message, true);
    }
    match closest {
        Some((first, last)) => {
            let _ = write!(
                message,
                "; the closest lines are {first}-{last}:\n{}Copy old_string exactly from the file (read it again if unsure).",
                numbered(content, first, last)
            );
        }
        None => message.push_str(
            "; nothing in the file resembles it. Read the file and copy old_string exactly",
        ),
    }
    (message, false)
}
