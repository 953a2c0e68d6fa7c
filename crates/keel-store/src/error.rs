use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the session store {} is damaged or is not a keel database ({reason}). keel does not replace it: move it aside (e.g. `mv {} {}.broken`) to start a fresh store, or repair it with the sqlite3 `.recover` command",
        path.display(), path.display(), path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot open the session store {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    #[error(
        "the session store {} was written by a newer keel (schema {found}, this keel knows up to {known}); upgrade keel",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("no memory {0} in this project")]
    UnknownMemory(i64),
    #[error("no session `{0}`")]
    UnknownSession(String),
    #[error("session id `{prefix}` is ambiguous: it starts {count} sessions")]
    AmbiguousSession { prefix: String, count: usize },
    #[error("session store write failed: {0}")]
    Write(String),
    #[error("session store read failed: {0}")]
    Read(String),
}
