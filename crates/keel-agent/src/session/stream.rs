//! Reading one streamed model response — the one loop both the turn's requests and the
//! repair requests go through. A response whose text goes round in a loop is stopped
//! there (see `looping`).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use keel_llm::{LlmError, ModelEvent, ModelStream};
use keel_protocol::Usage;
use tokio_util::sync::CancellationToken;

use crate::looping::{LoopGuard, Looped};

/// A native call as the backend streamed it (arguments still raw JSON text).
pub(super) struct RawCall {
    pub id: Option<String>,
    pub name: String,
    pub arguments: String,
}

/// Everything one response brought.
#[derive(Default)]
pub(super) struct Streamed {
    pub text: String,
    pub native_calls: Vec<RawCall>,
    pub usage: Usage,
    pub first_token: Option<Duration>,
    pub failure: Option<LlmError>,
    pub cancelled: bool,
    /// The text went round in a loop and was stopped: `text` ends with one piece of it.
    pub looped: Option<Looped>,
}

/// Reads `stream` to its end (or to a failure, a loop, or cancellation), handing each
/// text piece to `on_text` as it arrives.
pub(super) async fn read(
    mut stream: ModelStream,
    started: Instant,
    cancel: &CancellationToken,
    mut on_text: impl FnMut(&str),
) -> Streamed {
    let mut out = Streamed::default();
    let mut guard = LoopGuard::default();
    let mut pieces = 0u64;
    loop {
        let item = tokio::select! {
            _ = cancel.cancelled() => {
                out.cancelled = true;
                return out;
            }
            item = stream.next() => item,
        };
        match item {
            None => return out,
            Some(Ok(ModelEvent::Text(text))) => {
                out.first_token.get_or_insert_with(|| started.elapsed());
                out.text.push_str(&text);
                on_text(&text);
                pieces += 1;
                if let Some(looped) = guard.check(&out.text) {
                    // Dropping the stream stops the generation. The backend's usage
                    // never comes: the pieces streamed stand for the tokens.
                    out.text.truncate(looped.start + looped.piece.len());
                    out.usage.completion_tokens = Some(pieces);
                    out.looped = Some(looped);
                    return out;
                }
            }
            Some(Ok(ModelEvent::ToolCall {
                id,
                name,
                arguments,
            })) => {
                out.first_token.get_or_insert_with(|| started.elapsed());
                out.native_calls.push(RawCall {
                    id,
                    name,
                    arguments,
                });
            }
            Some(Ok(ModelEvent::Usage(usage))) => out.usage = usage,
            Some(Err(e)) => {
                out.failure = Some(e);
                return out;
            }
        }
    }
}
