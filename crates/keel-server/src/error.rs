//! Errors: the server's own (binding) and the API's (a status and a JSON body).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "refusing to listen on {0} without a token: anyone who can reach it could run commands in the workspace. Pass --token (or set KEEL_TOKEN), or listen on 127.0.0.1"
    )]
    TokenRequired(std::net::SocketAddr),
    #[error("the token must be at least {min} characters")]
    TokenTooShort { min: usize },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot make a token: no randomness from the operating system ({0})")]
    Randomness(String),
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
}

/// An API error: answered with `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unknown_session(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_session",
            format!("no session `{id}` in this server's workspace"),
        )
    }

    pub fn busy(id: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "session_busy",
            format!(
                "session `{id}` is running a turn; wait for its `done` event or cancel it with POST /sessions/{id}/cancel"
            ),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<keel_store::StoreError> for ApiError {
    fn from(e: keel_store::StoreError) -> Self {
        match e {
            keel_store::StoreError::UnknownSession(id) => ApiError::unknown_session(&id),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"keel\""),
            );
        }
        response
    }
}
