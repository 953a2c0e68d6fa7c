//! The map of one project, kept up to date: files walked (`.gitignore` respected),
//! parsed only when their size or modification time changed, and what the map keeps of
//! their tags stored in a cache file (see `disk`) so the next process starts warm.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::disk::{self, Stamp};
use crate::graph::Graph;
use crate::lang::Lang;
use crate::rank::{Focus, ranked};
use crate::render::Line;
use crate::tags::{self, MAX_FILE_BYTES, Tag};

/// Source files the map reads at most.
const MAX_FILES: usize = 50_000;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot write the repo map cache {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A file to parse: its relative path, where it is, its language and stamp.
type Stale = (String, PathBuf, Lang, Stamp);

/// A file's modification time as stored in the cache (seconds, nanoseconds).
fn modified(meta: &std::fs::Metadata) -> (u64, u32) {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or((0, 0), |d| (d.as_secs(), d.subsec_nanos()))
}

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    Stamp {
        size: meta.len(),
        modified: modified(meta),
    }
}

/// A project's map.
#[derive(Debug)]
pub struct RepoMap {
    root: PathBuf,
    cache: Option<PathBuf>,
    /// The files in the map, as they were when parsed; their tags are in `graph`.
    files: BTreeMap<String, Stamp>,
    parsed: usize,
    /// Who uses what the files define, kept in step with `files`.
    graph: Graph,
    /// The file ranks of the last render and its focus: the next render with the same
    /// focus starts from them.
    last_rank: std::sync::Mutex<Option<(String, Vec<f64>)>>,
}

impl RepoMap {
    /// The map of `root`, warm from `cache` when it holds one (a cache that cannot be
    /// read is ignored: the map is rebuilt). Call [`RepoMap::refresh`] before use.
    pub fn open(root: &Path, cache: Option<PathBuf>) -> Self {
        let (files, graph) = cache
            .as_ref()
            .and_then(|path| std::fs::read(path).ok())
            .and_then(|bytes| disk::decode(&bytes))
            .unwrap_or_default();
        Self {
            root: root.to_path_buf(),
            cache,
            files,
            parsed: 0,
            graph,
            last_rank: Default::default(),
        }
    }

    /// Brings the map up to date with the files on disk: new and changed files are
    /// parsed, removed ones dropped; the cache is written when anything changed.
    pub fn refresh(&mut self) -> Result<(), CacheError> {
        let mut seen = BTreeMap::new();
        let walk = ignore::WalkBuilder::new(&self.root)
            .require_git(false)
            .build();
        for entry in walk.flatten() {
            if seen.len() >= MAX_FILES {
                break;
            }
            let path = entry.path();
            let (Some(lang), Some(true)) = (Lang::of(path), entry.file_type().map(|t| t.is_file()))
            else {
                continue;
            };
            let (Ok(meta), Ok(relative)) = (entry.metadata(), path.strip_prefix(&self.root)) else {
                continue;
            };
            if meta.len() > MAX_FILE_BYTES {
                continue;
            }
            seen.insert(
                relative.display().to_string(),
                (path.to_path_buf(), lang, stamp(&meta)),
            );
        }
        let gone: Vec<String> = self
            .files
            .keys()
            .filter(|path| !seen.contains_key(*path))
            .cloned()
            .collect();
        for path in &gone {
            self.files.remove(path);
            self.graph.remove(path);
        }
        let mut changed = !gone.is_empty();
        let stale: Vec<Stale> = seen
            .into_iter()
            .filter(|(relative, (_, _, stamp))| self.files.get(relative) != Some(stamp))
            .map(|(relative, (path, lang, stamp))| (relative, path, lang, stamp))
            .collect();
        self.parsed = stale.len();
        changed |= !stale.is_empty();
        // Parsed on every core: a cold map of thousands of files is mostly parsing.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(stale.len().max(1));
        let chunk = stale.len().div_ceil(threads).max(1);
        let parsed: Vec<(String, Stamp, Vec<Tag>)> = std::thread::scope(|scope| {
            let workers: Vec<_> = stale
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(relative, path, lang, stamp)| {
                                let tags = std::fs::read(path)
                                    .map(|source| tags::read(*lang, &source))
                                    .unwrap_or_default();
                                (relative.clone(), *stamp, tags)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect()
        });
        for (path, stamp, tags) in parsed {
            self.graph.set(&path, &tags);
            self.files.insert(path, stamp);
        }
        if changed {
            self.save()?;
        }
        Ok(())
    }

    /// Brings these files (relative paths) up to date without walking the project —
    /// what an agent that knows which files it changed calls after an edit: a changed
    /// file is parsed again, a deleted one dropped, a new source file added. The cache
    /// file is not written (see [`RepoMap::save`]). Returns whether anything changed.
    pub fn update(&mut self, paths: &[&str]) -> bool {
        let mut changed = false;
        for relative in paths {
            let path = self.root.join(relative);
            let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file());
            let (Some(meta), Some(lang)) = (meta, Lang::of(&path)) else {
                if self.files.remove(*relative).is_some() {
                    self.graph.remove(relative);
                    changed = true;
                }
                continue;
            };
            if meta.len() > MAX_FILE_BYTES {
                continue;
            }
            let stamp = stamp(&meta);
            if self.files.get(*relative) == Some(&stamp) {
                continue;
            }
            let tags = std::fs::read(&path)
                .map(|source| tags::read(lang, &source))
                .unwrap_or_default();
            self.graph.set(relative, &tags);
            self.files.insert(relative.to_string(), stamp);
            changed = true;
        }
        self.parsed = usize::from(changed);
        changed
    }

    /// Writes the cache file (when the map has one).
    pub fn save(&self) -> Result<(), CacheError> {
        let Some(path) = &self.cache else {
            return Ok(());
        };
        let error = |source| CacheError::Write {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(error)?;
        }
        let bytes = disk::encode(&self.files, &self.graph);
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, bytes).map_err(error)?;
        std::fs::rename(&temporary, path).map_err(error)?;
        // The JSON cache earlier builds wrote beside it: dead weight (tens of MB on a big tree).
        let _ = std::fs::remove_file(path.with_extension("json"));
        Ok(())
    }

    /// Source files in the map.
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// Files parsed by the last refresh (the rest came from the cache).
    pub fn parsed(&self) -> usize {
        self.parsed
    }

    /// The map for `focus` within `budget` tokens, as `tokens` counts them.
    pub fn render(&self, focus: &Focus, budget: usize, tokens: &dyn Fn(&str) -> usize) -> String {
        let key = format!("{:?}/{:?}", focus.files, focus.names);
        let mut last = self.last_rank.lock().unwrap_or_else(|e| e.into_inner());
        let start = last
            .as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, rank)| rank.as_slice());
        // Every line of the map takes a token at least: no more definitions than that.
        let (best, rank) = ranked(&self.graph, focus, budget, start);
        *last = Some((key, rank));
        drop(last);
        let best: Vec<Line<'_>> = best
            .into_iter()
            .filter_map(|(slot, index, _)| {
                let def = self.graph.defs(slot).get(index as usize)?;
                Some(Line {
                    file: self.graph.path(slot),
                    line: def.line,
                    text: &def.text,
                })
            })
            .collect();
        crate::render::render(&best, budget, tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warm_map_parses_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("pkg")).unwrap();
        std::fs::write(
            root.join("app.py"),
            "from pkg.billing import compute_total\n\ndef main():\n    return compute_total([])\n",
        )
        .unwrap();
        std::fs::write(
            root.join("pkg/billing.py"),
            "def compute_total(items):\n    return sum(items)\n",
        )
        .unwrap();
        std::fs::write(root.join("notes.txt"), "not code\n").unwrap();
        std::fs::write(root.join(".gitignore"), "build/\n").unwrap();
        std::fs::create_dir_all(root.join("build")).unwrap();
        std::fs::write(root.join("build/gen.py"), "def generated():\n    pass\n").unwrap();
        let cache = dir.path().join("cache/project.map");
        let mut map = RepoMap::open(&root, Some(cache.clone()));
        map.refresh().unwrap();
        assert_eq!((map.files(), map.parsed()), (2, 2));
        let focus = Focus {
            files: vec!["app.py".into()],
            names: vec![],
        };
        let text = map.render(&focus, 1000, &|s: &str| s.len() / 4);
        assert!(
            text.starts_with("pkg/billing.py:\n    1│ def compute_total(items):\n"),
            "{text}"
        );
        // A new process starts from the cache; one changed file is parsed again.
        let mut warm = RepoMap::open(&root, Some(cache.clone()));
        warm.refresh().unwrap();
        assert_eq!(warm.parsed(), 0);
        std::fs::write(
            root.join("pkg/billing.py"),
            "def compute_total(items, tax):\n    return sum(items)\n",
        )
        .unwrap();
        warm.refresh().unwrap();
        assert_eq!(warm.parsed(), 1);
        assert!(
            warm.render(&focus, 1000, &|s: &str| s.len() / 4)
                .contains("def compute_total(items, tax):")
        );
        std::fs::remove_file(root.join("app.py")).unwrap();
        warm.refresh().unwrap();
        assert_eq!(warm.files(), 1);
        // In memory, the files an edit touched are brought up to date without a walk.
        std::fs::write(
            root.join("pkg/billing.py"),
            "def compute_total(items, tax, rebate):\n    return sum(items)\n",
        )
        .unwrap();
        std::fs::write(root.join("pkg/new.py"), "def fresh_helper():\n    pass\n").unwrap();
        assert!(warm.update(&["pkg/billing.py", "pkg/new.py", "notes.txt"]));
        assert_eq!(warm.files(), 2);
        let text = warm.render(&Focus::default(), 1000, &|s: &str| s.len() / 4);
        assert!(
            text.contains("def compute_total(items, tax, rebate):"),
            "{text}"
        );
        assert!(
            text.contains("pkg/new.py:\n    1│ def fresh_helper():"),
            "{text}"
        );
        assert!(
            !warm.update(&["pkg/billing.py"]),
            "unchanged: nothing to do"
        );
        std::fs::remove_file(root.join("pkg/new.py")).unwrap();
        assert!(warm.update(&["pkg/new.py"]));
        assert_eq!(warm.files(), 1);
        // A damaged cache is rebuilt, not an error.
        std::fs::write(&cache, "keel-map but damaged").unwrap();
        let mut again = RepoMap::open(&root, Some(cache));
        again.refresh().unwrap();
        assert_eq!(again.parsed(), 1);
    }
}
