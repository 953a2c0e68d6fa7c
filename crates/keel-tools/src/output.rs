//! Head-and-tail capture of command output: the first and last bytes are kept, the
//! middle is counted and replaced by a line saying what was cut. Memory stays bounded
//! however much a command prints.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct CappedOutput {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_limit: usize,
    tail_limit: usize,
    total_bytes: u64,
    total_lines: u64,
}

impl CappedOutput {
    /// Keeps at most `limit` bytes: half from the start, half from the end.
    pub fn new(limit: usize) -> Self {
        let head_limit = limit / 2;
        Self {
            head: Vec::with_capacity(head_limit.min(64 * 1024)),
            tail: VecDeque::new(),
            head_limit,
            tail_limit: limit - head_limit,
            total_bytes: 0,
            total_lines: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total_bytes += bytes.len() as u64;
        self.total_lines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        let room = self.head_limit - self.head.len();
        if room > 0 {
            let take = room.min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        if bytes.len() >= self.tail_limit {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.tail_limit..]);
        } else {
            let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_limit);
            self.tail.drain(..overflow);
            self.tail.extend(bytes);
        }
    }

    /// Whether anything was cut.
    pub fn truncated(&self) -> bool {
        self.total_bytes > (self.head.len() + self.tail.len()) as u64
    }

    /// The text for the model.
    pub fn render(&self) -> String {
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        if !self.truncated() {
            let mut all = self.head.clone();
            all.extend_from_slice(&tail);
            return String::from_utf8_lossy(&all).into_owned();
        }
        // Cut at line boundaries when one is near, so no half lines are shown.
        let head_end = match self.head.iter().rposition(|&b| b == b'\n') {
            Some(i) if i + 1 >= self.head.len() / 2 => i + 1,
            _ => self.head.len(),
        };
        let tail_start = match tail.iter().position(|&b| b == b'\n') {
            Some(i) if i < tail.len() / 2 => i + 1,
            _ => 0,
        };
        let head = &self.head[..head_end];
        let tail = &tail[tail_start..];
        let shown_lines = head.iter().chain(tail).filter(|&&b| b == b'\n').count() as u64;
        let cut_bytes = self.total_bytes - (head.len() + tail.len()) as u64;
        let cut_lines = self.total_lines.saturating_sub(shown_lines);
        let mut text = String::from_utf8_lossy(head).into_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "[… {cut_lines} lines ({cut_bytes} bytes) cut from the middle of {} bytes of output …]\n",
            self.total_bytes
        ));
        text.push_str(&String::from_utf8_lossy(tail));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_is_kept_whole() {
        let mut out = CappedOutput::new(100);
        out.push(b"hello\n");
        out.push(b"world\n");
        assert!(!out.truncated());
        assert_eq!(out.render(), "hello\nworld\n");
    }

    #[test]
    fn large_output_keeps_head_and_tail() {
        let mut out = CappedOutput::new(1000);
        for i in 0..100_000 {
            out.push(format!("line {i}\n").as_bytes());
        }
        let text = out.render();
        assert!(text.len() < 1200, "{}", text.len());
        assert!(text.starts_with("line 0\nline 1\n"));
        assert!(text.ends_with("line 99999\n"));
        assert!(text.contains("lines ("), "{text}");
        assert!(text.contains("cut from the middle"));
        // Every line is either shown whole or counted as cut.
        let shown = text.lines().filter(|l| l.starts_with("line ")).count() as u64;
        let cut: u64 = text
            .split("[… ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert_eq!(shown + cut, 100_000);
    }

    #[test]
    fn one_huge_chunk() {
        let mut out = CappedOutput::new(10);
        out.push(&[b'x'; 1_000_000]);
        let text = out.render();
        assert!(text.contains("of 1000000 bytes of output"), "{text}");
        assert!(text.starts_with("xxxxx\n[…"));
        assert!(text.ends_with("xxxxx"));
    }
}
