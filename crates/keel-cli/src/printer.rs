//! Front-end sinks: the live transcript for people and JSON Lines for programs.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use keel_agent::EventSink;
use keel_protocol::{Event, FileChange, Outcome};
use serde_json::Value;

/// One JSON object per event on stdout, flushed per line.
pub struct JsonLines;

impl EventSink for JsonLines {
    fn emit(&self, event: &Event) {
        let mut out = std::io::stdout().lock();
        if serde_json::to_writer(&mut out, event).is_ok() {
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        }
    }
}

/// Sends each event to several sinks.
pub struct Tee(pub Vec<Box<dyn EventSink>>);

impl EventSink for Tee {
    fn emit(&self, event: &Event) {
        for sink in &self.0 {
            sink.emit(event);
        }
    }

    fn failure(&self) -> Option<String> {
        self.0.iter().find_map(|sink| sink.failure())
    }
}

/// The readable live transcript: streamed text, tool calls and shortened results,
/// the outcome. Colours only on a terminal (and never with `NO_COLOR`).
pub struct Transcript {
    colour: bool,
    /// Also print the user's messages (when showing a stored session).
    user_messages: bool,
    /// Whether the cursor is at the start of a line.
    at_line_start: Mutex<bool>,
    /// A line printed under the session header (how commands run).
    note: Option<String>,
    /// One numbered line per tool call (the chat), instead of the call and its output.
    compact: Option<Mutex<Compact>>,
    /// A "thinking" mark is on the current line (the chat, on a terminal): the next
    /// output replaces it.
    thinking: Mutex<bool>,
}

/// The compact view's calls: their numbered lines, and the call whose line was
/// printed last (its result replaces that line on a terminal).
#[derive(Default)]
struct Compact {
    next: usize,
    calls: HashMap<String, String>,
    open: Option<String>,
}

const RESULT_LINES: usize = 4;

impl Transcript {
    pub fn new() -> Self {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self {
            colour,
            user_messages: false,
            at_line_start: Mutex::new(true),
            note: None,
            compact: None,
            thinking: Mutex::new(false),
        }
    }

    /// One line per tool call, numbered from `first` (`/show N` expands call N).
    pub fn compact(mut self, first: usize) -> Self {
        self.compact = Some(Mutex::new(Compact {
            next: first,
            ..Compact::default()
        }));
        self
    }

    /// Prints a line of the chat's own (a command's answer), coloured with `code`.
    pub fn say(&self, code: &str, text: &str) {
        self.line(&self.paint(code, text));
    }

    /// Whether colours are on.
    pub fn colour(&self) -> bool {
        self.colour
    }

    /// The compact view of a call: `● [n] name argument`.
    fn compact_call(&self, call_id: &str, name: &str, arguments: &Value) -> bool {
        let Some(compact) = &self.compact else {
            return false;
        };
        let mut compact = compact.lock().unwrap_or_else(|e| e.into_inner());
        compact.next += 1;
        let line = format!(
            "[{}] {name} {}",
            compact.next,
            call_summary(name, arguments)
        );
        compact.calls.insert(call_id.to_string(), line.clone());
        drop(compact);
        self.line(&self.paint("33", &format!("● {line}")));
        // Set after printing: any other output since (`write` clears it) means the
        // result cannot take this line's place.
        if let Some(compact) = &self.compact {
            compact.lock().unwrap_or_else(|e| e.into_inner()).open = Some(call_id.to_string());
        }
        true
    }

    /// The compact view of a result: the call's line again, with how it went.
    fn compact_result(&self, call_id: &str, output: &str, is_error: bool, ms: u64) -> bool {
        let Some(compact) = &self.compact else {
            return false;
        };
        let mut compact = compact.lock().unwrap_or_else(|e| e.into_inner());
        let Some(line) = compact.calls.get(call_id).cloned() else {
            return false;
        };
        let replace = compact.open.take().as_deref() == Some(call_id) && self.colour;
        drop(compact);
        let secs = ms as f64 / 1000.0;
        let text = if is_error {
            let first: String = output
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(100)
                .collect();
            self.paint("31", &format!("✗ {line} · {secs:.1} s · {first}"))
        } else {
            self.paint("32", &format!("✓ {line} · {secs:.1} s"))
        };
        if replace {
            // Up one line, cleared: the call's line becomes its result's.
            self.write(&format!("\x1b[1A\r\x1b[2K{text}\n"));
        } else {
            self.line(&text);
        }
        true
    }

    /// Prints `note` under the session header.
    pub fn with_note(mut self, note: String) -> Self {
        self.note = Some(note);
        self
    }

    pub fn with_user_messages(mut self) -> Self {
        self.user_messages = true;
        self
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn write(&self, text: &str) {
        if let Some(compact) = &self.compact {
            compact.lock().unwrap_or_else(|e| e.into_inner()).open = None;
        }
        let mut at_start = self.at_line_start.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        if std::mem::take(&mut *self.thinking.lock().unwrap_or_else(|e| e.into_inner())) {
            // The mark goes; what replaces it starts where it stood.
            let _ = out.write_all(b"\r\x1b[2K");
        }
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        if !text.is_empty() {
            *at_start = text.ends_with('\n');
        }
    }

    /// Writes whole lines, starting on a fresh line.
    fn line(&self, text: &str) {
        let fresh = *self.at_line_start.lock().unwrap_or_else(|e| e.into_inner());
        let prefix = if fresh { "" } else { "\n" };
        self.write(&format!("{prefix}{text}\n"));
    }
}

/// The argument worth showing for a call: the command, the path, the pattern.
fn call_summary(name: &str, arguments: &Value) -> String {
    let field = |key: &str| {
        arguments
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let summary = match name {
        "bash" => field("command"),
        "read" | "write" | "edit" => field("path"),
        "glob" | "grep" => field("pattern").map(|p| match field("path") {
            Some(path) => format!("{p} in {path}"),
            None => p,
        }),
        "git" => {
            let args: Vec<&str> = arguments
                .get("args")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            field("command").map(|c| format!("{c} {}", args.join(" ")).trim_end().to_string())
        }
        _ => None,
    };
    let summary = summary.unwrap_or_else(|| arguments.to_string());
    let first_line = summary.lines().next().unwrap_or("");
    let mut shown: String = first_line.chars().take(120).collect();
    if shown.len() < summary.len() {
        shown.push('…');
    }
    shown
}

/// `a.py +3 −1, new.py (new) +2, old.txt (deleted)`.
pub fn files_line(files: &[FileChange]) -> String {
    if files.is_empty() {
        return "no files".into();
    }
    files
        .iter()
        .map(|f| {
            let what = match (&f.before, &f.after) {
                (None, _) => " (new)",
                (_, None) => " (deleted)",
                _ => "",
            };
            let counts = match (f.added, f.removed) {
                (Some(a), Some(r)) => format!(" +{a} −{r}"),
                _ => String::new(),
            };
            format!("{}{what}{counts}", f.path)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn indent_lines(text: &str, max: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let mut out: Vec<String> = lines
        .iter()
        .take(max)
        .map(|l| {
            let cut: String = l.chars().take(160).collect();
            format!("    {cut}")
        })
        .collect();
    if lines.len() > max {
        out.push(format!("    … {} more lines", lines.len() - max));
    }
    out.join("\n")
}

impl EventSink for Transcript {
    fn emit(&self, event: &Event) {
        match event {
            Event::Session {
                session_id,
                model,
                workspace,
            } => {
                self.line(&self.paint(
                    "2",
                    &format!("keel · session {session_id} · {model} · {workspace}"),
                ));
                if let Some(note) = &self.note {
                    // An unsandboxed session says so loudly.
                    let colour = if note.contains("OFF") { "1;31" } else { "2" };
                    self.line(&self.paint(colour, note));
                }
            }
            Event::Delta { text } => self.write(text),
            Event::Thinking { iteration } if self.compact.is_some() && self.colour => {
                let at_start = *self.at_line_start.lock().unwrap_or_else(|e| e.into_inner());
                if at_start {
                    self.write(&self.paint("2", &format!("⋯ thinking ({iteration})")));
                    *self.at_line_start.lock().unwrap_or_else(|e| e.into_inner()) = true;
                    *self.thinking.lock().unwrap_or_else(|e| e.into_inner()) = true;
                }
            }
            Event::User { content } if self.user_messages => {
                self.line(&self.paint("1", &format!("› {content}")))
            }
            Event::ToolCall {
                call_id,
                name,
                arguments,
            } => {
                if !self.compact_call(call_id, name, arguments) {
                    self.line(
                        &self.paint("33", &format!("● {name} {}", call_summary(name, arguments))),
                    )
                }
            }
            Event::ToolResult {
                call_id,
                output,
                is_error,
                duration_ms,
                ..
            } if self.compact_result(call_id, output, *is_error, *duration_ms) => {}
            Event::ToolResult {
                output, is_error, ..
            } => {
                let code = if *is_error { "31" } else { "32" };
                let body = indent_lines(output, RESULT_LINES);
                if !body.is_empty() {
                    self.line(&self.paint(code, &body));
                }
            }
            Event::Verification {
                command,
                passed,
                exit_code,
                output,
                ..
            } => {
                if *passed {
                    self.line(&self.paint("32", &format!("✓ tests pass ({command})")));
                } else {
                    let code =
                        exit_code.map_or("no exit code".to_string(), |c| format!("exit code {c}"));
                    let tail: Vec<&str> =
                        output.trim_end().lines().rev().take(RESULT_LINES).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    self.line(&self.paint("31", &format!("✗ tests fail ({command}, {code})")));
                    self.line(&self.paint("31", &indent_lines(&tail.join("\n"), RESULT_LINES)));
                }
            }
            Event::ApprovalRequest { reason, .. } => {
                self.line(&self.paint("1;33", &format!("? approval needed: {reason}")));
            }
            Event::Approval { allowed, by, .. } => {
                let (code, verdict) = if *allowed {
                    ("32", "approved")
                } else {
                    ("31", "not approved")
                };
                self.line(&self.paint(code, &format!("  {verdict} ({by})")));
            }
            Event::Feedback { content, .. } => {
                let first = content.lines().next().unwrap_or("");
                self.line(&self.paint("35", &format!("↻ {first}")));
            }
            Event::Repair { problem, repaired } => {
                let verdict = if *repaired {
                    "repaired by a constrained request"
                } else {
                    "a constrained request could not repair it"
                };
                self.line(&self.paint(
                    "35",
                    &format!("↻ malformed tool call ({problem}): {verdict}"),
                ));
            }
            Event::Error { message, .. } => {
                self.line(&self.paint("31", &format!("error: {message}")));
            }
            Event::Compaction {
                stubbed,
                summarized,
                by_model,
                tokens_before,
                tokens_after,
                ..
            } => {
                let mut what = Vec::new();
                if !stubbed.is_empty() {
                    what.push(format!("{} tool results stubbed", stubbed.len()));
                }
                if *summarized > 0 {
                    let by = if *by_model { "the model" } else { "keel" };
                    what.push(format!("{summarized} messages summarised by {by}"));
                }
                self.line(&self.paint(
                    "2",
                    &format!(
                        "⇣ context compacted: {} ({tokens_before} → {tokens_after} tokens)",
                        what.join(", ")
                    ),
                ));
            }
            Event::Done {
                outcome,
                iterations,
            } => {
                let (mark, code) = match outcome {
                    Outcome::Verified | Outcome::Completed => ("✓", "32"),
                    Outcome::Cancelled => ("■", "33"),
                    Outcome::MaxIterations | Outcome::Stalled | Outcome::Failed => ("✗", "31"),
                };
                let plural = if *iterations == 1 { "" } else { "s" };
                self.line(&self.paint(
                    code,
                    &format!(
                        "{mark} {} · {iterations} iteration{plural}",
                        outcome.as_str()
                    ),
                ));
            }
            Event::Checkpoint { files, .. } => {
                self.line(&self.paint("36", &format!("≡ changed {}", files_line(files))));
            }
            Event::Undo { turn, files } => {
                self.line(&self.paint("36", &format!("↶ undid turn {turn}: {}", files_line(files))))
            }
            Event::Redo { turn, files } => {
                self.line(&self.paint("36", &format!("↷ redid turn {turn}: {}", files_line(files))))
            }
            Event::Plan { steps, .. } => {
                let mut text = String::from("Plan:");
                for (i, step) in steps.iter().enumerate() {
                    text.push_str(&format!("\n  {}. {step}", i + 1));
                }
                self.line(&self.paint("1", &text));
            }
            Event::Context { .. }
            | Event::User { .. }
            | Event::Thinking { .. }
            | Event::Assistant { .. }
            | Event::Response { .. }
            | Event::Usage { .. } => {}
        }
    }
}
