//! Undoing the slips that leave a small model's Python unparsable. A `write` whose text
//! does not parse is refused (the file is kept), and a small model then writes the same
//! text again, slip and all, because it copies its own call from the history: the 1.5B
//! sent `return f'Clock({self.hour}, {self.minute})` — the closing quote missing — in 8
//! refused writes of clock.py and the same slip in 6 of binary_search_tree.py, until
//! each task stalled (the eval, 14 of its 22 refused writes). Each slip here has one
//! likely repair, tried only on text that does not parse and kept only when the whole
//! text parses after it:
//!
//! - markup around the code (a Markdown fence, `<code>…</code><br>` on every line);
//! - a bracket of the call's JSON left at the end of the content;
//! - a closing bracket that is not the one its opening bracket needs
//!   (`sum(a != b for a, b in zip(x, y)}`: the `}` of the call's JSON for the `)`);
//! - an apostrophe that ended a single-quoted string early (`'can't'` → `"can't"`);
//! - a one-line string left open at the end of its line: closed there, or before the
//!   closing brackets that end the line;
//! - a statement that ends with brackets still open (`sum([x for x in y]` followed by
//!   the next statement): closed at the end of its last line.

use crate::python_mend::{parse, parses};

/// Text that does not parse, with the slips that made it so undone (see the module
/// comment) when that makes it parse; a note per repair goes to `notes`.
pub(crate) fn unbroken(text: &str, notes: &mut Vec<String>) -> Option<String> {
    let mut text = text.to_string();
    let mut fixes = Vec::new();
    if let Some(unfenced) = without_fence(&text) {
        text = unfenced;
        fixes.push("keel took the code out of the Markdown fence (```) around it".to_string());
    }
    if let Some(unwrapped) = without_markup(&text) {
        text = unwrapped;
        fixes.push("keel took the code out of the `<code>`/`<br>` markup around it".to_string());
    }
    if !parses(&text)
        && let Some((stripped, closer)) = without_trailing_closer(&text)
    {
        text = stripped;
        fixes.push(format!(
            "keel removed a `{closer}` at the end of the content that closed nothing"
        ));
    }
    if !parses(&text)
        && let Some((matched, lines)) = matched_closers(&text)
    {
        text = matched;
        fixes.extend(lines.into_iter().map(|(line, wrong, right)| {
            format!(
                "keel changed the `{wrong}` on line {line} to `{right}`: it closed a `{}`",
                opener(right)
            )
        }));
    }
    if !parses(&text)
        && let Some((requoted, lines)) = requote(&text)
    {
        text = requoted;
        fixes.extend(lines.into_iter().map(|line| format!(
            "keel re-quoted the string on line {line} with double quotes: it holds an apostrophe, which ended the single-quoted string early"
        )));
    }
    if !parses(&text)
        && let Some((closed, lines)) = close_strings(&text)
    {
        text = closed;
        fixes.extend(
            lines
                .into_iter()
                .map(|line| format!("keel closed the string left open at the end of line {line}")),
        );
    }
    if !parses(&text)
        && let Some((closed, lines)) = close_statements(&text)
    {
        text = closed;
        fixes.extend(lines.into_iter().map(|(line, closers)| {
            format!("keel added `{closers}` at the end of line {line}: the statement ended with brackets still open")
        }));
    }
    if fixes.is_empty() || !parses(&text) {
        return None;
    }
    notes.extend(fixes);
    Some(text)
}

/// The lines between a Markdown fence's opening line (```` ```python ````) and its
/// closing one, when the text is one fenced block: the 1.5B put the fences of a chat
/// answer into 8 of the 404 `write` contents of the eval runs on record.
fn without_fence(text: &str) -> Option<String> {
    let trimmed = text.trim();
    let (first, rest) = trimmed.split_once('\n')?;
    let (body, last) = rest.rsplit_once('\n')?;
    let fence = first.len() - first.trim_start_matches('`').len();
    let closing = last.trim();
    if fence < 3 || closing.len() < fence || !closing.chars().all(|c| c == '`') {
        return None;
    }
    let mut body = body.to_string();
    body.push('\n');
    Some(body)
}

/// `<code>def f():</code><br><code>    return 1</code>` as plain lines (the 0.5B and
/// 1.5B wrote luhn.py like that, refused each time).
fn without_markup(text: &str) -> Option<String> {
    if !text.trim_start().starts_with("<code>") || !text.contains("</code>") {
        return None;
    }
    let plain = text
        .replace("</code><br><code>", "\n")
        .replace("</code><br>", "\n")
        .replace("<br>", "\n")
        .replace("<code>", "")
        .replace("</code>", "")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let mut plain = plain.trim().to_string();
    plain.push('\n');
    Some(plain)
}

/// The text without one or two unmatched closing brackets at its very end:
/// `return len(set(p)) == len(p)}` — the model closed its call's JSON inside the string.
fn without_trailing_closer(text: &str) -> Option<(String, char)> {
    let mut trimmed = text.trim_end().to_string();
    for _ in 0..2 {
        let closer = trimmed
            .chars()
            .last()
            .filter(|c| matches!(c, '}' | ']' | ')'))?;
        trimmed.pop();
        let mut candidate = trimmed.clone();
        candidate.push('\n');
        if parses(&candidate) {
            return Some((candidate, closer));
        }
    }
    None
}

// ---------------------------------------------------------------- quotes

/// The text with broken single-quoted strings re-quoted on the lines where parsing stops,
/// and those lines (1-based); `None` when no line was re-quoted.
fn requote(text: &str) -> Option<(String, Vec<usize>)> {
    let mut text = text.to_string();
    let mut fixed = Vec::new();
    for _ in 0..8 {
        let tree = parse(&text)?;
        if !tree.root_node().has_error() {
            return (!fixed.is_empty()).then_some((text, fixed));
        }
        let Some(row) = crate::first_error(tree.root_node()).map(|n| n.start_position().row) else {
            break;
        };
        let start = line_start(&text, row);
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let Some(line) = requote_line(&text[start..end]) else {
            break;
        };
        text.replace_range(start..end, &line);
        fixed.push(row + 1);
    }
    (!fixed.is_empty()).then_some((text, fixed))
}

fn line_start(text: &str, row: usize) -> usize {
    if row == 0 {
        return 0;
    }
    text.match_indices('\n')
        .nth(row - 1)
        .map_or(text.len(), |(i, _)| i + 1)
}

/// `'can't stop'` → `"can't stop"` in one line; `None` when the line has no such string.
fn requote_line(line: &str) -> Option<String> {
    if line.contains("'''") || line.contains("\"\"\"") {
        return None;
    }
    let bytes = line.as_bytes();
    let quotes: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i] == b'\'' && (i == 0 || bytes[i - 1] != b'\\'))
        .collect();
    let word = |i: usize| bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric());
    for window in quotes.windows(3) {
        let (open, inner, close) = (window[0], window[1], window[2]);
        let apostrophe = inner > 0 && word(inner - 1) && word(inner + 1);
        // The opening quote starts a string: after no word character, or after a
        // string prefix (f'…', r'…').
        let starts = open == 0
            || !word(open - 1)
            || (matches!(
                bytes[open - 1],
                b'f' | b'r' | b'b' | b'u' | b'F' | b'R' | b'B'
            ) && (open < 2 || !word(open - 2)));
        if apostrophe && starts && !line[open..=close].contains('"') {
            let mut out = String::with_capacity(line.len());
            out.push_str(&line[..open]);
            out.push('"');
            out.push_str(&line[open + 1..close]);
            out.push('"');
            out.push_str(&line[close + 1..]);
            return Some(out);
        }
    }
    None
}

// ---------------------------------------------------------------- open strings and brackets

/// What a line leaves open, scanned as Python tokens.
#[derive(Debug, Default, Clone)]
struct LineScan {
    /// The quote of a one-line string still open at the end of the line.
    open_quote: Option<u8>,
    /// The line has a `#` comment.
    comment: bool,
    /// The brackets open after the line (since the statement began), innermost last.
    brackets: Vec<u8>,
    /// The line ends inside a triple-quoted string.
    in_triple: bool,
    /// The indentation of the statement the line belongs to.
    statement_indent: usize,
    /// Closing brackets on the line that do not match the bracket they close: their
    /// byte offset in the line and the closer that bracket needs.
    mismatched: Vec<(usize, char)>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '\t']).len()
}

/// Each line of `text` (split at `\n`) scanned; a string left open at a line's end is
/// taken as closed there, so the lines after it scan as they would once it is.
fn scan(text: &str) -> Vec<LineScan> {
    let mut scans = Vec::new();
    let mut triple: Option<u8> = None;
    let mut brackets: Vec<u8> = Vec::new();
    let mut statement_indent = 0;
    // A string a backslash continued from the line before.
    let mut continued_quote: Option<u8> = None;
    for line in text.split('\n') {
        let bytes = line.as_bytes();
        if triple.is_none() && brackets.is_empty() && !line.trim().is_empty() {
            statement_indent = indent(line);
        }
        let mut open_quote: Option<u8> = continued_quote.take();
        // Whether the string open now may be a slip: it starts where a string can
        // (not right after another string or a word, `t` of `'a't'` included).
        let mut may_close = false;
        let mut comment = false;
        let mut mismatched = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if let Some(q) = triple {
                if c == b'\\' {
                    i += 2;
                    continue;
                }
                if bytes[i..].starts_with(&[q, q, q]) {
                    triple = None;
                    i += 3;
                    continue;
                }
            } else if let Some(q) = open_quote {
                if c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    open_quote = None;
                }
            } else {
                match c {
                    b'#' => {
                        comment = true;
                        break;
                    }
                    b'\'' | b'"' if bytes[i..].starts_with(&[c, c, c]) => {
                        triple = Some(c);
                        i += 3;
                        continue;
                    }
                    b'\'' | b'"' => {
                        open_quote = Some(c);
                        let before = line[..i].trim_end_matches(|c: char| "rRbBfFuU".contains(c));
                        let prefix = i - before.len();
                        may_close = prefix <= 2
                            && !before.ends_with(|c: char| {
                                c.is_alphanumeric() || c == '_' || c == '\'' || c == '"'
                            });
                    }
                    b'(' | b'[' | b'{' => brackets.push(c),
                    b')' | b']' | b'}' => {
                        if let Some(open) = brackets.pop()
                            && closer(open) != char::from(c)
                        {
                            mismatched.push((i, closer(open)));
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        // A backslash at the end continues the string on the next line.
        if line.trim_end_matches('\r').ends_with('\\') {
            continued_quote = open_quote.take();
        }
        scans.push(LineScan {
            open_quote: open_quote.filter(|_| may_close),
            comment,
            brackets: brackets.clone(),
            in_triple: triple.is_some(),
            statement_indent,
            mismatched,
        });
    }
    scans
}

/// `line` with `insert` put where its code ends (before trailing white space).
fn with_at_end(line: &str, insert: &str) -> String {
    let code = line.trim_end();
    format!("{code}{insert}{}", &line[code.len()..])
}

/// The text with each one-line string that is left open at the end of its line closed,
/// and those lines (1-based): the quote goes at the end of the line
/// (`f'Clock({self.hour})` → `f'Clock({self.hour})'`) or, where that does not parse,
/// before the closing brackets that end it (`print('done)` → `print('done')`).
fn close_strings(text: &str) -> Option<(String, Vec<usize>)> {
    let scans = scan(text);
    let open: Vec<(usize, u8)> = scans
        .iter()
        .enumerate()
        .filter_map(|(row, s)| s.open_quote.map(|q| (row, q)))
        .collect();
    if open.is_empty() {
        return None;
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let rows: Vec<usize> = open.iter().map(|(row, _)| row + 1).collect();
    for before_closers in [false, true] {
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        for &(row, quote) in &open {
            let quote = char::from(quote).to_string();
            let line = lines[row];
            out[row] = if before_closers {
                let code = line.trim_end();
                let kept = code.trim_end_matches([')', ']', '}']);
                if kept.len() == code.len() {
                    with_at_end(line, &quote)
                } else {
                    format!("{kept}{quote}{}", &line[kept.len()..])
                }
            } else {
                with_at_end(line, &quote)
            };
        }
        let candidate = out.join("\n");
        if parses(&candidate) {
            return Some((candidate, rows));
        }
    }
    None
}

/// A closing bracket put right: its line (1-based), the closer written, the one needed.
type Rematched = (usize, char, char);

/// The text with each closing bracket that does not match the bracket it closes
/// replaced by the one that does, and those replacements (1-based line, the closer
/// written, the closer put in its place); `None` when there are none.
fn matched_closers(text: &str) -> Option<(String, Vec<Rematched>)> {
    let scans = scan(text);
    let mut fixed = Vec::new();
    let mut out: Vec<String> = Vec::new();
    for (row, (line, s)) in text.split('\n').zip(&scans).enumerate() {
        let mut line = line.to_string();
        for &(at, right) in &s.mismatched {
            let wrong = char::from(line.as_bytes()[at]);
            line.replace_range(at..at + 1, &right.to_string());
            fixed.push((row + 1, wrong, right));
        }
        out.push(line);
    }
    (!fixed.is_empty()).then(|| (out.join("\n"), fixed))
}

/// The opening bracket of a closing one.
fn opener(close: char) -> char {
    match close {
        ')' => '(',
        ']' => '[',
        _ => '{',
    }
}

/// The closing bracket of an opening one.
fn closer(open: u8) -> char {
    match open {
        b'(' => ')',
        b'[' => ']',
        _ => '}',
    }
}

/// The text with each statement that ends with brackets still open closed at the end
/// of its last line, and those lines (1-based) with what was added. A statement ends
/// where the next line of code is indented no deeper than its first line and does not
/// start with a closing bracket. Left alone: a line with a comment, a line that ends
/// with an opening bracket and the text's last statement (those look cut off).
fn close_statements(text: &str) -> Option<(String, Vec<(usize, String)>)> {
    let mut text = text.to_string();
    let mut fixed = Vec::new();
    for _ in 0..8 {
        let scans = scan(&text);
        let lines: Vec<&str> = text.split('\n').collect();
        let code_line = |row: usize| {
            let trimmed = lines[row].trim();
            !trimmed.is_empty() && !trimmed.starts_with('#')
        };
        let found = (0..lines.len()).find_map(|row| {
            let s = &scans[row];
            // A line that ends with its opening bracket was cut off, not slipped.
            if s.brackets.is_empty()
                || s.in_triple
                || s.comment
                || !code_line(row)
                || lines[row].trim_end().ends_with(['(', '[', '{'])
            {
                return None;
            }
            // The text's last statement may have been cut off (a reply out of tokens):
            // only a statement that another follows is closed.
            let ends = match (row + 1..lines.len()).find(|&next| code_line(next)) {
                None => false,
                Some(next) => {
                    indent(lines[next]) <= s.statement_indent
                        && !lines[next].trim_start().starts_with([')', ']', '}'])
                }
            };
            ends.then(|| {
                (
                    row,
                    s.brackets
                        .iter()
                        .rev()
                        .map(|&b| closer(b))
                        .collect::<String>(),
                )
            })
        });
        let Some((row, closers)) = found else {
            break;
        };
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        out[row] = with_at_end(lines[row], &closers);
        text = out.join("\n");
        fixed.push((row + 1, closers));
    }
    (!fixed.is_empty()).then_some((text, fixed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python_mend::{Mended, mend};

    fn mended(before: Option<&str>, after: &str) -> Mended {
        mend(before, after).expect("a mend")
    }

    #[test]
    fn an_apostrophe_in_a_single_quoted_string_is_requoted() {
        let new = "def find_fewest_coins(coins, target):\n    if target < 0:\n        raise ValueError('can't make target with given coins')\n    return []\n";
        let got = mended(None, new);
        assert_eq!(
            got.text,
            "def find_fewest_coins(coins, target):\n    if target < 0:\n        raise ValueError(\"can't make target with given coins\")\n    return []\n"
        );
        assert_eq!(got.notes.len(), 1);
        assert!(got.notes[0].contains("line 3"), "{:?}", got.notes);
        // Two broken strings on two lines, one an f-string.
        let two = "def f(n):\n    if n < 0:\n        raise ValueError(f'{n} isn't allowed')\n    raise ValueError('won't do')\n";
        let got = mended(None, two);
        assert!(got.text.contains("f\"{n} isn't allowed\""), "{}", got.text);
        assert!(got.text.contains("\"won't do\""), "{}", got.text);
    }

    #[test]
    fn a_closing_bracket_of_the_wrong_kind_is_changed_to_the_one_it_needs() {
        // hamming, 1.5B: the call's `}` for the call's `)`, refused and sent again 4 times.
        let new = "def distance(strand_a, strand_b):\n    if len(strand_a) != len(strand_b):\n        raise ValueError('Strands must be of equal length.')\n    return sum(a != b for a, b in zip(strand_a, strand_b)}\n";
        let got = mended(None, new);
        assert_eq!(
            got.text,
            new.replace("strand_b)}", "strand_b))"),
            "{:?}",
            got.notes
        );
        assert_eq!(
            got.notes,
            ["keel changed the `}` on line 4 to `)`: it closed a `(`"]
        );
        // Brackets in strings and comments are not code; a closer of the right kind is
        // left alone, so text whose only slip is elsewhere gets no such note.
        let fine = "x = {'a': [1, 2]}  # (}\ny = ')]'\n";
        assert!(mend(None, fine).is_none());
        assert!(matched_closers(fine).is_none());
    }

    #[test]
    fn a_bracket_left_from_the_call_and_markup_around_the_code_are_taken_away() {
        // isogram, 1.5B: the call's closing brace inside the content.
        let got = mended(
            None,
            "def is_isogram(phrase):\n    return len(set(phrase)) == len(phrase)}",
        );
        assert_eq!(
            got.text,
            "def is_isogram(phrase):\n    return len(set(phrase)) == len(phrase)\n"
        );
        assert_eq!(
            got.notes,
            ["keel removed a `}` at the end of the content that closed nothing"]
        );
        // luhn: every line in <code>…</code>, joined by <br>.
        let got = mended(
            None,
            "<code>class Luhn:</code><br><code>    def valid(self):</code><br><code>        return 1 &lt; 2</code>",
        );
        assert_eq!(
            got.text,
            "class Luhn:\n    def valid(self):\n        return 1 < 2\n"
        );
        assert!(got.notes[0].contains("markup"), "{:?}", got.notes);
        // A closer that closes something is code, and the error is elsewhere.
        assert_eq!(mend(None, "def f(:\n    return (1)"), None);
    }

    #[test]
    fn a_markdown_fence_around_the_code_is_taken_away() {
        // change, 1.5B: the chat answer's fences inside the write.
        let got = mended(
            None,
            "```python\ndef find_fewest_coins(coins, target):\n    return []\n```",
        );
        assert_eq!(
            got.text,
            "def find_fewest_coins(coins, target):\n    return []\n"
        );
        assert_eq!(
            got.notes,
            ["keel took the code out of the Markdown fence (```) around it"]
        );
        // A fence with nothing that parses inside, or one not closed, stays refused.
        assert_eq!(mend(None, "```python\ndef f(:\n    return 1\n```"), None);
        assert_eq!(mend(None, "```python\ndef f():\n    return 1\n"), None);
    }

    #[test]
    fn a_string_left_open_at_the_end_of_its_line_is_closed() {
        // clock.py, 1.5B: refused 8 times with the same missing quote.
        let clock = "class Clock:\n    def __init__(self, hour, minute):\n        self.hour = hour\n        self.minute = minute\n\n    def __repr__(self):\n        return f'Clock({self.hour}, {self.minute})\n\n    def __str__(self):\n        return f'{self.hour:02}:{self.minute:02}'\n";
        let got = mended(None, clock);
        assert!(
            got.text
                .contains("        return f'Clock({self.hour}, {self.minute})'\n\n    def __str__"),
            "{}",
            got.text
        );
        assert_eq!(
            got.notes,
            ["keel closed the string left open at the end of line 7"]
        );
        // Before the brackets that end the line, where the end does not parse.
        let got = mended(None, "def f():\n    print('done)\n    return \"ok\"\n");
        assert_eq!(got.text, "def f():\n    print('done')\n    return \"ok\"\n");
        // Quotes inside strings, comments, triple-quoted text and continued lines are
        // not open strings.
        let fine = "\"\"\"It's\n'here\"\"\"\nx = \"it's\"  # don't\ny = 'a\\\nb'\n";
        assert!(parses(fine));
        assert!(scan(fine).iter().all(|s| s.open_quote.is_none()));
    }

    #[test]
    fn a_statement_that_ends_with_brackets_open_is_closed() {
        // difference_of_squares.py, 1.5B.
        let text = "def sum_of_squares(number):\n    return sum([i ** 2 for i in range(1, number + 1)]\n\n\ndef difference_of_squares(number):\n    return 0\n";
        let got = mended(None, text);
        assert!(
            got.text.contains(
                "    return sum([i ** 2 for i in range(1, number + 1)])\n\n\ndef difference"
            ),
            "{}",
            got.text
        );
        assert_eq!(
            got.notes,
            ["keel added `)` at the end of line 2: the statement ended with brackets still open"]
        );
        // Across continuation lines.
        let got = mended(None, "x = foo(1,\n        [2, 3\ny = 2\n");
        assert_eq!(got.text, "x = foo(1,\n        [2, 3])\ny = 2\n");
        // A text that ends with brackets open, or a line that ends with its opening
        // bracket, was cut off: left alone.
        assert_eq!(mend(None, "x = foo(1,\n        [2, 3\n"), None);
        assert_eq!(mend(None, "def f():\n    g(\nx = 1\n"), None);
        // A bracket the next line closes is a continuation, not a slip.
        assert!(scan("x = (\n    1\n)\n")[0].brackets == [b'(']);
        assert_eq!(mend(None, "x = (\n    1\n)\ndef (:\n"), None);
        // Where the body follows, the place to close is a guess: left alone.
        assert_eq!(mend(None, "if (a and b:\n    pass\n"), None);
    }
}
