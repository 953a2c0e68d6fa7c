//! keel and the Model Context Protocol, through the official Rust SDK (`rmcp`):
//!
//! - as a client, the MCP servers a user configures (TOML `[[mcp.servers]]`, or the
//!   `mcpServers` JSON shape other hosts use) become tools named `server__tool`, with
//!   input schemas a small model can follow ([`McpServers`]);
//! - as a server, `keel mcp` offers keel's own tools and a whole agent task to other
//!   MCP hosts over stdio ([`KeelMcpServer`]).

mod client;
mod config;
mod connect;
mod content;
mod schema;
mod server;

pub use client::{McpServers, ServerReport, ServerState};
pub use config::{
    ConfigError, DEFAULT_STARTUP_TIMEOUT, DEFAULT_TOOL_TIMEOUT, RawServer, ServerConfig,
    ServerTransport, parse_mcp_servers_json, servers,
};
pub use connect::StartError;
pub use schema::{sanitize_schema, tool_name};
pub use server::{KeelMcpServer, ServeError, TASK_TOOL};
