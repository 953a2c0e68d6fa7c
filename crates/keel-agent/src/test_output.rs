//! Test-runner output condensed for the model. A red pytest run of an exercise lists
//! every failing test with its traceback: 3,000+ tokens that a small model prefills at
//! ~40 tokens/s and then gets lost in. The first failures (tidied), one line with the
//! values for each other one and the totals say the same thing in a fraction of the
//! tokens.

/// Failure sections kept whole.
const SECTIONS_KEPT: usize = 2;
/// Lines kept of each kept section: its head (the test) and its tail (where the error
/// is — a collection error's traceback starts in pytest's own code).
const SECTION_HEAD: usize = 10;
const SECTION_TAIL: usize = 20;
const SECTION_LINES: usize = SECTION_HEAD + SECTION_TAIL;
/// Lines kept of the short summary.
const SUMMARY_LINES: usize = 15;
/// `E` lines kept of a failure in a row: the first says what failed, the rest of a
/// list or string diff (`First differing element 6:`, `?  ----`) mostly repeats it.
const ERROR_LINES: usize = 6;

/// The output condensed when it is a pytest report with failures: the first
/// [`SECTIONS_KEPT`] tidied and cut to their head and tail, the others one line each;
/// any other output unchanged but for the runner's timings (see [`without_timings`]).
pub fn condense(output: &str) -> String {
    let output = &without_timings(output);
    let lines: Vec<&str> = output.lines().collect();
    let Some((start, end)) = failure_block(&lines) else {
        return output.to_string();
    };
    let sections: Vec<Vec<String>> = split_sections(&lines[start + 1..end])
        .iter()
        .map(|section| tidy(section))
        .collect();
    let mut kept: Vec<String> = lines[..=start].iter().map(|l| tidy_line(l)).collect();
    for section in sections.iter().take(SECTIONS_KEPT) {
        keep_section(&mut kept, section);
    }
    // The other failures, one line each with its values (`T.test_basic: AssertionError:
    // None != 'PNG'`), in place of pytest's short summary, which cuts them at the
    // terminal's width and repeats what the sections above show.
    let names: Vec<&str> = sections.iter().map(|s| section_name(&s[0])).collect();
    let mut others: Vec<String> = sections
        .iter()
        .skip(SECTIONS_KEPT)
        .map(|section| clip(&gist(section)))
        .collect();
    let rest = &lines[end..];
    let mut in_summary = false;
    let mut after: Vec<String> = Vec::new();
    for line in rest {
        if line.starts_with("===") {
            in_summary = line.contains("short test summary");
            if !in_summary {
                after.push(tidy_line(line));
            }
            continue;
        }
        if in_summary && (line.starts_with("FAILED ") || line.starts_with("ERROR ")) {
            // Kept only when no section above is that test (a collection error).
            let id = line
                .split_once(' ')
                .map_or("", |(_, id)| id.split(" - ").next().unwrap_or(id))
                .replace("::", ".");
            if !names
                .iter()
                .any(|name| !name.is_empty() && id.ends_with(name))
            {
                others.push(clip(line));
            }
            continue;
        }
        after.push(line.to_string());
    }
    if !others.is_empty() {
        kept.push(if sections.len() > SECTIONS_KEPT {
            "=== the other failing tests ===".to_string()
        } else {
            "=== also failing ===".to_string()
        });
        let more = others.len().saturating_sub(SUMMARY_LINES);
        kept.extend(others.into_iter().take(SUMMARY_LINES));
        if more > 0 {
            kept.push(format!("[… {more} more]"));
        }
    }
    kept.extend(after);
    let mut condensed = kept.join("\n");
    if output.ends_with('\n') {
        condensed.push('\n');
    }
    condensed
}

/// A tidied failure section, cut to its head and tail when long.
fn keep_section(kept: &mut Vec<String>, section: &[String]) {
    if section.len() > SECTION_LINES {
        kept.extend(section[..SECTION_HEAD].iter().cloned());
        kept.push(format!(
            "[… {} lines of this failure left out]",
            section.len() - SECTION_LINES
        ));
        kept.extend(section[section.len() - SECTION_TAIL..].iter().cloned());
    } else {
        kept.extend(section.iter().cloned());
    }
}

/// A red pytest run in which no test passed, for a context that already shows the
/// project's tests whole: the first failure (tidied and cut as by [`condense`]) and the
/// totals, without a line for each other test. Those lines only repeat the test file:
/// an exercise's stub fails every test the same way (`None != 'PNG'`), and at ~35
/// tokens/s of prefill the list costs a small model 10 s before its first word. `None`
/// when a test passed, or the output is not a pytest report with failures.
pub fn first_failure(output: &str) -> Option<String> {
    let output = &without_timings(output);
    let lines: Vec<&str> = output.lines().collect();
    let totals = lines.iter().rev().find(|l| !l.trim().is_empty())?;
    if totals.contains(" passed") || !(totals.contains(" failed") || totals.contains(" error")) {
        return None;
    }
    let (start, end) = failure_block(&lines)?;
    let sections = split_sections(&lines[start + 1..end]);
    let first = tidy(sections.first()?);
    let mut kept: Vec<String> = lines[..=start].iter().map(|l| tidy_line(l)).collect();
    keep_section(&mut kept, &first);
    if sections.len() > 1 {
        kept.push(format!(
            "[… the other {} tests fail too: the test file above shows what each expects]",
            sections.len() - 1
        ));
    }
    kept.push(tidy_line(totals));
    Some(kept.join("\n") + "\n")
}

/// A failure section without what tells the model nothing — blank lines, unittest's
/// `self = <…TestCase testMethod=…>`, the `E` lines past [`ERROR_LINES`] — and with its
/// rules shortened (`________ name ________`, `_ _ _ _ …` between frames: 30–40 tokens
/// each). A small model prefills every token of every red run at ~30 tokens/s.
fn tidy(section: &[&str]) -> Vec<String> {
    let mut out = Vec::with_capacity(section.len());
    let mut errors = 0;
    let mut dropped = 0;
    for line in section {
        let error = line.starts_with("E ") || *line == "E";
        if !error && dropped > 0 {
            out.push(more_lines(dropped));
            dropped = 0;
        }
        if !error {
            errors = 0;
        }
        if line.trim().is_empty() || line.trim() == "E" || line.starts_with("self = <") {
            continue;
        }
        if error {
            errors += 1;
            if errors > ERROR_LINES {
                dropped += 1;
                continue;
            }
        }
        out.push(tidy_line(line));
    }
    if dropped > 0 {
        out.push(more_lines(dropped));
    }
    out
}

fn more_lines(count: usize) -> String {
    let s = if count == 1 { "" } else { "s" };
    format!("E   [… {count} more line{s}]")
}

/// A pytest rule line shortened: `=== FAILURES ===`, `___ T.test_x ___`, `_ _ _`, and
/// the progress line without the padding before its percentage.
fn tidy_line(line: &str) -> String {
    let trimmed = line.trim_end();
    if trimmed.starts_with("_ _ _") && trimmed.chars().all(|c| c == '_' || c == ' ') {
        return "_ _ _".to_string();
    }
    for rule in ['=', '_'] {
        let title = trimmed.trim_matches(rule);
        if trimmed.len() > 6
            && trimmed.starts_with(rule)
            && trimmed.ends_with(rule)
            && title.starts_with(' ')
            && title.ends_with(' ')
        {
            let mark: String = std::iter::repeat_n(rule, 3).collect();
            return format!("{mark} {} {mark}", title.trim());
        }
    }
    if let Some(at) = trimmed.rfind(" [")
        && trimmed.ends_with("%]")
        && trimmed[..at]
            .trim_end()
            .chars()
            .all(|c| ".FEsxX".contains(c))
    {
        return format!("{} {}", trimmed[..at].trim_end(), &trimmed[at + 1..]);
    }
    line.to_string()
}

/// What a red run says, for deciding whether an attempt is going anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Red {
    /// See [`summary`].
    pub gist: String,
    /// Failing tests, when the output lists them.
    pub failing: Option<usize>,
}

/// The gist of a red run and how many tests fail. A run that stopped while collecting the
/// tests (a syntax error, a name the tests import and the code lost) ran none: it counts
/// no failing tests, so it is never taken for better than a run in which some passed.
/// The eval went back to such a version as "the best so far, with 1 failing test" in 7
/// of 23 fresh starts, over versions that passed 7 of 10 tests.
pub fn red(output: &str) -> Red {
    let gists = failure_gists(output);
    let collecting = output.contains(" during collection ")
        || (!gists.is_empty() && gists.iter().all(|g| g.starts_with("ERROR collecting ")));
    Red {
        gist: summary(output),
        failing: (!gists.is_empty() && !collecting).then_some(gists.len()),
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
    let mut gists = Vec::new();
    if let Some((start, end)) = failure_block(&lines) {
        for section in split_sections(&lines[start + 1..end]) {
            gists.push(gist(&section));
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

/// A failure section in one line: its test and the first `E` line of its error. A
/// syntax error's first `E` line is only where it is (`File "/tmp/…/x.py", line 8`):
/// the file's name and line go with the last `E` line, which says what is wrong
/// (`IndentationError: expected an indented block after 'for' statement on line 7`).
fn gist<S: AsRef<str>>(section: &[S]) -> String {
    let name = section
        .first()
        .map_or("", |header| section_name(header.as_ref()));
    let errors: Vec<&str> = section
        .iter()
        .map(AsRef::as_ref)
        .filter(|l| l.starts_with("E "))
        .map(|l| l[1..].trim())
        .collect();
    let (Some(first), Some(last)) = (errors.first(), errors.last()) else {
        return name.to_string();
    };
    match where_in_file(first) {
        Some((file, line)) if errors.len() > 1 => format!("{name}: {file}, line {line}: {last}"),
        _ => format!("{name}: {first}"),
    }
}

/// The file's base name and the line of a traceback's `File "/tmp/x/y.py", line 8`.
fn where_in_file(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("File \"")?;
    let (path, rest) = rest.split_once('"')?;
    let number = rest.strip_prefix(", line ")?;
    let number = number.split(|c: char| !c.is_ascii_digit()).next()?;
    let file = path.rsplit('/').next()?;
    (!number.is_empty()).then_some((file, number))
}

/// The test a `___ T.test_x ___` line heads.
fn section_name(header: &str) -> &str {
    header.trim_matches(|c| c == '_' || c == ' ')
}

/// Where a pytest report's detailed failures are: its `=== FAILURES ===` (else
/// `=== ERRORS ===`) banner, and the next `=== … ===` banner (or the end) after it.
fn failure_block(lines: &[&str]) -> Option<(usize, usize)> {
    let start = lines
        .iter()
        .position(|l| is_banner(l, "FAILURES"))
        .or_else(|| lines.iter().position(|l| is_banner(l, "ERRORS")))?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with("===") && l.ends_with("==="))
        .map_or(lines.len(), |i| start + 1 + i);
    Some((start, end))
}

/// `=== FAILURES ===` and the like.
fn is_banner(line: &str, title: &str) -> bool {
    line.starts_with('=') && line.trim_matches('=').trim() == title
}

/// Whether a line heads a failure section: `____ T.test_x ____`, or `_ T.test_x _` when
/// the name nearly fills the terminal's width (pytest pads the name with rules to 80
/// columns, at least one `_` a side). Not the `_ _ _ _` between traceback frames.
fn is_section_header(line: &str) -> bool {
    let line = line.trim_end();
    let name = line.trim_matches('_');
    line.starts_with('_')
        && line.ends_with('_')
        && name.starts_with(' ')
        && name.ends_with(' ')
        && !name.trim().is_empty()
        && !name.trim().starts_with('_')
}

/// The failure sections, each starting at its `____ name ____` line.
fn split_sections<'a>(lines: &[&'a str]) -> Vec<Vec<&'a str>> {
    let mut sections: Vec<Vec<&str>> = Vec::new();
    for &line in lines {
        let header = is_section_header(line);
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
    fn a_name_that_fills_the_width_still_heads_its_own_section() {
        // pytest pads a section's name to 80 columns with rules, down to one `_` a side.
        let long =
            "IsogramTest.test_word_with_one_duplicated_character_from_the_end_of_the_alphabet";
        let output = format!(
            "FF [100%]\n=== FAILURES ===\n___ IsogramTest.test_empty_string ___\n>       self.assertIs(is_isogram(\"\"), True)\nE       AssertionError: None is not True\n_ {long} _\n>       self.assertIs(is_isogram(\"zzyzx\"), False)\nE       AssertionError: None is not False\n_ _ _ _ _ _ _ _\n    def f():\n2 failed\n"
        );
        let red = red(&output);
        assert_eq!(red.failing, Some(2));
        assert!(
            red.gist
                .contains(&format!("{long}: AssertionError: None is not False"))
        );
        assert!(condense(&output).contains(&format!("___ {long} ___")));
    }

    #[test]
    fn a_run_that_passes_nothing_shows_its_first_failure_and_the_count() {
        let output = report(14);
        let brief = first_failure(&output).unwrap();
        assert!(brief.contains("___ T.test_0 ___"), "{brief}");
        assert!(brief.contains("AssertionError: 0 != 0"));
        assert!(!brief.contains("T.test_1"), "{brief}");
        assert!(brief.contains("the other 13 tests fail too"));
        assert!(brief.trim_end().ends_with("14 failed"), "{brief}");
        assert!(brief.len() * 2 < condense(&output).len());
        // Not when a test passed, nor for output that is not a pytest report.
        let some_pass = output.replace("14 failed in 0.05s", "14 failed, 2 passed in 0.05s");
        assert_eq!(first_failure(&some_pass), None);
        assert_eq!(first_failure("error: could not compile\n"), None);
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
    fn a_short_report_loses_only_its_noise() {
        assert_eq!(
            condense(&report(2)),
            "FF [100%]\n=== FAILURES ===\n___ T.test_0 ___\n    def test_0(self):\n>       self.assertEqual(f(0), 0)\nE       AssertionError: 0 != 0\nx_test.py:0: AssertionError\n___ T.test_1 ___\n    def test_1(self):\n>       self.assertEqual(f(1), 1)\nE       AssertionError: 0 != 1\nx_test.py:1: AssertionError\n2 failed\n"
        );
        assert_eq!(condense("all good\n"), "all good\n");
        // A summary line no section shows (a collection error) is kept.
        let errored = report(1).replace(
            "1 failed in",
            "ERROR y_test.py - ImportError: no module\n1 failed in",
        );
        assert!(
            condense(&errored).contains(
                "=== also failing ===\nERROR y_test.py - ImportError: no module\n1 failed"
            ),
            "{}",
            condense(&errored)
        );
    }

    /// flatten-array's first red run: a list diff of 14 `E` lines, frames between rules.
    #[test]
    fn a_long_diff_keeps_its_first_error_lines() {
        let out = "..F   [100%]\n= FAILURES =\n_____ T.test_nested _____\n\nself = <t.T testMethod=test_nested>\n\n    def test_nested(self):\n        inputs = [1, None]\n>       self.assertEqual(flatten(inputs), [1])\nE       AssertionError: Lists differ: [1, None] != [1]\nE       \nE       First list contains 1 additional elements.\nE       First extra element 1:\nE       None\nE       \nE       - [1, None]\nE       + [1]\nE       ?   ------\n\nt.py:5: AssertionError\n_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _\n\n    def flatten(x):\n>       return x\n";
        let short = condense(out);
        assert_eq!(
            short,
            "..F [100%]\n=== FAILURES ===\n___ T.test_nested ___\n    def test_nested(self):\n        inputs = [1, None]\n>       self.assertEqual(flatten(inputs), [1])\nE       AssertionError: Lists differ: [1, None] != [1]\nE       First list contains 1 additional elements.\nE       First extra element 1:\nE       None\nE       - [1, None]\nE       + [1]\nE   [… 1 more line]\nt.py:5: AssertionError\n_ _ _\n    def flatten(x):\n>       return x\n"
        );
    }

    #[test]
    fn a_long_report_keeps_two_failures_the_summary_and_the_totals() {
        let out = report(20);
        let short = condense(&out);
        assert!(short.len() * 3 < out.len(), "{short}");
        assert!(short.contains("def test_0(self)") && short.contains("def test_1(self)"));
        assert!(!short.contains("def test_2(self)"));
        assert!(
            short.contains("=== the other failing tests ===\nT.test_2: AssertionError: 0 != 2\n")
        );
        assert!(short.contains("T.test_16: AssertionError: 0 != 16\n"));
        assert!(!short.contains("T.test_17:"));
        assert!(!short.contains("FAILED "));
        assert!(
            short.ends_with("T.test_16: AssertionError: 0 != 16\n[… 3 more]\n20 failed\n"),
            "{short}"
        );
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

    /// pytest 8's report of a solution that no longer compiles, as the eval saw it.
    const SYNTAX_ERROR: &str = "\n==================================== ERRORS ====================================\n__________________________ ERROR collecting p_test.py __________________________\n/usr/lib/python3.11/site-packages/_pytest/python.py:528: in importtestmodule\n    mod = import_path(\np_test.py:2: in <module>\n    from p import rows\nE     File \"/tmp/ce/p.py\", line 3\nE       if n < 0:\nE       ^^\nE   IndentationError: expected an indented block after 'for' statement on line 2\n=========================== short test summary info ============================\nERROR p_test.py\n!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!\n1 error in 0.32s\n";

    #[test]
    fn a_run_that_could_not_collect_the_tests_fails_no_countable_test() {
        let red = red(SYNTAX_ERROR);
        assert_eq!(red.failing, None, "no test ran, so none is counted");
        assert!(
            red.gist.contains(
                "ERROR collecting p_test.py: p.py, line 3: IndentationError: expected an indented block after 'for' statement on line 2"
            ),
            "{}",
            red.gist
        );
        // An import error has one `E` line, shown as it is.
        let import = "=== ERRORS ===\n___ ERROR collecting p_test.py ___\np_test.py:2: in <module>\n    from p import rows\nE   ImportError: cannot import name 'rows' from 'p' (/tmp/ce/p.py)\n=== short test summary info ===\nERROR p_test.py\n!!!! Interrupted: 1 error during collection !!!!\n1 error in 0.11s\n";
        let red = super::red(import);
        assert_eq!(red.failing, None);
        assert!(
            red.gist
                .contains("ERROR collecting p_test.py: ImportError: cannot import name 'rows'")
        );
        // Failing tests are still counted.
        assert_eq!(super::red(&report(3)).failing, Some(3));
    }
}
