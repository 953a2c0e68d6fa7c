//! Planning mode: a turn that may only read, and ends with a numbered plan (a `plan`
//! event); once approved, the plan becomes the task of the next turn.

use keel_protocol::Event;
use tokio_util::sync::CancellationToken;

use super::{Agent, EventSink, Session, TurnSummary};

/// What a planning turn's message adds to the task.
const PLAN_ASK: &str = "Plan this task; do not change any file yet. Read what you need with the read-only tools (read, grep, glob, ls), then answer without a tool call with a short numbered plan: one line per step (1. …, 2. …), saying which files change and how, and how to check the result.";

/// Asked once when a planning turn's answer has no numbered step.
pub(super) const PLAN_FORMAT: &str =
    "Write the plan as a numbered list now, one step per line: 1. …, 2. …";

/// Why a call is refused while planning.
pub(super) fn refused(tool: &str) -> String {
    format!(
        "plan mode: `{tool}` changes things and is not available while planning. Read what you need, then answer with the numbered plan."
    )
}

/// The numbered steps of a plan (`1. …` or `1) …`, Markdown emphasis kept).
pub fn plan_steps(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start().trim_start_matches("**");
            let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 || digits > 3 {
                return None;
            }
            let rest = line[digits..].strip_prefix(['.', ')'])?;
            let step = rest.trim().trim_start_matches("**").trim();
            (!step.is_empty()).then(|| step.to_string())
        })
        .collect()
}

/// The task of the turn that carries out an approved plan.
pub fn plan_task(task: &str, steps: &[String]) -> String {
    let mut out = format!("Carry out this approved plan for the task: {task}\n\n");
    for (i, step) in steps.iter().enumerate() {
        out.push_str(&format!("{}. {step}\n", i + 1));
    }
    out.push_str("\nWork through the steps in order, then check the result.");
    out
}

impl Session {
    /// Runs a planning turn for `task`: read-only tools, no verification, a `plan`
    /// event with the steps at the end (when the answer has any).
    pub async fn run_plan(
        &mut self,
        agent: &Agent,
        task: &str,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
    ) -> TurnSummary {
        self.planning = Some(task.to_string());
        let summary = self
            .run_turn(agent, &format!("{task}\n\n{PLAN_ASK}"), sink, cancel)
            .await;
        self.planning = None;
        summary
    }

    /// The plan waiting for approval: the last `plan` event, when no message came
    /// after it. Returns the task and the steps.
    pub fn pending_plan(&self) -> Option<(String, Vec<String>)> {
        for event in self.events.iter().rev() {
            match event {
                Event::Plan { task, steps } => return Some((task.clone(), steps.clone())),
                Event::User { .. } => {}
                _ => continue,
            }
            return None;
        }
        None
    }

    /// Approves the pending plan: runs it as the next turn.
    pub async fn approve_plan(
        &mut self,
        agent: &Agent,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
    ) -> Option<TurnSummary> {
        let (task, steps) = self.pending_plan()?;
        Some(
            self.run_turn(agent, &plan_task(&task, &steps), sink, cancel)
                .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_the_numbered_lines() {
        let text = "Here is the plan:\n\n1. Read `calc.py`.\n2) Fix `add` to return a + b.\n   - keep the signature\n**3.** Run the tests.\n2026 was a year.\n";
        assert_eq!(
            plan_steps(text),
            [
                "Read `calc.py`.",
                "Fix `add` to return a + b.",
                "Run the tests."
            ]
        );
        assert!(plan_steps("No plan here.").is_empty());
        let task = plan_task("fix add", &["Fix it.".into(), "Test it.".into()]);
        assert!(task.starts_with(
            "Carry out this approved plan for the task: fix add\n\n1. Fix it.\n2. Test it.\n"
        ));
    }
}
