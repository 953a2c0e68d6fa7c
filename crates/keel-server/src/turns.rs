//! The API of a session's turns as changes to files: a turn's diff, undo and redo,
//! and approving a plan.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_agent::{Restored, Session, UndoError};
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ApiError;
use crate::live::{LiveTurn, TurnSink};
use crate::routes::{Turn, load, owned, resume};
use crate::sse;

/// `GET /sessions/{id}/turns/{turn}/diff`: the files turn `turn` changed and their
/// unified diff.
pub async fn diff(
    State(app): State<Arc<App>>,
    Path((id, turn)): Path<(String, u32)>,
) -> Result<Json<Value>, ApiError> {
    let (_, events) = load(&app, &id)?;
    let dir = app
        .agent
        .config()
        .checkpoint_dir
        .clone()
        .ok_or_else(|| off(&id))?;
    let found = keel_agent::turn_diff(&dir, &events, turn)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let Some((files, diff)) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_changes",
            format!("turn {turn} of session `{id}` changed no files (or has no checkpoint)"),
        ));
    };
    Ok(Json(
        json!({"session_id": id, "turn": turn, "files": files, "diff": diff}),
    ))
}

fn off(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "no_checkpoints",
        format!("session `{id}`: checkpoints are off on this server"),
    )
}

/// `POST /sessions/{id}/undo`: puts back every file the last turn not yet undone
/// changed.
pub async fn undo(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    restore(&app, id, true)
}

/// `POST /sessions/{id}/redo`: takes back the last undo.
pub async fn redo(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    restore(&app, id, false)
}

fn restore(app: &Arc<App>, id: String, undo: bool) -> Result<Json<Value>, ApiError> {
    // Holding the session: no turn starts while its files are put back.
    let live = LiveTurn::new(0);
    if app.turns.claim(&id, &live).is_none() {
        return Err(ApiError::busy(&id));
    }
    let result =
        (|| {
            let (_, events) = load(app, &id)?;
            live.continue_session(&id, events.len() as u64 + 1);
            let sink = TurnSink {
                live: Arc::clone(&live),
                store: Arc::clone(&app.store),
            };
            let mut session = Session::resume(&app.agent, app.workspace.clone(), events, &sink)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let restored = if undo {
                session.undo(&app.agent, &sink)
            } else {
                session.redo(&app.agent, &sink)
            };
            match restored {
                Ok(Restored {
                    turn,
                    files,
                    changed_since,
                }) => Ok(Json(json!({
                    "session_id": id,
                    "turn": turn,
                    "files": files,
                    "changed_since": changed_since,
                }))),
                Err(UndoError::Off) => Err(off(&id)),
                Err(e @ (UndoError::NothingToUndo | UndoError::NothingToRedo)) => Err(
                    ApiError::new(StatusCode::CONFLICT, "nothing_to_restore", e.to_string()),
                ),
                Err(e) => Err(ApiError::internal(e.to_string())),
            }
        })();
    live.finish();
    app.turns.release(&id, &live);
    result
}

/// `POST /sessions/{id}/plan/approve`: carries out the session's pending plan as its
/// next turn, streamed like `POST /chat`.
pub async fn approve_plan(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    owned(&app, &id)?;
    let frames = resume(&app, id, Turn::Approve)?;
    Ok(sse::respond(frames).into_response())
}
