//! keel's store: one SQLite database (bundled SQLite, WAL) under `$KEEL_HOME` that
//! holds every session's events, appended as they happen. The event list is the
//! source of truth: a session is resumed, shown or exported from it. It also keeps
//! each project's memory: facts and the change log.

mod error;
mod memory;
mod schema;
mod sessions;

pub use error::StoreError;
pub use memory::{FileRef, Memory, MemoryKind, NewChange, RECENT_WINDOW, content_hash, file_hash};
pub use sessions::{SessionInfo, Store, StoredEvent};
