//! keel and the Model Context Protocol. So far: which MCP servers to start (TOML
//! `[[mcp.servers]]`, or the `mcpServers` JSON shape other hosts use) and how their
//! tools are shown to a small model (`server__tool` names, sanitised input schemas).

mod config;
mod schema;

pub use config::{
    ConfigError, DEFAULT_STARTUP_TIMEOUT, DEFAULT_TOOL_TIMEOUT, RawServer, ServerConfig,
    ServerTransport, parse_mcp_servers_json, servers,
};
pub use schema::{sanitize_schema, tool_name};
