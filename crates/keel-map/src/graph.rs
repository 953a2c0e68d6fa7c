//! The reference graph, kept up to date file by file: names interned once, for each
//! name the files that define it and the files that use it (and how often). Changing
//! one file touches only its own names, so a map held in memory re-ranks after an edit
//! without re-reading every file's tags.

use std::collections::HashMap;

use crate::tags::{Kind, Tag};

/// One file's part: its definitions (name, index of the tag in the file's tags, line;
/// each (name, line) once) and the names it uses with their counts.
#[derive(Debug, Default, Clone)]
struct FileNames {
    defs: Vec<Def>,
    refs: Vec<(u32, u32)>,
}

/// A definition: its name, the index of its tag in the file's tags, its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Def {
    pub(crate) name: u32,
    pub(crate) tag: u32,
    pub(crate) line: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Graph {
    slots: HashMap<String, u32>,
    paths: Vec<Option<String>>,
    files: Vec<FileNames>,
    free: Vec<u32>,
    names: HashMap<String, u32>,
    pub(crate) name_text: Vec<String>,
    /// By name: the files defining it (each once).
    pub(crate) definers: Vec<Vec<u32>>,
    /// By name: the files using it, with how often.
    pub(crate) users: Vec<Vec<(u32, u32)>>,
}

impl Graph {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.names.get(name) {
            return id;
        }
        let id = self.name_text.len() as u32;
        self.names.insert(name.to_string(), id);
        self.name_text.push(name.to_string());
        self.definers.push(Vec::new());
        self.users.push(Vec::new());
        id
    }

    /// The id of a name, if any file has it.
    pub(crate) fn name(&self, name: &str) -> Option<u32> {
        self.names.get(name).copied()
    }

    /// The slot of a file.
    pub(crate) fn slot(&self, path: &str) -> Option<u32> {
        self.slots.get(path).copied()
    }

    /// Slots in use and their paths.
    pub(crate) fn live(&self) -> impl Iterator<Item = (u32, &str)> {
        self.paths
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_deref().map(|p| (i as u32, p)))
    }

    pub(crate) fn slot_count(&self) -> usize {
        self.paths.len()
    }

    pub(crate) fn path(&self, slot: u32) -> &str {
        self.paths[slot as usize].as_deref().unwrap_or("")
    }

    /// A file's definitions.
    pub(crate) fn defs(&self, slot: u32) -> &[Def] {
        &self.files[slot as usize].defs
    }

    /// Sets (or replaces) a file's tags.
    pub(crate) fn set(&mut self, path: &str, tags: &[Tag]) {
        self.remove(path);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.paths[slot as usize] = Some(path.to_string());
                slot
            }
            None => {
                self.paths.push(Some(path.to_string()));
                self.files.push(FileNames::default());
                (self.paths.len() - 1) as u32
            }
        };
        self.slots.insert(path.to_string(), slot);
        let mut names = FileNames::default();
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for (index, tag) in tags.iter().enumerate() {
            let id = self.intern(&tag.name);
            match tag.kind {
                Kind::Def => {
                    names.defs.push(Def {
                        name: id,
                        tag: index as u32,
                        line: tag.line,
                    });
                    let definers = &mut self.definers[id as usize];
                    if definers.last() != Some(&slot) && !definers.contains(&slot) {
                        definers.push(slot);
                    }
                }
                Kind::Ref => *counts.entry(id).or_default() += 1,
            }
        }
        for (&id, &count) in &counts {
            self.users[id as usize].push((slot, count));
        }
        // A grammar's query can match one definition twice.
        names.defs.sort_by_key(|d| (d.name, d.line, d.tag));
        names.defs.dedup_by_key(|d| (d.name, d.line));
        names.refs = counts.into_iter().collect();
        self.files[slot as usize] = names;
    }

    /// Takes a file out.
    pub(crate) fn remove(&mut self, path: &str) {
        let Some(slot) = self.slots.remove(path) else {
            return;
        };
        let names = std::mem::take(&mut self.files[slot as usize]);
        for def in &names.defs {
            self.definers[def.name as usize].retain(|s| *s != slot);
        }
        for (id, _) in &names.refs {
            self.users[*id as usize].retain(|(s, _)| *s != slot);
        }
        self.paths[slot as usize] = None;
        self.free.push(slot);
    }
}
