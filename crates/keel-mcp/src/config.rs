//! Which MCP servers to start: `[[mcp.servers]]` in keel's TOML configuration, or the
//! `mcpServers` JSON object other MCP hosts use (so users can reuse what they have).
//! Secrets never sit in these files: an HTTP server's bearer token is read from an
//! environment variable named here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Prefix of its tools' names (`name__tool`).
    pub name: String,
    pub transport: ServerTransport,
    /// How long starting it (spawn and handshake) may take.
    pub startup_timeout: Duration,
    /// How long one call may take before it is abandoned (and the server restarted).
    pub tool_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerTransport {
    /// A process speaking MCP on stdin/stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    /// A streamable-HTTP server.
    Http {
        url: String,
        /// The environment variable holding the bearer token, if it needs one.
        bearer_token_env: Option<String>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("MCP server `{name}`: {problem}")]
    Server { name: String, problem: String },
    #[error(
        "MCP server names must be letters, digits, `-` or single `_` (it prefixes tool names as `NAME__tool`): `{0}`"
    )]
    BadName(String),
    #[error("two MCP servers are named `{0}`")]
    Duplicate(String),
    #[error("not an `mcpServers` file: {0}")]
    Json(String),
}

/// One `[[mcp.servers]]` table as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub name: String,
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    pub url: Option<String>,
    pub bearer_token_env: Option<String>,
    pub startup_timeout_secs: Option<u64>,
    pub tool_timeout_secs: Option<u64>,
}

impl TryFrom<RawServer> for ServerConfig {
    type Error = ConfigError;

    fn try_from(raw: RawServer) -> Result<Self, ConfigError> {
        check_name(&raw.name)?;
        let problem = |problem: &str| ConfigError::Server {
            name: raw.name.clone(),
            problem: problem.to_string(),
        };
        let transport = match (raw.command, raw.url) {
            (Some(command), None) => {
                if raw.bearer_token_env.is_some() {
                    return Err(problem("`bearer_token_env` is for `url` servers"));
                }
                if command.trim().is_empty() {
                    return Err(problem("`command` is empty"));
                }
                ServerTransport::Stdio {
                    command,
                    args: raw.args,
                    env: raw.env,
                    cwd: raw.cwd,
                }
            }
            (None, Some(url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(problem("`url` must be an http:// or https:// address"));
                }
                if !raw.args.is_empty() || !raw.env.is_empty() || raw.cwd.is_some() {
                    return Err(problem("`args`, `env` and `cwd` are for `command` servers"));
                }
                ServerTransport::Http {
                    url,
                    bearer_token_env: raw.bearer_token_env,
                }
            }
            (Some(_), Some(_)) => return Err(problem("give `command` or `url`, not both")),
            (None, None) => return Err(problem("give `command` (stdio) or `url` (HTTP)")),
        };
        let secs = |value: Option<u64>, default: Duration| match value {
            Some(0) => Err(problem("timeouts must be at least 1 second")),
            Some(s) => Ok(Duration::from_secs(s)),
            None => Ok(default),
        };
        Ok(Self {
            startup_timeout: secs(raw.startup_timeout_secs, DEFAULT_STARTUP_TIMEOUT)?,
            tool_timeout: secs(raw.tool_timeout_secs, DEFAULT_TOOL_TIMEOUT)?,
            name: raw.name,
            transport,
        })
    }
}

fn check_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && !name.contains("__")
        && !name.starts_with('_')
        && !name.ends_with('_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::BadName(name.to_string()))
    }
}

/// Checks a whole list: each server, and no name twice.
pub fn servers(raw: Vec<RawServer>) -> Result<Vec<ServerConfig>, ConfigError> {
    let mut out: Vec<ServerConfig> = Vec::new();
    for server in raw {
        let server = ServerConfig::try_from(server)?;
        if out.iter().any(|s| s.name == server.name) {
            return Err(ConfigError::Duplicate(server.name));
        }
        out.push(server);
    }
    Ok(out)
}

/// Reads the `{"mcpServers": {NAME: {...}}}` shape other MCP hosts use. A header
/// `Authorization: Bearer ${VAR}` becomes `bearer_token_env = VAR`; a literal token is
/// refused (it would sit in a file next to the code).
pub fn parse_mcp_servers_json(text: &str) -> Result<Vec<RawServer>, ConfigError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::Json(e.to_string()))?;
    let Some(servers) = value.get("mcpServers").and_then(Value::as_object) else {
        return Err(ConfigError::Json("no `mcpServers` object".into()));
    };
    let mut out = Vec::new();
    for (name, entry) in servers {
        let problem = |problem: String| ConfigError::Server {
            name: name.clone(),
            problem,
        };
        let Some(entry) = entry.as_object() else {
            return Err(problem("must be an object".into()));
        };
        if entry.get("disabled").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let string = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_string);
        let kind = string("type").unwrap_or_default();
        if kind == "sse" {
            return Err(problem(
                "the old HTTP+SSE transport is not supported; use the server's streamable-HTTP endpoint"
                    .into(),
            ));
        }
        let mut raw = RawServer {
            name: name.clone(),
            command: string("command"),
            url: string("url").or_else(|| string("serverUrl")),
            cwd: string("cwd").map(PathBuf::from),
            ..RawServer::default()
        };
        if let Some(args) = entry.get("args").and_then(Value::as_array) {
            raw.args = args
                .iter()
                .map(|a| a.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| problem("`args` must be strings".into()))?;
        }
        if let Some(env) = entry.get("env").and_then(Value::as_object) {
            for (key, value) in env {
                let value = value
                    .as_str()
                    .ok_or_else(|| problem(format!("env `{key}` must be a string")))?;
                raw.env.insert(key.clone(), value.to_string());
            }
        }
        if let Some(headers) = entry.get("headers").and_then(Value::as_object) {
            for (key, value) in headers {
                let value = value.as_str().unwrap_or_default();
                if !key.eq_ignore_ascii_case("authorization") {
                    return Err(problem(format!(
                        "header `{key}` is not supported (only `Authorization: Bearer ${{VAR}}`)"
                    )));
                }
                let var = value
                    .strip_prefix("Bearer ${")
                    .and_then(|rest| rest.strip_suffix('}'))
                    .filter(|var| !var.is_empty());
                match var {
                    Some(var) => raw.bearer_token_env = Some(var.to_string()),
                    None => {
                        return Err(problem(
                            "an inline Authorization token is refused: write `Bearer ${VAR}` and set VAR in the environment"
                                .into(),
                        ));
                    }
                }
            }
        }
        // Hosts that write `timeout` give it in milliseconds.
        if let Some(ms) = entry.get("timeout").and_then(Value::as_u64) {
            raw.tool_timeout_secs = Some(ms.div_ceil(1000).max(1));
        }
        out.push(raw);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(name: &str) -> RawServer {
        RawServer {
            name: name.into(),
            command: Some("npx".into()),
            ..RawServer::default()
        }
    }

    #[test]
    fn a_stdio_server_gets_default_timeouts() {
        let server = ServerConfig::try_from(raw("fs")).unwrap();
        assert_eq!(server.startup_timeout, DEFAULT_STARTUP_TIMEOUT);
        assert_eq!(server.tool_timeout, DEFAULT_TOOL_TIMEOUT);
        assert!(matches!(server.transport, ServerTransport::Stdio { .. }));
    }

    #[test]
    fn bad_servers_are_refused_with_the_reason() {
        for name in ["", "a__b", "_a", "a b", "fs/x"] {
            assert_eq!(
                ServerConfig::try_from(raw(name)),
                Err(ConfigError::BadName(name.into()))
            );
        }
        let mut both = raw("x");
        both.url = Some("http://127.0.0.1:1/mcp".into());
        assert!(
            ServerConfig::try_from(both)
                .unwrap_err()
                .to_string()
                .contains("not both")
        );
        let neither = RawServer {
            name: "x".into(),
            ..RawServer::default()
        };
        assert!(ServerConfig::try_from(neither).is_err());
        let mut zero = raw("x");
        zero.tool_timeout_secs = Some(0);
        assert!(ServerConfig::try_from(zero).is_err());
        assert_eq!(
            servers(vec![raw("fs"), raw("fs")]),
            Err(ConfigError::Duplicate("fs".into()))
        );
    }

    #[test]
    fn the_mcp_servers_json_shape_is_read() {
        let text = r#"{"mcpServers": {
            "fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "."], "env": {"A": "1"}},
            "remote": {"type": "http", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer ${REMOTE_TOKEN}"}},
            "off": {"command": "x", "disabled": true}
        }}"#;
        let raw = parse_mcp_servers_json(text).unwrap();
        let configs = servers(raw).unwrap();
        assert_eq!(configs.len(), 2);
        assert_eq!(
            configs[0].transport,
            ServerTransport::Stdio {
                command: "npx".into(),
                args: vec![
                    "-y".into(),
                    "@modelcontextprotocol/server-filesystem".into(),
                    ".".into()
                ],
                env: [("A".to_string(), "1".to_string())].into(),
                cwd: None,
            }
        );
        assert_eq!(
            configs[1].transport,
            ServerTransport::Http {
                url: "http://127.0.0.1:9/mcp".into(),
                bearer_token_env: Some("REMOTE_TOKEN".into()),
            }
        );
        let inline = r#"{"mcpServers": {"r": {"url": "http://h/mcp", "headers": {"Authorization": "Bearer abc123"}}}}"#;
        assert!(
            parse_mcp_servers_json(inline)
                .unwrap_err()
                .to_string()
                .contains("inline Authorization token is refused")
        );
        assert!(parse_mcp_servers_json("{}").is_err());
        assert!(parse_mcp_servers_json("not json").is_err());
    }
}
