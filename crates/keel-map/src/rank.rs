//! Ranking: a graph whose nodes are files and whose edges go from a file that uses a
//! name to each file that defines it, weighted by how often and by how telling the
//! name is; PageRank over it, personalised to the focus (the files the task and the
//! conversation mention, the files edited); each definition then gets the rank that
//! flows to it along its name's edges.

use std::collections::HashSet;

use crate::graph::Graph;
#[cfg(test)]
use crate::tags::Tag;

const DAMPING: f64 = 0.85;
/// A name defined in more files than this (`get`, `__init__`, `new`) says nothing about
/// which of them a file needs, and would add users × definers edges: it is left out.
const MAX_DEFINERS: usize = 20;
const ITERATIONS: usize = 40;
/// With a focus, definitions scoring under this share of the best one are left out.
const FOCUSED_CUT: f64 = 1e-4;
/// The total change of a round under which the ranks count as settled: below what 40
/// rounds from the start leave (0.85^40 of the first round's change).
const SETTLED: f64 = 1e-4;

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

/// The definitions of `files`, best first, as (file, name, score). Definitions in the
/// focus files come last (the model sees those files anyway).
#[cfg(test)]
pub(crate) fn rank(files: &[(&str, &[Tag])], focus: &Focus) -> Vec<(String, String, f64)> {
    let mut graph = Graph::default();
    for (path, tags) in files {
        graph.set(path, tags);
    }
    ranked(&graph, focus, usize::MAX, None)
        .0
        .into_iter()
        .map(|(slot, def, score)| {
            let name = graph.defs(slot)[def as usize].name;
            (
                graph.path(slot).to_string(),
                graph.name_text[name as usize].clone(),
                score,
            )
        })
        .collect()
}

/// The best `top` definitions of the graph's files as (file slot, index in the file's
/// definitions, score),
/// best first (ties by path, then line).
///
/// `start` is the file ranks of an earlier call with the same focus, when the caller kept
/// them: PageRank then starts from there and stops as soon as it has settled, which after
/// one file changed takes a few rounds instead of [`ITERATIONS`]. The file ranks come
/// back with the definitions.
pub(crate) fn ranked(
    graph: &Graph,
    focus: &Focus,
    top: usize,
    start: Option<&[f64]>,
) -> (Vec<(u32, u32, f64)>, Vec<f64>) {
    let n = graph.slot_count();
    let live: Vec<u32> = graph.live().map(|(slot, _)| slot).collect();
    if live.is_empty() || top == 0 {
        return (Vec::new(), Vec::new());
    }
    let named: HashSet<u32> = focus.names.iter().filter_map(|n| graph.name(n)).collect();
    let focused: HashSet<u32> = focus.files.iter().filter_map(|f| graph.slot(f)).collect();
    // A file that uses a name sends the same share to every file defining it, so the
    // graph is kept as (user, name) pairs: the edges to the k definers all at once.
    // `active` holds the names with edges; `pairs` (user, index in `active`, weight).
    let mut active: Vec<u32> = Vec::new();
    let mut active_of: Vec<u32> = vec![u32::MAX; graph.name_text.len()];
    let mut pairs: Vec<(u32, u32, f64)> = Vec::new();
    let mut out_weight = vec![0.0; n];
    for (id, definers) in graph.definers.iter().enumerate() {
        let users = &graph.users[id];
        if definers.is_empty() || definers.len() > MAX_DEFINERS || users.is_empty() {
            continue;
        }
        let w = weight(
            &graph.name_text[id],
            definers.len(),
            named.contains(&(id as u32)),
        );
        let at = active.len() as u32;
        active_of[id] = at;
        active.push(id as u32);
        for &(user, count) in users {
            let boost = if focused.contains(&user) { 50.0 } else { 1.0 };
            let weight = w * boost * (count as f64).sqrt();
            pairs.push((user, at, weight));
            out_weight[user as usize] += weight * definers.len() as f64;
        }
    }
    // Personalisation: the focus files, else every file alike.
    let mut personal = vec![0.0; n];
    if focused.is_empty() {
        for &slot in &live {
            personal[slot as usize] = 1.0 / live.len() as f64;
        }
    } else {
        for &slot in &focused {
            personal[slot as usize] = 1.0 / focused.len() as f64;
        }
    }
    // What each pair passes to each of its name's definers per unit of its user's rank.
    let share: Vec<f64> = pairs
        .iter()
        .map(|&(from, _, w)| w / out_weight[from as usize])
        .collect();
    let mut rank = match start {
        Some(start) => {
            let mut rank = start.to_vec();
            rank.resize(n, 0.0);
            rank
        }
        None => personal.clone(),
    };
    let dangling_files: Vec<usize> = live
        .iter()
        .map(|&i| i as usize)
        .filter(|&i| out_weight[i] == 0.0)
        .collect();
    let mut next = vec![0.0; n];
    let mut flow = vec![0.0; active.len()];
    for _ in 0..ITERATIONS {
        flow.iter_mut().for_each(|x| *x = 0.0);
        for (&(from, at, _), &share) in pairs.iter().zip(&share) {
            flow[at as usize] += rank[from as usize] * share;
        }
        next.iter_mut().for_each(|x| *x = 0.0);
        for (&id, &f) in active.iter().zip(&flow) {
            for &definer in &graph.definers[id as usize] {
                next[definer as usize] += DAMPING * f;
            }
        }
        let dangling: f64 = dangling_files.iter().map(|&i| rank[i]).sum();
        let base = DAMPING * dangling + (1.0 - DAMPING);
        let mut moved = 0.0;
        for &slot in &live {
            let i = slot as usize;
            next[i] += base * personal[i];
            moved += (next[i] - rank[i]).abs();
        }
        std::mem::swap(&mut rank, &mut next);
        // Warm-started and settled: closer than ITERATIONS rounds from the uniform
        // start get (a cold start always runs them all: the same map every time).
        if start.is_some() && moved < SETTLED {
            break;
        }
    }
    // Each definition gets what flows to its name (the same for each definer).
    flow.iter_mut().for_each(|x| *x = 0.0);
    for (&(from, at, _), &share) in pairs.iter().zip(&share) {
        flow[at as usize] += rank[from as usize] * share;
    }
    let mut scored: Vec<(u32, u32, u32, f64)> = Vec::new();
    for &slot in &live {
        let file_rank = rank[slot as usize] * 1e-3;
        let focus_file = focused.contains(&slot);
        for (index, def) in graph.defs(slot).iter().enumerate() {
            let received = match active_of[def.name as usize] {
                u32::MAX => 0.0,
                at => flow[at as usize],
            };
            // Unreferenced definitions keep a little of their file's rank.
            let s = received + file_rank;
            let s = if focus_file { s * 1e-6 } else { s };
            scored.push((slot, index as u32, def.line, s));
        }
    }
    let order = |a: &(u32, u32, u32, f64), b: &(u32, u32, u32, f64)| {
        b.3.partial_cmp(&a.3)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| graph.path(a.0).cmp(graph.path(b.0)))
            .then_with(|| a.2.cmp(&b.2))
    };
    if top < scored.len() {
        scored.select_nth_unstable_by(top - 1, order);
        scored.truncate(top);
    }
    scored.sort_by(order);
    // With a focus, what no rank flows to is noise: in the find-the-code eval the map of
    // a bug report focused on its failing test showed the two functions at fault and
    // then 2k tokens of unrelated modules in path order, all scoring 0, and the 1.5B
    // fixed fewer tasks with that map than with none. Without a focus the map is an
    // overview and fills its budget.
    if !focused.is_empty()
        && let Some(best) = scored.first().map(|d| d.3)
    {
        scored.retain(|d| d.3 >= best * FOCUSED_CUT);
    }
    let best = scored
        .into_iter()
        .map(|(slot, index, _, score)| (slot, index, score))
        .collect();
    (best, rank)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::{Kind, def};

    fn reference(name: &str) -> Tag {
        Tag {
            name: name.into(),
            kind: Kind::Ref,
            line: 0,
            text: String::new(),
        }
    }

    fn rank_of(
        files: &std::collections::BTreeMap<String, Vec<Tag>>,
        focus: &Focus,
    ) -> Vec<(String, String, f64)> {
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
            .map(|(f, name, _)| (f.as_str(), name.as_str()))
            .collect();
        assert_eq!(order[0], ("billing.py", "compute_total"));
        assert_eq!(order[1], ("util.py", "helper"));
        // The focus file's own definitions (the model has the file) and what no rank
        // reaches are left out.
        assert!(!order.contains(&("app.py", "main")), "{order:?}");
        assert!(!order.contains(&("other.py", "lonely")), "{order:?}");
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
        assert_eq!(ranked[0].1, "lonely");
    }
}
