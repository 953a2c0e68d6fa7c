//! `keel tool` and `keel tools`: the tools without a model.

use anyhow::{Context, Result};
use keel_tools::{ToolContext, ToolRegistry};
use tokio_util::sync::CancellationToken;

use crate::cli::{ToolArgs, ToolsArgs};
use crate::config::{self, Layer};
use crate::run::workspace_dir;

pub async fn call(args: ToolArgs) -> Result<u8> {
    let dir = workspace_dir(args.workspace)?;
    let arguments: serde_json::Value =
        serde_json::from_str(&args.arguments).context("the arguments are not a JSON object")?;
    let settings = config::load(&dir, Layer::default())?;
    let ctx = ToolContext::with_sandbox(
        settings.workspace,
        settings.agent.limits,
        &settings.agent.sandbox,
    );
    let cancel = CancellationToken::new();
    let output = ToolRegistry::builtin()
        .call(&ctx, &args.name, arguments, &cancel)
        .await;
    println!("{}", output.content);
    Ok(if output.is_error { 1 } else { 0 })
}

pub fn list(args: ToolsArgs) -> Result<u8> {
    let specs = ToolRegistry::builtin().specs();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&specs)?);
    } else {
        for spec in specs {
            let mode = if spec.read_only {
                "read-only"
            } else {
                "writes"
            };
            println!(
                "{} {}  ({mode})\n    {}",
                spec.name,
                keel_tools::signature(&spec.parameters),
                spec.description
            );
        }
    }
    Ok(0)
}
