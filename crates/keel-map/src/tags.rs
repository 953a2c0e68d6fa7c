//! The tags of one file: its definitions and the names it references, read with the
//! grammar's tags query.

use tree_sitter::{Parser, QueryCursor, StreamingIterator};

use crate::lang::Lang;

/// Longest signature line kept.
const TEXT_CHARS: usize = 160;
/// Files larger than this are not parsed (generated code, bundles).
pub(crate) const MAX_FILE_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Def,
    Ref,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub name: String,
    pub kind: Kind,
    /// 0-based line of the name.
    pub line: u32,
    /// A definition's line, trimmed (its signature, mostly).
    pub text: String,
}

/// A definition tag, for tests.
#[cfg(test)]
pub(crate) fn def(name: &str, line: u32) -> Tag {
    Tag {
        name: name.into(),
        kind: Kind::Def,
        line,
        text: format!("def {name}():"),
    }
}

/// The tags of `source`, a file of language `lang`.
pub(crate) fn read(lang: Lang, source: &[u8]) -> Vec<Tag> {
    let mut parser = Parser::new();
    let (Some(query), Ok(())) = (lang.query(), parser.set_language(&lang.language())) else {
        return Vec::new();
    };
    let Some(tree) = parser.parse(source, None) else {
        return Vec::new();
    };
    let Some(name_index) = query.capture_index_for_name("name") else {
        return Vec::new();
    };
    let names = query.capture_names();
    let lines: Vec<&[u8]> = source.split(|b| *b == b'\n').collect();
    let mut tags = Vec::new();
    let mut cursor = QueryCursor::new();
    let mut matches = cursor.matches(query, tree.root_node(), source);
    while let Some(found) = matches.next() {
        let mut kind = None;
        let mut name = None;
        for capture in found.captures() {
            if capture.index == name_index {
                name = Some(capture.node);
                continue;
            }
            let capture_name = names[capture.index as usize];
            if capture_name.starts_with("definition.") {
                kind = Some(Kind::Def);
            } else if capture_name.starts_with("reference.") {
                kind = Some(Kind::Ref);
            }
        }
        let (Some(kind), Some(node)) = (kind, name) else {
            continue;
        };
        let Ok(text) = node.utf8_text(source) else {
            continue;
        };
        let line = node.start_position().row;
        let signature = match kind {
            Kind::Def => lines
                .get(line)
                .map(|l| {
                    String::from_utf8_lossy(l)
                        .trim()
                        .chars()
                        .take(TEXT_CHARS)
                        .collect()
                })
                .unwrap_or_default(),
            Kind::Ref => String::new(),
        };
        tags.push(Tag {
            name: text.to_string(),
            kind,
            line: line as u32,
            text: signature,
        });
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs_and_refs(lang: Lang, source: &str) -> (Vec<String>, Vec<String>) {
        let tags = read(lang, source.as_bytes());
        let of = |kind| {
            let mut names: Vec<String> = tags
                .iter()
                .filter(|t| t.kind == kind)
                .map(|t| t.name.clone())
                .collect();
            names.sort();
            names.dedup();
            names
        };
        (of(Kind::Def), of(Kind::Ref))
    }

    #[test]
    fn definitions_and_references_in_each_language() {
        let cases: &[(Lang, &str, &[&str], &str)] = &[
            (
                Lang::Python,
                "class Shop:\n    def total(self):\n        return tax(1)\n",
                &["Shop", "total"],
                "tax",
            ),
            (
                Lang::Rust,
                "struct Shop;\nfn total() -> u32 { tax(1) }\n",
                &["Shop", "total"],
                "tax",
            ),
            (
                Lang::JavaScript,
                "class Shop {}\nfunction total() { return tax(1); }\n",
                &["Shop", "total"],
                "tax",
            ),
            (
                Lang::TypeScript,
                "interface Shop { a: number }\nfunction total(): number { return tax(1); }\n",
                &["Shop", "total"],
                "tax",
            ),
            (
                Lang::Go,
                "package shop\ntype Shop struct{}\nfunc Total() int { return tax(1) }\n",
                &["Shop", "Total"],
                "tax",
            ),
            (
                Lang::C,
                "struct shop { int a; };\nint total(void) { return tax(1); }\n",
                &["shop", "total"],
                "tax",
            ),
            (
                Lang::Cpp,
                "class Shop {};\nint total() { return tax(1); }\n",
                &["Shop", "total"],
                "tax",
            ),
            (
                Lang::Java,
                "class Shop { int total() { return tax(1); } }\n",
                &["Shop", "total"],
                "tax",
            ),
        ];
        for (lang, source, defs, reference) in cases {
            let (found_defs, found_refs) = defs_and_refs(*lang, source);
            for def in *defs {
                assert!(
                    found_defs.contains(&def.to_string()),
                    "{lang:?}: {found_defs:?}"
                );
            }
            assert!(
                found_refs.contains(&reference.to_string()),
                "{lang:?}: {found_refs:?}"
            );
        }
        let tags = read(Lang::Python, b"def total(a, b):\n    pass\n");
        assert_eq!(tags[0].text, "def total(a, b):");
        assert_eq!(tags[0].line, 0);
    }
}
