//! Starting a task afresh. A small model shown its own failing attempt writes it again.
//! A new attempt — the failed attempt out of the conversation, the files put back —
//! breaks that. They go back to the best attempt of the turn when there is one (the
//! fewest failing tests, fewer than at the start: the eval's trajectories go 16 → 4
//! and 9 → 1 failing by fixes, progress a restart from scratch threw away), shown in the
//! note with how its tests failed — once: when the attempt from it gets no further
//! (the model mostly writes the version it is shown again), the next goes back to the
//! start of the task, and the new attempt is a new draw.

use keel_protocol::{Event, FeedbackReason};

use super::{EventSink, Session};
use crate::changes::{ChangeTracker, Kept};
use crate::rut::Rut;
use crate::test_report::Report;

/// The longest file the note shows.
const SHOWN_BYTES: usize = 8 * 1024;

/// Iterations a new attempt needs at least: a write, and a fix after its tests.
const ATTEMPT_ITERATIONS: u32 = 2;

impl Session {
    /// Starts the task again when the current attempt is over (see [`Rut::attempt_over`];
    /// or `stalled`: it went round in circles), `left` iterations leave room for another,
    /// and what the agent changed can be put back (only its own writes and edits can).
    /// `true` when it did.
    pub(super) fn start_afresh(
        &mut self,
        rut: &mut Rut,
        changes: Option<&ChangeTracker>,
        best: Option<&Kept>,
        left: u32,
        stalled: bool,
        sink: &dyn EventSink,
    ) -> bool {
        if !(stalled || rut.attempt_over()) || left < ATTEMPT_ITERATIONS {
            return false;
        }
        let Some(tracker) = changes else {
            return false;
        };
        // The best attempt, when it failed fewer tests than the start of the task did.
        let at_start = match &self.baseline {
            Some(Report::Red(Some(failing))) => Some(failing.len()),
            _ => None,
        };
        let best = best
            .zip(rut.best_to_resume())
            .filter(|(_, (failing, _))| at_start.is_none_or(|start| *failing < start))
            .map(|(kept, (failing, gist))| (kept, kept.changed(tracker), failing, gist.to_string()))
            .filter(|(_, files, _, _)| !files.is_empty());
        let Some(restored) = tracker.rewind(&self.tool_ctx.workspace, best.as_ref().map(|b| b.0))
        else {
            return false;
        };
        // Nothing put back and no best attempt (nothing written, or written back as it
        // was): no failed code in the history to copy, and no new start to make — unless
        // the attempt went round in circles, which the history holds.
        if best.is_none() && restored.is_empty() && !stalled {
            return false;
        }
        let attempt = rut.restarted();
        let content = match best {
            Some((_, files, failing, gist)) => {
                rut.resumed_best(failing);
                best_note(attempt, &files, failing, &gist)
            }
            None if stalled => stalled_note(attempt, &restored, rut.last_failure()),
            None => note(attempt, &restored, rut.last_failure()),
        };
        self.emit(
            sink,
            Event::Feedback {
                reason: FeedbackReason::FreshStart,
                content,
            },
        );
        true
    }
}

fn attempts(attempt: u32) -> String {
    match attempt {
        1 => "An earlier attempt at this task".to_string(),
        n => format!("{n} earlier attempts at this task"),
    }
}

/// The note when the files go back to the best attempt: the files as they are now,
/// and how their tests failed.
fn best_note(
    attempt: u32,
    files: &[(String, Option<String>)],
    failing: usize,
    gist: &str,
) -> String {
    let mut shown = String::new();
    for (path, text) in files {
        match text {
            Some(text) if text.len() <= SHOWN_BYTES => {
                shown.push_str(&format!("\n\n{path}:\n```\n{}\n```", text.trim_end()));
            }
            Some(_) => shown.push_str(&format!("\n\n{path}: too long to show here; read it.")),
            None => shown.push_str(&format!("\n\n{path}: removed.")),
        }
    }
    let tests = if failing == 1 { "test" } else { "tests" };
    format!(
        "Note from keel: {} did not pass the tests. keel has put the files back to the best \
         version so far, with {failing} failing {tests} (not what the project context above \
         shows):{shown}\n\nHow its tests failed:\n{}\n\nFix what still fails, changing this \
         version; keep what works.",
        attempts(attempt),
        gist.trim()
    )
}

/// What the model is told, with the task, when it starts again.
fn note(attempt: u32, restored: &[String], gist: &str) -> String {
    format!(
        "Note from keel: {} failed: the tests still failed after its changes. {} \
         Solve the task again from the beginning with a new solution; do not repeat the \
         earlier approach.{}",
        attempts(attempt),
        put_back(restored),
        how_failed(gist)
    )
}

/// The note when the attempt went round in circles (the same call again and again).
fn stalled_note(attempt: u32, restored: &[String], gist: &str) -> String {
    let files = if restored.is_empty() {
        "No file was changed.".to_string()
    } else {
        put_back(restored)
    };
    format!(
        "Note from keel: {} went round in circles, making the same call again and again, \
         and was stopped. {files} Solve the task again from the beginning with a new \
         solution; do not repeat the earlier approach.{}",
        attempts(attempt),
        how_failed(gist)
    )
}

/// "keel has put a.py back as it was when the task started."
fn put_back(restored: &[String]) -> String {
    format!(
        "keel has put {} back as {} when the task started.",
        restored.join(", "),
        if restored.len() == 1 {
            "it was"
        } else {
            "they were"
        }
    )
}

/// The last failing run's gist, as the end of a note (nothing when there is none).
fn how_failed(gist: &str) -> String {
    let gist = gist.trim();
    if gist.is_empty() {
        String::new()
    } else {
        format!("\n\nHow the tests failed last time:\n{gist}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_says_what_was_put_back_and_how_the_tests_failed() {
        let one = note(1, &["a.py".into()], "FAILED t.py::x\n1 failed");
        assert!(one.starts_with("Note from keel: An earlier attempt at this task failed"));
        assert!(one.contains("keel has put a.py back as it was when the task started."));
        assert!(one.ends_with("How the tests failed last time:\nFAILED t.py::x\n1 failed"));
        let two = note(2, &["a.py".into(), "b.py".into()], "");
        assert!(two.contains("2 earlier attempts"));
        assert!(two.contains("put a.py, b.py back as they were"));
        assert!(two.ends_with("do not repeat the earlier approach."));
    }

    #[test]
    fn the_best_note_shows_the_files_and_how_their_tests_failed() {
        let files = [
            (
                "a.py".to_string(),
                Some("def f():\n    return 1\n".to_string()),
            ),
            ("b.py".to_string(), None),
        ];
        let text = best_note(1, &files, 1, "T.test_f: AssertionError: 1 != 2\n1 failed");
        assert!(text.contains("with 1 failing test (not what the project context above shows):\n\na.py:\n```\ndef f():\n    return 1\n```\n\nb.py: removed."), "{text}");
        assert!(text.contains("How its tests failed:\nT.test_f: AssertionError: 1 != 2\n1 failed"));
    }
}
