//! Syntax checks for the file tools: after `write` or `edit`, a file of a language keel
//! can parse (Python, Rust, JavaScript) is parsed with tree-sitter, so an edit that
//! breaks a file that parsed is refused with where and what, instead of being found by
//! the next test run (if there is one).

use std::path::Path;

use tree_sitter::{Language, Node, Parser};

mod python_mend;
mod python_slips;

pub use python_mend::{Mended, module_names as python_module_names};

/// Where a text stops parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line and column of the first error.
    pub line: usize,
    pub column: usize,
    /// "unexpected `)`", "missing `:`", …
    pub what: String,
    /// The lines around it, numbered, the error line marked.
    pub context: String,
    pub language: &'static str,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} syntax error at line {}, column {}: {}\n{}",
            self.language, self.line, self.column, self.what, self.context
        )
    }
}

/// The language of a path, by extension.
fn language(path: &Path) -> Option<(Language, &'static str)> {
    let extension = path.extension()?.to_str()?;
    match extension {
        "py" | "pyi" => Some((tree_sitter_python::LANGUAGE.into(), "Python")),
        "rs" => Some((tree_sitter_rust::LANGUAGE.into(), "Rust")),
        "js" | "mjs" | "cjs" | "jsx" => {
            Some((tree_sitter_javascript::LANGUAGE.into(), "JavaScript"))
        }
        _ => None,
    }
}

/// Whether `path` is of a language keel checks.
pub fn supported(path: &Path) -> bool {
    language(path).is_some()
}

/// `after` (the new text of the file `path`, whose text before was `before`) with the
/// slips a small model makes mended — names the code uses and no longer binds, broken
/// quotes; see [`python_mend`]. Python only; `None` when there is nothing to mend.
pub fn mend(path: &Path, before: Option<&str>, after: &str) -> Option<Mended> {
    match path.extension()?.to_str()? {
        "py" => python_mend::mend(before, after),
        _ => None,
    }
}

/// The first syntax error of `text` as the file `path`; `Ok` when it parses or when the
/// language is not one keel checks.
pub fn check(path: &Path, text: &str) -> Result<(), SyntaxError> {
    let Some((language, name)) = language(path) else {
        return Ok(());
    };
    let mut parser = Parser::new();
    if parser.set_language(&language).is_err() {
        return Ok(());
    }
    let Some(tree) = parser.parse(text, None) else {
        return Ok(());
    };
    let root = tree.root_node();
    if !root.has_error() {
        return Ok(());
    }
    let Some(node) = first_error(root) else {
        return Ok(());
    };
    let position = node.start_position();
    let what = if node.is_missing() {
        format!("missing `{}`", node.kind())
    } else {
        let found = &text[node.byte_range()];
        let found = found.lines().next().unwrap_or("").trim();
        if found.is_empty() {
            "unexpected end of input".to_string()
        } else {
            let shown: String = found.chars().take(40).collect();
            format!("unexpected `{shown}`")
        }
    };
    Err(SyntaxError {
        line: position.row + 1,
        column: position.column + 1,
        what,
        context: around(text, position.row),
        language: name,
    })
}

/// The first ERROR or MISSING node, in document order.
pub(crate) fn first_error(node: Node) -> Option<Node> {
    if node.is_error() || node.is_missing() {
        return Some(node);
    }
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        if let Some(found) = (child.has_error() || child.is_missing())
            .then(|| first_error(child))
            .flatten()
        {
            return Some(found);
        }
    }
    None
}

/// Three lines either side of `row` (0-based), numbered, the row marked with `>`.
fn around(text: &str, row: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = row.saturating_sub(3);
    let end = (row + 4).min(lines.len());
    (start..end)
        .map(|i| {
            let mark = if i == row { ">" } else { " " };
            format!("{mark}{:>5}\t{}", i + 1, lines[i])
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_files_parse() {
        assert_eq!(
            check(Path::new("a.py"), "def add(a, b):\n    return a + b\n"),
            Ok(())
        );
        assert_eq!(
            check(Path::new("a.rs"), "fn add(a: i32) -> i32 { a + 1 }\n"),
            Ok(())
        );
        assert_eq!(
            check(Path::new("a.js"), "const add = (a, b) => a + b;\n"),
            Ok(())
        );
        // Other languages are not checked.
        assert_eq!(check(Path::new("notes.md"), "((((("), Ok(()));
    }

    #[test]
    fn broken_files_say_where() {
        let error = check(
            Path::new("calc.py"),
            "def add(a, b):\n    return (a + b\n\ndef sub(a, b):\n    return a - b\n",
        )
        .unwrap_err();
        assert_eq!(error.language, "Python");
        assert!(error.line >= 2, "{error}");
        assert!(error.context.contains(">"), "{error}");
        let error = check(Path::new("lib.rs"), "fn main() {\n    let x = ;\n}\n").unwrap_err();
        assert_eq!((error.language, error.line), ("Rust", 2), "{error}");
        let error = check(Path::new("app.js"), "function f( {\n  return 1;\n}\n").unwrap_err();
        assert_eq!(error.language, "JavaScript");
        assert!(
            error.to_string().contains("syntax error at line"),
            "{error}"
        );
    }
}
