//! Sessions and their events.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel_protocol::Event;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use crate::{StoreError, schema};

/// How long a writer waits for another process holding the database lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// One row of `keel sessions list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: String,
    pub workspace: String,
    pub model: String,
    /// Milliseconds since the Unix epoch.
    pub started_at: i64,
    pub updated_at: i64,
    pub turns: i64,
    /// Outcome of the last finished turn.
    pub outcome: Option<String>,
}

/// One stored event: when it was stored (ms since the Unix epoch), its name and its
/// JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub ts: i64,
    pub name: String,
    pub data: String,
}

fn session_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionInfo> {
    Ok(SessionInfo {
        id: r.get(0)?,
        workspace: r.get(1)?,
        model: r.get(2)?,
        started_at: r.get(3)?,
        updated_at: r.get(4)?,
        turns: r.get(5)?,
        outcome: r.get(6)?,
    })
}

pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs `step` again while another connection holds the lock, up to [`BUSY_TIMEOUT`].
///
/// The busy timeout covers ordinary waits, but SQLite answers `SQLITE_BUSY` at once,
/// without calling the busy handler, where waiting could deadlock: two processes
/// opening a new database both hold a shared lock and both want to switch it to WAL
/// (or create the schema). One of them must let go and start the step again.
fn while_busy<T>(mut step: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let started = Instant::now();
    loop {
        match step() {
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            done => return done,
        }
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| open_error(e.to_string()))?;
        }
        let classify = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
                StoreError::Corrupt {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }
            }
            _ => open_error(e.to_string()),
        };
        let mut conn = Connection::open(path).map_err(classify)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
        // Reading the journal mode is the first real access: a file that is not a
        // database fails here.
        let _mode: String =
            while_busy(|| conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)))
                .map_err(classify)?;
        // WAL with synchronous=NORMAL: a killed process loses no committed event.
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(classify)?;
        if let Some(found) = while_busy(|| schema::migrate(&mut conn)).map_err(classify)? {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found,
                known: schema::VERSION,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one event to its session (a `session` event creates the session).
    /// Committed before it returns.
    pub fn append(&self, session_id: &str, event: &Event) -> Result<(), StoreError> {
        let data = serde_json::to_string(event).map_err(|e| StoreError::Write(e.to_string()))?;
        self.append_json(session_id, event, &data)
    }

    /// [`Store::append`] for a caller that already holds the event's JSON (`data`
    /// must be `event` serialised), so it is not serialised twice.
    pub fn append_json(
        &self,
        session_id: &str,
        event: &Event,
        data: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let write = |e: rusqlite::Error| StoreError::Write(e.to_string());
        let mut conn = self.connection();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(write)?;
        if let Event::Session {
            workspace, model, ..
        } = event
        {
            tx.execute(
                "INSERT OR IGNORE INTO sessions (id, workspace, model, started_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![session_id, workspace, model, now],
            )
            .map_err(write)?;
        }
        let outcome = match event {
            Event::Done { outcome, .. } => Some(outcome.as_str()),
            _ => None,
        };
        let changed = tx
            .execute(
                "UPDATE sessions SET updated_at = ?2,
                    turns = turns + ?3,
                    outcome = COALESCE(?4, outcome)
                 WHERE id = ?1",
                params![
                    session_id,
                    now,
                    matches!(event, Event::User { .. }) as i64,
                    outcome
                ],
            )
            .map_err(write)?;
        if changed == 0 {
            return Err(StoreError::UnknownSession(session_id.to_string()));
        }
        tx.execute(
            "INSERT INTO events (session_id, seq, ts, type, data)
             SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4 FROM events WHERE session_id = ?1",
            params![session_id, now, event.name(), data],
        )
        .map_err(write)?;
        tx.commit().map_err(write)
    }

    /// The stored events of a session, as JSON lines (the `keel run --json` format).
    pub fn export(&self, session_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .stored(session_id)?
            .into_iter()
            .map(|event| event.data)
            .collect())
    }

    /// The stored events of a session, in order, as stored.
    pub fn stored(&self, session_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let read = |e: rusqlite::Error| StoreError::Read(e.to_string());
        let conn = self.connection();
        let mut statement = conn
            .prepare_cached("SELECT ts, type, data FROM events WHERE session_id = ?1 ORDER BY seq")
            .map_err(read)?;
        let rows = statement
            .query_map([session_id], |r| {
                Ok(StoredEvent {
                    ts: r.get(0)?,
                    name: r.get(1)?,
                    data: r.get(2)?,
                })
            })
            .map_err(read)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(read)
    }

    /// The events of a session, in order.
    pub fn events(&self, session_id: &str) -> Result<Vec<Event>, StoreError> {
        self.export(session_id)?
            .iter()
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|e| {
                    StoreError::Read(format!("session {session_id}, event {}: {e}", i + 1))
                })
            })
            .collect()
    }

    /// Sessions, most recently active first, optionally only those of one workspace.
    pub fn sessions(
        &self,
        workspace: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let read = |e: rusqlite::Error| StoreError::Read(e.to_string());
        let conn = self.connection();
        let mut statement = conn
            .prepare_cached(
                "SELECT id, workspace, model, started_at, updated_at, turns, outcome FROM sessions
                 WHERE ?1 IS NULL OR workspace = ?1
                 ORDER BY updated_at DESC, id DESC LIMIT ?2",
            )
            .map_err(read)?;
        let rows = statement
            .query_map(params![workspace, limit as i64], session_info)
            .map_err(read)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(read)
    }

    /// One session's row, if it exists.
    pub fn session(&self, session_id: &str) -> Result<Option<SessionInfo>, StoreError> {
        self.connection()
            .prepare_cached(
                "SELECT id, workspace, model, started_at, updated_at, turns, outcome FROM sessions
                 WHERE id = ?1",
            )
            .and_then(|mut statement| statement.query_row([session_id], session_info).optional())
            .map_err(|e| StoreError::Read(e.to_string()))
    }

    /// One session's row if it exists and was recorded in `workspace` (front ends
    /// serving one workspace treat any other session as unknown).
    pub fn session_in(
        &self,
        session_id: &str,
        workspace: &str,
    ) -> Result<Option<SessionInfo>, StoreError> {
        Ok(self
            .session(session_id)?
            .filter(|info| info.workspace == workspace))
    }

    /// The full id of the session an id or unique id prefix names.
    pub fn resolve(&self, prefix: &str) -> Result<String, StoreError> {
        let read = |e: rusqlite::Error| StoreError::Read(e.to_string());
        let conn = self.connection();
        let exact: Option<String> = conn
            .query_row("SELECT id FROM sessions WHERE id = ?1", [prefix], |r| {
                r.get(0)
            })
            .optional()
            .map_err(read)?;
        if let Some(id) = exact {
            return Ok(id);
        }
        let escaped = prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let mut statement = conn
            .prepare_cached("SELECT id FROM sessions WHERE id LIKE ?1 ESCAPE '\\' LIMIT 10")
            .map_err(read)?;
        let ids: Vec<String> = statement
            .query_map([format!("{escaped}%")], |r| r.get(0))
            .map_err(read)?
            .collect::<Result<_, _>>()
            .map_err(read)?;
        match ids.len() {
            0 => Err(StoreError::UnknownSession(prefix.to_string())),
            1 => Ok(ids.into_iter().next().unwrap_or_default()),
            count => Err(StoreError::AmbiguousSession {
                prefix: prefix.to_string(),
                count,
            }),
        }
    }

    /// Deletes a session and its events.
    pub fn delete(&self, session_id: &str) -> Result<(), StoreError> {
        let write = |e: rusqlite::Error| StoreError::Write(e.to_string());
        let changed = self
            .connection()
            .execute("DELETE FROM sessions WHERE id = ?1", [session_id])
            .map_err(write)?;
        if changed == 0 {
            return Err(StoreError::UnknownSession(session_id.to_string()));
        }
        Ok(())
    }

    /// Proves the database can be written: takes the write lock and changes the
    /// header inside a transaction that is rolled back, so nothing is left behind.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        let conn = self.connection();
        let write = |e: rusqlite::Error| StoreError::Write(e.to_string());
        conn.execute_batch("BEGIN IMMEDIATE").map_err(write)?;
        let probe = conn
            .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .and_then(|v| conn.execute_batch(&format!("PRAGMA user_version = {v}")));
        let rollback = conn.execute_batch("ROLLBACK");
        probe.map_err(write)?;
        rollback.map_err(write)
    }

    /// `PRAGMA integrity_check`: "ok" when the database is consistent.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.connection()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| StoreError::Read(e.to_string()))
    }
}
