//! Stall detection: the same call with the same arguments three times while nothing
//! changed in the workspace, or five iterations in a row without a successful tool
//! call. The first time gets a corrective message; if it happens again the turn ends
//! `stalled`. A change (a write, an edit, a command that changed files) clears the
//! repeat counts: edit → test → edit → test is work, not a loop.

use std::collections::HashMap;

use serde_json::Value;

const REPEAT_LIMIT: u32 = 3;
const NO_PROGRESS_LIMIT: u32 = 5;

#[derive(Debug, Default)]
pub(crate) struct StallDetector {
    calls: HashMap<String, u32>,
    no_progress: u32,
    warned: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Fine,
    /// Send this corrective message.
    Warn(String),
    Stalled,
}

impl StallDetector {
    /// Records one iteration: the calls made (name, arguments), whether any succeeded,
    /// and whether the workspace changed.
    pub(crate) fn observe<'a>(
        &mut self,
        calls: impl IntoIterator<Item = (&'a str, &'a Value)>,
        any_success: bool,
        changed: bool,
    ) -> Verdict {
        let mut repeated = None;
        for (name, arguments) in calls {
            let key = format!("{name} {}", canonical(arguments));
            let count = self.calls.entry(key).or_insert(0);
            *count += 1;
            if *count >= REPEAT_LIMIT {
                repeated = Some(name.to_string());
            }
        }
        if changed {
            // Counted from here: the same call may now give another result.
            self.calls.clear();
            repeated = None;
        }
        if any_success {
            self.no_progress = 0;
        } else {
            self.no_progress += 1;
        }
        let message = match repeated {
            Some(name) => format!(
                "You have made the same `{name}` call with the same arguments {REPEAT_LIMIT} times; its result will not change. Try a different approach, or finish if the task is done."
            ),
            None if self.no_progress >= NO_PROGRESS_LIMIT => format!(
                "{NO_PROGRESS_LIMIT} iterations in a row have made no successful tool call. Step back: read the relevant files, check the exact tool input format, and try a different approach."
            ),
            None => return Verdict::Fine,
        };
        if self.warned {
            Verdict::Stalled
        } else {
            self.warned = true;
            Verdict::Warn(message)
        }
    }
}

/// JSON with object keys sorted, so argument order does not hide a repeat.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn third_identical_call_warns_then_stalls() {
        let mut d = StallDetector::default();
        let a = json!({"path": "a", "limit": 2});
        let a_reordered = json!({"limit": 2, "path": "a"});
        assert_eq!(d.observe([("read", &a)], true, false), Verdict::Fine);
        assert_eq!(
            d.observe([("read", &a_reordered)], true, false),
            Verdict::Fine
        );
        assert!(
            matches!(d.observe([("read", &a)], true, false), Verdict::Warn(m) if m.contains("same `read` call"))
        );
        assert_eq!(
            d.observe([("read", &json!({"path": "b"}))], true, false),
            Verdict::Fine
        );
        assert_eq!(d.observe([("read", &a)], true, false), Verdict::Stalled);
    }

    #[test]
    fn a_change_clears_the_repeat_counts() {
        // read → edit → pytest → edit → pytest → edit → pytest → pytest: the tests are
        // re-run after each change; only the last run repeats one with nothing between.
        let mut d = StallDetector::default();
        let read = json!({"path": "calc.py"});
        let test = json!({"command": "python -m pytest"});
        assert_eq!(d.observe([("read", &read)], true, false), Verdict::Fine);
        for i in 0..3 {
            let edit = json!({"path": "calc.py", "old_string": format!("v{i}")});
            assert_eq!(
                d.observe([("edit", &edit)], true, true),
                Verdict::Fine,
                "edit {i}"
            );
            assert_eq!(
                d.observe([("bash", &test)], true, false),
                Verdict::Fine,
                "test {i}"
            );
        }
        assert_eq!(d.observe([("bash", &test)], true, false), Verdict::Fine);
        assert!(matches!(
            d.observe([("bash", &test)], true, false),
            Verdict::Warn(_)
        ));
    }

    #[test]
    fn five_iterations_without_success_warn_then_stall() {
        let mut d = StallDetector::default();
        for _ in 0..4 {
            assert_eq!(d.observe([], false, false), Verdict::Fine);
        }
        assert!(matches!(d.observe([], false, false), Verdict::Warn(_)));
        assert_eq!(d.observe([], false, false), Verdict::Stalled);
    }

    #[test]
    fn success_resets_the_no_progress_count() {
        let mut d = StallDetector::default();
        for i in 0..20 {
            let args = json!({"n": i});
            let verdict = d.observe([("bash", &args)], i % 4 == 0, false);
            assert_eq!(verdict, Verdict::Fine, "iteration {i}");
        }
    }
}
