//! The map of one project, kept up to date: files walked (`.gitignore` respected),
//! parsed only when their size or modification time changed, and the tags stored in a
//! JSON cache file so the next process starts warm.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::lang::Lang;
use crate::rank::{Focus, rank};
use crate::tags::{self, MAX_FILE_BYTES, Tag};

/// Bumped when the stored tags change meaning.
const VERSION: u32 = 1;
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

/// A file to parse: its relative path, where it is, its language, size and mtime.
type Stale = (String, PathBuf, Lang, u64, (u64, u32));

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    size: u64,
    modified: (u64, u32),
    tags: Vec<Tag>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    version: u32,
    files: BTreeMap<String, Entry>,
}

/// A project's map.
#[derive(Debug)]
pub struct RepoMap {
    root: PathBuf,
    cache: Option<PathBuf>,
    files: BTreeMap<String, Entry>,
    parsed: usize,
}

impl RepoMap {
    /// The map of `root`, warm from `cache` when it holds one (a cache that cannot be
    /// read is ignored: the map is rebuilt). Call [`RepoMap::refresh`] before use.
    pub fn open(root: &Path, cache: Option<PathBuf>) -> Self {
        let stored = cache
            .as_ref()
            .and_then(|path| std::fs::read(path).ok())
            .and_then(|bytes| serde_json::from_slice::<Stored>(&bytes).ok())
            .filter(|s| s.version == VERSION)
            .unwrap_or_default();
        Self {
            root: root.to_path_buf(),
            cache,
            files: stored.files,
            parsed: 0,
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
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or((0, 0), |d| (d.as_secs(), d.subsec_nanos()));
            seen.insert(
                relative.display().to_string(),
                (path.to_path_buf(), lang, meta.len(), modified),
            );
        }
        let before = self.files.len();
        self.files.retain(|path, _| seen.contains_key(path));
        let mut changed = self.files.len() != before;
        let stale: Vec<Stale> = seen
            .into_iter()
            .filter(|(relative, (_, _, size, modified))| {
                !self
                    .files
                    .get(relative)
                    .is_some_and(|e| e.size == *size && e.modified == *modified)
            })
            .map(|(relative, (path, lang, size, modified))| (relative, path, lang, size, modified))
            .collect();
        self.parsed = stale.len();
        changed |= !stale.is_empty();
        // Parsed on every core: a cold map of thousands of files is mostly parsing.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(stale.len().max(1));
        let chunk = stale.len().div_ceil(threads).max(1);
        let parsed: Vec<(String, Entry)> = std::thread::scope(|scope| {
            let workers: Vec<_> = stale
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(relative, path, lang, size, modified)| {
                                let tags = std::fs::read(path)
                                    .map(|source| tags::read(*lang, &source))
                                    .unwrap_or_default();
                                (
                                    relative.clone(),
                                    Entry {
                                        size: *size,
                                        modified: *modified,
                                        tags,
                                    },
                                )
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
        self.files.extend(parsed);
        if changed {
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> Result<(), CacheError> {
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
        let stored = Stored {
            version: VERSION,
            files: self.files.clone(),
        };
        let bytes = serde_json::to_vec(&stored).map_err(|e| error(e.into()))?;
        let temporary = path.with_extension("json.tmp");
        std::fs::write(&temporary, bytes).map_err(error)?;
        std::fs::rename(&temporary, path).map_err(error)
    }

    /// Source files in the map.
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// Files parsed by the last refresh (the rest came from the cache).
    pub fn parsed(&self) -> usize {
        self.parsed
    }

    /// The tags of one file (a path relative to the root).
    pub fn tags(&self, file: &str) -> Option<&[Tag]> {
        self.files.get(file).map(|e| e.tags.as_slice())
    }

    /// The map for `focus` within `budget` tokens, as `tokens` counts them.
    pub fn render(&self, focus: &Focus, budget: usize, tokens: &dyn Fn(&str) -> usize) -> String {
        let files: Vec<(&str, &[Tag])> = self
            .files
            .iter()
            .map(|(path, entry)| (path.as_str(), entry.tags.as_slice()))
            .collect();
        let ranked = rank(&files, focus);
        crate::render::render(&ranked, budget, tokens)
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
        let cache = dir.path().join("cache/map.json");
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
        // A damaged cache is rebuilt, not an error.
        std::fs::write(&cache, "{not json").unwrap();
        let mut again = RepoMap::open(&root, Some(cache));
        again.refresh().unwrap();
        assert_eq!(again.parsed(), 1);
    }
}
