//! Running turns. While a turn runs, its events are kept in memory (as ready-to-send
//! frames) so that any number of clients can follow it from any point: the client that
//! started it, a browser that reloaded, a client that lost its connection and came back.
//! When the turn ends it is dropped from here; the store has every event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::Stream;
use keel_agent::EventSink;
use keel_protocol::Event;
use keel_store::{Store, StoreError, StoredEvent};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One event as sent: its position in the session (the SSE `id`, from 1, the same as
/// the store's), its name (the SSE `event:`) and its JSON (the SSE `data:`).
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: u64,
    pub name: String,
    pub data: Arc<str>,
}

impl Frame {
    /// An event's JSON with `ts`, the time it was emitted or stored (ms since the Unix
    /// epoch), added as the last field.
    pub fn new(seq: u64, name: &str, json: &str, ts_ms: f64) -> Self {
        Self {
            seq,
            name: name.to_string(),
            data: with_ts(json, ts_ms).into(),
        }
    }

    pub fn event(seq: u64, event: &Event, ts_ms: f64) -> Self {
        Self::new(seq, event.name(), &event_json(event), ts_ms)
    }

    pub fn stored(seq: u64, event: &StoredEvent) -> Self {
        Self::new(seq, &event.name, &event.data, event.ts as f64)
    }
}

fn event_json(event: &Event) -> String {
    serde_json::to_string(event).unwrap_or_else(|e| {
        format!(r#"{{"type":"error","kind":"internal","message":"unserialisable event: {e}"}}"#)
    })
}

fn with_ts(json: &str, ts_ms: f64) -> String {
    match json.strip_suffix('}') {
        Some(head) if head.len() > 1 => format!("{head},\"ts\":{ts_ms:.3}}}"),
        _ => json.to_string(),
    }
}

pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[derive(Default)]
struct Log {
    /// `seq` of the turn's first event: every event before it is in the store and
    /// does not change while the turn runs.
    base: u64,
    frames: Vec<Frame>,
    finished: bool,
    session_id: Option<String>,
    /// The first store write that failed; later events are not stored.
    store_failure: Option<String>,
}

/// One running turn: its events so far and the way to cancel it.
pub struct LiveTurn {
    log: Mutex<Log>,
    version: watch::Sender<u64>,
    pub cancel: CancellationToken,
}

impl LiveTurn {
    /// A turn whose first event will have position `base`.
    pub fn new(base: u64) -> Arc<Self> {
        Arc::new(Self {
            log: Mutex::new(Log {
                base,
                ..Log::default()
            }),
            version: watch::Sender::new(0),
            cancel: CancellationToken::new(),
        })
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn base(&self) -> u64 {
        self.log().base
    }

    /// A stored session continues: its events go after the `base - 1` stored ones.
    pub fn continue_session(&self, session_id: &str, base: u64) {
        let mut log = self.log();
        log.session_id = Some(session_id.to_string());
        log.base = base;
    }

    /// Whether the turn has not ended yet.
    pub fn running(&self) -> bool {
        !self.log().finished
    }

    pub fn finish(&self) {
        self.log().finished = true;
        self.version.send_modify(|v| *v += 1);
    }

    /// The turn's frames from index `from` on, ending when the turn has ended.
    pub fn follow(self: Arc<Self>, from: usize) -> impl Stream<Item = Frame> + Send + 'static {
        let changes = self.version.subscribe();
        futures_util::stream::unfold(
            (self, from, changes),
            |(live, index, mut changes)| async move {
                loop {
                    {
                        let log = live.log();
                        if let Some(frame) = log.frames.get(index) {
                            let frame = frame.clone();
                            drop(log);
                            return Some((frame, (live, index + 1, changes)));
                        }
                        if log.finished {
                            return None;
                        }
                    }
                    if changes.changed().await.is_err() {
                        return None;
                    }
                }
            },
        )
    }
}

/// The sink of a running turn: stores each event, then makes it visible to followers.
pub struct TurnSink {
    pub live: Arc<LiveTurn>,
    pub store: Arc<Store>,
}

impl EventSink for TurnSink {
    fn emit(&self, event: &Event) {
        // Serialised once, for the store and for the followers.
        let json = serde_json::to_string(event);
        let mut log = self.live.log();
        if let Event::Session { session_id, .. } = event {
            log.session_id = Some(session_id.clone());
        }
        if log.store_failure.is_none()
            && let Some(id) = log.session_id.clone()
        {
            let stored = match &json {
                Ok(json) => self.store.append_json(&id, event, json),
                Err(e) => Err(StoreError::Write(e.to_string())),
            };
            if let Err(e) = stored {
                log.store_failure = Some(format!("{e} (in {})", self.store.path().display()));
            }
        }
        let seq = log.base + log.frames.len() as u64;
        let frame = match &json {
            Ok(json) => Frame::new(seq, event.name(), json, now_ms()),
            Err(_) => Frame::event(seq, event, now_ms()),
        };
        log.frames.push(frame);
        // `done` is the turn's last event: from here the session is free for the
        // next turn, even before the task that ran this one has wound up.
        if matches!(event, Event::Done { .. }) {
            log.finished = true;
        }
        drop(log);
        self.live.version.send_modify(|v| *v += 1);
    }

    fn failure(&self) -> Option<String> {
        self.live.log().store_failure.clone()
    }
}

/// The running turns by session id: at most one per session.
#[derive(Default)]
pub struct Turns {
    map: Mutex<HashMap<String, Arc<LiveTurn>>>,
}

impl Turns {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<LiveTurn>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims the session for a new turn; `None` when one is already running.
    pub fn claim(&self, session_id: &str, live: &Arc<LiveTurn>) -> Option<()> {
        let mut map = self.map();
        if map.get(session_id).is_some_and(|held| held.running()) {
            return None;
        }
        map.insert(session_id.to_string(), Arc::clone(live));
        Some(())
    }

    /// Gives the session back (only if `live` still holds it).
    pub fn release(&self, session_id: &str, live: &Arc<LiveTurn>) {
        let mut map = self.map();
        if map
            .get(session_id)
            .is_some_and(|held| Arc::ptr_eq(held, live))
        {
            map.remove(session_id);
        }
    }

    /// The session's turn, while it runs.
    pub fn get(&self, session_id: &str) -> Option<Arc<LiveTurn>> {
        self.map()
            .get(session_id)
            .filter(|live| live.running())
            .cloned()
    }

    /// Sessions with a running turn.
    pub fn running(&self) -> Vec<String> {
        self.map()
            .iter()
            .filter(|(_, live)| live.running())
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn cancel_all(&self) {
        for live in self.map().values() {
            live.cancel.cancel();
        }
    }

    /// Whether every turn has wound up (its task is gone).
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_event_and_its_time() {
        let frame = Frame::event(3, &Event::Thinking { iteration: 2 }, 1500.25);
        assert_eq!(frame.seq, 3);
        assert_eq!(frame.name, "thinking");
        let value: serde_json::Value = serde_json::from_str(&frame.data).unwrap();
        assert_eq!(value["type"], "thinking");
        assert_eq!(value["iteration"], 2);
        assert_eq!(value["ts"], 1500.25);
        let stored = Frame::stored(
            1,
            &StoredEvent {
                ts: 7,
                name: "user".into(),
                data: r#"{"type":"user","content":"hi"}"#.into(),
            },
        );
        assert_eq!(stored.name, "user");
        assert_eq!(
            &*stored.data,
            r#"{"type":"user","content":"hi","ts":7.000}"#
        );
    }

    #[tokio::test]
    async fn followers_see_every_frame_in_order_from_where_they_start() {
        use futures_util::StreamExt;
        let live = LiveTurn::new(5);
        let early = tokio::spawn(Arc::clone(&live).follow(0).collect::<Vec<_>>());
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.db")).unwrap());
        let sink = TurnSink {
            live: Arc::clone(&live),
            store,
        };
        for iteration in 1..=3 {
            sink.emit(&Event::Thinking { iteration });
            tokio::task::yield_now().await;
        }
        let late = tokio::spawn(Arc::clone(&live).follow(2).collect::<Vec<_>>());
        live.finish();
        let early: Vec<u64> = early.await.unwrap().iter().map(|f| f.seq).collect();
        let late: Vec<u64> = late.await.unwrap().iter().map(|f| f.seq).collect();
        assert_eq!(early, [5, 6, 7]);
        assert_eq!(late, [7]);
    }
}
