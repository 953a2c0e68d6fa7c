//! The built-in tools. [`all`] is the one place that lists them.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::{Tool, typed};

mod bash;
mod edit;
mod git;
mod glob;
mod grep;
mod importers;
mod read;
mod write;

pub(crate) fn all() -> Vec<Arc<dyn Tool>> {
    vec![
        typed(bash::Bash),
        typed(edit::Edit),
        typed(git::Git),
        typed(glob::Glob),
        typed(grep::Grep),
        typed(read::Read),
        typed(write::Write),
    ]
}

/// "file not found", with the closest names in the same directory.
pub(crate) fn not_found(ctx: &crate::ToolContext, resolved: &std::path::Path) -> crate::ToolError {
    let shown = ctx.workspace.display(resolved);
    let mut message = format!("file not found: {shown}");
    let (Some(parent), Some(name)) = (resolved.parent(), resolved.file_name()) else {
        return crate::ToolError::Failed(message);
    };
    let name = name.to_string_lossy();
    let mut candidates: Vec<(f64, String)> = std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| {
            let other = entry.file_name().to_string_lossy().into_owned();
            (strsim::normalized_levenshtein(&name, &other), other)
        })
        .filter(|(score, _)| *score >= 0.5)
        .collect();
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    if !candidates.is_empty() {
        let names: Vec<String> = candidates
            .into_iter()
            .take(3)
            .map(|(_, other)| ctx.workspace.display(&parent.join(other)))
            .collect();
        message.push_str(&format!(" (did you mean {}?)", names.join(", ")));
    }
    crate::ToolError::Failed(message)
}

/// Refuses content that would put a secret into a file, or a masked placeholder where
/// a secret was (writing it back would destroy the real value).
pub(crate) fn check_secrets(shown: &str, content: &str) -> Result<(), crate::ToolError> {
    if content.contains(crate::secrets::MASK_PREFIX) {
        return Err(crate::ToolError::Refused(format!(
            "refused: the content for {shown} holds `[secret masked: …]`, keel's placeholder for a secret it hid from you; writing it would destroy the real value. Change the other lines with edit instead"
        )));
    }
    let kinds = crate::secrets::kinds_in(content);
    if !kinds.is_empty() {
        return Err(crate::ToolError::Refused(format!(
            "refused: the content for {shown} holds what looks like a secret ({}); keep secrets out of files — read them from the environment instead",
            kinds.join(", ")
        )));
    }
    Ok(())
}

/// The syntax check of new content for a file whose old content was `before` (`None`
/// for a new file): `Err` refuses (the file parsed and would not), `Ok(note)` lets it
/// through with a note when the result still does not parse.
pub(crate) fn check_syntax(
    path: &std::path::Path,
    shown: &str,
    before: Option<&str>,
    after: &str,
) -> Result<String, crate::ToolError> {
    if !keel_syntax::supported(path) {
        return Ok(String::new());
    }
    let Err(error) = keel_syntax::check(path, after) else {
        return Ok(String::new());
    };
    match before {
        Some(before) if keel_syntax::check(path, before).is_ok() => {
            Err(crate::ToolError::Refused(format!(
                "refused: this would leave {shown} unparsable; the file is unchanged.\n{error}"
            )))
        }
        _ => Ok(format!("\nnote: {shown} does not parse: {error}")),
    }
}

/// New content for `path` with a small model's slips mended (`keel_syntax::mend`: a name
/// the code uses and no longer binds, a broken quote), and a note per mend for the
/// tool's answer.
pub(crate) fn mend(
    path: &std::path::Path,
    before: Option<&str>,
    after: String,
) -> (String, String) {
    match keel_syntax::mend(path, before, &after) {
        Some(mended) => {
            let notes: String = mended
                .notes
                .iter()
                .map(|n| format!("\nnote: {n}"))
                .collect();
            (mended.text, notes)
        }
        None => (after, String::new()),
    }
}

/// Refuses, once, new content for a Python module that no longer defines at its top
/// level a name the old content defined and another file imports from it (see
/// [`importers`]). The same content sent again goes through: moving a function to
/// another module is a real change, made in two steps.
pub(crate) fn check_importers(
    ctx: &crate::ToolContext,
    path: &std::path::Path,
    shown: &str,
    before: Option<&str>,
    after: &str,
) -> Result<(), crate::ToolError> {
    if path.extension().is_none_or(|x| x != "py") {
        return Ok(());
    }
    let Some(before) = before else { return Ok(()) };
    let (Some(old), Some(new)) = (
        keel_syntax::python_module_names(before),
        keel_syntax::python_module_names(after),
    ) else {
        return Ok(());
    };
    if old.difference(&new).next().is_none() {
        return Ok(());
    }
    let lost: Vec<importers::Importer> = importers::importers(ctx.workspace.root(), path)
        .into_iter()
        .filter(|i| old.contains(&i.name) && !new.contains(&i.name))
        .collect();
    if lost.is_empty() {
        return Ok(());
    }
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&(path, after), &mut hasher);
    if !ctx.first_attempt(std::hash::Hasher::finish(&hasher)) {
        return Ok(());
    }
    let what: Vec<String> = lost
        .iter()
        .take(6)
        .map(|i| format!("{} imports `{}`", i.file, i.name))
        .collect();
    let mut message = format!(
        "refused: {} from {shown}, and this content no longer defines {} at the top level of the module; the file is unchanged.",
        what.join(", "),
        if lost.len() == 1 { "it" } else { "them" }
    );
    for importer in lost.iter().take(6) {
        let indented = format!("def {}(", importer.name);
        let class = format!("class {}", importer.name);
        if after.lines().any(|l| {
            let body = l.trim_start();
            body.len() < l.len() && (body.starts_with(&indented) || body.starts_with(&class))
        }) {
            let _ = write!(
                message,
                " `{}` is defined indented, inside another block: check its indentation.",
                importer.name
            );
        }
    }
    message
        .push_str(" Keep what is imported, or send this same content again to remove it anyway.");
    Err(crate::ToolError::Refused(message))
}

/// The refusal of a write into `.git` or `.keel`.
pub(crate) fn protected(shown: &str) -> crate::ToolError {
    crate::ToolError::Refused(format!(
        "refused: {shown} is inside .git or .keel, which the agent may not change (hooks and configuration there run later)"
    ))
}

/// Reads a text file for modification: refuses directories and binary content.
pub(crate) fn read_text(
    ctx: &crate::ToolContext,
    resolved: &std::path::Path,
) -> Result<String, crate::ToolError> {
    let shown = ctx.workspace.display(resolved);
    let read = ctx.workspace.open_read(resolved).and_then(|mut file| {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).map(|_| bytes)
    });
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found(ctx, resolved)),
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
            return Err(crate::ToolError::Failed(format!("{shown} is a directory")));
        }
        Err(e) => return Err(crate::ToolError::io("cannot read", shown, e)),
    };
    String::from_utf8(bytes).map_err(|_| {
        crate::ToolError::Refused(format!(
            "{shown} is not a UTF-8 text file; change it with bash instead"
        ))
    })
}

/// Files up to this many lines are shown whole where a call failed on them (an edit's
/// old_string that matched nothing, a write over a file not read): the model sees what
/// is there, and the file counts as read.
pub(crate) const WHOLE_FILE_LINES: usize = 60;

/// Lines `first..=last` (1-based) of `content`, each with its number, as `read` shows them.
pub(crate) fn numbered(content: &str, first: usize, last: usize) -> String {
    let mut out = String::new();
    for (i, line) in content
        .lines()
        .enumerate()
        .skip(first - 1)
        .take(last + 1 - first)
    {
        let _ = writeln!(out, "{:>6}\t{}", i + 1, line);
    }
    out
}
