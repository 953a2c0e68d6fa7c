//! The reference graph, kept up to date file by file: names interned once, for each
//! name the files that define it and the files that use it (and how often). Changing
//! one file touches only its own names, so a map held in memory re-ranks after an edit
//! without re-reading every file's tags. The graph is all the map keeps of a file's
//! tags: its definitions (name, line, signature) and the names it uses, counted.

use std::collections::HashMap;

use crate::tags::{Kind, Tag};

/// One file's part: its definitions (each (name, line) once, in name order) and the
/// names it uses with their counts.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct FileNames {
    pub(crate) defs: Vec<Def>,
    pub(crate) refs: Vec<(u32, u32)>,
}

/// A definition: its name, its 0-based line, the line's text (its signature, mostly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Def {
    pub(crate) name: u32,
    pub(crate) line: u32,
    pub(crate) text: Box<str>,
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
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
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

    /// A file's part, by path.
    pub(crate) fn file(&self, path: &str) -> Option<&FileNames> {
        self.slot(path).map(|slot| &self.files[slot as usize])
    }

    /// Sets (or replaces) a file's tags, as a parse read them.
    pub(crate) fn set(&mut self, path: &str, tags: &[Tag]) {
        let mut names = FileNames::default();
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for tag in tags {
            let id = self.intern(&tag.name);
            match tag.kind {
                Kind::Def => names.defs.push(Def {
                    name: id,
                    line: tag.line,
                    text: tag.text.as_str().into(),
                }),
                Kind::Ref => *counts.entry(id).or_default() += 1,
            }
        }
        // A grammar's query can match one definition twice.
        names.defs.sort_by_key(|d| (d.name, d.line));
        names.defs.dedup_by_key(|d| (d.name, d.line));
        names.refs = counts.into_iter().collect();
        names.refs.sort_unstable();
        self.set_names(path, names);
    }

    /// Sets (or replaces) a file's part whose names are already interned here (a map
    /// read back from its cache).
    pub(crate) fn set_names(&mut self, path: &str, names: FileNames) {
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
        for def in &names.defs {
            let definers = &mut self.definers[def.name as usize];
            if definers.last() != Some(&slot) && !definers.contains(&slot) {
                definers.push(slot);
            }
        }
        for &(id, count) in &names.refs {
            self.users[id as usize].push((slot, count));
        }
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
