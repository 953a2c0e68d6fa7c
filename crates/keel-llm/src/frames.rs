//! Framing of streamed HTTP bodies: complete lines out of arbitrary byte chunks, and
//! Server-Sent Events out of lines.
//!
//! Hand-written because exactness is the point: a chunk may end inside a UTF-8
//! character, inside a `data:` line or between the `\r` and `\n` of a CRLF, and
//! nothing may be lost or corrupted. Lines are split on bytes (a newline is never
//! part of a multi-byte UTF-8 sequence), so text is decoded only once a line is whole.

/// Splits a byte stream into lines ending in LF, CRLF or CR.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buffer: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` opening the next one belongs to it.
    after_cr: bool,
}

impl LineSplitter {
    /// Feeds a chunk; returns the lines it completed (without their terminators).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut bytes = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.buffer.extend_from_slice(&bytes[..end]);
            lines.push(String::from_utf8_lossy(&self.buffer).into_owned());
            self.buffer.clear();
            if bytes[end] == b'\r' {
                match bytes.get(end + 1) {
                    Some(b'\n') => bytes = &bytes[end + 2..],
                    Some(_) => bytes = &bytes[end + 1..],
                    None => {
                        self.after_cr = true;
                        bytes = &[];
                    }
                }
            } else {
                bytes = &bytes[end + 1..];
            }
        }
        self.buffer.extend_from_slice(bytes);
        lines
    }

    /// The unterminated last line, if the stream ended without a newline.
    pub fn finish(&mut self) -> Option<String> {
        if self.buffer.is_empty() {
            return None;
        }
        let line = String::from_utf8_lossy(&self.buffer).into_owned();
        self.buffer.clear();
        Some(line)
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when absent.
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Assembles Server-Sent Events from lines (comments such as keep-alives are skipped).
#[derive(Debug, Default)]
pub struct SseParser {
    lines: LineSplitter,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// Feeds a chunk of the body; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for line in self.lines.push(chunk) {
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        events
    }

    /// Call at the end of the body: an event not followed by a blank line still counts.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if let Some(line) = self.lines.finish()
            && let Some(event) = self.line(&line)
        {
            return Some(event);
        }
        self.dispatch()
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "event" => self.event = Some(value.to_string()),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        let data = self.data.take()?;
        Some(SseEvent {
            event: event.unwrap_or_else(|| "message".into()),
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_of(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut events: Vec<SseEvent> = chunks.iter().flat_map(|c| parser.push(c)).collect();
        events.extend(parser.finish());
        events
    }

    const BODY: &str = ": keep-alive\n\ndata: {\"a\": \"héllo 🎉\"}\r\n\r\nevent: error\ndata: one\ndata: two\n\ndata: [DONE]\n\n";

    fn expected() -> Vec<SseEvent> {
        let ev = |event: &str, data: &str| SseEvent {
            event: event.into(),
            data: data.into(),
        };
        vec![
            ev("message", "{\"a\": \"héllo 🎉\"}"),
            ev("error", "one\ntwo"),
            ev("message", "[DONE]"),
        ]
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let bytes = BODY.as_bytes();
        for cut in 0..=bytes.len() {
            assert_eq!(
                events_of(&[&bytes[..cut], &bytes[cut..]]),
                expected(),
                "split at {cut}"
            );
        }
    }

    #[test]
    fn byte_by_byte_gives_the_same_events() {
        let chunks: Vec<&[u8]> = BODY.as_bytes().chunks(1).collect();
        assert_eq!(events_of(&chunks), expected());
    }

    #[test]
    fn a_final_event_without_blank_line_is_kept() {
        assert_eq!(
            events_of(&[b"data: x"]),
            vec![SseEvent {
                event: "message".into(),
                data: "x".into()
            }]
        );
    }

    #[test]
    fn lines_split_on_cr_lf_and_crlf_across_chunks() {
        let mut lines = LineSplitter::default();
        let mut out = lines.push(b"a\r");
        out.extend(lines.push(b"\nb\rc\n"));
        out.extend(lines.push(b"d"));
        out.extend(lines.finish());
        assert_eq!(out, vec!["a", "b", "c", "d"]);
    }
}
