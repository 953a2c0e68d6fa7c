//! Does a message ask for work, or only for an answer?
//!
//! A small model often answers a task with prose that claims a fix it never made. keel
//! does not accept a prose reply as the end of a turn that asked for work while nothing
//! has been done yet: it asks again with a call required. A message asks for work when
//! one of its sentences is a request for change — it starts with a verb of change (fix,
//! add, implement, make, write, update, refactor, remove, rename, run, …), or with
//! "please", "can you", "I need you to" and has one, or with "use", "try", "help", "go"
//! and has one in its bare form ("Use the above instructions to modify the files"), or
//! joins one to another step ("Find the code responsible and fix it"); anything else — "what does this project
//! do?", "where is auth handled?", "how do I find and fix leaks?" — is a question, and a
//! prose answer ends the turn.

const WORK_VERBS: &[&str] = &[
    "add",
    "build",
    "change",
    "complete",
    "convert",
    "correct",
    "create",
    "debug",
    "delete",
    "edit",
    "finish",
    "fix",
    "implement",
    "improve",
    "install",
    "make",
    "migrate",
    "modify",
    "move",
    "optimise",
    "optimize",
    "port",
    "refactor",
    "remove",
    "rename",
    "repair",
    "replace",
    "resolve",
    "rewrite",
    "run",
    "solve",
    "update",
    "upgrade",
    "write",
];

/// Words that put a request before the verb: "please fix", "can you add", "I need
/// you to write".
const REQUEST_OPENERS: &[&str] = &[
    "please", "can", "could", "would", "will", "let", "lets", "i", "we", "now", "then", "also",
    "and", "so", "just",
];

/// Imperatives that put a bare verb of change after them: "Use the above instructions to
/// modify the supplied files" (Aider's benchmark request), "try to fix it", "help me
/// write a test", "go ahead and add it".
const LEADING_IMPERATIVES: &[&str] = &["use", "try", "help", "go"];

/// Words that open a question: such a sentence asks, whatever verbs follow.
const QUESTION_OPENERS: &[&str] = &[
    "what", "where", "which", "who", "whom", "whose", "why", "how", "when", "is", "are", "was",
    "were", "does", "do", "did", "has", "have", "explain", "describe", "show", "tell",
];

/// Words that join a step of change to another one: "find it and fix it", "read the
/// tests, then update the code".
const JOINERS: &[&str] = &["and", "then"];

/// A verb of change in its bare form, as an imperative has it ("fix", not "fixes").
fn is_bare_work_verb(word: &str) -> bool {
    WORK_VERBS.contains(&word)
}

fn is_work_verb(word: &str) -> bool {
    WORK_VERBS.iter().any(|verb| {
        word == *verb
            || word
                .strip_prefix(verb)
                .is_some_and(|rest| matches!(rest, "s" | "es" | "ed" | "ing" | "d"))
    })
}

/// Whether `message` asks the agent to change something (see the module comment): one
/// of its sentences starts with a verb of change ("Fix the test"), or with a request
/// opener and has one later ("Can you add a test?", "I need you to fix it"), or, not
/// being a question, joins one to another step ("Find the bug and fix it").
pub(crate) fn asks_for_work(message: &str) -> bool {
    message
        .split(['.', '?', '!', '\n', ':', ';'])
        .any(|sentence| {
            let words: Vec<String> = sentence
                .split(|c: char| !c.is_ascii_alphabetic() && c != '\'')
                .filter(|w| !w.is_empty())
                .map(|w| w.replace('\'', "").to_ascii_lowercase())
                .collect();
            match words.first() {
                Some(first) if is_work_verb(first) => true,
                Some(first) if REQUEST_OPENERS.contains(&first.as_str()) => {
                    words[1..].iter().any(|w| is_work_verb(w))
                }
                Some(first) if QUESTION_OPENERS.contains(&first.as_str()) => false,
                Some(first) if LEADING_IMPERATIVES.contains(&first.as_str()) => {
                    words[1..].iter().any(|w| is_bare_work_verb(w))
                }
                // The joined verb in its bare form, as an imperative has it: "and fix
                // it", not the statement "reads the file and writes the cache".
                Some(_) => words
                    .windows(2)
                    .any(|pair| JOINERS.contains(&pair[0].as_str()) && is_bare_work_verb(&pair[1])),
                None => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_ask_for_work() {
        for task in [
            "Fix the failing test",
            "Can you add a regression test for expired tokens?",
            "# Instructions\n\nImplement the `abbreviate` function.",
            "make `add` return the right sum",
            "Refactor parse() so it handles tabs",
            "I need you to update the docs.",
            "The tests fail. Please repair them",
            "Invoices show names as `LOVELACE ada`; they must read `Ada Lovelace`. Find the code responsible and fix it.",
            "Look at the failing assertion, then update the parser",
            "Use the above instructions to modify the supplied files: flatten_array.py. Don't change the names of existing functions or classes.",
            "Try to fix the flaky test",
        ] {
            assert!(asks_for_work(task), "{task}");
        }
    }

    #[test]
    fn questions_do_not() {
        for question in [
            "What does this project do?",
            "Where is authentication handled?",
            "Explain how the cache is invalidated",
            "Which fixture creates the database?",
            "Is the prefix stable?",
            "Why does the build fail?",
            "How is the file written to disk?",
            "How do I find and fix memory leaks?",
            "Explain where the token is read and then written",
            "Find where the cache is invalidated and show me",
            "Orders of exactly 100.00 are charged and shipped late",
            "The parser reads the file and writes the cache",
            "Use of the cache: where is it updated?",
        ] {
            assert!(!asks_for_work(question), "{question}");
        }
    }
}
