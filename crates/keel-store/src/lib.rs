//! keel's store: one SQLite database (bundled SQLite, WAL) under `$KEEL_HOME` that
//! holds every session's events, appended as they happen. The event list is the
//! source of truth: a session is resumed, shown or exported from it.

mod error;
mod schema;
mod sessions;

pub use error::StoreError;
pub use sessions::{SessionInfo, Store};
