//! Code blocks in a prose reply read as edits. Asked for work, a small model often
//! answers the way it was trained to chat: "Here's the updated code:" and the whole
//! file (or the changed functions) in a fenced block — Aider's "whole" edit format —
//! and then nothing happens, because no tool was called. When a block names a file of
//! the workspace, or defines the same top-level functions and classes as exactly one
//! file, keel reads it as a `write` of that file: the whole file when the block covers
//! all its definitions, constants and imports, else the file with those definitions
//! replaced. The reply is
//! then stored with the call in the canonical form, so the model sees how to call next
//! time.

use std::collections::BTreeSet;
use std::path::Path;

use crate::context::list_files;
use crate::tamper::is_test_file;

/// A file to write, read from a block of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockEdit {
    /// Workspace-relative path.
    pub path: String,
    /// The file's new content.
    pub content: String,
}

/// Which blocks of a reply may stand for writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placing {
    /// A reply without calls: a block goes to the file it names, or to the one file
    /// that defines what it defines.
    Any,
    /// A reply that also calls tools: only blocks that name their file (in the info
    /// string or the line before) — other blocks there are illustrations.
    Named,
}

/// The edits the reply's code blocks stand for, and the prose without those blocks.
/// Empty when no block could be placed with certainty.
pub(crate) fn edits(root: &Path, reply: &str, placing: Placing) -> (Vec<BlockEdit>, String) {
    let blocks = fenced_blocks(reply);
    if blocks.is_empty() {
        return (Vec::new(), reply.to_string());
    }
    let (files, _) = list_files(root);
    let mut edits: Vec<BlockEdit> = Vec::new();
    // The blocks read as edits, with the file each went to.
    let mut used: Vec<(usize, String)> = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        if !is_code(&block.info) || looks_like_call(&block.body) {
            continue;
        }
        let named = block
            .names
            .iter()
            .find_map(|n| named_file(&files, n))
            .map(|p| (p, true));
        let placed = match placing {
            Placing::Any => named.or_else(|| defining_file(root, &files, &block.body)),
            Placing::Named => named,
        };
        let Some((path, named)) = placed else {
            continue;
        };
        let Ok(current) = std::fs::read_to_string(root.join(&path)) else {
            continue;
        };
        let Some(content) = apply(&current, &block.body, named, &path) else {
            continue;
        };
        // A later block for the same file wins (models show "before", then "after").
        edits.retain(|e| e.path != path);
        used.push((index, path.clone()));
        edits.push(BlockEdit { path, content });
    }
    if edits.is_empty() {
        return (Vec::new(), reply.to_string());
    }
    let mut prose = String::new();
    let mut last = 0;
    for (index, path) in &used {
        let block = &blocks[*index];
        // A path line goes with its block.
        let names_it = |lead: &usize| {
            named_file(&files, &clean(reply[*lead..block.start].trim())).as_ref() == Some(path)
        };
        let start = block
            .lead
            .filter(|&lead| lead >= last && names_it(&lead))
            .unwrap_or(block.start);
        prose.push_str(&reply[last..start]);
        last = block.end;
    }
    prose.push_str(&reply[last..]);
    (edits, prose.trim().to_string())
}

/// One fenced block: its info string, body, byte range in the reply and the names
/// that may say which file it is (words of the info string and the line before).
struct Block {
    info: String,
    body: String,
    start: usize,
    end: usize,
    names: Vec<String>,
    /// Where the line right before the block starts, when that line is one word alone
    /// (a path line: it goes with the block).
    lead: Option<usize>,
}

fn fenced_blocks(reply: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut offset = 0;
    // Where the block starts, its info string, where its body starts, the line before
    // it and its fence's length.
    let mut open: Option<(usize, String, usize, String, usize)> = None;
    let mut previous = "";
    // The line right before, when it is one word: where it starts.
    let mut word_line: Option<usize> = None;
    let mut lead = None;
    for line in reply.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_end();
        match &open {
            None if trimmed.starts_with("```") => {
                let info = trimmed.trim_start_matches('`');
                let fence = trimmed.len() - info.len();
                lead = word_line;
                open = Some((
                    start,
                    info.trim().to_string(),
                    offset,
                    previous.to_string(),
                    fence,
                ));
            }
            // A block is closed by a fence at least as long as the one that opened it.
            Some((block_start, info, body_start, before, fence))
                if trimmed.len() >= *fence && trimmed.chars().all(|c| c == '`') =>
            {
                let mut names: Vec<String> = info.split_whitespace().map(clean).collect();
                names.extend(before.split_whitespace().map(clean));
                blocks.push(Block {
                    info: info.split_whitespace().next().unwrap_or("").to_lowercase(),
                    body: reply[*body_start..start].to_string(),
                    start: *block_start,
                    end: offset,
                    names,
                    lead,
                });
                open = None;
            }
            _ => {}
        }
        word_line = (!trimmed.trim().is_empty() && !trimmed.trim().contains(char::is_whitespace))
            .then_some(start);
        if !trimmed.is_empty() {
            previous = trimmed;
        }
    }
    blocks
}

fn clean(word: &str) -> String {
    word.trim_matches(|c: char| "`*'\"():,;".contains(c))
        .trim_end_matches('.')
        .to_string()
}

/// Blocks that hold source, not a shell session or output.
fn is_code(info: &str) -> bool {
    !matches!(
        info,
        "bash" | "sh" | "shell" | "console" | "text" | "txt" | "output" | "json" | "diff"
    )
}

/// A block that is a tool call's JSON (some small models fence their calls), not source.
fn looks_like_call(body: &str) -> bool {
    let body = body.trim_start();
    body.starts_with('{') && body.contains("\"name\"")
}

/// The workspace file a word names: its relative path, or a base name only one file has.
fn named_file(files: &[String], word: &str) -> Option<String> {
    if word.is_empty() || !word.contains('.') {
        return None;
    }
    if files.iter().any(|f| f == word) {
        return Some(word.to_string());
    }
    let mut matching = files
        .iter()
        .filter(|f| Path::new(f).file_name().is_some_and(|n| n == word));
    let first = matching.next()?;
    matching.next().is_none().then(|| first.clone())
}

/// The one Python file that defines top-level names the block defines (test files only
/// when no other file does); the file with the most names in common, unless tied.
fn defining_file(root: &Path, files: &[String], body: &str) -> Option<(String, bool)> {
    let names = top_level_names(body);
    if names.is_empty() {
        return None;
    }
    let mut best: Vec<(usize, bool, &String)> = Vec::new();
    for file in files.iter().filter(|f| f.ends_with(".py")) {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue;
        };
        let common = top_level_names(&text).intersection(&names).count();
        if common > 0 {
            best.push((common, is_test_file(file), file));
        }
    }
    // Non-test files first, then the most names in common.
    best.sort_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
    match best.as_slice() {
        [] => None,
        [only] => Some((only.2.clone(), false)),
        [first, second, ..] => {
            let tied = first.1 == second.1 && first.0 == second.0;
            (!tied).then(|| (first.2.clone(), false))
        }
    }
}

/// The file's new content: the block whole when it is named and not a Python fragment,
/// or covers every top-level definition of the file; else the file with the block's
/// definitions replaced (new ones appended, its missing imports added on top).
fn apply(current: &str, body: &str, named: bool, path: &str) -> Option<String> {
    let mut whole = body.to_string();
    if !whole.ends_with('\n') {
        whole.push('\n');
    }
    if whole.trim().is_empty() {
        return None;
    }
    if whole == current {
        // The file written again as it is: a write that changes nothing (and says so),
        // not a "done" — when the block names the file.
        return named.then_some(whole);
    }
    if !path.ends_with(".py") {
        return named.then_some(whole);
    }
    let file_names = top_level_names(current);
    let block_names = top_level_names(body);
    // A block of definitions that leaves out the file's constants or imports is not the
    // whole file, however many functions it has: the 1.5B rewrote `shipping_cost` with
    // the map's view of the module and lost `BASE_RATE` and `PER_KG` (NameError).
    let keeps_the_rest = top_level_bindings(current).is_subset(&top_level_bindings(body))
        && import_lines(current).is_subset(&import_lines(body));
    if file_names.is_subset(&block_names)
        && (named || !block_names.is_empty())
        && (keeps_the_rest || block_names.is_empty())
    {
        return Some(whole);
    }
    if block_names.is_empty() {
        return None;
    }
    let mut file = segments(current);
    let block = segments(&whole);
    let mut appended = Vec::new();
    for segment in block.iter().filter(|s| s.name.is_some()) {
        match file.iter_mut().find(|s| s.name == segment.name) {
            Some(existing) => {
                // The file's spacing after the definition stays.
                let code = existing.text.trim_end_matches(['\n', '\r', ' ', '\t']);
                let spacing = existing.text[code.len()..].to_string();
                let spacing = if spacing.contains('\n') {
                    spacing
                } else {
                    "\n".into()
                };
                let new = segment.text.trim_end_matches(['\n', '\r', ' ', '\t']);
                existing.text = format!("{new}{}", spacing.trim_start_matches([' ', '\t']));
            }
            None => appended.push(segment.text.clone()),
        }
    }
    // The block's imports the file lacks go first.
    let imports: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("import ") || l.starts_with("from "))
        .filter(|l| !current.lines().any(|c| c.trim_end() == l.trim_end()))
        .collect();
    let mut out = String::new();
    for import in imports {
        out.push_str(import);
        out.push('\n');
    }
    for segment in &file {
        out.push_str(&segment.text);
    }
    for text in appended {
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&text);
    }
    (out != current).then_some(out)
}

/// A top-level piece of a Python file: a definition (with its decorators and the blank
/// lines after it) or the lines between definitions.
struct Segment {
    name: Option<String>,
    text: String,
}

fn segments(text: &str) -> Vec<Segment> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut decorators = String::new();
    for line in text.split_inclusive('\n') {
        let top = !line.starts_with([' ', '\t', '\n', '\r']) && !line.trim().is_empty();
        if top && line.starts_with('@') {
            decorators.push_str(line);
            continue;
        }
        if top {
            let name = definition_name(line);
            let continues_other = name.is_none()
                && segments.last().is_some_and(|s| s.name.is_none())
                && decorators.is_empty();
            if let Some(last) = segments.last_mut().filter(|_| continues_other) {
                last.text.push_str(line);
            } else {
                segments.push(Segment {
                    name,
                    text: std::mem::take(&mut decorators) + line,
                });
            }
            continue;
        }
        match segments.last_mut() {
            Some(segment) => segment.text.push_str(line),
            None => segments.push(Segment {
                name: None,
                text: line.to_string(),
            }),
        }
    }
    if !decorators.is_empty() {
        segments.push(Segment {
            name: None,
            text: decorators,
        });
    }
    segments
}

/// `def name`, `async def name`, `class name` at column 0.
fn definition_name(line: &str) -> Option<String> {
    let rest = line
        .strip_prefix("def ")
        .or_else(|| line.strip_prefix("async def "))
        .or_else(|| line.strip_prefix("class "))?;
    let name: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

fn top_level_names(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(definition_name).collect()
}

/// `NAME = …` and `NAME: type = …` at column 0: the module's constants and globals.
fn top_level_bindings(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| {
            let name: String = line
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            let rest = line[name.len()..].trim_start();
            let rest = match rest.strip_prefix(':') {
                Some(annotated) => &annotated[annotated.find('=')?..],
                None => rest,
            };
            (rest.starts_with('=') && !rest.starts_with("==")).then_some(name)
        })
        .collect()
}

/// The file's `import …` and `from … import …` lines at column 0.
fn import_lines(text: &str) -> BTreeSet<&str> {
    text.lines()
        .filter(|l| l.starts_with("import ") || l.starts_with("from "))
        .map(str::trim_end)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    const STUB: &str = "def rebase(input_base, digits, output_base):\n    pass\n";
    const TEST: &str = "import unittest\nfrom all_your_base import rebase\n\nclass T(unittest.TestCase):\n    def test_one(self):\n        self.assertEqual(rebase(2, [1], 10), [1])\n";

    #[test]
    fn a_whole_file_in_prose_becomes_a_write_of_the_file_it_defines() {
        let dir = workspace(&[("all_your_base.py", STUB), ("all_your_base_test.py", TEST)]);
        let reply = "To fix it, convert through an integer. Here's the updated code:\n\n```python\ndef rebase(input_base, digits, output_base):\n    return digits\n```\n\nThis works.";
        let (found, prose) = edits(dir.path(), reply, Placing::Any);
        assert_eq!(
            found,
            vec![BlockEdit {
                path: "all_your_base.py".into(),
                content: "def rebase(input_base, digits, output_base):\n    return digits\n".into()
            }]
        );
        assert_eq!(
            prose,
            "To fix it, convert through an integer. Here's the updated code:\n\n\nThis works."
        );
    }

    #[test]
    fn a_block_with_some_definitions_replaces_only_those() {
        let file = "import math\n\n\n@cache\ndef one():\n    return 0\n\n\ndef two():\n    return 2\n\n\nclass Three:\n    x = 3\n";
        let dir = workspace(&[("pkg/m.py", file)]);
        let reply =
            "```python\nimport re\n\ndef one():\n    return 1\n\ndef four():\n    return 4\n```";
        let (found, _) = edits(dir.path(), reply, Placing::Any);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "pkg/m.py");
        assert_eq!(
            found[0].content,
            "import re\nimport math\n\n\ndef one():\n    return 1\n\n\ndef two():\n    return 2\n\n\nclass Three:\n    x = 3\n\ndef four():\n    return 4\n"
        );
    }

    #[test]
    fn a_block_without_the_files_constants_and_imports_replaces_only_its_definitions() {
        let file = "\"\"\"Shipping rates.\"\"\"\n\nfrom shop.zones import zone_factor\n\nFREE_FROM = 100.0\nBASE_RATE: float = 4.90\n\n\ndef shipping_cost(subtotal):\n    if subtotal > FREE_FROM:\n        return 0.0\n    return BASE_RATE * zone_factor()\n";
        let dir = workspace(&[("shop/rates.py", file)]);
        let reply = "Here's the fix:\n```python\nclass ShippingRecord:\n    pass\n\n\ndef shipping_cost(subtotal):\n    if subtotal >= FREE_FROM:\n        return 0.0\n    return BASE_RATE * zone_factor()\n```";
        let (found, _) = edits(dir.path(), reply, Placing::Any);
        assert_eq!(
            found[0].content,
            "\"\"\"Shipping rates.\"\"\"\n\nfrom shop.zones import zone_factor\n\nFREE_FROM = 100.0\nBASE_RATE: float = 4.90\n\n\ndef shipping_cost(subtotal):\n    if subtotal >= FREE_FROM:\n        return 0.0\n    return BASE_RATE * zone_factor()\n\nclass ShippingRecord:\n    pass\n\n\n"
        );
        // With them, the block is the whole file.
        let whole = "from shop.zones import zone_factor\n\nFREE_FROM = 100\nBASE_RATE: float = 5.0\n\ndef shipping_cost(subtotal):\n    return 0.0\n";
        let (found, _) = edits(dir.path(), &format!("```python\n{whole}```"), Placing::Any);
        assert_eq!(found[0].content, whole);
        assert_eq!(
            top_level_bindings("A = 1\nB: int = 2\nC == 3\nif x:\n    D = 4\n_e=5\nf(x=1)\n"),
            ["A", "B", "_e"].into_iter().map(String::from).collect()
        );
    }

    #[test]
    fn a_named_file_is_written_whole_and_the_last_block_wins() {
        let dir = workspace(&[("src/app.js", "let a = 1;\n"), ("README.md", "# x\n")]);
        let reply =
            "Before:\n```js\nlet a = 1;\n```\nChange `src/app.js` to:\n```js\nlet a = 2;\n```";
        let (found, prose) = edits(dir.path(), reply, Placing::Any);
        assert_eq!(
            found,
            vec![BlockEdit {
                path: "src/app.js".into(),
                content: "let a = 2;\n".into()
            }]
        );
        assert_eq!(
            prose,
            "Before:\n```js\nlet a = 1;\n```\nChange `src/app.js` to:"
        );
        // A base name only one file has names it too; the fence's info string counts.
        let (found, _) = edits(dir.path(), "```js app.js\nlet a = 3;\n```", Placing::Any);
        assert_eq!(found[0].path, "src/app.js");
    }

    #[test]
    fn blocks_that_cannot_be_placed_are_left_as_prose() {
        let dir = workspace(&[("a.py", STUB), ("b.py", STUB), ("c.py", "x = 1\n")]);
        for reply in [
            "no code here",
            // Two files define it: no certain target.
            "```python\ndef rebase(a, b, c):\n    return 1\n```",
            // Shell and output blocks are not source.
            "```bash\npython3 -m pytest\n```",
            // Nothing it defines is in the workspace, and no file is named.
            "```python\ndef other():\n    pass\n```",
            // The block is the file as it is, and does not name it.
            "```python\nx = 1\n```",
            // An unclosed block.
            "```python a.py\ndef rebase(a, b, c):\n",
        ] {
            let (found, prose) = edits(dir.path(), reply, Placing::Any);
            assert!(found.is_empty(), "{reply}");
            assert_eq!(prose, reply);
        }
    }

    #[test]
    fn beside_calls_only_a_block_that_names_its_file_is_a_write() {
        let dir = workspace(&[("all_your_base.py", STUB), ("all_your_base_test.py", TEST)]);
        let body = "def rebase(input_base, digits, output_base):\n    return []\n";
        // The path alone on the line before: a write of that file, the path line gone
        // from the prose with its block.
        let named = format!("Fixed:\nall_your_base.py\n```python\n{body}```");
        for placing in [Placing::Any, Placing::Named] {
            let (found, prose) = edits(dir.path(), &named, placing);
            assert_eq!(found[0].path, "all_your_base.py");
            assert_eq!(found[0].content, body);
            assert_eq!(prose, "Fixed:");
        }
        // Beside calls, a block that does not name its file is an illustration.
        let unnamed = format!("Like this:\n```python\n{body}```");
        assert_eq!(edits(dir.path(), &unnamed, Placing::Any).0.len(), 1);
        assert!(edits(dir.path(), &unnamed, Placing::Named).0.is_empty());
        // A path of no workspace file creates nothing.
        let elsewhere = format!("src/all_your_base.py\n```python\n{body}```");
        assert!(edits(dir.path(), &elsewhere, Placing::Named).0.is_empty());
    }

    #[test]
    fn a_file_written_again_as_it_is_is_a_write_that_changes_nothing() {
        let dir = workspace(&[("c.py", "x = 1\n")]);
        let (found, _) = edits(dir.path(), "c.py\n```python\nx = 1\n```", Placing::Named);
        assert_eq!(
            found,
            vec![BlockEdit {
                path: "c.py".into(),
                content: "x = 1\n".into()
            }]
        );
    }

    #[test]
    fn the_solution_is_preferred_to_the_test_file() {
        let dir = workspace(&[("all_your_base.py", STUB), ("all_your_base_test.py", TEST)]);
        let reply = "```python\nclass T:\n    pass\n\ndef rebase(a, b, c):\n    return []\n```";
        let (found, _) = edits(dir.path(), reply, Placing::Any);
        assert_eq!(found[0].path, "all_your_base.py");
    }

    #[test]
    fn a_longer_fence_holds_backticks_and_a_fenced_call_is_no_file() {
        let dir = workspace(&[("doc.md", "old\n"), ("a.py", "X = 0\n")]);
        let reply = "Change `doc.md` to:\n````markdown\nRun:\n```sh\nmake\n```\n````\n";
        let (found, _) = edits(dir.path(), reply, Placing::Any);
        assert_eq!(found[0].content, "Run:\n```sh\nmake\n```\n");
        let reply = "a.py\n```\n{\"name\": \"read\", \"arguments\": {\"path\": \"a.py\"}}\n```";
        assert!(edits(dir.path(), reply, Placing::Any).0.is_empty());
    }
}
