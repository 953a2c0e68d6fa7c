//! Streaming display: prose shown as it arrives, call blocks held back.

use super::{CLOSE, OPEN};

/// Separates streamed prose from `<tool_call>` blocks as text arrives, so front ends
/// show the model's words without the call markup.
#[derive(Debug, Default)]
pub struct ProseFilter {
    pending: String,
    inside_call: bool,
}

impl ProseFilter {
    /// Feeds a chunk; returns the prose that can be shown now.
    pub fn push(&mut self, chunk: &str) -> String {
        self.pending.push_str(chunk);
        let mut shown = String::new();
        loop {
            if self.inside_call {
                match self.pending.find(CLOSE) {
                    Some(end) => {
                        self.pending.drain(..end + CLOSE.len());
                        self.inside_call = false;
                    }
                    None => {
                        let keep = floor_boundary(
                            &self.pending,
                            self.pending.len().saturating_sub(CLOSE.len()),
                        );
                        self.pending.drain(..keep);
                        return shown;
                    }
                }
            } else {
                match self.pending.find(OPEN) {
                    Some(start) => {
                        shown.push_str(&self.pending[..start]);
                        self.pending.drain(..start + OPEN.len());
                        self.inside_call = true;
                    }
                    None => {
                        let hold = partial_prefix_len(&self.pending, OPEN);
                        let emit = self.pending.len() - hold;
                        shown.push_str(&self.pending[..emit]);
                        self.pending.drain(..emit);
                        return shown;
                    }
                }
            }
        }
    }

    /// Ends the stream; returns any prose still held back.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        if self.inside_call {
            String::new()
        } else {
            rest
        }
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `tag`.
fn partial_prefix_len(text: &str, tag: &str) -> usize {
    (1..tag.len())
        .rev()
        .find(|&n| {
            text.len() >= n && text.is_char_boundary(text.len() - n) && text.ends_with(&tag[..n])
        })
        .unwrap_or(0)
}

fn floor_boundary(text: &str, mut index: usize) -> usize {
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_filter_hides_calls_across_chunk_boundaries() {
        let text = "Let me read é.\n<tool_call>\n<name>read</name>\n<input>{}</input>\n</tool_call>\nThanks ü <to";
        for size in 1..text.len() {
            let mut filter = ProseFilter::default();
            let mut shown = String::new();
            let bytes = text.as_bytes();
            let mut start = 0;
            while start < bytes.len() {
                let mut end = (start + size).min(bytes.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                shown.push_str(&filter.push(&text[start..end]));
                start = end;
            }
            shown.push_str(&filter.finish());
            assert_eq!(shown, "Let me read é.\n\nThanks ü <to", "chunk size {size}");
        }
    }
}
