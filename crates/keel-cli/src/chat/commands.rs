//! The chat's slash commands.

/// Each command and what it does (`/help`, Tab completion).
pub const COMMANDS: &[(&str, &str)] = &[
    ("/help", "this list"),
    ("/new", "start a new session in this project"),
    ("/sessions", "this project's recent sessions"),
    ("/resume", "/resume ID: continue a stored session"),
    (
        "/model",
        "the model in use; /model SPEC switches to another",
    ),
    ("/diff", "the last turn's changes as a unified diff"),
    (
        "/undo",
        "put back every file the last turn changed (again: the turn before)",
    ),
    ("/redo", "take back the last /undo"),
    (
        "/plan",
        "/plan TASK: read-only turn that ends with a numbered plan",
    ),
    ("/approve", "carry out the plan"),
    ("/show", "/show N: the whole output of tool call N"),
    ("/memory", "what keel remembers about this project"),
    ("/tools", "the tools the model is offered"),
    ("/exit", "leave (also Ctrl-D, or Ctrl-C twice)"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    New,
    Sessions,
    Resume(String),
    Model(Option<String>),
    Diff,
    Undo,
    Redo,
    Plan(String),
    Approve,
    Show(usize),
    Memory,
    Tools,
    Exit,
    /// A message for the agent.
    Message(String),
    /// A slash command that is not one, or lacks its argument: what to say.
    Unknown(String),
}

pub fn parse(line: &str) -> Command {
    let line = line.trim();
    let Some(rest) = line.strip_prefix('/') else {
        return Command::Message(line.to_string());
    };
    // `//text` sends `/text` as a message.
    if rest.starts_with('/') {
        return Command::Message(rest.to_string());
    }
    let (name, argument) = match rest.split_once(char::is_whitespace) {
        Some((name, argument)) => (name, argument.trim()),
        None => (rest, ""),
    };
    let needs = |what: &str| Command::Unknown(format!("/{name} needs {what}"));
    match name {
        "help" | "?" => Command::Help,
        "new" => Command::New,
        "sessions" => Command::Sessions,
        "resume" if argument.is_empty() => needs("a session id (see /sessions)"),
        "resume" => Command::Resume(argument.to_string()),
        "model" => Command::Model((!argument.is_empty()).then(|| argument.to_string())),
        "diff" => Command::Diff,
        "undo" => Command::Undo,
        "redo" => Command::Redo,
        "plan" if argument.is_empty() => needs("a task: /plan TASK"),
        "plan" => Command::Plan(argument.to_string()),
        "approve" => Command::Approve,
        "show" => match argument
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
        {
            Ok(n) => Command::Show(n),
            Err(_) => needs("the number of a tool call: /show 3"),
        },
        "memory" => Command::Memory,
        "tools" => Command::Tools,
        "exit" | "quit" | "q" => Command::Exit,
        _ => Command::Unknown(format!("no command /{name} (see /help)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_to_commands_or_messages() {
        assert_eq!(parse("fix the bug"), Command::Message("fix the bug".into()));
        assert_eq!(parse("/undo"), Command::Undo);
        assert_eq!(
            parse("  /plan add a flag "),
            Command::Plan("add a flag".into())
        );
        assert_eq!(parse("/show [3]"), Command::Show(3));
        assert_eq!(parse("/model"), Command::Model(None));
        assert_eq!(
            parse("/model replay:x.json"),
            Command::Model(Some("replay:x.json".into()))
        );
        assert_eq!(
            parse("//etc is a path"),
            Command::Message("/etc is a path".into())
        );
        assert!(matches!(parse("/plan"), Command::Unknown(m) if m.contains("needs a task")));
        assert!(matches!(parse("/frobnicate"), Command::Unknown(_)));
        for (name, _) in COMMANDS {
            assert!(
                !matches!(parse(name), Command::Unknown(m) if m.starts_with("no command")),
                "{name}"
            );
        }
    }
}
