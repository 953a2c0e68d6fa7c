//! Versioned schema. `PRAGMA user_version` holds the version; each migration moves
//! the database one version up inside a transaction, so an older database is
//! upgraded when opened and a failed upgrade leaves it as it was.

use rusqlite::Connection;

/// Migrations in order; entry `i` upgrades version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: sessions and their events.
    "CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        workspace TEXT NOT NULL,
        model TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        turns INTEGER NOT NULL DEFAULT 0,
        outcome TEXT
    );
    CREATE INDEX sessions_by_workspace ON sessions (workspace, updated_at);
    CREATE INDEX sessions_by_update ON sessions (updated_at);
    CREATE TABLE events (
        session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (session_id, seq)
    ) WITHOUT ROWID;",
    // 2: project memory — facts and change log, full-text indexed, with the content
    // hashes of the files each memory names.
    "CREATE TABLE memories (
        id INTEGER PRIMARY KEY,
        project TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('fact', 'change')),
        text TEXT NOT NULL,
        session_id TEXT,
        request TEXT,
        outcome TEXT,
        summary TEXT,
        created_at INTEGER NOT NULL,
        stale INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX memories_by_project ON memories (project, kind, created_at);
    CREATE TABLE memory_files (
        memory_id INTEGER NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        hash TEXT,
        added INTEGER,
        removed INTEGER,
        PRIMARY KEY (memory_id, path)
    );
    CREATE VIRTUAL TABLE memories_fts USING fts5 (
        text, content = 'memories', content_rowid = 'id', tokenize = 'porter unicode61'
    );
    CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
        INSERT INTO memories_fts (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;",
];

pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`VERSION`]. Returns the version found, when it is newer
/// than this keel knows.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<Option<i64>> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > VERSION {
        return Ok(Some(found));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > index as i64 {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(None)
}
