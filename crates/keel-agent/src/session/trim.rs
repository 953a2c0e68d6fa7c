//! Taking back the part of a change that broke tests. Asked to fix one line, a small
//! model rewrites the function — or the file — from memory: the fix is there, and so is
//! a line it changed on the way. find-the-code, Qwen2.5-Coder 1.5B: `overselling` got
//! its missing stock check and `return stock` for `return stock[sku]`; `free-shipping`
//! got its `>=` and lost the `round(…, 2)`. A test that passed before now fails, the
//! attempt counts as no better than the start, and the fix is thrown away with it.
//!
//! When the tests after a change fail tests that passed when the task started, and the
//! change to the one file it touched is a few runs of lines (hunks), keel runs the tests
//! on the file without each hunk in turn (then, for up to four, with each alone), keeps
//! the version that fails the fewest tests — only ever a subset of those that failed with
//! the whole change — and tells the model which lines it took back.

use std::collections::BTreeSet;

use tokio_util::sync::CancellationToken;

use super::verify::AfterChange;
use super::{Agent, Session};
use crate::changes::write_beneath;
use crate::hunks::Hunks;
use crate::test_report::Report;

/// Changes of more hunks than this are not taken apart.
const MAX_HUNKS: usize = 6;
/// Test runs one trim may make.
const MAX_RUNS: usize = 8;

/// A change with a part taken back.
pub(super) struct Trimmed {
    /// The tests on what was kept.
    pub(super) run: AfterChange,
    /// What keel took back, for the model.
    pub(super) note: String,
}

impl Session {
    /// `relative` was `original` at the start of the turn and the tests on its new text
    /// gave `run`; the file with the part of the change that broke tests taken back, or
    /// `None` (the file as the model left it) when no part of it is to blame.
    pub(super) async fn trim_regressions(
        &mut self,
        agent: &Agent,
        relative: &str,
        original: &str,
        run: &AfterChange,
        cancel: &CancellationToken,
    ) -> Option<Trimmed> {
        let at_start: BTreeSet<String> = match &self.baseline {
            Some(Report::Green) => BTreeSet::new(),
            Some(Report::Red(Some(failing))) => failing.clone(),
            _ => return None,
        };
        let now = run.failing.as_ref()?;
        let broken: Vec<&String> = now.iter().filter(|t| !at_start.contains(*t)).collect();
        if broken.is_empty() {
            return None;
        }
        let path = self.tool_ctx.workspace.resolve(relative).ok()?;
        let current = std::fs::read_to_string(&path).ok()?;
        let hunks = Hunks::new(original, &current);
        let n = hunks.len();
        if !(2..=MAX_HUNKS).contains(&n) {
            return None;
        }
        // Without one hunk each, then (for a few) each hunk alone.
        let mut candidates: Vec<Vec<bool>> =
            (0..n).map(|i| (0..n).map(|j| j != i).collect()).collect();
        if (3..=4).contains(&n) {
            candidates.extend((0..n).map(|i| (0..n).map(|j| j == i).collect()));
        }
        let mut best: Option<(Vec<bool>, AfterChange)> = None;
        for keep in candidates.into_iter().take(MAX_RUNS) {
            if cancel.is_cancelled() {
                break;
            }
            let text = hunks.apply(&keep);
            if keel_syntax::check(&path, &text).is_err() {
                continue;
            }
            if !write_beneath(&self.tool_ctx.workspace, relative, text.as_bytes()) {
                break;
            }
            let Some(trial) = self.test_after_change(agent, cancel).await else {
                break;
            };
            let Some(failing) = trial.failing.as_ref() else {
                continue;
            };
            let fewer = failing.len() < now.len() && failing.is_subset(now);
            let fewest = best
                .as_ref()
                .and_then(|(_, b)| b.failing.as_ref())
                .is_none_or(|b| failing.len() < b.len());
            if fewer && fewest {
                let green = failing.is_empty();
                best = Some((keep, trial));
                if green {
                    break;
                }
            }
        }
        let Some((keep, trial)) = best else {
            write_beneath(&self.tool_ctx.workspace, relative, current.as_bytes());
            return None;
        };
        if !write_beneath(
            &self.tool_ctx.workspace,
            relative,
            hunks.apply(&keep).as_bytes(),
        ) {
            write_beneath(&self.tool_ctx.workspace, relative, current.as_bytes());
            return None;
        }
        let taken: String = (0..n)
            .filter(|i| !keep[*i])
            .map(|i| hunks.show(i))
            .collect();
        let fixed: Vec<&str> = broken
            .iter()
            .filter(|t| !trial.failing.as_ref().is_some_and(|f| f.contains(**t)))
            .map(|t| t.as_str())
            .collect();
        let tests = |names: &[&str]| {
            let s = if names.len() == 1 { "" } else { "s" };
            format!("test{s} {}", names.join(", "))
        };
        let broken: Vec<&str> = broken.iter().map(|t| t.as_str()).collect();
        let note = format!(
            "Your change to {relative} made {} fail, which passed before it. Without this part of the change {} pass{}, so keel took it back and kept the rest of your change:\n{}",
            tests(&broken),
            tests(&fixed),
            if fixed.len() == 1 { "es" } else { "" },
            taken.trim_end()
        );
        Some(Trimmed { run: trial, note })
    }
}
