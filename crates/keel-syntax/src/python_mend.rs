//! Mending the Python slips that cost a small model most after a `write` or `edit`.
//!
//! - **A rewrite that drops what the code still uses.** Asked to fix one function, a small
//!   model rewrites the file with that function alone: the file's imports, constants and
//!   helpers are gone, and the next test run ends in `NameError: name 're' is not
//!   defined` (Qwen2.5-Coder 1.5B on the find-the-code eval; its next move was to delete
//!   `re` from the code). A name the new text uses, binds nowhere, and that the old text
//!   bound at module level is carried over from the old text: the import, the constant or
//!   the helper, whole.
//! - **A standard module used and never imported** (`re.sub(…)` with no `import re`): the
//!   import is added, for the modules listed in [`STDLIB_MODULES`].
//! - **Slips that leave the text unparsable** — a broken quote, a bracket left open or
//!   left over, markup around the code: see [`crate::python_slips`].
//!
//! Each mend is kept only when the result parses, and each is reported, so the model
//! knows what is in the file.

use std::collections::BTreeSet;

use tree_sitter::{Node, Parser, Tree};

/// Standard modules imported when code uses `NAME.attribute` and binds `NAME` nowhere.
const STDLIB_MODULES: &[&str] = &[
    "abc",
    "bisect",
    "calendar",
    "collections",
    "copy",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "fractions",
    "functools",
    "hashlib",
    "heapq",
    "itertools",
    "json",
    "math",
    "operator",
    "os",
    "random",
    "re",
    "statistics",
    "string",
    "sys",
    "textwrap",
    "threading",
    "time",
    "typing",
    "unicodedata",
];

/// Python text after a mend, and what was done, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mended {
    pub text: String,
    pub notes: Vec<String>,
}

pub(crate) fn parse(text: &str) -> Option<Tree> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_python::LANGUAGE.into())
        .ok()?;
    parser.parse(text, None)
}

pub(crate) fn parses(text: &str) -> bool {
    parse(text).is_some_and(|tree| !tree.root_node().has_error())
}

/// `after` mended, given the file's text before (`None` for a new file); `None` when
/// there is nothing to mend or a mend would not leave the file parsing.
pub fn mend(before: Option<&str>, after: &str) -> Option<Mended> {
    let mut notes = Vec::new();
    let mut text = after.to_string();
    if !parses(&text) {
        text = crate::python_slips::unbroken(&text, &mut notes)?;
    }
    let old = before.filter(|b| parses(b));
    if let Some((carried, added)) = restore_names(old, &text) {
        text = carried;
        notes.extend(added);
    }
    (!notes.is_empty()).then_some(Mended { text, notes })
}

// ---------------------------------------------------------------- names

/// Names a text binds anywhere, generously (anything that may be an assignment,
/// parameter, import, definition or pattern), and names it uses; and the subset of uses
/// that are `NAME.attribute`.
#[derive(Default)]
struct Names {
    bound: BTreeSet<String>,
    used: BTreeSet<String>,
    dotted: BTreeSet<String>,
    wildcard: bool,
}

fn names(tree: &Tree, text: &str) -> Names {
    let mut names = Names::default();
    walk(tree.root_node(), text, false, &mut names);
    names
}

fn walk(node: Node, text: &str, binding: bool, names: &mut Names) {
    let kind = node.kind();
    if kind == "identifier" {
        let name = text[node.byte_range()].to_string();
        if binding {
            names.bound.insert(name);
        } else {
            let parent = node.parent();
            let field_of = |field: &str| {
                parent.is_some_and(|p| p.child_by_field_name(field).is_some_and(|c| c == node))
            };
            let kind_of = parent.map(|p| p.kind()).unwrap_or_default();
            if kind_of == "attribute" && field_of("attribute") {
                return;
            }
            if kind_of == "keyword_argument" && field_of("name") {
                return;
            }
            if kind_of == "attribute" && field_of("object") {
                names.dotted.insert(name.clone());
            }
            names.used.insert(name);
        }
        return;
    }
    match kind {
        "import_statement" | "import_from_statement" | "future_import_statement" => {
            let mut cursor = node.walk();
            for child in node.children(&mut cursor) {
                if child.kind() == "wildcard_import" {
                    names.wildcard = true;
                }
                let is_module = node
                    .child_by_field_name("module_name")
                    .is_some_and(|m| m == child);
                if !is_module {
                    walk(child, text, true, names);
                }
            }
            return;
        }
        "global_statement" | "nonlocal_statement" | "case_pattern" | "keyword_pattern" => {
            walk_children(node, text, true, names);
            return;
        }
        "parameters" | "lambda_parameters" => {
            // The parameters bind; their defaults and annotations are uses.
            walk_parameters(node, text, names);
            return;
        }
        _ => {}
    }
    let binding_fields: &[&str] = match kind {
        "assignment" | "augmented_assignment" | "for_statement" | "for_in_clause" => &["left"],
        "named_expression" | "function_definition" | "class_definition" => &["name"],
        "as_pattern" | "except_clause" => &["alias"],
        "type_alias_statement" => &["left"],
        _ => &[],
    };
    let mut cursor = node.walk();
    for (i, child) in node.children(&mut cursor).enumerate() {
        let field = node.field_name_for_child(i as u32);
        let binds = binding || field.is_some_and(|f| binding_fields.contains(&f));
        walk(child, text, binds, names);
    }
}

fn walk_children(node: Node, text: &str, binding: bool, names: &mut Names) {
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        walk(child, text, binding, names);
    }
}

fn walk_parameters(node: Node, text: &str, names: &mut Names) {
    let mut cursor = node.walk();
    for parameter in node.children(&mut cursor) {
        let mut inner = parameter.walk();
        let parts: Vec<(Option<&str>, Node)> = parameter
            .children(&mut inner)
            .enumerate()
            .map(|(i, c)| (parameter.field_name_for_child(i as u32), c))
            .collect();
        if parts.is_empty() {
            walk(parameter, text, true, names);
            continue;
        }
        for (field, part) in parts {
            let uses = matches!(field, Some("value" | "type"));
            walk(part, text, !uses, names);
        }
    }
}

/// One module-level statement of the old text that binds names.
struct Binding<'a> {
    names: Vec<String>,
    text: &'a str,
    kind: Carried,
    /// What the statement itself uses and binds (read from the same tree).
    found: Names,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Carried {
    Import,
    Constant,
    Definition,
}

fn module_bindings<'a>(tree: &Tree, text: &'a str) -> Vec<Binding<'a>> {
    let root = tree.root_node();
    let mut out = Vec::new();
    let mut cursor = root.walk();
    for statement in root.children(&mut cursor) {
        let kind = match statement.kind() {
            "import_statement" | "import_from_statement" => Carried::Import,
            "expression_statement" => match statement.named_child(0) {
                Some(a) if a.kind() == "assignment" => Carried::Constant,
                _ => continue,
            },
            "function_definition" | "class_definition" | "decorated_definition" => {
                Carried::Definition
            }
            _ => continue,
        };
        let Some(source) = text.get(statement.byte_range()) else {
            continue;
        };
        let mut found = Names::default();
        walk(statement, text, false, &mut found);
        let bound: Vec<String> = match kind {
            Carried::Definition => {
                let definition = match statement.kind() {
                    "decorated_definition" => statement.child_by_field_name("definition"),
                    _ => Some(statement),
                };
                definition
                    .and_then(|d| d.child_by_field_name("name"))
                    .map(|n| vec![text[n.byte_range()].to_string()])
                    .unwrap_or_default()
            }
            Carried::Constant => {
                let left = statement
                    .named_child(0)
                    .and_then(|a| a.child_by_field_name("left"));
                match left {
                    Some(l) if l.kind() == "identifier" => vec![text[l.byte_range()].to_string()],
                    _ => continue,
                }
            }
            Carried::Import => found.bound.iter().cloned().collect(),
        };
        out.push(Binding {
            names: bound,
            text: source,
            kind,
            found,
        });
    }
    out
}

/// The names a Python module binds at its top level (imports — generously: every name of
/// the statement but the module imported from —, assignments, functions, classes);
/// `None` when it does not parse.
pub fn module_names(text: &str) -> Option<BTreeSet<String>> {
    let tree = parse(text)?;
    if tree.root_node().has_error() {
        return None;
    }
    Some(
        module_bindings(&tree, text)
            .into_iter()
            .flat_map(|b| b.names)
            .collect(),
    )
}

/// The text with what it uses and no longer binds carried over from `old` (and missing
/// standard imports added), with a note each; `None` when nothing is missing.
fn restore_names(old: Option<&str>, new: &str) -> Option<(String, Vec<String>)> {
    let tree = parse(new)?;
    if tree.root_node().has_error() {
        return None;
    }
    let found = names(&tree, new);
    if found.wildcard {
        return None;
    }
    let old_tree = old.and_then(parse);
    let old_bindings = match (old, &old_tree) {
        (Some(old), Some(tree)) => module_bindings(tree, old),
        _ => Vec::new(),
    };
    let mut bound = found.bound;
    let mut wanted: Vec<String> = found.used.difference(&bound).cloned().collect();
    let mut dotted = found.dotted;
    // (kind, place in the old text, source): stable order within each kind.
    let mut carried: Vec<(Carried, usize, String)> = Vec::new();
    let mut notes = Vec::new();
    let mut taken = vec![false; old_bindings.len()];
    // Carried text may itself use what the old text bound (a constant built by a helper).
    while let Some(name) = wanted.pop() {
        if bound.contains(&name) {
            continue;
        }
        let from_old = old_bindings.iter().position(|b| b.names.contains(&name));
        match from_old {
            Some(i) if !taken[i] => {
                taken[i] = true;
                let binding = &old_bindings[i];
                bound.extend(binding.names.iter().cloned());
                carried.push((binding.kind, i, binding.text.trim_end().to_string()));
                let what = match binding.kind {
                    Carried::Import => format!("`{}`", first_line(binding.text)),
                    Carried::Constant => format!("the constant `{name}`"),
                    Carried::Definition => format!("the definition of `{name}`"),
                };
                notes.push(format!(
                    "keel kept {what} from the file's previous version: the new code uses `{name}`"
                ));
                wanted.extend(binding.found.used.difference(&bound).cloned());
                dotted.extend(binding.found.dotted.iter().cloned());
            }
            Some(_) => {}
            None if dotted.contains(&name) && STDLIB_MODULES.contains(&name.as_str()) => {
                bound.insert(name.clone());
                carried.push((Carried::Import, usize::MAX, format!("import {name}")));
                notes.push(format!(
                    "keel added `import {name}`: the code uses `{name}` and did not import it"
                ));
            }
            None => {}
        }
    }
    if carried.is_empty() {
        return None;
    }
    // Imports, then constants, then definitions; each group in the old file's order.
    carried.sort_by_key(|a| (a.0, a.1));
    let carried: Vec<(Carried, String)> = carried.into_iter().map(|(k, _, s)| (k, s)).collect();
    let text = insert_preamble(&tree, new, &carried);
    parses(&text).then_some((text, notes))
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim_end()
}

/// `carried` inserted after the new text's leading docstring and imports.
fn insert_preamble(tree: &Tree, text: &str, carried: &[(Carried, String)]) -> String {
    let root = tree.root_node();
    let mut at = 0;
    let mut cursor = root.walk();
    for statement in root.children(&mut cursor) {
        let leading = match statement.kind() {
            "import_statement" | "import_from_statement" | "future_import_statement" => true,
            "comment" => true,
            "expression_statement" => statement
                .named_child(0)
                .is_some_and(|s| s.kind() == "string"),
            _ => false,
        };
        if !leading {
            break;
        }
        let end = statement.end_byte();
        at = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
    }
    let mut block = String::new();
    let mut last: Option<Carried> = None;
    for (kind, source) in carried {
        match (last, kind) {
            (None, Carried::Definition) if at > 0 => block.push_str("\n\n"),
            (None, Carried::Constant) if at > 0 => block.push('\n'),
            (Some(Carried::Definition), _) | (Some(_), Carried::Definition) => {
                block.push_str("\n\n\n")
            }
            (Some(previous), _) if previous != *kind => block.push_str("\n\n"),
            (Some(_), _) => block.push('\n'),
            (None, _) => {}
        }
        block.push_str(source);
        last = Some(*kind);
    }
    let rest = &text[at..];
    let gap = match last {
        Some(Carried::Definition) => "\n\n\n",
        _ if rest.trim().is_empty() => "\n",
        _ => "\n\n",
    };
    let mut out = String::with_capacity(text.len() + block.len() + 4);
    out.push_str(&text[..at]);
    if at > 0 && !text[..at].ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&block);
    out.push_str(gap);
    out.push_str(rest.trim_start_matches('\n'));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mended(before: Option<&str>, after: &str) -> Mended {
        mend(before, after).expect("a mend")
    }

    #[test]
    fn a_rewrite_keeps_the_import_the_new_code_uses() {
        let old = "\"\"\"Slugs.\"\"\"\n\nimport re\n\n\ndef slugify(title):\n    return re.sub(r\"[^a-z0-9]\", \"-\", title.lower())\n";
        let new = "def slugify(title):\n    return re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')\n";
        let got = mended(Some(old), new);
        assert_eq!(
            got.text,
            "import re\n\ndef slugify(title):\n    return re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')\n"
        );
        assert_eq!(
            got.notes,
            ["keel kept `import re` from the file's previous version: the new code uses `re`"]
        );
    }

    #[test]
    fn constants_and_helpers_come_back_after_the_imports() {
        let old = "from decimal import Decimal\n\nBASE_RATE = Decimal(\"4.5\")\nPER_KG = 2\nUNUSED = 1\n\n\ndef _kg(grams):\n    return grams / 1000\n\n\ndef shipping_cost(grams):\n    return BASE_RATE + PER_KG * _kg(grams)\n";
        let new = "\"\"\"Rates.\"\"\"\nimport math\n\n\ndef shipping_cost(grams, total=0):\n    if total >= 100:\n        return 0\n    return BASE_RATE + PER_KG * math.ceil(_kg(grams))\n";
        let got = mended(Some(old), new);
        assert_eq!(
            got.text,
            "\"\"\"Rates.\"\"\"\nimport math\nfrom decimal import Decimal\n\nBASE_RATE = Decimal(\"4.5\")\nPER_KG = 2\n\n\ndef _kg(grams):\n    return grams / 1000\n\n\ndef shipping_cost(grams, total=0):\n    if total >= 100:\n        return 0\n    return BASE_RATE + PER_KG * math.ceil(_kg(grams))\n"
        );
        assert_eq!(got.notes.len(), 4, "{:?}", got.notes);
        assert!(
            got.notes
                .iter()
                .any(|n| n.contains("the constant `PER_KG`"))
        );
        assert!(
            got.notes
                .iter()
                .any(|n| n.contains("the definition of `_kg`"))
        );
        assert!(
            got.notes
                .iter()
                .any(|n| n.contains("`from decimal import Decimal`"))
        );
        assert!(!got.text.contains("UNUSED"));
    }

    #[test]
    fn a_standard_module_used_and_not_imported_is_imported() {
        let new = "def abbreviate(words):\n    return ''.join(w[0] for w in re.split(r\"[ -]+\", words)).upper()\n";
        let got = mended(None, new);
        assert!(
            got.text.starts_with("import re\n\ndef abbreviate"),
            "{}",
            got.text
        );
        assert_eq!(
            got.notes,
            ["keel added `import re`: the code uses `re` and did not import it"]
        );
    }

    #[test]
    fn names_the_code_binds_itself_are_left_alone() {
        let old = "import re\nLIMIT = 3\n\ndef f(x):\n    return re.match('a', x)\n";
        let cases = [
            "def f(re, LIMIT=2):\n    return re.match('a', LIMIT)\n",
            "def f(x):\n    re = object()\n    LIMIT = 4\n    return re.x, LIMIT\n",
            "def f(x):\n    for re in x:\n        return [LIMIT for LIMIT in re]\n",
            "def f(x):\n    with open(x) as re:\n        return re.read()\n",
            "def f(x):\n    try:\n        pass\n    except ValueError as re:\n        return re.args\n",
            "from shutil import *\ndef f(x):\n    return re.match(x)\n",
            "def f(x):\n    return (re := x).y\n",
            "def f(x):\n    return x.re.match(LIMIT=1)\n",
        ];
        for case in cases {
            assert_eq!(mend(Some(old), case), None, "{case}");
        }
        // Used in a default value: a use, not a binding.
        let got = mended(Some(old), "def f(x, limit=LIMIT):\n    return x\n");
        assert!(got.text.contains("LIMIT = 3"), "{}", got.text);
        // An unknown name, and a module not in the list, are not guessed.
        assert_eq!(
            mend(None, "def f():\n    return numpy.zeros(3) + helper()\n"),
            None
        );
    }

    #[test]
    fn module_names_are_the_top_level_bindings() {
        let text = "import os.path\nfrom x import (a,\n    b as c)\nLIMIT = 3\n\n@wraps\ndef f():\n    inner = 1\n\nclass K:\n    def m(self):\n        pass\n";
        let names: Vec<String> = module_names(text).unwrap().into_iter().collect();
        // Generous with imports (`b` of `b as c`, `path` of `os.path`), never the module
        // imported from, nor what is bound inside a function or class.
        assert_eq!(names, ["K", "LIMIT", "a", "b", "c", "f", "os", "path"]);
        assert_eq!(module_names("def (:\n"), None);
    }

    #[test]
    fn what_cannot_be_mended_is_left_as_it_is() {
        // A syntax error that is not a quote.
        assert_eq!(mend(None, "def f(:\n    return 1\n"), None);
        // A string holding both kinds of quote.
        assert_eq!(mend(None, "x = 'say \"can't\" twice'\n"), None);
        // A file that parses and misses nothing.
        assert_eq!(mend(Some("x = 1\n"), "y = 2\n"), None);
        // An old file that did not parse is no source.
        assert_eq!(
            mend(
                Some("import re\ndef (:\n"),
                "def f():\n    return helper()\n"
            ),
            None
        );
    }
}
