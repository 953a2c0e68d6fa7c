//! Token accounting for the context window. The embedded engine counts a prompt
//! exactly with the model's tokenizer; for servers keel estimates from the bytes, with
//! the bytes-per-token ratio calibrated on the prompt tokens the server reports.

/// The share of the window at which the conversation is compacted (configurable).
pub const COMPACT_AT: f32 = 0.75;
/// The share of the window a compaction aims for.
pub(crate) const COMPACT_TO: f32 = 0.5;

/// Bytes per token assumed before the backend has reported a count: high, so an
/// uncalibrated estimate errs towards compacting early, not overflowing.
const BYTES_PER_TOKEN: f64 = 3.0;

/// The bytes-per-token ratio of the backend, learned from its reports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Calibration {
    bytes_per_token: f64,
}

impl Default for Calibration {
    fn default() -> Self {
        Self {
            bytes_per_token: BYTES_PER_TOKEN,
        }
    }
}

impl Calibration {
    /// A request of `bytes` took `tokens` prompt tokens. The ratio kept is a little
    /// below the one seen, so estimates stay on the high side.
    pub(crate) fn observe(&mut self, bytes: usize, tokens: u64) {
        if tokens == 0 || bytes == 0 {
            return;
        }
        let seen = bytes as f64 / tokens as f64;
        self.bytes_per_token = (seen * 0.95).clamp(1.5, 6.0);
    }

    pub(crate) fn tokens(&self, bytes: usize) -> u32 {
        (bytes as f64 / self.bytes_per_token).ceil() as u32
    }

    /// About how many bytes `tokens` hold (on the low side).
    pub(crate) fn bytes(&self, tokens: u32) -> usize {
        (tokens as f64 * self.bytes_per_token) as usize
    }
}

/// The room a request must leave in the window for the reply.
pub(crate) fn reserve(window: u32, max_tokens: Option<u32>) -> u32 {
    max_tokens.unwrap_or(window / 8).min(window / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_start_high_and_follow_the_backend() {
        let mut calibration = Calibration::default();
        assert_eq!(calibration.tokens(3000), 1000);
        calibration.observe(4000, 1000);
        assert_eq!(calibration.tokens(3800), 1000);
        // Nonsense reports are bounded.
        calibration.observe(100_000, 1);
        assert_eq!(calibration.tokens(6000), 1000);
        calibration.observe(1000, 0);
        assert_eq!(calibration.tokens(6000), 1000);
    }

    #[test]
    fn the_reply_keeps_its_room() {
        assert_eq!(reserve(4096, None), 512);
        assert_eq!(reserve(4096, Some(1024)), 1024);
        assert_eq!(reserve(4096, Some(100_000)), 2048);
    }
}
