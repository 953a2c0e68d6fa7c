//! Choosing and opening the model: `embedded:` specs go to the in-process engine, the
//! rest to `keel_llm`; with nothing configured, the registered default model. Also the
//! `keel model` commands.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use keel_engine::{DEFAULT_MODEL, Registry};
use keel_llm::{LlmError, ModelClient};

use crate::cli::ModelCommand;
use crate::config::{EngineLayer, Settings};

/// Why a model could not be opened: the spec or a file is wrong (usage, exit 2) or a
/// server cannot be used (a failed run, exit 1).
pub enum OpenError {
    Usage(anyhow::Error),
    Failed(LlmError),
}

/// The configured model, else the registered default embedded model.
pub fn model_spec(configured: Option<String>) -> Result<String> {
    if let Some(spec) = configured {
        return Ok(spec);
    }
    let registered = Registry::open_default()
        .ok()
        .is_some_and(|r| r.get(DEFAULT_MODEL).is_some());
    if registered && keel_engine::AVAILABLE {
        return Ok(format!("embedded:{DEFAULT_MODEL}"));
    }
    Err(anyhow!(
        "no model configured and the default model `{DEFAULT_MODEL}` is not installed: run scripts/setup.sh, or pass --model SPEC (e.g. --model embedded:PATH.gguf, --model openai:MODEL@URL, --model replay:script.jsonl), set KEEL_MODEL, or set `model` in ~/.config/keel/config.toml"
    ))
}

/// Opens `spec` with the settings' connection and engine options.
pub async fn open(spec: &str, settings: &Settings) -> Result<Arc<dyn ModelClient>, OpenError> {
    if let Some(rest) = spec.strip_prefix("embedded:") {
        return open_embedded(rest, &settings.engine, settings.connect.context_window)
            .await
            .map_err(OpenError::Usage);
    }
    match keel_llm::connect(spec, settings.connect.clone()).await {
        Ok(client) => Ok(client),
        Err(
            e @ (LlmError::InvalidSpec { .. }
            | LlmError::Unsupported { .. }
            | LlmError::ReplayIo { .. }
            | LlmError::ReplayFormat { .. }),
        ) => Err(OpenError::Usage(e.into())),
        Err(e) => Err(OpenError::Failed(e)),
    }
}

#[cfg(feature = "embedded")]
fn engine_options(layer: &EngineLayer, context_window: Option<u32>) -> keel_engine::EngineOptions {
    let mut options = keel_engine::EngineOptions {
        context_window,
        threads: layer.threads,
        chat_template: layer.chat_template.clone(),
        // A new process takes the system turn's KV cache from here instead of evaluating
        // it again (tens of seconds of prefill on a laptop CPU).
        prefix_cache: crate::config::keel_home().map(|home| home.join("cache").join("kv")),
        ..keel_engine::EngineOptions::default()
    };
    if let Some(v) = layer.swa_full {
        options.swa_full = v;
    }
    if let Some(v) = layer.max_sessions {
        options.max_sessions = v.max(1);
    }
    if let Some(v) = layer.call_budget {
        options.call_budget = v.max(16);
    }
    if let Some(v) = layer.temperature {
        options.sampling.temperature = v.max(0.0);
    }
    options.sampling.seed = layer.seed;
    use std::io::{IsTerminal, Write};
    if std::io::stderr().is_terminal() {
        options.on_progress = Some(Arc::new(|p: f32| {
            let mut err = std::io::stderr();
            let _ = write!(err, "\rkeel: loading model {:3.0}%", p * 100.0);
            if p >= 1.0 {
                let _ = writeln!(err);
            }
        }));
    }
    options
}

#[cfg(feature = "embedded")]
async fn open_embedded(
    rest: &str,
    layer: &EngineLayer,
    context_window: Option<u32>,
) -> Result<Arc<dyn ModelClient>> {
    let client =
        keel_engine::EmbeddedClient::connect(rest, engine_options(layer, context_window)).await?;
    Ok(Arc::new(client))
}

#[cfg(not(feature = "embedded"))]
async fn open_embedded(
    _rest: &str,
    _layer: &EngineLayer,
    _context_window: Option<u32>,
) -> Result<Arc<dyn ModelClient>> {
    Err(keel_engine::EngineError::NotBuilt.into())
}

/// `keel model list|add|info`.
pub fn run(command: ModelCommand) -> Result<u8> {
    let mut registry = Registry::open_default()?;
    match command {
        ModelCommand::List { json } => {
            let entries: Vec<_> = registry.entries().collect();
            if json {
                let list: Vec<_> = entries
                    .iter()
                    .map(|(name, e)| serde_json::json!({"name": name, "path": e.path, "present": e.path.is_file(), "default": *name == DEFAULT_MODEL}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if entries.is_empty() {
                println!(
                    "no models registered in {} (scripts/setup.sh installs the default; `keel model add NAME PATH` registers one)",
                    registry.dir().display()
                );
            } else {
                for (name, entry) in entries {
                    let mark = if name == DEFAULT_MODEL {
                        " (default)"
                    } else {
                        ""
                    };
                    let missing = if entry.path.is_file() {
                        ""
                    } else {
                        "  [file missing]"
                    };
                    println!("{name}{mark}\t{}{missing}", entry.path.display());
                }
            }
        }
        ModelCommand::Add { name, path } => {
            registry.add(&name, &path)?;
            println!("registered `{name}`: use --model embedded:{name}");
        }
        ModelCommand::Info { model, json } => info(&registry, &model, json)?,
    }
    Ok(0)
}

#[cfg(feature = "embedded")]
fn info(registry: &Registry, model: &str, json: bool) -> Result<()> {
    let path = registry.resolve(model)?;
    let meta = keel_engine::read_metadata(&path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&meta)?);
        return Ok(());
    }
    let millions = meta.parameters as f64 / 1e6;
    println!("file          {}", meta.path.display());
    if let Some(name) = &meta.name {
        println!("name          {name}");
    }
    println!("architecture  {}", meta.architecture);
    println!("parameters    {millions:.0} M");
    println!("quantisation  {}", meta.quantisation);
    println!("size          {:.0} MB", meta.file_bytes as f64 / 1e6);
    println!("context       {} tokens (trained)", meta.context_length);
    if let Some(w) = meta.sliding_window {
        println!("sliding window {w} tokens");
    }
    println!(
        "vocabulary    {} tokens, {} layers",
        meta.vocabulary, meta.layers
    );
    println!(
        "chat template {} (keel uses: {})",
        if meta.chat_template {
            "in the GGUF"
        } else {
            "none in the GGUF"
        },
        meta.keel_template
            .as_deref()
            .unwrap_or("none known: set [engine] chat_template")
    );
    Ok(())
}

#[cfg(not(feature = "embedded"))]
fn info(_registry: &Registry, _model: &str, _json: bool) -> Result<()> {
    Err(keel_engine::EngineError::NotBuilt.into())
}
