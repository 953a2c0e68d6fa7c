//! The system prompt. It depends only on the tool set and the protocol — never on a
//! date, a session or a path — so it is byte-identical for every request and every
//! session, and a local engine can reuse its KV cache.

use std::fmt::Write as _;

use keel_llm::{ToolProtocol, xml};
use keel_protocol::ToolSpec;

const ROLE: &str = "\
You are keel, a coding agent. You work in a software project on the user's machine: \
you read code, edit files and run commands with tools until the task is done.

Rules:
- Paths are relative to the workspace root. You cannot touch files outside it.
- Read a file before changing it. Use edit for changes to existing files.
- After changing code, run the tests. Fix the code, not the tests.
- When the task is done, reply without a tool call and say briefly what you changed. \
keel then runs the project's tests; if they fail, you get the output and continue.
";

/// The system prompt for a tool set (sorted by name) and protocol.
pub fn system_prompt(tools: &[ToolSpec], protocol: ToolProtocol) -> String {
    let mut out = String::from(ROLE);
    if protocol == ToolProtocol::Native {
        return out;
    }
    out.push_str(
        "\nTo use a tool, write a block like this (several blocks are allowed); \
then stop and wait for the results:\n",
    );
    out.push_str(&xml::render_call(
        "read",
        &serde_json::json!({"path": "src/main.py"}),
    ));
    out.push_str("\n\nTools:\n");
    for tool in tools {
        let _ = writeln!(
            out,
            "- {} {}: {}",
            tool.name,
            keel_tools::signature(&tool.parameters),
            tool.description
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_prompt_is_small_and_lists_every_tool() {
        let tools = keel_tools::ToolRegistry::builtin().specs();
        let prompt = system_prompt(&tools, ToolProtocol::Xml);
        for tool in &tools {
            assert!(
                prompt.contains(&format!("- {} {{", tool.name)),
                "{}",
                tool.name
            );
        }
        // DESIGN.md budget: under ~1,200 tokens; ~4 bytes a token for English and JSON.
        assert!(
            prompt.len() < 4_000,
            "system prompt is {} bytes",
            prompt.len()
        );
        assert!(system_prompt(&tools, ToolProtocol::Native).len() < prompt.len());
    }
}
