//! `keel mcp` (keel as an MCP server on stdio) and `keel mcp list` (the configured MCP
//! servers, started once to show their state and tools).

use std::io::Write;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use keel_mcp::{KeelMcpServer, McpServers, ServerConfig, ServerState, ServerTransport};
use keel_protocol::Outcome;
use serde_json::{Value, json};

use crate::cli::{McpArgs, McpCommand};
use crate::config::{self, Layer};
use crate::run::{Built, agent, exit_code, workspace_dir};
use crate::sessions_cmd::open_store;

pub async fn run(args: McpArgs) -> Result<u8> {
    let dir = workspace_dir(args.workspace)?;
    match args.command {
        Some(McpCommand::List { json }) => {
            let settings = config::load(&dir, Layer::default())?;
            list(settings.mcp, settings.workspace.root(), json).await
        }
        None => {
            let flags = Layer::model_flags(args.model, args.max_iterations);
            let settings = config::load(&dir, flags)?;
            let store = Arc::new(open_store()?);
            // stdout is the protocol channel: everything else goes to stderr.
            let Some(Built { agent, mcp, .. }) = agent(&settings, Arc::clone(&store)).await? else {
                return Ok(exit_code(Outcome::Failed));
            };
            let agent = agent.with_approver(crate::approve::for_mcp(settings.mcp_approval));
            let server = KeelMcpServer::new(
                Arc::new(agent),
                store,
                settings.workspace.clone(),
                settings.agent.limits.clone(),
            );
            let served = server.serve_stdio().await.map_err(|e| anyhow!(e));
            mcp.shutdown().await;
            served?;
            Ok(0)
        }
    }
}

async fn list(configs: Vec<ServerConfig>, root: &std::path::Path, json: bool) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    if configs.is_empty() {
        if !json {
            writeln!(
                out,
                "no MCP servers configured (add [[mcp.servers]] to .keel/config.toml or \
                 ~/.config/keel/config.toml, or name an mcpServers JSON file in [mcp] files)"
            )?;
        }
        return Ok(0);
    }
    let servers = McpServers::start(configs.clone(), root).await;
    let mut failed = false;
    for (config, report) in configs.iter().zip(servers.reports()) {
        let origin = origin(config);
        if json {
            let mut line = json!({ "name": report.name, "transport": origin });
            match &report.state {
                ServerState::Running { protocol, tools } => {
                    line["state"] = "running".into();
                    line["protocol"] = protocol.clone().into();
                    line["tools"] = tools
                        .iter()
                        .map(|t| {
                            json!({
                                "name": t.name,
                                "description": t.description,
                                "read_only": t.read_only,
                                "parameters": t.parameters,
                            })
                        })
                        .collect::<Vec<Value>>()
                        .into();
                }
                ServerState::Failed(reason) => {
                    failed = true;
                    line["state"] = "failed".into();
                    line["error"] = reason.clone().into();
                }
            }
            writeln!(out, "{line}")?;
            continue;
        }
        match &report.state {
            ServerState::Running { protocol, tools } => {
                writeln!(
                    out,
                    "{}: running, {} tools, protocol {protocol} ({origin})",
                    report.name,
                    tools.len()
                )?;
                for tool in tools {
                    let summary = tool.description.lines().next().unwrap_or("");
                    let summary: String = summary.chars().take(90).collect();
                    let mode = if tool.read_only {
                        "read-only"
                    } else {
                        "writes"
                    };
                    writeln!(out, "  {:<36} {mode:<9} {summary}", tool.name)?;
                }
            }
            ServerState::Failed(reason) => {
                failed = true;
                writeln!(out, "{}: failed: {reason} ({origin})", report.name)?;
            }
        }
    }
    out.flush()?;
    drop(out);
    servers.shutdown().await;
    Ok(if failed { 1 } else { 0 })
}

/// How the server is reached, in one line.
fn origin(config: &ServerConfig) -> String {
    match &config.transport {
        ServerTransport::Stdio { command, args, .. } => {
            let mut line = command.clone();
            for arg in args {
                line.push(' ');
                line.push_str(arg);
            }
            line
        }
        ServerTransport::Http { url, .. } => url.clone(),
    }
}
