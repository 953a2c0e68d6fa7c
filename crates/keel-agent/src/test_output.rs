//! Test-runner output condensed for the model. A red pytest run of an exercise lists
//! every failing test with its traceback: 3,000+ tokens that a small model prefills at
//! ~40 tokens/s and then gets lost in. The first failures in full, the one-line summary
//! of each other one and the totals say the same thing in a fraction of the tokens.

/// Failure sections kept whole.
const SECTIONS_KEPT: usize = 2;
/// Lines kept of each kept section: its head (the test) and its tail (where the error
/// is — a collection error's traceback starts in pytest's own code).
const SECTION_HEAD: usize = 10;
const SECTION_TAIL: usize = 20;
const SECTION_LINES: usize = SECTION_HEAD + SECTION_TAIL;
/// Lines kept of the short summary.
const SUMMARY_LINES: usize = 15;

/// The output condensed when it is a pytest report with more failures than
/// [`SECTIONS_KEPT`] (or overlong ones); any other output unchanged but for the runner's
/// timings (see [`without_timings`]).
pub fn condense(output: &str) -> String {
    let output = &without_timings(output);
    let lines: Vec<&str> = output.lines().collect();
    let Some(start) = lines
        .iter()
        .position(|l| is_banner(l, "FAILURES"))
        .or_else(|| lines.iter().position(|l| is_banner(l, "ERRORS")))
    else {
        return output.to_string();
    };
    // Where the detailed sections end: the next `=== … ===` banner.
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with("===") && l.ends_with("==="))
        .map_or(lines.len(), |i| start + 1 + i);
    let sections = split_sections(&lines[start + 1..end]);
    let overlong = sections.iter().any(|s| s.len() > SECTION_LINES);
    if sections.len() <= SECTIONS_KEPT && !overlong {
        return output.to_string();
    }
    let mut kept: Vec<String> = lines[..=start].iter().map(|l| l.to_string()).collect();
    for section in sections.iter().take(SECTIONS_KEPT) {
        if section.len() > SECTION_LINES {
            kept.extend(section[..SECTION_HEAD].iter().map(|l| l.to_string()));
            kept.push(format!(
                "[… {} lines of this failure left out]",
                section.len() - SECTION_LINES
            ));
            kept.extend(
                section[section.len() - SECTION_TAIL..]
                    .iter()
                    .map(|l| l.to_string()),
            );
        } else {
            kept.extend(section.iter().map(|l| l.to_string()));
        }
    }
    if sections.len() > SECTIONS_KEPT {
        kept.push(format!(
            "[… {} more failing tests; each is listed below]",
            sections.len() - SECTIONS_KEPT
        ));
    }
    // The rest: the short summary (capped) and the totals.
    let rest = &lines[end..];
    let mut in_summary = false;
    let mut summary_lines = 0;
    let mut dropped = 0;
    for line in rest {
        if line.starts_with("===") {
            in_summary = line.contains("short test summary");
            if dropped > 0 {
                kept.push(format!("[… {dropped} more]"));
                dropped = 0;
            }
            kept.push(line.to_string());
            continue;
        }
        if in_summary && (line.starts_with("FAILED ") || line.starts_with("ERROR ")) {
            summary_lines += 1;
            if summary_lines > SUMMARY_LINES {
                dropped += 1;
                continue;
            }
        }
        if dropped > 0 {
            kept.push(format!("[… {dropped} more]"));
            dropped = 0;
        }
        kept.push(line.to_string());
    }
    if dropped > 0 {
        kept.push(format!("[… {dropped} more]"));
    }
    let mut condensed = kept.join("\n");
    if output.ends_with('\n') {
        condensed.push('\n');
    }
    condensed
}

/// What a red run says, for deciding whether an attempt is going anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Red {
    /// See [`summary`].
    pub gist: String,
    /// Failing tests, when the output lists them.
    pub failing: Option<usize>,
}

/// The gist of a red run and how many tests fail.
pub fn red(output: &str) -> Red {
    let failing = failure_gists(output).len();
    Red {
        gist: summary(output),
        failing: (failing > 0).then_some(failing),
    }
}

/// Longest line kept by [`summary`].
const SUMMARY_LINE_CHARS: usize = 300;

/// The gist of a red run in a few lines, without tracebacks (which quote the code that
/// failed): of a pytest report, each failing test with the first line of its error
/// (`E   AssertionError: 'GNIMPM' != 'GIMP'`: the values, which the one-line summary cuts
/// to the terminal's width) and the totals; of other output, its last lines.
pub fn summary(output: &str) -> String {
    let output = &without_timings(output);
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    let failures = failure_gists(output);
    let mut kept: Vec<String> = if failures.is_empty() {
        lines[lines.len().saturating_sub(SUMMARY_LINES)..]
            .iter()
            .map(|l| clip(l))
            .collect()
    } else {
        let mut kept: Vec<String> = failures
            .iter()
            .take(SUMMARY_LINES)
            .map(|l| clip(l))
            .collect();
        if failures.len() > SUMMARY_LINES {
            kept.push(format!("[… {} more]", failures.len() - SUMMARY_LINES));
        }
        kept.extend(lines.last().map(|l| clip(l)));
        kept
    };
    kept.dedup();
    kept.join("\n")
}

/// The output without the test runner's timing on its totals lines (pytest's
/// `11 failed in 0.10s`, cargo's `finished in 0.02s`). The time says nothing about the
/// code and differs from run to run, so with it a model at greedy decoding answers the
/// same failure differently each time, and two runs of an eval cannot be compared.
pub fn without_timings(output: &str) -> String {
    let mut out = String::with_capacity(output.len());
    for line in output.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        out.push_str(&line_without_timing(body));
        out.push_str(end);
    }
    out
}

fn line_without_timing(line: &str) -> std::borrow::Cow<'_, str> {
    let totals = ["passed", "failed", "error", "skipped", "no tests ran"]
        .iter()
        .any(|w| line.contains(w));
    if !totals {
        return line.into();
    }
    for (at, _) in line.match_indices(" in ") {
        let rest = &line[at + 4..];
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 || !rest[digits..].starts_with('s') {
            continue;
        }
        let mut tail = &rest[digits + 1..];
        // pytest adds the clock time to long runs: `in 75.20s (0:01:15)`.
        if let Some(clock) = tail.strip_prefix(" (")
            && let Some(close) = clock.find(')')
            && clock[..close]
                .chars()
                .all(|c| c.is_ascii_digit() || c == ':')
        {
            tail = &clock[close + 1..];
        }
        if !tail.chars().all(|c| c == '=' || c == ' ') {
            continue;
        }
        // cargo: `…; finished in 0.02s` loses its `; finished` too.
        let head = line[..at].strip_suffix("; finished").unwrap_or(&line[..at]);
        return format!("{head}{tail}").into();
    }
    line.into()
}

/// One line a failing test: its name and the first `E` line of its section, else its
/// line in the short summary.
fn failure_gists(output: &str) -> Vec<String> {
    let lines: Vec<&str> = output.lines().collect();
    let start = lines
        .iter()
        .position(|l| is_banner(l, "FAILURES"))
        .or_else(|| lines.iter().position(|l| is_banner(l, "ERRORS")));
    let mut gists = Vec::new();
    if let Some(start) = start {
        let end = lines[start + 1..]
            .iter()
            .position(|l| l.starts_with("===") && l.ends_with("==="))
            .map_or(lines.len(), |i| start + 1 + i);
        for section in split_sections(&lines[start + 1..end]) {
            let name = section[0].trim_matches(|c| c == '_' || c == ' ');
            let error = section
                .iter()
                .find(|l| l.starts_with("E "))
                .map(|l| l[1..].trim());
            gists.push(match error {
                Some(error) => format!("{name}: {error}"),
                None => name.to_string(),
            });
        }
    }
    if gists.is_empty() {
        gists = lines
            .iter()
            .filter(|l| l.starts_with("FAILED ") || l.starts_with("ERROR "))
            .map(|l| l.to_string())
            .collect();
    }
    gists
}

fn clip(line: &str) -> String {
    match line.char_indices().nth(SUMMARY_LINE_CHARS) {
        Some((cut, _)) => format!("{} […]", &line[..cut]),
        None => line.to_string(),
    }
}

/// `=== FAILURES ===` and the like.
fn is_banner(line: &str, title: &str) -> bool {
    line.starts_with('=') && line.trim_matches('=').trim() == title
}

/// The failure sections, each starting at its `____ name ____` line.
fn split_sections<'a>(lines: &[&'a str]) -> Vec<Vec<&'a str>> {
    let mut sections: Vec<Vec<&str>> = Vec::new();
    for &line in lines {
        let header = line.starts_with("___") && line.ends_with("___") && line.len() > 6;
        match sections.last_mut() {
            Some(section) if !header => section.push(line),
            _ => sections.push(vec![line]),
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(failures: usize) -> String {
        let mut out = "F".repeat(failures) + "   [100%]\n";
        out.push_str(
            "=================================== FAILURES ===================================\n",
        );
        for i in 0..failures {
            out.push_str(&format!("_____________ T.test_{i} _____________\n\nself = <T>\n\n    def test_{i}(self):\n>       self.assertEqual(f({i}), {i})\nE       AssertionError: 0 != {i}\n\nx_test.py:{i}: AssertionError\n"));
        }
        out.push_str(
            "=========================== short test summary info ============================\n",
        );
        for i in 0..failures {
            out.push_str(&format!(
                "FAILED x_test.py::T::test_{i} - AssertionError: 0 != {i}\n"
            ));
        }
        out.push_str(&format!("{failures} failed in 0.05s\n"));
        out
    }

    #[test]
    fn test_runner_timings_are_taken_out() {
        let output = "..F\n=== 1 failed, 11 passed in 0.12s ===\n";
        assert_eq!(
            without_timings(output),
            "..F\n=== 1 failed, 11 passed ===\n"
        );
        assert_eq!(without_timings("11 failed in 0.10s"), "11 failed");
        assert_eq!(
            without_timings("==== 3 passed in 75.20s (0:01:15) ===="),
            "==== 3 passed ===="
        );
        assert_eq!(
            without_timings(
                "test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.02s\n"
            ),
            "test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n"
        );
        // Anything else is left alone, a duration in the code's own output included.
        for line in [
            "assert elapsed() == 'done in 2s'",
            "E   AssertionError: 'in 3.5s' != 'in 4s'",
            "loaded in 0.5s",
        ] {
            assert_eq!(without_timings(line), line);
        }
    }

    #[test]
    fn a_short_report_is_kept_whole() {
        let out = report(2);
        assert_eq!(condense(&out), out.replace("2 failed in 0.05s", "2 failed"));
        assert_eq!(condense("all good\n"), "all good\n");
    }

    #[test]
    fn a_long_report_keeps_two_failures_the_summary_and_the_totals() {
        let out = report(20);
        let short = condense(&out);
        assert!(short.len() * 3 < out.len(), "{short}");
        assert!(short.contains("def test_0(self)") && short.contains("def test_1(self)"));
        assert!(!short.contains("def test_2(self)"));
        assert!(short.contains("[… 18 more failing tests; each is listed below]"));
        assert!(short.contains("FAILED x_test.py::T::test_14 "));
        assert!(!short.contains("FAILED x_test.py::T::test_15 "));
        assert!(short.contains("[… 5 more]"));
        assert!(short.ends_with("20 failed\n"));
    }

    #[test]
    fn a_summary_has_one_line_a_failure_and_the_totals() {
        let gist = summary(&report(3));
        assert_eq!(
            gist,
            "T.test_0: AssertionError: 0 != 0\nT.test_1: AssertionError: 0 != 1\nT.test_2: AssertionError: 0 != 2\n3 failed"
        );
        // Only the short summary: its lines.
        let short = "FAILED x_test.py::T::test_0 - AssertionError: 'GN...\n1 failed in 0.05s\n";
        assert_eq!(
            summary(short),
            "FAILED x_test.py::T::test_0 - AssertionError: 'GN...\n1 failed"
        );
        let gist = summary(&report(20));
        assert!(gist.contains("[… 5 more]\n20 failed"), "{gist}");
        assert!(!gist.contains("def test_"));
        let other: String = (0..30).map(|i| format!("line {i}\n")).collect();
        assert!(summary(&other).starts_with("line 15\n") && summary(&other).ends_with("line 29"));
        let long = format!("FAILED t.py::x - {}", "y".repeat(1000));
        assert!(summary(&long).len() < 400);
    }

    #[test]
    fn an_overlong_collection_error_is_cut() {
        let mut out = String::from("=== ERRORS ===\n___ ERROR collecting x_test.py ___\n");
        for i in 0..100 {
            out.push_str(&format!("line {i}\n"));
        }
        out.push_str("=== 1 error in 0.1s ===\n");
        let short = condense(&out);
        assert!(short.contains("line 8\n") && !short.contains("line 9\n"));
        assert!(short.contains("[… 71 lines of this failure left out]"));
        assert!(short.contains("line 80\n") && short.contains("line 99\n"));
        assert!(!short.contains("line 79\n"));
        assert!(short.ends_with("=== 1 error ===\n"));
    }
}
