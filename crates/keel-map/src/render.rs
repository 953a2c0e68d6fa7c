//! Rendering ranked definitions within a token budget: the best files, each with its
//! best definitions' lines in file order.

use std::collections::BTreeMap;

/// A ranked definition to show: its file, its 0-based line and the line's text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Line<'a> {
    pub file: &'a str,
    pub line: u32,
    pub text: &'a str,
}

/// The map of the first `count` of `ranked`: each file once, its lines in order.
fn render_top(ranked: &[Line<'_>], count: usize) -> String {
    let mut by_file: BTreeMap<&str, (usize, Vec<&Line<'_>>)> = BTreeMap::new();
    for (position, tag) in ranked.iter().take(count).enumerate() {
        let entry = by_file.entry(tag.file).or_insert((position, Vec::new()));
        entry.1.push(tag);
    }
    let mut files: Vec<(&str, (usize, Vec<&Line<'_>>))> = by_file.into_iter().collect();
    // Files in the order of their best definition.
    files.sort_by_key(|(_, (first, _))| *first);
    let mut out = String::new();
    for (file, (_, mut tags)) in files {
        tags.sort_by_key(|t| t.line);
        tags.dedup_by_key(|t| t.line);
        out.push_str(file);
        out.push_str(":\n");
        for tag in tags {
            out.push_str(&format!("{:>5}│ {}\n", tag.line + 1, tag.text));
        }
    }
    out
}

/// The largest map of the best definitions whose token count (by `tokens`) is within
/// `budget`; empty when not even one fits.
pub(crate) fn render(ranked: &[Line<'_>], budget: usize, tokens: &dyn Fn(&str) -> usize) -> String {
    // Every line takes a token at least: no more lines than the budget.
    let (mut low, mut high) = (0, ranked.len().min(budget));
    let mut best = String::new();
    while low < high {
        let middle = (low + high).div_ceil(2);
        let text = render_top(ranked, middle);
        if tokens(&text) <= budget {
            best = text;
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_definitions_that_fit_grouped_by_file() {
        let line = |file, line, text| Line { file, line, text };
        let ranked = vec![
            line("x.py", 9, "def a():"),
            line("y.py", 0, "def b():"),
            line("x.py", 2, "def c():"),
        ];
        let bytes = |s: &str| s.len();
        assert_eq!(
            render(&ranked, 1000, &bytes),
            "x.py:\n    3│ def c():\n   10│ def a():\ny.py:\n    1│ def b():\n"
        );
        let one = render(&ranked, 25, &bytes);
        assert_eq!(one, "x.py:\n   10│ def a():\n");
        assert_eq!(render(&ranked, 3, &bytes), "");
    }
}
