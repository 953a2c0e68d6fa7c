//! The project's instructions for agents. At the root: `KEEL.md` (keel's own) and
//! `AGENTS.md` — or, in a project without one, `CLAUDE.md` or
//! `.github/copilot-instructions.md`, which say the same things to other agents — in
//! the project context. Below the root, an `AGENTS.md` applies to the files under its
//! directory: it goes with the result of the first call that reads or writes a file
//! there (the prompt is append-only, and most sessions never go there), once a session,
//! the nearest one last (nearest wins).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use keel_protocol::Event;

/// Instruction files at the root, in order: keel's own, then the first of the rest.
const ROOT_OWN: &str = "KEEL.md";
const ROOT_SHARED: &[&str] = &["AGENTS.md", "CLAUDE.md", ".github/copilot-instructions.md"];
/// Instructions at the root, in all.
const ROOT_BYTES: usize = 8 * 1024;
/// One nested `AGENTS.md`.
const NESTED_BYTES: usize = 4 * 1024;
const NESTED: &str = "AGENTS.md";
/// How a nested file's instructions open in a tool result (also how a resumed session
/// knows they were given).
const NESTED_HEAD: &str = "[Instructions from ";

/// The root's instructions, for the project context.
pub(crate) fn root_section(root: &Path) -> String {
    let mut names = vec![ROOT_OWN];
    names.extend(
        ROOT_SHARED
            .iter()
            .find(|name| root.join(name).is_file())
            .copied(),
    );
    let mut out = String::new();
    let mut left = ROOT_BYTES;
    for name in names {
        let Ok(text) = std::fs::read_to_string(root.join(name)) else {
            continue;
        };
        if left == 0 {
            break;
        }
        let text = crate::compact::head_tail(text.trim_end(), left);
        left = left.saturating_sub(text.len());
        let _ = write!(out, "\nInstructions from {name}:\n{text}\n");
    }
    out
}

/// The nested `AGENTS.md` files that apply to `file` (a path inside `root`) and were
/// not given yet, rendered to go with a tool result; they count as given.
pub(crate) fn nested_for(root: &Path, file: &Path, given: &mut HashSet<String>) -> String {
    let Ok(relative) = file.strip_prefix(root) else {
        return String::new();
    };
    let mut dir = root.to_path_buf();
    let mut out = String::new();
    let components: Vec<_> = relative.components().collect();
    // Every directory from just below the root down to the file's own.
    for component in components.iter().take(components.len().saturating_sub(1)) {
        dir.push(component);
        let path = dir.join(NESTED);
        let Ok(shown) = path.strip_prefix(root).map(|p| p.display().to_string()) else {
            continue;
        };
        if given.contains(&shown) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        given.insert(shown.clone());
        let scope = dir
            .strip_prefix(root)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let text = crate::compact::head_tail(text.trim_end(), NESTED_BYTES);
        let _ = write!(
            out,
            "\n\n{NESTED_HEAD}{shown}, for the files under {scope}/ (they win over the project's where they differ):\n{text}]"
        );
    }
    out
}

/// The nested instructions a session has already been given (from its events).
pub(crate) fn given_in(events: &[Event]) -> HashSet<String> {
    let mut given = HashSet::new();
    for event in events {
        if let Event::ToolResult { output, .. } = event {
            for part in output.split(NESTED_HEAD).skip(1) {
                if let Some((path, _)) = part.split_once(", for the files under ") {
                    given.insert(path.to_string());
                }
            }
        }
    }
    given
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_has_keels_own_and_the_first_shared_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("CLAUDE.md"), "Use tabs.\n").unwrap();
        assert_eq!(
            root_section(root),
            "\nInstructions from CLAUDE.md:\nUse tabs.\n"
        );
        std::fs::write(root.join("AGENTS.md"), "Use spaces.\n").unwrap();
        std::fs::write(root.join("KEEL.md"), "Run make.\n").unwrap();
        assert_eq!(
            root_section(root),
            "\nInstructions from KEEL.md:\nRun make.\n\nInstructions from AGENTS.md:\nUse spaces.\n"
        );
        std::fs::write(root.join("KEEL.md"), "x".repeat(20_000)).unwrap();
        assert!(root_section(root).len() < ROOT_BYTES + 200);
    }

    #[test]
    fn nested_instructions_go_once_nearest_last() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("web/ui")).unwrap();
        std::fs::write(root.join("AGENTS.md"), "root\n").unwrap();
        std::fs::write(root.join("web/AGENTS.md"), "web rules\n").unwrap();
        std::fs::write(root.join("web/ui/AGENTS.md"), "ui rules\n").unwrap();
        let mut given = HashSet::new();
        let text = nested_for(root, &root.join("web/ui/app.js"), &mut given);
        assert_eq!(
            text,
            "\n\n[Instructions from web/AGENTS.md, for the files under web/ (they win over the project's where they differ):\nweb rules]\n\n[Instructions from web/ui/AGENTS.md, for the files under web/ui/ (they win over the project's where they differ):\nui rules]"
        );
        assert_eq!(
            nested_for(root, &root.join("web/ui/other.js"), &mut given),
            ""
        );
        assert_eq!(nested_for(root, &root.join("main.py"), &mut given), "");
        // A resumed session knows what it was given.
        let events = [Event::ToolResult {
            call_id: "c1".into(),
            name: "read".into(),
            output: format!("1\tx{text}"),
            is_error: false,
            duration_ms: 1,
        }];
        assert_eq!(given_in(&events), given);
    }
}
