//! Compaction: what a conversation that has outgrown the context window keeps. First the
//! old tool results become one-line stubs (the model can call again); if that is not
//! enough, the older messages are replaced by a summary — the model's, or one keel
//! builds from the calls when the model gives none — while the recent ones stay
//! verbatim. These are pure functions over the rendered conversation; the session
//! decides when, and stores each compaction as an event.

use keel_llm::calls;
use keel_protocol::{Message, Role, SUMMARY_HEAD};
use serde_json::Value;

/// Messages at the end of the conversation that always stay verbatim.
pub(crate) const KEEP_RECENT: usize = 4;
/// Tool output shorter than this is not worth a stub.
const STUB_WORTH: usize = 240;
/// The longest summary, in bytes, for a window of `window` tokens: about a tenth of it.
pub(crate) fn summary_bytes(window: u32) -> usize {
    (window as usize / 10 * 3).clamp(600, 6000)
}
/// Each message is shown to the summariser up to this many bytes.
const ITEM_BYTES: usize = 1200;

/// The tool results to show as stubs: each before the last [`KEEP_RECENT`] messages
/// that is long enough to be worth it and is not one already.
pub(crate) fn stubs(messages: &[Message]) -> Vec<String> {
    let end = messages.len().saturating_sub(KEEP_RECENT);
    messages[..end]
        .iter()
        .filter(|m| m.role == Role::Tool && m.content.len() >= STUB_WORTH)
        .filter_map(|m| m.tool_call_id.clone())
        .collect()
}

/// Where the verbatim tail starts when older messages are summarised: at least the last
/// `keep` messages stay, the tail starts at a user or assistant message (a tool result
/// needs its call before it), and the project context (message 0) always stays.
/// `None` when nothing is left to summarise.
pub(crate) fn cut(messages: &[Message], keep: usize) -> Option<usize> {
    let latest = messages.len().saturating_sub(keep);
    (2..=latest)
        .rev()
        .find(|&i| matches!(messages[i].role, Role::User | Role::Assistant))
}

/// The text of `text` within `max` bytes: its head and tail, with what was left out.
pub(crate) fn head_tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut head = max * 2 / 3;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - (max - head);
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}\n[… {} bytes left out …]\n{}",
        &text[..head],
        tail - head,
        &text[tail..]
    )
}

/// A tool output cut to `max` bytes to fit the window: head and tail, and how to see
/// the rest.
pub(crate) fn fit_output(output: &str, max: usize) -> String {
    if output.len() <= max {
        return output.to_string();
    }
    let cut = head_tail(output, max);
    format!(
        "{cut}\n[The output was cut to fit the context window: read the file with an offset, or grep, to see what was left out.]"
    )
}

fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let line: String = line.trim().chars().take(max).collect();
    line
}

/// The calls of an assistant message, as `name(main argument)`.
fn calls_of(message: &Message) -> Vec<String> {
    let parsed = calls::parse_response(&message.content);
    let text_calls = parsed
        .calls
        .into_iter()
        .flatten()
        .map(|c| (c.name, c.arguments));
    let native = message
        .tool_calls
        .iter()
        .map(|c| (c.name.clone(), c.arguments.clone()));
    text_calls
        .chain(native)
        .map(|(name, arguments)| {
            let main = ["path", "command", "pattern", "query"]
                .iter()
                .find_map(|k| arguments.get(k).and_then(Value::as_str))
                .map(|v| first_line(v, 80))
                .unwrap_or_default();
            format!("{name}({main})")
        })
        .collect()
}

/// A summary built from the messages alone: what the user asked, the calls made and
/// how each went, what keel said — newest kept when it runs long.
pub(crate) fn mechanical_summary(messages: &[Message], max_bytes: usize) -> String {
    let mut lines = Vec::new();
    for message in messages {
        match message.role {
            Role::User => match message.content.strip_prefix(SUMMARY_HEAD) {
                Some(earlier) => lines.push(earlier.trim().to_string()),
                None => lines.push(format!(
                    "- User/keel: {}",
                    first_line(&message.content, 200)
                )),
            },
            Role::Assistant => {
                let prose = first_line(&calls::parse_response(&message.content).prose, 160);
                let calls = calls_of(message);
                let mut line = "- Assistant:".to_string();
                if !prose.is_empty() {
                    line.push_str(&format!(" {prose}"));
                }
                if !calls.is_empty() {
                    line.push_str(&format!(" [called {}]", calls.join(", ")));
                }
                lines.push(line);
            }
            Role::Tool => lines.push(format!(
                "  → {}{}: {}",
                message.name.as_deref().unwrap_or("tool"),
                if message.is_error { " (error)" } else { "" },
                first_line(&message.content, 120)
            )),
            Role::System => {}
        }
    }
    // Newest last; drop the oldest lines beyond the budget.
    let mut kept = Vec::new();
    let mut bytes = 0;
    for line in lines.iter().rev() {
        bytes += line.len() + 1;
        if bytes > max_bytes {
            kept.push("[… earlier steps left out]".to_string());
            break;
        }
        kept.push(line.clone());
    }
    kept.reverse();
    kept.join("\n")
}

/// The system prompt of the summarising request.
pub(crate) const SUMMARISER: &str = "You summarise a coding agent's session so it can go on in a smaller context. Write plain prose and short lists, no tool calls. Keep: the task, the decisions made, the files changed and why, the tests still failing, open questions. At most 250 words.";

/// The user message of the summarising request: the messages to summarise, each cut
/// to [`ITEM_BYTES`], within `max_bytes` in all (the oldest go first).
pub(crate) fn summary_request(messages: &[Message], max_bytes: usize) -> String {
    let items: Vec<String> = messages
        .iter()
        .map(|m| {
            let who = match m.role {
                Role::User => "USER",
                Role::Assistant => "ASSISTANT",
                Role::Tool => "TOOL RESULT",
                Role::System => "SYSTEM",
            };
            format!("{who}:\n{}", head_tail(&m.content, ITEM_BYTES))
        })
        .collect();
    let mut kept = Vec::new();
    let mut bytes = 0;
    for item in items.iter().rev() {
        bytes += item.len() + 2;
        if bytes > max_bytes {
            break;
        }
        kept.push(item.as_str());
    }
    kept.reverse();
    format!(
        "The session so far:\n\n{}\n\nSummarise it (the task, decisions, files changed and why, tests still failing, open questions).",
        kept.join("\n\n")
    )
}

/// Whether a model's reply is a usable summary: some prose, not a call, within bounds.
pub(crate) fn usable_summary(reply: &str, max_bytes: usize) -> Option<String> {
    let reply = reply.trim();
    let parsed = calls::parse_response(reply);
    if reply.len() < 20 || !parsed.calls.is_empty() || reply.contains(calls::OPEN) {
        return None;
    }
    Some(head_tail(reply, max_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(id: &str, content: &str) -> Message {
        Message::tool(id, "read", content)
    }

    fn conversation() -> Vec<Message> {
        let big = "x\n".repeat(200);
        vec![
            Message::user("context"),
            Message::user("fix calc.py"),
            Message::assistant(
                "Reading it.\n<tool_call>\n{\"name\": \"read\", \"arguments\": {\"path\": \"calc.py\"}}\n</tool_call>",
                vec![],
            ),
            tool("c1", &big),
            Message::assistant(
                "<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": \"pytest -q\"}}\n</tool_call>",
                vec![],
            ),
            tool("c2", "short"),
            Message::assistant("", vec![]),
            tool("c3", &big),
            Message::user("tests fail"),
            Message::assistant("ok", vec![]),
        ]
    }

    #[test]
    fn old_long_results_are_stubbed_and_recent_ones_kept() {
        let messages = conversation();
        assert_eq!(stubs(&messages), ["c1"]);
        assert_eq!(stubs(&messages[..4]), Vec::<String>::new());
    }

    #[test]
    fn the_verbatim_tail_starts_at_a_message_that_can_follow_a_summary() {
        let messages = conversation();
        // The last 4 start at a tool result (index 7): the tail starts at its call.
        assert_eq!(cut(&messages, 4), Some(6));
        assert_eq!(cut(&messages, 1), Some(9));
        assert_eq!(cut(&messages[..2], 1), None);
        assert_eq!(cut(&messages[..3], 1), Some(2));
    }

    #[test]
    fn a_mechanical_summary_lists_requests_calls_and_results() {
        let summary = mechanical_summary(&conversation()[1..6], 3000);
        assert_eq!(
            summary,
            "- User/keel: fix calc.py\n- Assistant: Reading it. [called read(calc.py)]\n  → read: x\n- Assistant: [called bash(pytest -q)]\n  → read: short"
        );
        // An earlier summary is carried on.
        let mut again = vec![Message::user(format!("{SUMMARY_HEAD}\n\n{summary}"))];
        again.push(Message::user("next"));
        assert!(mechanical_summary(&again, 3000).starts_with("- User/keel: fix calc.py"));
        // Long histories keep the newest.
        let many: Vec<Message> = (0..500)
            .map(|i| Message::user(format!("step {i}")))
            .collect();
        let summary = mechanical_summary(&many, 3000);
        assert!(summary.len() <= 3000 + 40);
        assert_eq!(summary_bytes(4096), 1227);
        assert_eq!(summary_bytes(1_000_000), 6000);
        assert!(summary.starts_with("[… earlier steps left out]"));
        assert!(summary.ends_with("step 499"));
    }

    #[test]
    fn only_prose_is_a_summary() {
        assert_eq!(usable_summary("  ", 3000), None);
        assert_eq!(
            usable_summary(
                "<tool_call>\n{\"name\": \"read\", \"arguments\": {\"path\": \"a\"}}\n</tool_call>",
                3000
            ),
            None
        );
        assert!(usable_summary("The task is to fix calc.py; add() was wrong.", 3000).is_some());
    }

    #[test]
    fn an_output_too_big_for_the_window_is_cut_with_a_way_to_the_rest() {
        let output = "line\n".repeat(1000);
        let fitted = fit_output(&output, 1000);
        assert!(fitted.len() < 1300, "{}", fitted.len());
        assert!(
            fitted.ends_with("read the file with an offset, or grep, to see what was left out.]")
        );
        assert_eq!(fit_output("small", 1000), "small");
    }

    #[test]
    fn head_and_tail_within_a_budget() {
        let text = "a".repeat(100) + &"b".repeat(100);
        let cut = head_tail(&text, 60);
        assert!(cut.starts_with(&"a".repeat(40)) && cut.ends_with(&"b".repeat(20)));
        assert!(cut.contains("[… 140 bytes left out …]"));
        assert_eq!(head_tail("short", 60), "short");
        assert_eq!(
            summary_request(&conversation()[1..3], 10_000)
                .lines()
                .next(),
            Some("The session so far:")
        );
    }
}
