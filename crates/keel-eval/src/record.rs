//! Records of a run, its summary table, and two runs side by side.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::Metrics;

/// One task's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub task: String,
    /// The check passed (original tests restored).
    pub passed: bool,
    #[serde(flatten)]
    pub metrics: Metrics,
    pub wall_secs: f64,
    /// keel said `verified` but the check fails.
    pub false_done: bool,
    /// Protected files the agent changed (put back before the check).
    pub tampered: Vec<String>,
    /// The session was stopped at the per-task timeout.
    pub timed_out: bool,
    pub session_id: Option<String>,
    /// The tail of the check's output.
    pub check_output: String,
    /// The task names the files where the change belongs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub targeted: bool,
    /// The iteration at which the agent first opened one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found_at: Option<u64>,
}

/// A whole run: what was run and each task's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub model: String,
    pub tasks_dir: String,
    /// Seconds since the Unix epoch.
    pub started: u64,
    pub max_iterations: u32,
    pub timeout_secs: u64,
    pub records: Vec<Record>,
}

/// Totals of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub tasks: usize,
    pub passed: usize,
    pub pass_rate: f64,
    pub median_secs: f64,
    pub median_tokens: u64,
    pub malformed_calls: u64,
    pub constrained_calls: u64,
    pub false_done: usize,
    /// Replies stopped because they went round in a loop.
    pub looped_replies: u64,
    /// Of the tasks that name their target files: how many, and in how many the agent
    /// opened one.
    pub targeted: usize,
    pub found: usize,
}

fn median_f(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

impl Run {
    pub fn summary(&self) -> Summary {
        let tasks = self.records.len();
        let passed = self.records.iter().filter(|r| r.passed).count();
        Summary {
            tasks,
            passed,
            pass_rate: if tasks == 0 {
                0.0
            } else {
                passed as f64 / tasks as f64
            },
            median_secs: median_f(self.records.iter().map(|r| r.wall_secs).collect()),
            median_tokens: median_f(
                self.records
                    .iter()
                    .map(|r| (r.metrics.prompt_tokens + r.metrics.completion_tokens) as f64)
                    .collect(),
            ) as u64,
            malformed_calls: self.records.iter().map(|r| r.metrics.malformed_calls).sum(),
            constrained_calls: self
                .records
                .iter()
                .map(|r| r.metrics.constrained_calls)
                .sum(),
            false_done: self.records.iter().filter(|r| r.false_done).count(),
            looped_replies: self.records.iter().map(|r| r.metrics.looped_replies).sum(),
            targeted: self.records.iter().filter(|r| r.targeted).count(),
            found: self
                .records
                .iter()
                .filter(|r| r.targeted && r.found_at.is_some())
                .count(),
        }
    }
}

/// The per-task table and the totals.
pub fn summary_table(run: &Run) -> String {
    let mut out = String::new();
    let width = run
        .records
        .iter()
        .map(|r| r.task.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "{:width$}  {:4}  {:14}  {:>5}  {:>5}  {:>9}  {:>11}  {:>8}  {:>7}",
        "task", "pass", "outcome", "iters", "calls", "malformed", "constrained", "tokens", "secs"
    );
    for r in &run.records {
        let m = &r.metrics;
        let mut outcome = m.outcome.clone();
        if r.timed_out {
            outcome = "timeout".into();
        }
        if r.false_done {
            outcome.push_str(" (false)");
        }
        let _ = writeln!(
            out,
            "{:width$}  {:4}  {:14}  {:>5}  {:>5}  {:>9}  {:>11}  {:>8}  {:>7.1}",
            r.task,
            if r.passed { "PASS" } else { "fail" },
            outcome,
            m.iterations,
            m.tool_calls,
            m.malformed_calls,
            m.constrained_calls,
            m.prompt_tokens + m.completion_tokens,
            r.wall_secs,
        );
    }
    let s = run.summary();
    let _ = writeln!(
        out,
        "\n{}/{} passed ({:.1} %) with {}; median {:.0} s and {} tokens a task; {} malformed calls, {} constrained, {} false done",
        s.passed,
        s.tasks,
        s.pass_rate * 100.0,
        run.model,
        s.median_secs,
        s.median_tokens,
        s.malformed_calls,
        s.constrained_calls,
        s.false_done
    );
    if s.looped_replies > 0 {
        let _ = writeln!(
            out,
            "{} replies went round in a loop and were stopped",
            s.looped_replies
        );
    }
    if s.targeted > 0 {
        let mut at: Vec<f64> = run
            .records
            .iter()
            .filter_map(|r| r.found_at.filter(|_| r.targeted))
            .map(|i| i as f64)
            .collect();
        at.sort_by(f64::total_cmp);
        let median = if at.is_empty() {
            String::new()
        } else {
            format!(", at iteration {} (median)", median_f(at))
        };
        let _ = writeln!(
            out,
            "the agent opened the file the change belongs in for {}/{} tasks{median}",
            s.found, s.targeted
        );
    }
    out
}

/// Two runs side by side, task by task (tasks of either), with both totals.
pub fn compare_table(a: &Run, b: &Run) -> String {
    let mut names: Vec<&str> = a
        .records
        .iter()
        .chain(&b.records)
        .map(|r| r.task.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(4).max(4);
    let find = |run: &Run, name: &str| run.records.iter().find(|r| r.task == name).cloned();
    let cell = |r: &Option<Record>| match r {
        Some(r) => format!(
            "{} {:>6.0}s",
            if r.passed { "PASS" } else { "fail" },
            r.wall_secs
        ),
        None => "-".into(),
    };
    let mut out = String::new();
    let _ = writeln!(out, "{:width$}  {:14}  {:14}", "task", "A", "B");
    for name in names {
        let (ra, rb) = (find(a, name), find(b, name));
        let mark = match (&ra, &rb) {
            (Some(x), Some(y)) if x.passed != y.passed => {
                if y.passed {
                    "  +"
                } else {
                    "  -"
                }
            }
            _ => "",
        };
        let _ = writeln!(
            out,
            "{name:width$}  {:14}  {:14}{mark}",
            cell(&ra),
            cell(&rb)
        );
    }
    for (label, run) in [("A", a), ("B", b)] {
        let s = run.summary();
        let _ = writeln!(
            out,
            "{label}: {} — {}/{} passed ({:.1} %), median {:.0} s, {} tokens",
            run.model,
            s.passed,
            s.tasks,
            s.pass_rate * 100.0,
            s.median_secs,
            s.median_tokens
        );
    }
    out
}
