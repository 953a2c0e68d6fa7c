//! `keel serve`: the HTTP API and browser UI over one agent.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use keel_agent::permissions::{Approver, PendingApprovals};
use keel_protocol::Outcome;
use keel_server::Server;

use crate::cli::ServeArgs;
use crate::config::{self, Layer};
use crate::run::{Built, agent, exit_code, workspace_dir};
use crate::sessions_cmd::open_store;

/// How long running turns get to store their end after Ctrl-C.
const GRACE: Duration = Duration::from_secs(5);

pub async fn run(args: ServeArgs) -> Result<u8> {
    let dir = workspace_dir(args.workspace)?;
    let flags = Layer::model_flags(args.model, args.max_iterations);
    let settings = config::load(&dir, flags)?;
    let store = Arc::new(open_store()?);
    let Some(Built {
        agent,
        spec: model,
        mcp,
    }) = agent(&settings, Arc::clone(&store)).await?
    else {
        return Ok(exit_code(Outcome::Failed));
    };
    let addr = SocketAddr::new(args.host, args.port);
    // Calls a permission asks about wait for an answer in the browser.
    let approvals = Arc::new(PendingApprovals::default());
    let agent = agent.with_approver(Arc::clone(&approvals) as Arc<dyn Approver>);
    let server = match Server::bind(
        addr,
        args.token,
        Arc::new(agent),
        store,
        settings.workspace.clone(),
    )
    .await
    {
        Ok(server) => server.with_approvals(approvals),
        Err(e) => {
            mcp.shutdown().await;
            return Err(anyhow!(e));
        }
    };
    let bound = server.local_addr();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "keel serve: {} in {} with {model}",
        bound,
        settings.workspace.root().display()
    )?;
    if server.generated_token() {
        writeln!(out, "open {}", server.login_url())?;
    } else {
        writeln!(
            out,
            "open http://{bound}/?token=<your token> (API clients: Authorization: Bearer <token>)"
        )?;
    }
    out.flush()?;
    drop(out);
    let shutdown = async {
        // Ctrl-C, or SIGTERM from whatever manages the process.
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(term) => {
                    term.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminated => {}
        }
    };
    let served = server.run(shutdown, GRACE).await.map_err(|e| anyhow!(e));
    mcp.shutdown().await;
    served?;
    Ok(0)
}
