//! Getting a model out of a rut. Shown the same history, a model at greedy decoding (the
//! reproducible setting, and a common one for small local models) writes the same reply:
//! the same failing code after every red test run, word for word. keel notices two
//! things — the workspace back in a state whose tests already failed, and a reply equal
//! to an earlier one of the turn — says so to the model where it helps, and samples the
//! next reply at a raised temperature, higher each time it happens again.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

/// The temperatures of successive raises (the last one repeats).
const HEAT: &[f32] = &[0.6, 0.8, 1.0];

#[derive(Debug, Default)]
pub(crate) struct Rut {
    /// Workspace fingerprints whose tests failed in this turn.
    failed: HashSet<u64>,
    /// Hashes of this turn's replies.
    replies: HashSet<u64>,
    /// Raises so far; the next request is sampled hotter while `pending`.
    raises: usize,
    pending: bool,
}

impl Rut {
    /// The tests failed with the workspace in this state.
    pub(crate) fn tests_failed(&mut self, state: u64) {
        self.failed.insert(state);
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
        }
        repeated
    }

    /// The workspace after calls that may write; `true` (and the next reply is sampled
    /// hotter) when its tests already failed in exactly this state.
    pub(crate) fn state(&mut self, state: u64) -> bool {
        let failed = self.failed.contains(&state);
        if failed {
            self.pending = true;
        }
        failed
    }

    /// The temperature floor for the next request: `Some` once after each repeat.
    pub(crate) fn next_temperature(&mut self) -> Option<f32> {
        if !std::mem::take(&mut self.pending) {
            return None;
        }
        let heat = HEAT[self.raises.min(HEAT.len() - 1)];
        self.raises += 1;
        Some(heat)
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
        rut.tests_failed(1);
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
    fn empty_replies_are_not_repeats() {
        let mut rut = Rut::default();
        assert!(!rut.reply(""));
        assert!(!rut.reply("  "));
        assert_eq!(rut.next_temperature(), None);
    }

    #[test]
    fn back_in_a_state_that_failed_the_tests_is_a_repeat() {
        let mut rut = Rut::default();
        rut.tests_failed(7);
        assert!(rut.state(7));
        assert_eq!(rut.next_temperature(), Some(0.6));
    }
}
