//! Getting a model out of a rut. Shown the same history, a model at greedy decoding (the
//! reproducible setting, and a common one for small local models) writes the same reply:
//! the same failing code after every red test run, word for word. keel notices two
//! things — the workspace back in a state whose tests already failed, and a reply equal
//! to an earlier one of the turn — says so to the model where it helps, and samples the
//! next reply at a raised temperature, higher each time it happens again.
//!
//! Heat alone does not get a small model out: it copies its own failing code from the
//! history even at temperature 1.0 (Qwen2.5-Coder 1.5B, the eval). So an attempt that
//! has failed twice without failing fewer tests (or failed and then repeated itself) is
//! over: the session starts a
//! new one afresh — files and conversation back to the start of the task — and the
//! rest of the turn is sampled warm, so each attempt is a new draw, not a copy.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::test_output::Red;

/// The temperatures of successive raises (the last one repeats).
const HEAT: &[f32] = &[0.6, 0.8, 1.0];
/// The temperature floor of every reply after a fresh start.
const AFRESH_HEAT: f32 = 0.7;
/// Failed test runs that end an attempt.
const ATTEMPT_FAILURES: usize = 2;

#[derive(Debug, Default)]
pub(crate) struct Rut {
    /// Workspace fingerprints whose tests failed in this turn.
    failed: HashSet<u64>,
    /// Hashes of this turn's replies.
    replies: HashSet<u64>,
    /// Raises so far; the next request is sampled hotter while `pending`.
    raises: usize,
    pending: bool,
    /// Failing states reached in the current attempt that failed no fewer tests than
    /// the best before them.
    attempt_failures: usize,
    /// The fewest failing tests of the current attempt.
    attempt_best: Option<usize>,
    /// The current attempt repeated itself (a state or a reply).
    attempt_repeated: bool,
    /// Attempts started afresh in this turn.
    restarts: u32,
    /// The gist of the last failing test run.
    last_failure: String,
    /// The fewest failing tests of the turn, and the gist of that run.
    best: Option<(usize, String)>,
    /// A new best since the last [`Rut::take_new_best`].
    new_best: bool,
    /// The last test run of the turn failed.
    red: bool,
    /// The failing count of the best attempt the last fresh start went back to.
    shown_best: Option<usize>,
    /// States the model was told are unchanged since their tests failed.
    told_unchanged: HashSet<u64>,
}

impl Rut {
    /// The tests failed with the workspace in this state, as `red` says. Fewer failing
    /// tests than before in the attempt is progress, not a failure of the attempt.
    pub(crate) fn tests_failed(&mut self, state: u64, red: Red) {
        self.red = true;
        let improved =
            matches!((red.failing, self.attempt_best), (Some(n), Some(best)) if n < best);
        if red.failing.is_some() && (improved || self.attempt_best.is_none()) {
            self.attempt_best = red.failing;
        }
        if self.failed.insert(state) && !improved {
            self.attempt_failures += 1;
        }
        if let Some(n) = red.failing
            && self.best.as_ref().is_none_or(|(best, _)| n < *best)
        {
            self.best = Some((n, red.gist.clone()));
            self.new_best = true;
        }
        self.last_failure = red.gist;
    }

    /// Whether the last failing run failed fewer tests than any before it in the turn
    /// (the workspace as it is now is the best attempt so far); asked once.
    pub(crate) fn take_new_best(&mut self) -> bool {
        std::mem::take(&mut self.new_best)
    }

    /// The fewest failing tests of the turn, and how they failed.
    pub(crate) fn best(&self) -> Option<(usize, &str)> {
        self.best.as_ref().map(|(n, gist)| (*n, gist.as_str()))
    }

    /// The tests passed: whatever failed before, this attempt is going somewhere.
    pub(crate) fn tests_passed(&mut self) {
        self.red = false;
        self.attempt_failures = 0;
        self.attempt_best = None;
        self.attempt_repeated = false;
    }

    /// Whether the last test run of the turn failed and the tests already failed with
    /// the workspace in exactly this state; `true` once a state.
    pub(crate) fn unchanged_since_red(&mut self, state: u64) -> bool {
        self.red_here(state) && self.told_unchanged.insert(state)
    }

    /// Whether the last test run of the turn failed and the tests already failed with
    /// the workspace in exactly this state.
    pub(crate) fn red_here(&self, state: u64) -> bool {
        self.red && self.failed.contains(&state)
    }

    /// Whether the last test run of the turn failed.
    pub(crate) fn red(&self) -> bool {
        self.red
    }

    /// The gist of the last failing test run of the turn.
    pub(crate) fn last_failure(&self) -> &str {
        &self.last_failure
    }

    /// A reply of the model; `true` (and the next reply is sampled hotter) when the turn
    /// has had this reply before. Empty replies do not count.
    pub(crate) fn reply(&mut self, text: &str) -> bool {
        let text = text.trim();
        if text.is_empty() {
            return false;
        }
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        let repeated = !self.replies.insert(hasher.finish());
        if repeated {
            self.pending = true;
            self.attempt_repeated = true;
        }
        repeated
    }

    /// A reply went round in a loop and was stopped: the next one is sampled hotter.
    pub(crate) fn looped(&mut self) {
        self.pending = true;
    }

    /// The workspace after calls that may write; `true` (and the next reply is sampled
    /// hotter) when its tests already failed in exactly this state.
    pub(crate) fn state(&mut self, state: u64) -> bool {
        let failed = self.failed.contains(&state);
        if failed {
            self.pending = true;
            self.attempt_failures += 1;
            self.attempt_repeated = true;
        }
        failed
    }

    /// Whether the current attempt is over: its tests failed twice, or failed and it
    /// repeated itself.
    pub(crate) fn attempt_over(&self) -> bool {
        self.attempt_failures >= ATTEMPT_FAILURES
            || (self.attempt_repeated && self.attempt_failures > 0)
    }

    /// The best attempt to go back to at a fresh start: the turn's best, unless a fresh
    /// start already went back to it and nothing better came of it (the model wrote it
    /// again: the eval's acronym went back to the same 4-failing version four times).
    /// Then the new attempt starts from the task's start, a new draw.
    pub(crate) fn best_to_resume(&self) -> Option<(usize, &str)> {
        self.best()
            .filter(|(failing, _)| self.shown_best != Some(*failing))
    }

    /// A fresh start went back to the best attempt, failing `failing` tests.
    pub(crate) fn resumed_best(&mut self, failing: usize) {
        self.shown_best = Some(failing);
    }

    /// A new attempt starts afresh: its replies are new (the history no longer holds
    /// the old ones), and from now on every reply is sampled warm.
    pub(crate) fn restarted(&mut self) -> u32 {
        self.restarts += 1;
        self.attempt_failures = 0;
        self.attempt_best = None;
        self.attempt_repeated = false;
        self.replies.clear();
        self.restarts
    }

    /// The temperature floor for the next request: raised once after each repeat, and
    /// warm after a fresh start.
    pub(crate) fn next_temperature(&mut self) -> Option<f32> {
        let afresh = (self.restarts > 0).then_some(AFRESH_HEAT);
        if !std::mem::take(&mut self.pending) {
            return afresh;
        }
        let heat = HEAT[self.raises.min(HEAT.len() - 1)];
        self.raises += 1;
        Some(afresh.map_or(heat, |a| a.max(heat)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_reply_or_state_keeps_the_configured_decoding() {
        let mut rut = Rut::default();
        assert!(!rut.reply("<tool_call>{\"name\": \"read\"}</tool_call>"));
        assert!(!rut.state(1));
        rut.tests_failed(1, Red::default());
        assert!(!rut.state(2));
        assert_eq!(rut.next_temperature(), None);
    }

    #[test]
    fn a_repeated_reply_raises_the_next_request_once() {
        let mut rut = Rut::default();
        assert!(!rut.reply("same"));
        assert!(rut.reply(" same\n"));
        assert_eq!(rut.next_temperature(), Some(0.6));
        assert_eq!(rut.next_temperature(), None);
        assert!(rut.reply("same"));
        assert_eq!(rut.next_temperature(), Some(0.8));
        assert!(rut.reply("same"));
        assert_eq!(rut.next_temperature(), Some(1.0));
        assert!(rut.reply("same"));
        assert_eq!(rut.next_temperature(), Some(1.0));
    }

    #[test]
    fn a_best_attempt_is_gone_back_to_once_until_a_better_one_comes() {
        let mut rut = Rut::default();
        let red = |failing| Red {
            failing: Some(failing),
            gist: format!("{failing} failed"),
        };
        rut.tests_failed(1, red(4));
        assert_eq!(rut.best_to_resume(), Some((4, "4 failed")));
        rut.resumed_best(4);
        // The attempt from it wrote it again: the next fresh start is from scratch.
        rut.tests_failed(1, red(4));
        assert_eq!(rut.best_to_resume(), None);
        // A better attempt is worth going back to.
        rut.tests_failed(2, red(2));
        assert_eq!(rut.best_to_resume(), Some((2, "2 failed")));
    }

    #[test]
    fn empty_replies_are_not_repeats() {
        let mut rut = Rut::default();
        assert!(!rut.reply(""));
        assert!(!rut.reply("  "));
        assert_eq!(rut.next_temperature(), None);
    }

    #[test]
    fn an_attempt_ends_after_two_failures_or_a_failure_and_a_repeat() {
        let mut rut = Rut::default();
        rut.tests_failed(1, Red::default());
        assert!(!rut.attempt_over());
        // The same failing state reported again is no new failure.
        rut.tests_failed(1, Red::default());
        assert!(!rut.attempt_over());
        rut.tests_failed(2, Red::default());
        assert!(rut.attempt_over());
        rut.tests_passed();
        assert!(!rut.attempt_over(), "green tests: the attempt goes on");
        rut.tests_failed(4, Red::default());
        rut.tests_failed(5, Red::default());
        assert_eq!(rut.restarted(), 1);
        assert!(!rut.attempt_over());
        // A reply of the old attempt is no repeat in the new one.
        assert!(!rut.reply("same"));
        assert!(rut.reply("same"));
        assert!(!rut.attempt_over(), "a repeat without a failure goes on");
        rut.tests_failed(3, Red::default());
        assert!(rut.attempt_over());
        rut.restarted();
        // Back in a state that failed in an earlier attempt: over at once.
        assert!(rut.state(2));
        assert!(rut.attempt_over());
    }

    #[test]
    fn failing_fewer_tests_is_progress() {
        let red = |n| Red {
            gist: String::new(),
            failing: Some(n),
        };
        let mut rut = Rut::default();
        rut.tests_failed(1, red(9));
        rut.tests_failed(2, red(5));
        rut.tests_failed(3, red(2));
        assert!(!rut.attempt_over());
        rut.tests_failed(4, red(2));
        assert!(
            rut.attempt_over(),
            "no fewer than the best: the second failure"
        );
    }

    #[test]
    fn the_best_attempt_of_the_turn_is_known() {
        let red = |n| Red {
            gist: format!("{n} failed"),
            failing: Some(n),
        };
        let mut rut = Rut::default();
        rut.tests_failed(1, red(9));
        assert!(rut.take_new_best() && !rut.take_new_best());
        rut.tests_failed(2, red(4));
        rut.restarted();
        rut.tests_failed(3, red(6));
        assert!(rut.take_new_best());
        assert!(!rut.take_new_best());
        assert_eq!(rut.best(), Some((4, "4 failed")));
    }

    #[test]
    fn after_a_fresh_start_every_reply_is_warm() {
        let mut rut = Rut::default();
        rut.tests_failed(1, Red::default());
        rut.tests_failed(2, Red::default());
        rut.restarted();
        assert_eq!(rut.next_temperature(), Some(AFRESH_HEAT));
        assert_eq!(rut.next_temperature(), Some(AFRESH_HEAT));
        rut.reply("a");
        rut.reply("a");
        assert_eq!(rut.next_temperature(), Some(AFRESH_HEAT));
        rut.reply("a");
        assert_eq!(rut.next_temperature(), Some(0.8));
        assert_eq!(rut.next_temperature(), Some(AFRESH_HEAT));
    }

    #[test]
    fn back_in_a_state_that_failed_the_tests_is_a_repeat() {
        let mut rut = Rut::default();
        rut.tests_failed(7, Red::default());
        assert!(rut.state(7));
        assert_eq!(rut.next_temperature(), Some(0.6));
    }
}
