//! The embedded engine behind keel's `ModelClient` trait: generation runs on a blocking
//! thread and streams back through a channel; dropping the stream cancels it before the
//! next token.

use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use keel_llm::{
    ChatRequest, Constraint, LlmError, ModelClient, ModelEvent, ModelInfo, ModelStream,
    ToolProtocol,
};
use keel_protocol::Usage;
use tokio::sync::mpsc;

use crate::EngineError;
use crate::engine::{Engine, EngineOptions};
use crate::registry::Registry;

/// `embedded:NAME_OR_PATH` as a model client.
#[derive(Debug, Clone)]
pub struct EmbeddedClient {
    name: String,
    engine: Arc<Engine>,
}

impl EmbeddedClient {
    /// Resolves the spec's name through the registry and loads the model (blocking: call
    /// from a blocking context or `spawn_blocking`).
    pub fn open(spec_rest: &str, options: EngineOptions) -> Result<Self, EngineError> {
        let path = if Path::new(spec_rest).is_file() {
            Path::new(spec_rest).to_path_buf()
        } else {
            Registry::open_default()?.resolve(spec_rest)?
        };
        let engine = Engine::load(&path, options)?;
        Ok(Self {
            name: format!("embedded:{spec_rest}"),
            engine,
        })
    }

    /// Loads on a blocking thread.
    pub async fn connect(spec_rest: &str, options: EngineOptions) -> Result<Self, EngineError> {
        let spec = spec_rest.to_string();
        tokio::task::spawn_blocking(move || Self::open(&spec, options))
            .await
            .map_err(|e| EngineError::Load {
                path: spec_rest.into(),
                reason: e.to_string(),
            })?
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
}

impl ModelClient for EmbeddedClient {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.name.clone(),
            context_window: Some(self.engine.context_window()),
            server: Some(format!(
                "embedded llama.cpp ({} template, {} threads)",
                self.engine.template().name(),
                self.engine.threads()
            )),
            constraint: Some(Constraint::Grammar),
            dialect: self.engine.dialect(),
        }
    }

    fn count_prompt_tokens(&self, request: &ChatRequest) -> Option<u32> {
        Some(self.engine.count_prompt_tokens(request) as u32)
    }

    fn stream(&self, request: ChatRequest) -> ModelStream {
        if request.protocol == ToolProtocol::Native {
            let err = LlmError::Engine(
                "the embedded engine reads calls from the text (its calls are grammar-constrained); set tool_protocol to `auto`, `hermes` or `xml`".into(),
            );
            return futures_util::stream::once(async move { Err(err) }).boxed();
        }
        let (tx, mut rx) = mpsc::channel::<Result<ModelEvent, LlmError>>(256);
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            let cancelled = || tx.is_closed();
            let mut emit = |text: &str| {
                let _ = tx.blocking_send(Ok(ModelEvent::Text(text.to_string())));
            };
            let result = engine.generate(&request, &cancelled, &mut emit);
            let last = match result {
                Ok(g) => Ok(ModelEvent::Usage(Usage {
                    prompt_tokens: Some(g.prompt_tokens as u64),
                    cached_prompt_tokens: Some(g.cached_tokens as u64),
                    completion_tokens: Some(g.completion_tokens as u64),
                    constrained_calls: Some(g.constrained_calls as u64),
                })),
                Err(e) => Err(LlmError::from(e)),
            };
            let _ = tx.blocking_send(last);
        });
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }
}
