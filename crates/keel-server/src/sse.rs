//! Frames as Server-Sent Events.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};

use crate::live::Frame;

/// Idle connections get a comment line this often, so proxies and browsers keep them.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn respond(
    frames: impl Stream<Item = Frame> + Send + 'static,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let events = frames.map(|frame| {
        Ok(SseEvent::default()
            .id(frame.seq.to_string())
            .event(frame.name)
            .data(&*frame.data))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
