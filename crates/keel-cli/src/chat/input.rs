//! The chat's input line: rustyline, for multi-line editing (Alt-Enter, or a line
//! ending in `\`), bracketed paste, history kept per project in keel's data directory,
//! and Tab completion of slash commands and paths (`@path` attaches a file).
//!
//! Why rustyline: it is small (no terminal framework underneath), it never asks the
//! terminal where the cursor is unless told to — so the chat runs unchanged in a
//! pseudo-terminal under test — and it has what a prompt needs. reedline (nushell)
//! queries the cursor position at every prompt; ratatui would take over the screen and
//! the scrollback with it, where a conversation belongs in the terminal's own history.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{
    Cmd, ConditionalEventHandler, Config, Context, Editor, Event, EventContext, EventHandler,
    Helper, KeyCode, KeyEvent, Modifiers, RepeatCount,
};

use super::commands::COMMANDS;

/// Completion and validation for the chat prompt.
pub struct ChatHelper {
    root: PathBuf,
}

impl Helper for ChatHelper {}
impl Hinter for ChatHelper {
    type Hint = String;
}
impl Highlighter for ChatHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ChatHelper {
    /// A line ending in `\\` goes on to the next line.
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if ctx.input().ends_with('\\') {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

impl Completer for ChatHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        if start == 0 && word.starts_with('/') {
            let pairs = COMMANDS
                .iter()
                .filter(|(name, _)| name.starts_with(word))
                .map(|(name, _)| Pair {
                    display: name.to_string(),
                    replacement: format!("{name} "),
                })
                .collect();
            return Ok((0, pairs));
        }
        let (at, path) = match word.strip_prefix('@') {
            Some(path) => (start + 1, path),
            None => (start, word),
        };
        Ok((at, complete_path(&self.root, path)))
    }
}

/// Workspace paths that start with `partial` (folders end in `/`).
fn complete_path(root: &Path, partial: &str) -> Vec<Pair> {
    let (dir, stem) = match partial.rfind('/') {
        Some(i) => (&partial[..=i], &partial[i + 1..]),
        None => ("", partial),
    };
    if dir.split('/').any(|c| c == "..") || dir.starts_with('/') {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return Vec::new();
    };
    let mut pairs: Vec<Pair> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_string();
            if !name.starts_with(stem)
                || name == ".git"
                || (stem.is_empty() && name.starts_with('.'))
            {
                return None;
            }
            let slash = if entry.file_type().ok()?.is_dir() {
                "/"
            } else {
                ""
            };
            Some(Pair {
                display: format!("{name}{slash}"),
                replacement: format!("{dir}{name}{slash}"),
            })
        })
        .collect();
    pairs.sort_by(|a, b| a.display.cmp(&b.display));
    pairs
}

pub type ChatEditor = Editor<ChatHelper, DefaultHistory>;

/// Ctrl-C on an empty prompt leaves (as Ctrl-D does); on a line being typed it clears
/// the line (the chat then says that a second one leaves).
struct CtrlC;

impl ConditionalEventHandler for CtrlC {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        ctx.line().is_empty().then_some(Cmd::EndOfFile)
    }
}

/// The editor for a project, with its history loaded.
pub fn editor(root: &Path, history: Option<&Path>) -> rustyline::Result<ChatEditor> {
    let config = Config::builder()
        .auto_add_history(false)
        .max_history_size(1000)?
        .history_ignore_dups(true)?
        .bracketed_paste(true)
        .build();
    let mut editor = ChatEditor::with_config(config)?;
    editor.set_helper(Some(ChatHelper {
        root: root.to_path_buf(),
    }));
    // Alt-Enter: a new line in the message instead of sending it.
    editor.bind_sequence(
        KeyEvent(KeyCode::Enter, Modifiers::ALT),
        EventHandler::Simple(Cmd::Newline),
    );
    editor.bind_sequence(
        KeyEvent::ctrl('C'),
        EventHandler::Conditional(Box::new(CtrlC)),
    );
    if let Some(path) = history {
        let _ = editor.load_history(path);
    }
    Ok(editor)
}

/// Adds a sent message to the history and appends it to the history file.
pub fn remember(editor: &mut ChatEditor, history: Option<&Path>, line: &str) {
    if editor.add_history_entry(line).unwrap_or(false)
        && let Some(path) = history
    {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.append_history(path);
    }
}

/// The history file of a project: keel's data directory, one file per workspace.
pub fn history_path(home: Option<&Path>, root: &Path) -> Option<PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    root.hash(&mut hasher);
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Some(
        home?
            .join("history")
            .join(format!("{name}-{:016x}.txt", hasher.finish())),
    )
}

/// What reading a line gave.
pub enum Input {
    Line(String),
    /// Ctrl-C at the prompt.
    Interrupted,
    /// Ctrl-D on an empty line.
    Eof,
}

pub fn read(editor: &mut ChatEditor, prompt: &str) -> Result<Input, ReadlineError> {
    match editor.readline(prompt) {
        Ok(line) => Ok(Input::Line(line)),
        Err(ReadlineError::Interrupted) => Ok(Input::Interrupted),
        Err(ReadlineError::Eof) => Ok(Input::Eof),
        Err(e) => Err(e),
    }
}
