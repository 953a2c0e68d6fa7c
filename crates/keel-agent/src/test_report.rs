//! What a test run says beyond its exit status: which tests fail (pytest, cargo test,
//! go test, node's test runner, jest/vitest), whether there were no tests at all, and
//! whether the runner itself is missing. Verification compares the failing tests with
//! the baseline taken when the session started.

use std::collections::BTreeSet;

/// A test run, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Report {
    /// Exit 0.
    Green,
    /// The runner found no tests (pytest's exit 5).
    NoTests,
    /// The runner is not installed here (exit 127, "No module named pytest", …).
    MissingRunner(String),
    /// Red; the failing tests when the runner's output could be read.
    Red(Option<BTreeSet<String>>),
}

/// Reads a run of `command` that exited with `exit_code` and printed `output`.
pub(crate) fn read(command: &str, exit_code: Option<i32>, output: &str) -> Report {
    if exit_code == Some(0) {
        return Report::Green;
    }
    let pytest = command.contains("pytest");
    if pytest && exit_code == Some(5) {
        return Report::NoTests;
    }
    if let Some(missing) = missing_runner(exit_code, output) {
        return Report::MissingRunner(missing);
    }
    let failing = failing_tests(output);
    Report::Red((!failing.is_empty()).then_some(failing))
}

fn missing_runner(exit_code: Option<i32>, output: &str) -> Option<String> {
    for line in output.lines() {
        let line = line.trim();
        if let Some(rest) = line.split("No module named ").nth(1) {
            let module = rest.trim_matches(|c| c == '\'' || c == '"');
            if ["pytest", "unittest", "nose", "nose2"].contains(&module) {
                return Some(format!("the Python module `{module}` is not installed"));
            }
        }
        if exit_code == Some(127) && line.contains("command not found") {
            return Some(line.to_string());
        }
    }
    None
}

/// The failing tests a runner's output names.
pub(crate) fn failing_tests(output: &str) -> BTreeSet<String> {
    let mut failing = BTreeSet::new();
    for line in output.lines() {
        let trimmed = line.trim();
        // pytest's short summary: `FAILED path::Class::test - message`, `ERROR path`.
        if let Some(rest) = trimmed
            .strip_prefix("FAILED ")
            .or_else(|| trimmed.strip_prefix("ERROR "))
        {
            let id = rest.split(" - ").next().unwrap_or(rest).trim();
            if !id.is_empty() {
                failing.insert(id.to_string());
            }
            continue;
        }
        // cargo test: `test module::name ... FAILED`.
        if let Some(name) = trimmed
            .strip_prefix("test ")
            .and_then(|r| r.strip_suffix(" ... FAILED"))
        {
            failing.insert(name.to_string());
            continue;
        }
        // go test: `--- FAIL: TestName (0.00s)`.
        if let Some(rest) = trimmed.strip_prefix("--- FAIL: ") {
            if let Some(name) = rest.split_whitespace().next() {
                failing.insert(name.to_string());
            }
            continue;
        }
        // node --test: `not ok 3 - name`; jest/vitest: `✕ name (3 ms)` / `× name`.
        if let Some(rest) = trimmed.strip_prefix("not ok ") {
            let name = rest.split_once(" - ").map_or(rest, |(_, n)| n);
            failing.insert(name.trim().to_string());
            continue;
        }
        if let Some(rest) = trimmed
            .strip_prefix("✕ ")
            .or_else(|| trimmed.strip_prefix("× "))
        {
            let name = rest.rsplit_once(" (").map_or(rest, |(n, _)| n);
            failing.insert(name.trim().to_string());
        }
    }
    failing
}

/// Compared with a red baseline: whether nothing that passed then fails now and at
/// least one test that failed then passes now.
pub(crate) fn improved(baseline: &BTreeSet<String>, now: &BTreeSet<String>) -> bool {
    now.is_subset(baseline) && now.len() < baseline.len()
}

/// Phrases by which a task is about every test of the project.
const WHOLE_SUITE: &[&str] = &[
    "all tests",
    "all the tests",
    "tests pass",
    "tests to pass",
    "test suite pass",
    "failing tests",
    "failing test suite",
    "tests are failing",
    "tests fail",
];

/// Whether a failing test (as [`failing_tests`] names it) is one the task is about, so
/// that its failure is never excused as pre-existing: the task asks for the whole suite
/// to pass, or names the test's file (by path or file name) or the test itself.
pub(crate) fn task_targets(task: &str, test: &str) -> bool {
    let task_lower = task.to_lowercase();
    if WHOLE_SUITE.iter().any(|p| task_lower.contains(p)) {
        return true;
    }
    let mut parts = test.split("::");
    let first = parts.next().unwrap_or(test);
    if first.contains('/') || first.contains('.') {
        let file_name = first.rsplit('/').next().unwrap_or(first);
        if task.contains(first) || task.contains(file_name) {
            return true;
        }
    }
    let name = test.rsplit("::").next().unwrap_or(test);
    let name = name.split('[').next().unwrap_or(name).trim();
    if name.len() >= 4
        && task
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|word| word == name)
    {
        return true;
    }
    // A word of the test's name the task uses: a bug report that names no test is about
    // the tests that describe it. "A report for a single day says it covers 0 days" is
    // about `test_a_one_day_report_covers_one_day`; excused as failing before, it let the
    // 1.5B's fix of another test in the file count as `verified`.
    let task_words: BTreeSet<String> = significant_words(&task_lower).collect();
    significant_words(&name.to_lowercase()).any(|word| task_words.contains(&word))
}

/// Words too common in test names and requests to tie one to the other.
const COMMON_WORDS: &[&str] = &[
    "test",
    "tests",
    "the",
    "and",
    "for",
    "with",
    "that",
    "this",
    "from",
    "into",
    "not",
    "are",
    "was",
    "has",
    "have",
    "should",
    "must",
    "when",
    "then",
    "returns",
    "return",
    "works",
    "correct",
    "correctly",
    "case",
    "cases",
    "all",
    "one",
    "two",
    "fix",
    "bug",
    "error",
    "fail",
    "fails",
    "failing",
    "pass",
    "passes",
    "new",
    "get",
    "set",
    "use",
];

/// The words of `text` (split at anything but letters and digits, so `snake_case` and
/// prose alike) of three letters or more that say something.
fn significant_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 3 && !COMMON_WORDS.contains(w))
        .map(String::from)
}

/// Test runners, as the first words of a simple command.
const RUNNERS: &[&[&str]] = &[
    &["pytest"],
    &["py.test"],
    &["tox"],
    &["cargo", "test"],
    &["cargo", "nextest"],
    &["go", "test"],
    &["npm", "test"],
    &["npm", "run", "test"],
    &["yarn", "test"],
    &["pnpm", "test"],
    &["npx", "jest"],
    &["npx", "vitest"],
    &["jest"],
    &["vitest"],
    &["make", "test"],
    &["ctest"],
    &["mvn", "test"],
    &["gradle", "test"],
];

/// Whether a shell line runs the tests: the project's test command, or a known runner
/// (`python -m pytest` and `python -m unittest` included).
pub(crate) fn runs_tests(command: &str, test_command: Option<&str>) -> bool {
    if test_command.is_some_and(|t| !t.trim().is_empty() && command.contains(t.trim())) {
        return true;
    }
    crate::permissions::command_words(command).any(|words| {
        let words: Vec<&str> = match words.as_slice() {
            [python, "-m", rest @ ..] if python.starts_with("python") => {
                if rest
                    .first()
                    .is_some_and(|m| *m == "pytest" || *m == "unittest")
                {
                    return true;
                }
                words
            }
            _ => words,
        };
        RUNNERS.iter().any(|runner| words.starts_with(runner))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tests_a_task_is_about_are_told_from_others() {
        let exercise = "Use the instructions to modify acronym.py. The tests are in acronym_test.py (do not change them).";
        assert!(task_targets(
            exercise,
            "acronym_test.py::AcronymTest::test_basic"
        ));
        let fix = "Fix add in calc.py";
        assert!(!task_targets(fix, "tests/test_calc.py::test_mul"));
        assert!(task_targets(
            "Fix test_mul in tests/test_calc.py",
            "tests/test_calc.py::test_mul"
        ));
        assert!(task_targets(
            "test_mul fails, fix it",
            "tests/test_calc.py::test_mul[2-3]"
        ));
        assert!(!task_targets(
            "test_multiply fails",
            "tests/test_calc.py::test_mul"
        ));
        assert!(task_targets(
            "Make the tests pass",
            "tests/test_calc.py::test_mul"
        ));
        assert!(task_targets("Fix the failing tests", "calc::tests::mul"));
        assert!(!task_targets("Fix add", "calc::tests::mul"));
        assert!(task_targets("TestMul is red", "TestMul"));
        // A bug report is about the tests whose names share its words.
        let report =
            "A report for a single day says it covers 0 days; start and end days both count.";
        assert!(task_targets(
            report,
            "tests/test_periods.py::test_a_one_day_report_covers_one_day"
        ));
        assert!(!task_targets(report, "tests/test_io.py::test_read_csv"));
        assert!(!task_targets(
            "Fix the failing add",
            "tests/test_calc.py::test_mul_fails"
        ));
    }

    #[test]
    fn test_runs_are_told_from_other_commands() {
        let command = Some("python3 -m pytest -q two_fer_test.py");
        for line in [
            "pytest -q two_fer_test.py",
            "python -m pytest",
            "cd src && python3 -m unittest discover",
            "python3 -m pytest -q two_fer_test.py 2>&1 | tail -5",
            "cargo test --lib",
            "RUST_LOG=debug cargo nextest run",
            "npm run test",
        ] {
            assert!(runs_tests(line, command), "{line}");
        }
        for line in [
            "ls",
            "python two_fer.py",
            "cat pytest.ini",
            "cargo build",
            "git diff",
        ] {
            assert!(!runs_tests(line, command), "{line}");
        }
        assert!(runs_tests("make check", Some("make check")));
        assert!(!runs_tests("ls", Some(" ")));
    }

    #[test]
    fn runners_outputs_are_read() {
        let pytest = "F.F\n=== short test summary info ===\nFAILED tests/test_a.py::test_one - assert 1 == 2\nFAILED tests/test_a.py::T::test_two\nERROR tests/test_b.py - ImportError\n2 failed, 1 error\n";
        assert_eq!(
            read("python -m pytest", Some(1), pytest),
            Report::Red(Some(
                [
                    "tests/test_a.py::test_one",
                    "tests/test_a.py::T::test_two",
                    "tests/test_b.py"
                ]
                .into_iter()
                .map(String::from)
                .collect()
            ))
        );
        let cargo = "running 2 tests\ntest a::ok ... ok\ntest a::broken ... FAILED\n";
        assert_eq!(failing_tests(cargo), ["a::broken".to_string()].into());
        let go = "=== RUN   TestX\n--- FAIL: TestX (0.00s)\nFAIL\n";
        assert_eq!(failing_tests(go), ["TestX".to_string()].into());
        let node = "not ok 2 - adds numbers\n  ---\n";
        assert_eq!(failing_tests(node), ["adds numbers".to_string()].into());
        let jest = "  ✕ adds numbers (3 ms)\n  ✓ subtracts (1 ms)\n";
        assert_eq!(failing_tests(jest), ["adds numbers".to_string()].into());
        assert_eq!(read("make check", Some(2), "boom"), Report::Red(None));
    }

    #[test]
    fn no_tests_and_missing_runners_are_not_red() {
        assert_eq!(
            read("python3 -m pytest -q", Some(5), "no tests ran in 0.01s"),
            Report::NoTests
        );
        assert_eq!(read("python3 -m pytest", Some(0), ""), Report::Green);
        assert!(matches!(
            read("python3 -m pytest", Some(1), "/usr/bin/python3: No module named pytest"),
            Report::MissingRunner(m) if m.contains("pytest")
        ));
        assert!(matches!(
            read("cargo test", Some(127), "bash: line 1: cargo: command not found"),
            Report::MissingRunner(m) if m.contains("cargo")
        ));
    }

    #[test]
    fn improvement_over_a_red_baseline() {
        let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert!(improved(&set(&["a", "b"]), &set(&["b"])));
        assert!(
            !improved(&set(&["a", "b"]), &set(&["a", "b"])),
            "nothing fixed"
        );
        assert!(
            !improved(&set(&["a", "b"]), &set(&["b", "c"])),
            "c got worse"
        );
    }
}
