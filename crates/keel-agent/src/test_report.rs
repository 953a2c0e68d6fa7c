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

#[cfg(test)]
mod tests {
    use super::*;

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
