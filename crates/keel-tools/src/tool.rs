//! The [`Tool`] trait, and [`TypedTool`] for tools whose arguments are a Rust type:
//! the JSON schema the model sees is derived from that type, and validating a call
//! is deserialising into it, so the two cannot drift apart.

use std::sync::Arc;

use async_trait::async_trait;
use keel_protocol::ToolSpec;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{ToolContext, ToolError};

/// The result of a tool call, as the model will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    pub content: String,
    pub is_error: bool,
}

impl ToolOutput {
    pub fn ok(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            is_error: false,
        }
    }

    pub fn error(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            is_error: true,
        }
    }
}

impl From<Result<String, ToolError>> for ToolOutput {
    fn from(result: Result<String, ToolError>) -> Self {
        match result {
            Ok(content) => ToolOutput::ok(content),
            Err(e) => ToolOutput::error(e.to_string()),
        }
    }
}

#[async_trait]
pub trait Tool: Send + Sync {
    fn spec(&self) -> ToolSpec;

    /// Runs the call. Arguments are unvalidated JSON; errors come back as outputs.
    async fn call(
        &self,
        ctx: &ToolContext,
        arguments: Value,
        cancel: &CancellationToken,
    ) -> ToolOutput;
}

/// A tool with typed arguments. Wrap it with [`typed`] to get a [`Tool`].
#[async_trait]
pub trait TypedTool: Send + Sync + 'static {
    type Args: DeserializeOwned + JsonSchema + Send;
    const NAME: &'static str;
    const DESCRIPTION: &'static str;
    const READ_ONLY: bool;

    async fn run(
        &self,
        ctx: &ToolContext,
        args: Self::Args,
        cancel: &CancellationToken,
    ) -> Result<String, ToolError>;
}

struct Typed<T> {
    tool: T,
    parameters: Value,
}

/// Turns a [`TypedTool`] into a [`Tool`], deriving its schema once.
pub fn typed<T: TypedTool>(tool: T) -> Arc<dyn Tool> {
    Arc::new(Typed {
        tool,
        parameters: schema_for::<T::Args>(),
    })
}

#[async_trait]
impl<T: TypedTool> Tool for Typed<T> {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: T::NAME.to_string(),
            description: T::DESCRIPTION.to_string(),
            parameters: self.parameters.clone(),
            read_only: T::READ_ONLY,
        }
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        arguments: Value,
        cancel: &CancellationToken,
    ) -> ToolOutput {
        let args = match serde_json::from_value::<T::Args>(arguments) {
            Ok(args) => args,
            Err(e) => {
                return ToolOutput::error(
                    ToolError::InvalidArguments {
                        tool: T::NAME.to_string(),
                        problem: e.to_string(),
                        expected: signature(&self.parameters),
                    }
                    .to_string(),
                );
            }
        };
        self.tool.run(ctx, args, cancel).await.into()
    }
}

/// A compact JSON schema for small models: no `$schema`/`title`, no `format`,
/// optional fields as their plain type.
fn schema_for<A: JsonSchema>() -> Value {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.inline_subschemas = true;
    settings.meta_schema = None;
    let schema = settings.into_generator().into_root_schema_for::<A>();
    let mut value = schema.to_value();
    simplify(&mut value);
    if let Some(object) = value.as_object_mut() {
        object.remove("title");
    }
    value
}

fn simplify(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("format");
            map.remove("$schema");
            // `Option<T>` comes out as `"type": [T, "null"]`; optional is already said
            // by `required`, so keep the plain type.
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let single = types.remove(0);
                    map.insert("type".into(), single);
                }
            }
            if let Some(Value::Array(variants)) = map.get("anyOf") {
                let non_null: Vec<Value> = variants
                    .iter()
                    .filter(|v| v.get("type").and_then(Value::as_str) != Some("null"))
                    .cloned()
                    .collect();
                if non_null.len() == 1 {
                    map.remove("anyOf");
                    if let Value::Object(inner) = &non_null[0] {
                        for (k, v) in inner {
                            map.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                }
            }
            for v in map.values_mut() {
                simplify(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(simplify),
        _ => {}
    }
}

/// One-line rendering of an object schema: `{"path": string, "limit"?: integer}`.
pub fn signature(schema: &Value) -> String {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return "{}".into();
    };
    let fields: Vec<String> = properties
        .iter()
        .map(|(name, prop)| {
            let optional = if required.contains(&name.as_str()) {
                ""
            } else {
                "?"
            };
            format!("\"{name}\"{optional}: {}", type_name(prop))
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

fn type_name(prop: &Value) -> String {
    if let Some(values) = prop.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        return names.join("|");
    }
    match prop.get("type") {
        Some(Value::String(t)) if t == "array" => {
            let item = prop
                .get("items")
                .map(type_name)
                .unwrap_or_else(|| "any".into());
            format!("[{item}]")
        }
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join("|"),
        _ => "any".into(),
    }
}
