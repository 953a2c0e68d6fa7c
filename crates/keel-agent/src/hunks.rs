//! A change to a file as hunks — runs of changed lines — and the file with only some of
//! them applied, for taking back the part of a change that broke a test (see
//! `session/trim.rs`).

use std::ops::Range;

use similar::{Algorithm, DiffTag, capture_diff_slices};

/// One run of changed lines: these lines of the old text became those of the new.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hunk {
    old: Range<usize>,
    new: Range<usize>,
}

/// The hunks of the change from one text to another.
#[derive(Debug)]
pub(crate) struct Hunks<'a> {
    old: Vec<&'a str>,
    new: Vec<&'a str>,
    hunks: Vec<Hunk>,
}

impl<'a> Hunks<'a> {
    pub(crate) fn new(old: &'a str, new: &'a str) -> Self {
        let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
        let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
        let mut hunks: Vec<Hunk> = Vec::new();
        for op in capture_diff_slices(Algorithm::Myers, &old_lines, &new_lines) {
            let (tag, old, new) = op.as_tag_tuple();
            if tag == DiffTag::Equal {
                continue;
            }
            match hunks.last_mut() {
                // Adjacent changes are one hunk.
                Some(last) if last.old.end == old.start && last.new.end == new.start => {
                    last.old.end = old.end;
                    last.new.end = new.end;
                }
                _ => hunks.push(Hunk { old, new }),
            }
        }
        Self {
            old: old_lines,
            new: new_lines,
            hunks,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.hunks.len()
    }

    /// The old text with the hunks `keep` marks applied (`keep[i]` for hunk `i`).
    pub(crate) fn apply(&self, keep: &[bool]) -> String {
        let mut out = String::new();
        let mut at = 0;
        for (i, hunk) in self.hunks.iter().enumerate() {
            out.extend(self.old[at..hunk.old.start].iter().copied());
            let lines = if keep.get(i).copied().unwrap_or(true) {
                &self.new[hunk.new.clone()]
            } else {
                &self.old[hunk.old.clone()]
            };
            out.extend(lines.iter().copied());
            at = hunk.old.end;
        }
        out.extend(self.old[at..].iter().copied());
        out
    }

    /// Hunk `i` for the model: its line in the new text, the lines it removed (`-`) and
    /// added (`+`).
    pub(crate) fn show(&self, i: usize) -> String {
        let Some(hunk) = self.hunks.get(i) else {
            return String::new();
        };
        let mut out = format!("at line {}:\n", hunk.new.start + 1);
        for line in &self.old[hunk.old.clone()] {
            out.push_str("- ");
            out.push_str(line.trim_end_matches('\n'));
            out.push('\n');
        }
        for line in &self.new[hunk.new.clone()] {
            out.push_str("+ ");
            out.push_str(line.trim_end_matches('\n'));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "def reserve(stock, sku, quantity):\n    \"\"\"Takes some.\"\"\"\n    stock[sku] = available(stock, sku) - quantity\n    return stock[sku]\n";
    const NEW: &str = "def reserve(stock, sku, quantity):\n    if quantity > available(stock, sku):\n        raise OutOfStock(sku)\n    stock[sku] = available(stock, sku) - quantity\n    return stock\n";

    #[test]
    fn a_change_splits_into_runs_of_changed_lines() {
        let hunks = Hunks::new(OLD, NEW);
        assert_eq!(hunks.len(), 2);
        assert_eq!(hunks.apply(&[true, true]), NEW);
        assert_eq!(hunks.apply(&[false, false]), OLD);
        // The check kept, the return taken back: the fix without the slip.
        assert_eq!(
            hunks.apply(&[true, false]),
            "def reserve(stock, sku, quantity):\n    if quantity > available(stock, sku):\n        raise OutOfStock(sku)\n    stock[sku] = available(stock, sku) - quantity\n    return stock[sku]\n"
        );
        assert_eq!(
            hunks.show(1),
            "at line 5:\n-     return stock[sku]\n+     return stock\n"
        );
    }

    #[test]
    fn texts_without_a_final_newline_and_added_ends_apply() {
        let hunks = Hunks::new("a\nb", "a\nc\nd");
        assert_eq!(hunks.apply(&[true]), "a\nc\nd");
        assert_eq!(hunks.apply(&[false]), "a\nb");
        let same = Hunks::new("x\n", "x\n");
        assert_eq!(same.len(), 0);
        assert_eq!(same.apply(&[]), "x\n");
    }
}
