//! [`StoreSink`]: the session's events appended to the store as they happen, so that
//! whatever a front end showed has been stored.

use std::sync::{Arc, Mutex};

use keel_protocol::Event;
use keel_store::Store;

use crate::EventSink;

/// Appends every event to the store as it happens. After the first failed write it
/// stops (so the stored history stays a consistent prefix) and reports the fault,
/// which ends the turn with an `error` event.
pub struct StoreSink {
    store: Arc<Store>,
    session_id: Mutex<Option<String>>,
    failure: Mutex<Option<String>>,
}

impl StoreSink {
    /// `session_id`: the session being continued (a new one takes the id of its
    /// `session` event).
    pub fn new(store: Arc<Store>, session_id: Option<String>) -> Self {
        Self {
            store,
            session_id: Mutex::new(session_id),
            failure: Mutex::new(None),
        }
    }
}

impl EventSink for StoreSink {
    fn emit(&self, event: &Event) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if failure.is_some() {
            return;
        }
        let mut id = self.session_id.lock().unwrap_or_else(|e| e.into_inner());
        if let Event::Session { session_id, .. } = event {
            *id = Some(session_id.clone());
        }
        if let Some(id) = id.as_deref()
            && let Err(e) = self.store.append(id, event)
        {
            *failure = Some(format!("{e} (in {})", self.store.path().display()));
        }
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
