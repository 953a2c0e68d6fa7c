//! The API's handlers.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use keel_agent::{EventSink, Session};
use keel_protocol::{ErrorKind, Event, Outcome};
use keel_store::SessionInfo;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ApiError;
use crate::live::{Frame, LiveTurn, TurnSink};
use crate::sse;

/// `POST /chat`: runs one turn and streams its events.
pub async fn chat(
    State(app): State<Arc<App>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(rejected)?;
    let (message, session_id) = chat_request(&body)?;
    let turn = match body.get("mode").and_then(Value::as_str) {
        None | Some("run") => Turn::Task(message),
        Some("plan") => Turn::Plan(message),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`mode` is `run` (the default) or `plan`, not `{other}`"
            )));
        }
    };
    let frames = match session_id {
        None => start(&app, turn),
        Some(id) => resume(&app, id, turn)?,
    };
    Ok(sse::respond(frames).into_response())
}

fn rejected(rejection: JsonRejection) -> ApiError {
    let status = match rejection {
        JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        JsonRejection::BytesRejection(ref e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        _ => StatusCode::BAD_REQUEST,
    };
    let code = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        _ => "malformed_json",
    };
    ApiError::new(status, code, rejection.body_text())
}

fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request(rejection.body_text())
}

/// The message and the optional session id of a chat request.
fn chat_request(body: &Value) -> Result<(String, Option<String>), ApiError> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::bad_request(
            r#"the body must be a JSON object: {"message": "...", "session_id": "optional"}"#,
        ));
    };
    let message = match object.get("message") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        Some(Value::String(_)) => return Err(ApiError::bad_request("`message` is empty")),
        Some(_) => return Err(ApiError::bad_request("`message` must be a string")),
        None => return Err(ApiError::bad_request("`message` is required")),
    };
    let session_id = match object.get("session_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
        Some(_) => {
            return Err(ApiError::bad_request(
                "`session_id` must be a non-empty string (or left out for a new session)",
            ));
        }
    };
    Ok((message, session_id))
}

/// What a turn the API starts does.
pub enum Turn {
    Task(String),
    /// A planning turn for the task.
    Plan(String),
    /// Carries out the session's pending plan.
    Approve,
}

fn start(app: &Arc<App>, turn: Turn) -> futures_util::stream::BoxStream<'static, Frame> {
    let live = LiveTurn::new(1);
    let sink = TurnSink {
        live: Arc::clone(&live),
        store: Arc::clone(&app.store),
    };
    let session = Session::start(&app.agent, app.workspace.clone(), &sink);
    // A fresh id: nothing else can hold it.
    let _ = app.turns.claim(session.id(), &live);
    spawn_turn(app, session, sink, turn);
    live.follow(0).boxed()
}

pub(crate) fn resume(
    app: &Arc<App>,
    id: String,
    turn: Turn,
) -> Result<futures_util::stream::BoxStream<'static, Frame>, ApiError> {
    let live = LiveTurn::new(0);
    if app.turns.claim(&id, &live).is_none() {
        return Err(ApiError::busy(&id));
    }
    let loaded = load(app, &id).and_then(|(first, events)| {
        live.continue_session(&id, events.len() as u64 + 1);
        let sink = TurnSink {
            live: Arc::clone(&live),
            store: Arc::clone(&app.store),
        };
        let session = Session::resume(&app.agent, app.workspace.clone(), events, &sink)
            .map_err(|e| ApiError::internal(format!("session `{id}` cannot be resumed: {e}")))?;
        if matches!(turn, Turn::Approve) && session.pending_plan().is_none() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "no_plan",
                format!("session `{id}` has no plan waiting for approval"),
            ));
        }
        Ok((first, session, sink))
    });
    match loaded {
        Ok((first, session, sink)) => {
            spawn_turn(app, session, sink, turn);
            // `session` first, as for a new session; then the turn.
            Ok(futures_util::stream::once(async move { first })
                .chain(live.follow(0))
                .boxed())
        }
        Err(e) => {
            live.finish();
            app.turns.release(&id, &live);
            Err(e)
        }
    }
}

/// The session, if it exists and belongs to this server's workspace.
pub(crate) fn owned(app: &App, id: &str) -> Result<SessionInfo, ApiError> {
    app.store
        .session_in(id, &app.root)?
        .ok_or_else(|| ApiError::unknown_session(id))
}

/// A stored session of this workspace: its `session` event as a frame, and its events.
pub(crate) fn load(app: &App, id: &str) -> Result<(Frame, Vec<Event>), ApiError> {
    let info = owned(app, id)?;
    let events = app.store.events(id)?;
    let first = events
        .first()
        .ok_or_else(|| ApiError::unknown_session(id))?;
    // The session row is created with its `session` event, at the same time.
    Ok((Frame::event(1, first, info.started_at as f64), events))
}

/// Runs the turn on its own task: a client that disconnects does not stop it.
fn spawn_turn(app: &Arc<App>, mut session: Session, sink: TurnSink, turn: Turn) {
    let app = Arc::clone(app);
    tokio::spawn(async move {
        let live = Arc::clone(&sink.live);
        let id = session.id().to_string();
        let sink = Arc::new(sink);
        let turn = {
            let (agent, sink, cancel) = (
                Arc::clone(&app.agent),
                Arc::clone(&sink),
                live.cancel.clone(),
            );
            tokio::spawn(async move {
                match turn {
                    Turn::Task(message) => {
                        session.run_turn(&agent, &message, &*sink, &cancel).await;
                    }
                    Turn::Plan(task) => {
                        session.run_plan(&agent, &task, &*sink, &cancel).await;
                    }
                    Turn::Approve => {
                        session.approve_plan(&agent, &*sink, &cancel).await;
                    }
                }
            })
        };
        if let Err(e) = turn.await {
            // The loop itself failed (a panic): the session must not stay busy, and
            // its followers must hear why it ended.
            sink.emit(&Event::Error {
                kind: ErrorKind::Internal,
                message: format!("the turn stopped unexpectedly: {e}"),
            });
            sink.emit(&Event::Done {
                outcome: Outcome::Failed,
                iterations: 0,
            });
        }
        live.finish();
        app.turns.release(&id, &live);
    });
}

#[derive(Deserialize)]
pub struct EventsQuery {
    /// Only events after this position (as the SSE `id`).
    after: Option<u64>,
}

/// `GET /sessions/{id}/events`: the stored events, then (while a turn runs) the rest
/// of the turn as it happens.
pub async fn events(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    // A reconnecting EventSource says where it stopped.
    let after = query.after.or_else(|| {
        headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    });
    let after = after.unwrap_or(0);
    owned(&app, &id)?;
    let live = app.turns.get(&id);
    // While a turn runs, the store gives what came before it and the turn the rest.
    let stored_until = live.as_ref().map_or(u64::MAX, |live| live.base());
    let past: Vec<Frame> = app
        .store
        .stored(&id)?
        .iter()
        .zip(1u64..)
        .filter(|(_, seq)| *seq > after && *seq < stored_until)
        .map(|(event, seq)| Frame::stored(seq, event))
        .collect();
    let past = futures_util::stream::iter(past);
    let frames = match live {
        Some(live) => {
            let skip = after.saturating_sub(live.base().saturating_sub(1)) as usize;
            past.chain(live.follow(skip)).boxed()
        }
        None => past.boxed(),
    };
    Ok(sse::respond(frames).into_response())
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
}

/// `GET /sessions`: this workspace's sessions, most recent first.
pub async fn sessions(
    State(app): State<Arc<App>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let running = app.turns.running();
    let sessions: Vec<Value> = app
        .store
        .sessions(Some(&app.root), limit)?
        .into_iter()
        .map(|s| {
            json!({
                "id": s.id,
                "workspace": s.workspace,
                "model": s.model,
                "started_at": s.started_at,
                "updated_at": s.updated_at,
                "turns": s.turns,
                "outcome": s.outcome,
                "running": running.contains(&s.id),
            })
        })
        .collect();
    Ok(Json(json!({ "sessions": sessions })))
}

/// `DELETE /session/{id}`: forgets a session (its history and events).
pub async fn delete(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // Holding the session keeps a turn from starting while it is deleted.
    let live = LiveTurn::new(0);
    if app.turns.claim(&id, &live).is_none() {
        return Err(ApiError::busy(&id));
    }
    let result = owned(&app, &id).and_then(|_| Ok(app.store.delete(&id)?));
    live.finish();
    app.turns.release(&id, &live);
    result.map(|()| StatusCode::NO_CONTENT)
}

/// `POST /sessions/{id}/cancel`: stops the running turn (it ends `cancelled`).
pub async fn cancel(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if let Some(live) = app.turns.get(&id) {
        live.cancel.cancel();
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"session_id": id, "cancelling": true})),
        ));
    }
    owned(&app, &id)?;
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "not_running",
        format!("session `{id}` has no running turn"),
    ))
}

/// The body of `POST /sessions/{id}/approvals/{call_id}`.
#[derive(Deserialize)]
pub struct ApprovalAnswer {
    pub allow: bool,
}

/// `POST /sessions/{id}/approvals/{call_id}`: answers a call waiting for approval.
pub async fn approve(
    State(app): State<Arc<App>>,
    Path((id, call_id)): Path<(String, String)>,
    Json(answer): Json<ApprovalAnswer>,
) -> Result<Json<Value>, ApiError> {
    owned(&app, &id)?;
    let answered = app
        .approvals
        .as_ref()
        .is_some_and(|pending| pending.answer(&id, &call_id, answer.allow));
    if !answered {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_request",
            format!("session `{id}` has no call `{call_id}` waiting for approval"),
        ));
    }
    Ok(Json(
        json!({"session_id": id, "call_id": call_id, "allow": answer.allow}),
    ))
}

/// `GET /health`.
pub async fn health(State(app): State<Arc<App>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "model": app.model,
        "workspace": app.root,
        "running_turns": app.turns.running().len(),
    }))
}
