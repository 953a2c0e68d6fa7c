//! `@path` in a message attaches the file: its content goes with the message.

use keel_tools::Workspace;

/// Files attached whole up to this size.
const ATTACH_BYTES: usize = 64 * 1024;

/// The message with each `@path` that names a workspace file followed by the file's
/// content; also the paths attached (for the transcript) and the ones refused, with
/// why.
pub fn expand(workspace: &Workspace, message: &str) -> (String, Vec<String>, Vec<String>) {
    let mut out = message.to_string();
    let mut attached = Vec::new();
    let mut refused = Vec::new();
    for word in message.split_whitespace() {
        let Some(path) = word.strip_prefix('@') else {
            continue;
        };
        let path = path.trim_end_matches([',', '.', ';', ':', ')', '?', '!']);
        if path.is_empty() || attached.iter().any(|a| a == path) {
            continue;
        }
        let Ok(resolved) = workspace.resolve(path) else {
            refused.push(format!("@{path}: not a path in this project"));
            continue;
        };
        if !resolved.is_file() {
            // `@someone` in prose: left as it is.
            continue;
        }
        match std::fs::read(&resolved) {
            Ok(bytes) if bytes.len() > ATTACH_BYTES => refused.push(format!(
                "@{path}: {} KiB is too big to attach (the agent can read it)",
                bytes.len() / 1024
            )),
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => {
                    let fence = if text.contains("```") { "````" } else { "```" };
                    out.push_str(&format!("\n\nFile `{path}`:\n{fence}\n{text}"));
                    if !text.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str(fence);
                    attached.push(path.to_string());
                }
                Err(_) => refused.push(format!("@{path}: not a text file")),
            },
            Err(e) => refused.push(format!("@{path}: {e}")),
        }
    }
    (out, attached, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_files_go_with_the_message() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("calc.py"),
            "def add(a, b):\n    return a - b\n",
        )
        .unwrap();
        let workspace = Workspace::new(dir.path()).unwrap();
        let (message, attached, refused) = expand(
            &workspace,
            "fix @calc.py, ask @someone and read @../etc/passwd",
        );
        assert_eq!(attached, ["calc.py"]);
        assert!(message.starts_with("fix @calc.py, ask @someone"));
        assert!(message.ends_with("File `calc.py`:\n```\ndef add(a, b):\n    return a - b\n```"));
        assert_eq!(refused.len(), 1, "{refused:?}");
    }
}
