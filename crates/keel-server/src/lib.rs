//! `keel serve`: the agent over HTTP. `POST /chat` streams a turn's events as
//! Server-Sent Events; sessions are kept in the store by id; a browser UI is served at
//! `/` from assets compiled into the binary. See `assets/openapi.json` for the API.

mod app;
mod error;
mod guard;
mod live;
mod routes;
mod sse;
mod turns;
mod ui;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{delete, get, post};
use keel_agent::Agent;
use keel_agent::permissions::PendingApprovals;
use keel_store::Store;
use keel_tools::Workspace;
use tokio::net::TcpListener;

pub use error::{ApiError, ServerError};

use crate::app::App;
use crate::guard::Guard;
use crate::live::Turns;

/// Shortest token accepted from the user.
pub const MIN_TOKEN_LEN: usize = 16;

/// A bound, not yet serving, server.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    token: String,
    generated_token: bool,
    app: Arc<App>,
}

impl Server {
    /// Binds `addr`. Without a token a random one is made, and only a loopback
    /// address may be bound.
    pub async fn bind(
        addr: SocketAddr,
        token: Option<String>,
        agent: Arc<Agent>,
        store: Arc<Store>,
        workspace: Workspace,
    ) -> Result<Self, ServerError> {
        let generated_token = token.is_none();
        let token = match token {
            Some(token) if token.len() < MIN_TOKEN_LEN => {
                return Err(ServerError::TokenTooShort { min: MIN_TOKEN_LEN });
            }
            Some(token) => token,
            None if addr.ip().is_loopback() => random_token()?,
            None => return Err(ServerError::TokenRequired(addr)),
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        Ok(Self {
            listener,
            addr,
            token,
            generated_token,
            app: Arc::new(App::new(agent, store, workspace)),
        })
    }

    /// Calls the agent asks about wait in `approvals`; the UI (and `POST
    /// /sessions/{id}/approvals/{call_id}`) answers them. Give the agent the same
    /// `PendingApprovals` as its approver.
    pub fn with_approvals(mut self, approvals: Arc<PendingApprovals>) -> Self {
        if let Some(app) = Arc::get_mut(&mut self.app) {
            app.approvals = Some(approvals);
        }
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether the token was made here (and so must be shown to the user).
    pub fn generated_token(&self) -> bool {
        self.generated_token
    }

    /// The address to open in a browser: it logs in with the token.
    pub fn login_url(&self) -> String {
        format!("http://{}/?token={}", self.addr, self.token)
    }

    /// Serves until `shutdown` completes; then cancels the running turns and waits
    /// (up to `grace`) for them to store their ends.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
        grace: Duration,
    ) -> Result<(), ServerError> {
        let turns = Arc::clone(&self.app.turns);
        let router = router(self.app, Guard::new(self.token, self.addr));
        axum::serve(self.listener, router)
            .with_graceful_shutdown(stop_turns(shutdown, Arc::clone(&turns), grace))
            .await
            .map_err(ServerError::Serve)
    }
}

/// Cancels the running turns once `shutdown` fires; open event streams end with them.
async fn stop_turns(shutdown: impl Future<Output = ()>, turns: Arc<Turns>, grace: Duration) {
    shutdown.await;
    turns.cancel_all();
    let deadline = tokio::time::Instant::now() + grace;
    while !turns.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn router(app: Arc<App>, guard: Guard) -> Router {
    Router::new()
        .route("/", get(ui::index))
        .route("/app.js", get(ui::script))
        .route("/style.css", get(ui::style))
        .route("/favicon.svg", get(ui::icon))
        .route("/openapi.json", get(ui::openapi))
        .route("/health", get(routes::health))
        .route("/chat", post(routes::chat))
        .route("/sessions", get(routes::sessions))
        .route("/sessions/{id}/events", get(routes::events))
        .route("/sessions/{id}/cancel", post(routes::cancel))
        .route("/sessions/{id}/approvals/{call_id}", post(routes::approve))
        .route("/sessions/{id}/turns/{turn}/diff", get(turns::diff))
        .route("/sessions/{id}/undo", post(turns::undo))
        .route("/sessions/{id}/redo", post(turns::redo))
        .route("/sessions/{id}/plan/approve", post(turns::approve_plan))
        .route("/session/{id}", delete(routes::delete))
        .route("/sessions/{id}", delete(routes::delete))
        .fallback(ui::not_found)
        .with_state(app)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(guard),
            guard::check,
        ))
}

/// 256 random bits from the operating system, hex.
fn random_token() -> Result<String, ServerError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ServerError::Randomness(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
