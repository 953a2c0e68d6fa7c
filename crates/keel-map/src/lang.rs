//! The languages the map knows: a grammar and its tags query, by file extension.

use std::path::Path;
use std::sync::OnceLock;

use tree_sitter::{Language, Query};

/// References in C (and C++): calls and type names.
const C_REFERENCES: &str = "(call_expression function: (identifier) @name) @reference.call\n(type_identifier) @name @reference.type";
/// C++ calls of members and qualified names.
const CPP_REFERENCES: &str = "(call_expression function: (field_expression field: (field_identifier) @name)) @reference.call\n(call_expression function: (qualified_identifier name: (identifier) @name)) @reference.call";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Lang {
    Python,
    Rust,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
    C,
    Cpp,
    Java,
}

impl Lang {
    pub(crate) fn of(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?;
        Some(match extension {
            "py" | "pyi" => Lang::Python,
            "rs" => Lang::Rust,
            "js" | "mjs" | "cjs" | "jsx" => Lang::JavaScript,
            "ts" | "mts" | "cts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            "go" => Lang::Go,
            "c" | "h" => Lang::C,
            "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" => Lang::Cpp,
            "java" => Lang::Java,
            _ => return None,
        })
    }

    pub(crate) fn language(self) -> Language {
        match self {
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
            Lang::C => tree_sitter_c::LANGUAGE.into(),
            Lang::Cpp => tree_sitter_cpp::LANGUAGE.into(),
            Lang::Java => tree_sitter_java::LANGUAGE.into(),
        }
    }

    /// The grammar's tags query. TypeScript's own covers only what it adds to
    /// JavaScript, so the two are combined; C's and C++'s name no references, so calls
    /// and type names are added.
    fn tags_source(self) -> String {
        match self {
            Lang::Python => tree_sitter_python::TAGS_QUERY.into(),
            Lang::Rust => tree_sitter_rust::TAGS_QUERY.into(),
            Lang::JavaScript => tree_sitter_javascript::TAGS_QUERY.into(),
            Lang::TypeScript | Lang::Tsx => format!(
                "{}\n{}",
                tree_sitter_javascript::TAGS_QUERY,
                tree_sitter_typescript::TAGS_QUERY
            ),
            Lang::Go => tree_sitter_go::TAGS_QUERY.into(),
            Lang::C => format!("{}\n{C_REFERENCES}", tree_sitter_c::TAGS_QUERY),
            Lang::Cpp => format!(
                "{}\n{C_REFERENCES}\n{CPP_REFERENCES}",
                tree_sitter_cpp::TAGS_QUERY
            ),
            Lang::Java => tree_sitter_java::TAGS_QUERY.into(),
        }
    }

    /// The compiled tags query (once per language per process); `None` if the grammar's
    /// query does not compile against it.
    pub(crate) fn query(self) -> Option<&'static Query> {
        static QUERIES: [OnceLock<Option<Query>>; 9] = [const { OnceLock::new() }; 9];
        let slot = &QUERIES[self as usize];
        slot.get_or_init(|| {
            let language = self.language();
            Query::new(&language, &self.tags_source())
                .or_else(|_| match self {
                    // Should the combined query not fit the grammar, TypeScript's alone.
                    Lang::TypeScript | Lang::Tsx => {
                        Query::new(&language, tree_sitter_typescript::TAGS_QUERY)
                    }
                    _ => Err(tree_sitter::QueryError {
                        row: 0,
                        column: 0,
                        offset: 0,
                        message: String::new(),
                        kind: tree_sitter::QueryErrorKind::Syntax,
                    }),
                })
                .ok()
        })
        .as_ref()
    }
}

/// Whether the map reads this file.
pub fn supported(path: &Path) -> bool {
    Lang::of(path).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grammars_tags_query_compiles() {
        for lang in [
            Lang::Python,
            Lang::Rust,
            Lang::JavaScript,
            Lang::TypeScript,
            Lang::Tsx,
            Lang::Go,
            Lang::C,
            Lang::Cpp,
            Lang::Java,
        ] {
            assert!(lang.query().is_some(), "{lang:?}");
        }
    }
}
