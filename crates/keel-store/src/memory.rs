//! Project memory: facts and the change log, per project (the canonical workspace
//! root), full-text indexed (FTS5, BM25 ranking, Porter stemming). A memory that
//! names files keeps their content hashes, so a recalled memory about files that have
//! changed since is flagged as possibly stale.

use std::path::Path;

use rusqlite::{OptionalExtension, params};

use crate::{Store, StoreError};

/// A file a memory names: its content hash when the memory was made, and for a
/// change the lines added and removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// Relative to the project root.
    pub path: String,
    /// `None` when the file did not exist (a deletion).
    pub hash: Option<String>,
    pub added: Option<i64>,
    pub removed: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryKind {
    Fact,
    Change,
}

impl MemoryKind {
    fn as_str(self) -> &'static str {
        match self {
            MemoryKind::Fact => "fact",
            MemoryKind::Change => "change",
        }
    }
}

/// One change-log entry, as written at the end of a turn that changed files.
#[derive(Debug, Clone)]
pub struct NewChange<'a> {
    pub project: &'a str,
    pub session_id: &'a str,
    pub request: &'a str,
    pub outcome: &'a str,
    pub summary: &'a str,
    pub files: &'a [FileRef],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    pub id: i64,
    pub kind: MemoryKind,
    pub text: String,
    pub session_id: Option<String>,
    pub request: Option<String>,
    pub outcome: Option<String>,
    pub summary: Option<String>,
    pub created_at: i64,
    pub stale: bool,
    pub files: Vec<FileRef>,
}

/// A stable 64-bit FNV-1a hash of file content, as hex.
pub fn content_hash(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The current hash of a project file (`None` when it is missing or unreadable).
pub fn file_hash(root: &Path, relative: &str) -> Option<String> {
    std::fs::read(root.join(relative))
        .ok()
        .map(|b| content_hash(&b))
}

/// Memories (newest first) that a search scores before it looks further back.
pub const RECENT_WINDOW: i64 = 20_000;

/// Words that carry no meaning for recall; matching them only costs time.
const STOPWORDS: &[&str] = &[
    "a", "about", "all", "an", "and", "are", "as", "at", "be", "by", "can", "did", "do", "does",
    "for", "from", "has", "have", "how", "i", "in", "is", "it", "its", "me", "my", "of", "on",
    "or", "our", "that", "the", "this", "to", "was", "we", "were", "what", "when", "where",
    "which", "who", "why", "with", "you",
];

/// Turns free text into an FTS5 query: its meaningful words, quoted, joined with OR.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() >= 2 && !STOPWORDS.contains(&w.as_str()))
        .take(32)
        .map(|w| format!("\"{w}\""))
        .collect();
    (!words.is_empty()).then(|| words.join(" OR "))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

const MEMORY_COLUMNS: &str =
    "m.id, m.kind, m.text, m.session_id, m.request, m.outcome, m.summary, m.created_at, m.stale";

fn memory_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Memory> {
    let kind: String = r.get(1)?;
    Ok(Memory {
        id: r.get(0)?,
        kind: if kind == "fact" {
            MemoryKind::Fact
        } else {
            MemoryKind::Change
        },
        text: r.get(2)?,
        session_id: r.get(3)?,
        request: r.get(4)?,
        outcome: r.get(5)?,
        summary: r.get(6)?,
        created_at: r.get(7)?,
        stale: r.get::<_, i64>(8)? != 0,
        files: Vec::new(),
    })
}

impl Store {
    fn insert_memory(
        &self,
        project: &str,
        kind: MemoryKind,
        text: &str,
        change: Option<&NewChange<'_>>,
        session_id: Option<&str>,
        files: &[FileRef],
    ) -> Result<i64, StoreError> {
        let write = |e: rusqlite::Error| StoreError::Write(e.to_string());
        let mut conn = self.connection();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(write)?;
        tx.execute(
            "INSERT INTO memories (project, kind, text, session_id, request, outcome, summary, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                project,
                kind.as_str(),
                text,
                session_id,
                change.map(|c| c.request),
                change.map(|c| c.outcome),
                change.map(|c| c.summary),
                now_ms()
            ],
        )
        .map_err(write)?;
        let id = tx.last_insert_rowid();
        for file in files {
            tx.execute(
                "INSERT OR REPLACE INTO memory_files (memory_id, path, hash, added, removed) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, file.path, file.hash, file.added, file.removed],
            )
            .map_err(write)?;
        }
        tx.commit().map_err(write)?;
        Ok(id)
    }

    /// Keeps a fact about a project.
    pub fn add_fact(
        &self,
        project: &str,
        text: &str,
        session_id: Option<&str>,
        files: &[FileRef],
    ) -> Result<i64, StoreError> {
        self.insert_memory(project, MemoryKind::Fact, text, None, session_id, files)
    }

    /// Writes a change-log entry.
    pub fn add_change(&self, change: &NewChange<'_>) -> Result<i64, StoreError> {
        let files: Vec<String> = change
            .files
            .iter()
            .map(|f| match (f.added, f.removed, &f.hash) {
                (_, _, None) => format!("{} (deleted)", f.path),
                (Some(a), Some(r), _) => format!("{} (+{a} -{r})", f.path),
                _ => f.path.clone(),
            })
            .collect();
        let text = format!(
            "Session {} changed {}. Request: {} Outcome: {}. Summary: {}",
            change.session_id,
            files.join(", "),
            change.request,
            change.outcome,
            change.summary
        );
        self.insert_memory(
            change.project,
            MemoryKind::Change,
            &text,
            Some(change),
            Some(change.session_id),
            change.files,
        )
    }

    fn with_files(&self, mut memories: Vec<Memory>) -> Result<Vec<Memory>, StoreError> {
        let read = |e: rusqlite::Error| StoreError::Read(e.to_string());
        let conn = self.connection();
        let mut statement = conn
            .prepare_cached("SELECT path, hash, added, removed FROM memory_files WHERE memory_id = ?1 ORDER BY path")
            .map_err(read)?;
        for memory in &mut memories {
            memory.files = statement
                .query_map([memory.id], |r| {
                    Ok(FileRef {
                        path: r.get(0)?,
                        hash: r.get(1)?,
                        added: r.get(2)?,
                        removed: r.get(3)?,
                    })
                })
                .map_err(read)?
                .collect::<Result<_, _>>()
                .map_err(read)?;
        }
        Ok(memories)
    }

    fn query_memories(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Memory>, StoreError> {
        let read = |e: rusqlite::Error| StoreError::Read(e.to_string());
        let memories = {
            let conn = self.connection();
            let mut statement = conn.prepare_cached(sql).map_err(read)?;
            statement
                .query_map(params, memory_row)
                .map_err(read)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(read)?
        };
        self.with_files(memories)
    }

    /// A project's memories, newest first.
    pub fn memories(&self, project: &str, limit: usize) -> Result<Vec<Memory>, StoreError> {
        self.query_memories(
            &format!("SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.project = ?1 ORDER BY m.created_at DESC, m.id DESC LIMIT ?2"),
            params![project, limit as i64],
        )
    }

    /// Full-text search over a project's memories, best match first (BM25).
    ///
    /// Scoring costs time for every matching memory, so the most recent
    /// [`RECENT_WINDOW`] memories are searched first; older ones only when those do
    /// not give `limit` results.
    pub fn search(
        &self,
        project: &str,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Memory>, StoreError> {
        let Some(fts) = fts_query(query) else {
            return Ok(Vec::new());
        };
        let newest: i64 = self
            .connection()
            .query_row("SELECT COALESCE(MAX(id), 0) FROM memories", [], |r| {
                r.get(0)
            })
            .map_err(|e| StoreError::Read(e.to_string()))?;
        let window_start = newest - RECENT_WINDOW;
        let sql = format!(
            "SELECT {MEMORY_COLUMNS} FROM memories_fts f JOIN memories m ON m.id = f.rowid
             WHERE memories_fts MATCH ?1 AND f.rowid > ?4 AND m.project = ?2
             ORDER BY bm25(memories_fts), m.created_at DESC LIMIT ?3"
        );
        let recent = self.query_memories(
            &sql,
            params![fts, project, limit as i64, window_start.max(0)],
        )?;
        if recent.len() >= limit || window_start <= 0 {
            return Ok(recent);
        }
        self.query_memories(&sql, params![fts, project, limit as i64, 0])
    }

    /// The change-log entries of the most recent session (other than `current`)
    /// that changed files in this project.
    pub fn last_session_changes(
        &self,
        project: &str,
        current: Option<&str>,
    ) -> Result<Vec<Memory>, StoreError> {
        let read = |e: rusqlite::Error| StoreError::Read(e.to_string());
        let session: Option<String> = self
            .connection()
            .query_row(
                "SELECT session_id FROM memories
                 WHERE project = ?1 AND kind = 'change' AND session_id IS NOT ?2
                 ORDER BY created_at DESC, id DESC LIMIT 1",
                params![project, current],
                |r| r.get(0),
            )
            .optional()
            .map_err(read)?;
        let Some(session) = session else {
            return Ok(Vec::new());
        };
        self.query_memories(
            &format!("SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.project = ?1 AND m.kind = 'change' AND m.session_id = ?2 ORDER BY m.created_at, m.id"),
            params![project, session],
        )
    }

    /// Every memory of every project (or of one), for `keel memory reindex`.
    pub fn all_memories(&self, project: Option<&str>) -> Result<Vec<(String, Memory)>, StoreError> {
        let read = |e: rusqlite::Error| StoreError::Read(e.to_string());
        let rows: Vec<(String, Memory)> = {
            let conn = self.connection();
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {MEMORY_COLUMNS}, m.project FROM memories m WHERE ?1 IS NULL OR m.project = ?1 ORDER BY m.id"
                ))
                .map_err(read)?;
            statement
                .query_map([project], |r| Ok((r.get(9)?, memory_row(r)?)))
                .map_err(read)?
                .collect::<Result<_, _>>()
                .map_err(read)?
        };
        let (projects, memories): (Vec<String>, Vec<Memory>) = rows.into_iter().unzip();
        Ok(projects
            .into_iter()
            .zip(self.with_files(memories)?)
            .collect())
    }

    /// Re-checks a memory's files against the project on disk and records whether it
    /// is possibly stale. Returns the paths that changed.
    pub fn check_staleness(
        &self,
        root: &Path,
        memory: &mut Memory,
    ) -> Result<Vec<String>, StoreError> {
        let changed: Vec<String> = memory
            .files
            .iter()
            .filter(|f| file_hash(root, &f.path) != f.hash)
            .map(|f| f.path.clone())
            .collect();
        let stale = !changed.is_empty();
        if stale != memory.stale {
            self.connection()
                .execute(
                    "UPDATE memories SET stale = ?2 WHERE id = ?1",
                    params![memory.id, stale as i64],
                )
                .map_err(|e| StoreError::Write(e.to_string()))?;
            memory.stale = stale;
        }
        Ok(changed)
    }

    /// Forgets a memory of a project.
    pub fn forget(&self, project: &str, id: i64) -> Result<(), StoreError> {
        let changed = self
            .connection()
            .execute(
                "DELETE FROM memories WHERE id = ?1 AND project = ?2",
                params![id, project],
            )
            .map_err(|e| StoreError::Write(e.to_string()))?;
        if changed == 0 {
            return Err(StoreError::UnknownMemory(id));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_sanitised() {
        assert_eq!(
            fts_query("what did we change in Auth?").unwrap(),
            r#""change" OR "auth""#
        );
        assert_eq!(
            fts_query("\"); DROP TABLE x; --").unwrap(),
            r#""drop" OR "table""#
        );
        assert!(fts_query("? !").is_none());
    }

    #[test]
    fn hashes_are_stable() {
        assert_eq!(content_hash(b""), "cbf29ce484222325");
        assert_eq!(content_hash(b"a"), "af63dc4c8601ec8c");
    }
}
