//! The set of tools a session offers, sorted by name so the prompt that lists them
//! is byte-identical from one request to the next.

use std::collections::BTreeMap;
use std::sync::Arc;

use keel_protocol::ToolSpec;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{Tool, ToolContext, ToolOutput};

#[derive(Clone, Default)]
pub struct ToolRegistry {
    /// Each tool with its spec, taken once at registration.
    tools: BTreeMap<String, (ToolSpec, Arc<dyn Tool>)>,
}

impl ToolRegistry {
    /// The seven built-in tools.
    pub fn builtin() -> Self {
        let mut registry = Self::default();
        registry.register_all(crate::builtin::all());
        registry
    }

    /// Adds a tool (replacing one of the same name).
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        let spec = tool.spec();
        self.tools.insert(spec.name.clone(), (spec, tool));
    }

    /// Adds each of `tools` (replacing same-named ones), e.g. an MCP server's.
    pub fn register_all(&mut self, tools: impl IntoIterator<Item = Arc<dyn Tool>>) {
        for tool in tools {
            self.register(tool);
        }
    }

    /// Specs of all tools, sorted by name.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|(spec, _)| spec.clone()).collect()
    }

    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name).map(|(_, tool)| tool)
    }

    /// Whether calls of this tool may run concurrently with other read-only calls.
    pub fn is_read_only(&self, name: &str) -> bool {
        self.tools.get(name).is_some_and(|(spec, _)| spec.read_only)
    }

    /// Calls a tool by name; an unknown name is an error result listing the tools.
    pub async fn call(
        &self,
        ctx: &ToolContext,
        name: &str,
        arguments: Value,
        cancel: &CancellationToken,
    ) -> ToolOutput {
        match self.tools.get(name) {
            Some((_, tool)) => tool.call(ctx, arguments, cancel).await,
            None => ToolOutput::error(format!(
                "unknown tool `{name}`; the available tools are: {}",
                self.names().join(", ")
            )),
        }
    }
}
