//! Ranking: a graph whose nodes are files and whose edges go from a file that uses a
//! name to each file that defines it, weighted by how often and by how telling the
//! name is; PageRank over it, personalised to the focus (the files the task and the
//! conversation mention, the files edited); each definition then gets the rank that
//! flows to it along its name's edges.

use std::collections::{HashMap, HashSet};

use crate::tags::{Kind, Tag};

const DAMPING: f64 = 0.85;
/// A name defined in more files than this (`get`, `__init__`, `new`) says nothing about
/// which of them a file needs, and would add users × definers edges: it is left out.
const MAX_DEFINERS: usize = 20;
const ITERATIONS: usize = 40;

/// What the task is about: files (relative paths) and names it mentions.
#[derive(Debug, Clone, Default)]
pub struct Focus {
    pub files: Vec<String>,
    pub names: Vec<String>,
}

/// How much a name tells about a file's dependencies.
fn weight(name: &str, defined_in: usize, named: bool) -> f64 {
    let mut w = 1.0;
    if named {
        w *= 10.0;
    }
    let words = name.contains('_') || name.chars().skip(1).any(|c| c.is_uppercase());
    if name.len() >= 8 && words {
        w *= 10.0;
    }
    if name.starts_with('_') {
        w *= 0.1;
    }
    if defined_in > 5 {
        w *= 0.1;
    }
    w
}

/// The definitions of `files`, best first, each with its score. Definitions in the
/// focus files come last (the model sees those files anyway).
pub(crate) fn rank<'a>(
    files: &[(&'a str, &'a [Tag])],
    focus: &Focus,
) -> Vec<(&'a str, &'a Tag, f64)> {
    let index: HashMap<&str, usize> = files
        .iter()
        .enumerate()
        .map(|(i, (f, _))| (*f, i))
        .collect();
    let n = files.len();
    if n == 0 {
        return Vec::new();
    }
    let mut defines: HashMap<&str, HashSet<usize>> = HashMap::new();
    let mut references: HashMap<&str, HashMap<usize, usize>> = HashMap::new();
    for (i, (_, tags)) in files.iter().enumerate() {
        for tag in tags.iter() {
            match tag.kind {
                Kind::Def => {
                    defines.entry(&tag.name).or_default().insert(i);
                }
                Kind::Ref => {
                    *references
                        .entry(&tag.name)
                        .or_default()
                        .entry(i)
                        .or_default() += 1;
                }
            }
        }
    }
    let named: HashSet<&str> = focus.names.iter().map(String::as_str).collect();
    let focused: HashSet<usize> = focus
        .files
        .iter()
        .filter_map(|f| index.get(f.as_str()).copied())
        .collect();
    // Edges (from, to, name) with weights.
    let mut edges: Vec<(usize, usize, &str, f64)> = Vec::new();
    for (name, definers) in &defines {
        let Some(users) = references
            .get(name)
            .filter(|_| definers.len() <= MAX_DEFINERS)
        else {
            continue;
        };
        let w = weight(name, definers.len(), named.contains(name));
        for (&user, &count) in users {
            let boost = if focused.contains(&user) { 50.0 } else { 1.0 };
            for &definer in definers {
                edges.push((user, definer, name, w * boost * (count as f64).sqrt()));
            }
        }
    }
    let mut out_weight = vec![0.0; n];
    for &(from, _, _, w) in &edges {
        out_weight[from] += w;
    }
    // Personalisation: the focus files, else every file alike.
    let personal: Vec<f64> = if focused.is_empty() {
        vec![1.0 / n as f64; n]
    } else {
        (0..n)
            .map(|i| {
                if focused.contains(&i) {
                    1.0 / focused.len() as f64
                } else {
                    0.0
                }
            })
            .collect()
    };
    let mut rank = personal.clone();
    for _ in 0..ITERATIONS {
        let mut next = vec![0.0; n];
        let mut dangling = 0.0;
        for i in 0..n {
            if out_weight[i] == 0.0 {
                dangling += rank[i];
            }
        }
        for &(from, to, _, w) in &edges {
            next[to] += DAMPING * rank[from] * w / out_weight[from];
        }
        for i in 0..n {
            next[i] += (DAMPING * dangling + (1.0 - DAMPING)) * personal[i];
        }
        rank = next;
    }
    // Each definition gets what flows to it along its name's edges.
    let mut score: HashMap<(usize, &str), f64> = HashMap::new();
    for &(from, to, name, w) in &edges {
        *score.entry((to, name)).or_default() += rank[from] * w / out_weight[from];
    }
    let mut ranked: Vec<(&str, &Tag, f64)> = Vec::new();
    for (i, (file, tags)) in files.iter().enumerate() {
        let mut seen = HashSet::new();
        for tag in tags.iter().filter(|t| t.kind == Kind::Def) {
            if !seen.insert((&tag.name, tag.line)) {
                continue;
            }
            // Unreferenced definitions keep a little of their file's rank.
            let s = score.get(&(i, tag.name.as_str())).copied().unwrap_or(0.0) + rank[i] * 1e-3;
            let s = if focused.contains(&i) { s * 1e-6 } else { s };
            ranked.push((*file, tag, s));
        }
    }
    ranked.sort_by(|a, b| {
        b.2.partial_cmp(&a.2)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(b.0))
            .then_with(|| a.1.line.cmp(&b.1.line))
    });
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::def;

    fn reference(name: &str) -> Tag {
        Tag {
            name: name.into(),
            kind: Kind::Ref,
            line: 0,
            text: String::new(),
        }
    }

    fn rank_of<'a>(
        files: &'a std::collections::BTreeMap<String, Vec<Tag>>,
        focus: &Focus,
    ) -> Vec<(&'a str, &'a Tag, f64)> {
        let list: Vec<(&str, &[Tag])> = files
            .iter()
            .map(|(f, t)| (f.as_str(), t.as_slice()))
            .collect();
        rank(&list, focus)
    }

    #[test]
    fn what_the_focus_uses_ranks_first() {
        let mut files = std::collections::BTreeMap::new();
        files.insert(
            "app.py".to_string(),
            vec![reference("compute_total"), def("main", 1)],
        );
        files.insert(
            "billing.py".to_string(),
            vec![def("compute_total", 0), reference("helper")],
        );
        files.insert(
            "util.py".to_string(),
            vec![def("helper", 0), def("unused_thing", 5)],
        );
        files.insert("other.py".to_string(), vec![def("lonely", 0)]);
        let focus = Focus {
            files: vec!["app.py".into()],
            names: vec![],
        };
        let ranked = rank_of(&files, &focus);
        let order: Vec<(&str, &str)> = ranked
            .iter()
            .map(|(f, t, _)| (*f, t.name.as_str()))
            .collect();
        assert_eq!(order[0], ("billing.py", "compute_total"));
        assert_eq!(order[1], ("util.py", "helper"));
        // The focus file's own definitions come after what it uses.
        let main = order.iter().position(|o| *o == ("app.py", "main"));
        assert!(main > Some(1), "{order:?}");
        // A name the task mentions lifts its definition.
        let focus = Focus {
            files: vec![],
            names: vec!["lonely".into()],
        };
        let mut files = std::collections::BTreeMap::new();
        files.insert(
            "app.py".to_string(),
            vec![reference("helper"), reference("lonely")],
        );
        files.insert("util.py".to_string(), vec![def("helper", 0)]);
        files.insert("other.py".to_string(), vec![def("lonely", 0)]);
        let ranked = rank_of(&files, &focus);
        assert_eq!(ranked[0].1.name, "lonely");
    }
}
