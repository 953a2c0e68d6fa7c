//! Replies that go round in a loop. At greedy decoding a small model now and then
//! falls into writing the same few words again and again (`| tr -d ' ' | tr -d ' ' …`
//! inside a command, one sentence over and over) until the completion cap: on two CPU
//! cores 2,000 tokens of that cost one to three minutes, and the reply is useless.
//! keel watches the text as it streams and stops it once its end is one piece repeated
//! many times over.

/// The shortest looping tail that counts (bytes), whatever the piece's length.
const MIN_SPAN: usize = 600;
/// A longer piece counts when it is repeated this many times in a row.
const MIN_REPEATS: usize = 4;
/// The longest piece looked for (bytes).
const MAX_PERIOD: usize = 400;
/// The text is checked each time it has grown by this many bytes.
const CHECK_EVERY: usize = 32;

/// Watches a streamed reply for a loop.
#[derive(Debug, Default)]
pub(crate) struct LoopGuard {
    checked_at: usize,
}

/// A reply stopped in a loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Looped {
    /// Where the loop starts (a byte offset of the text, on a char boundary).
    pub start: usize,
    /// The piece repeated.
    pub piece: String,
}

impl LoopGuard {
    /// Called with the whole text so far after each piece arrives; `Some` once its end
    /// loops.
    pub(crate) fn check(&mut self, text: &str) -> Option<Looped> {
        if text.len() < self.checked_at + CHECK_EVERY {
            return None;
        }
        self.checked_at = text.len();
        looping_tail(text)
    }
}

/// The loop `text` ends in, if any: the shortest piece whose repetition makes up its
/// last max(`MIN_SPAN`, `MIN_REPEATS` × piece) bytes, and where that run began.
pub(crate) fn looping_tail(text: &str) -> Option<Looped> {
    let bytes = text.as_bytes();
    let len = bytes.len();
    for period in 1..=MAX_PERIOD {
        let span = MIN_SPAN.max(MIN_REPEATS * period);
        if span > len {
            break;
        }
        let tail = &bytes[len - span..];
        if tail[period..] != tail[..span - period] {
            continue;
        }
        // The run goes back further than the span checked: find where it began.
        let mut start = len - span;
        while start > 0 && bytes[start - 1] == bytes[start - 1 + period] {
            start -= 1;
        }
        while !text.is_char_boundary(start) {
            start += 1;
        }
        let mut end = start + period;
        while !text.is_char_boundary(end) {
            end += 1;
        }
        return Some(Looped {
            start,
            piece: text[start..end].to_string(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `looped` is a run of its piece from its start to the end of `text`, begun no
    /// later than `head` ends, with a piece as long as `piece`.
    fn is_run_of(text: &str, head: &str, piece: &str, looped: &Looped) {
        assert!(looped.start <= head.len(), "{looped:?}");
        assert_eq!(looped.piece.len(), piece.len(), "{looped:?}");
        let run = &text[looped.start..];
        let whole = looped.piece.repeat(run.len() / looped.piece.len() + 1);
        assert!(whole.starts_with(run), "{looped:?}");
    }

    #[test]
    fn a_piece_repeated_to_the_end_is_a_loop() {
        let head = "<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": \"echo abc";
        let piece = "| tr -d ' ' | tr -d '!' ";
        let text = format!("{head}{}", piece.repeat(30));
        let looped = looping_tail(&text).expect("a loop");
        assert_eq!(looped.start, head.len());
        assert_eq!(looped.piece, piece);
        // One sentence over and over, multi-byte characters included.
        let (head, piece) = ("Done. ", "Die Tests laufen – alles grün. ");
        let text = format!("{head}{}", piece.repeat(30));
        is_run_of(&text, head, piece, &looping_tail(&text).expect("a loop"));
        // A long piece four times over.
        let piece: String = (0..150)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        assert!(looping_tail(&format!("x{}", piece.repeat(4))).is_some());
        assert!(looping_tail(&format!("x{}", piece.repeat(3))).is_none());
    }

    #[test]
    fn ordinary_code_and_prose_are_not_loops() {
        let code: String = (0..200)
            .map(|i| format!("    assert square({i}) == {}\n", i * i))
            .collect();
        assert_eq!(looping_tail(&code), None);
        let prose = "The function must return the number of grains on a square: \
                     square 1 has one grain, and each square doubles the one before. "
            .to_string()
            + "It raises ValueError outside 1..=64, with the message the tests expect.";
        assert_eq!(looping_tail(&prose), None);
        // A short run of the same thing (a separator line) is not enough.
        assert_eq!(
            looping_tail(&format!("# Title\n{}\n", "=".repeat(120))),
            None
        );
    }

    #[test]
    fn the_guard_checks_as_the_text_grows() {
        let mut guard = LoopGuard::default();
        let mut text = String::from("Here is the plan. ");
        let mut fired = None;
        for _ in 0..200 {
            text.push_str("again ");
            if let Some(looped) = guard.check(&text) {
                fired = Some((text.len(), looped));
                break;
            }
        }
        let (at, looped) = fired.expect("the guard fires");
        let head = "Here is the plan. ";
        assert!(
            at < head.len() + MIN_SPAN + CHECK_EVERY + 6,
            "fired late: {at}"
        );
        is_run_of(&text, head, "again ", &looped);
    }
}
