//! Starting a task afresh. A small model that has failed the tests rarely fixes its own
//! code: shown its attempt, it writes it again. A new attempt from the start — the
//! files the agent changed put back, the failed attempt out of the conversation, the
//! model told only how the tests failed — is a new draw, and with the tests to judge
//! each draw, several draws solve what one fix after another does not.

use keel_protocol::{Event, FeedbackReason};

use super::{EventSink, Session};
use crate::changes::ChangeTracker;
use crate::rut::Rut;

/// Iterations a new attempt needs at least: a write, and a fix after its tests.
const ATTEMPT_ITERATIONS: u32 = 2;

impl Session {
    /// Starts the task again when the current attempt is over (see [`Rut::attempt_over`]),
    /// `left` iterations leave room for another, and what the agent changed can be put
    /// back (only its own writes and edits can). `true` when it did.
    pub(super) fn start_afresh(
        &mut self,
        rut: &mut Rut,
        changes: Option<&ChangeTracker>,
        left: u32,
        sink: &dyn EventSink,
    ) -> bool {
        if !rut.attempt_over() || left < ATTEMPT_ITERATIONS {
            return false;
        }
        // Nothing put back (nothing written, or written back as it was): the history
        // holds no failed code to copy, and there is no new start to make.
        let Some(restored) = changes
            .and_then(|c| c.rewind(&self.tool_ctx.workspace))
            .filter(|r| !r.is_empty())
        else {
            return false;
        };
        let attempt = rut.restarted();
        let content = note(attempt, &restored, rut.last_failure());
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

/// What the model is told, with the task, when it starts again.
fn note(attempt: u32, restored: &[String], gist: &str) -> String {
    let attempts = match attempt {
        1 => "An earlier attempt at this task".to_string(),
        n => format!("{n} earlier attempts at this task"),
    };
    let files = format!(
        "keel has put {} back as {} when the task started",
        restored.join(", "),
        if restored.len() == 1 {
            "it was"
        } else {
            "they were"
        }
    );
    let gist = gist.trim();
    let how = if gist.is_empty() {
        String::new()
    } else {
        format!("\n\nHow the tests failed last time:\n{gist}")
    };
    format!(
        "Note from keel: {attempts} failed: the tests still failed after its changes. {files}. \
         Solve the task again from the beginning with a new solution; do not repeat the \
         earlier approach.{how}"
    )
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
}
