//! Model loading (once per process) and per-session contexts; the prompt and the
//! generation loop have modules of their own.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;

use crate::constraint::Constraints;
use crate::metadata::{ModelMetadata, file_type_name};
use crate::registry::check_gguf;
use crate::slot::Slot;
use crate::template::ChatTemplate;
use crate::{EngineError, logs};

mod count;
mod generate;
mod prefix_store;
mod prompt_eval;

pub use generate::{Generation, Stop};

use prefix_store::PrefixStore;

/// The context size when neither configuration nor a smaller trained context says: room
/// for a task, the project context and a few rounds of test output on a small model.
const DEFAULT_CONTEXT: u32 = 16_384;
/// Prompt tokens per llama.cpp batch.
const BATCH: u32 = 512;

/// Sampling settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingOptions {
    pub temperature: f32,
    pub top_k: i32,
    pub top_p: f32,
    /// Fixed seed (tests, benchmarks); random when unset.
    pub seed: Option<u32>,
    /// Keep generating past end-of-turn tokens (llama.cpp's `ignore_eos`; benchmarks).
    pub ignore_eog: bool,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        Self {
            temperature: 0.3,
            top_k: 40,
            top_p: 0.95,
            seed: None,
            ignore_eog: false,
        }
    }
}

/// How an engine runs its model.
#[derive(Clone)]
pub struct EngineOptions {
    /// Tokens per session context (default: the trained context, at most 16,384).
    pub context_window: Option<u32>,
    /// CPU threads (default: every available core).
    pub threads: Option<usize>,
    /// A built-in template by name instead of the one the GGUF implies.
    pub chat_template: Option<String>,
    /// Full-size sliding-window cache: rollback never forces a rebuild, more memory.
    pub swa_full: bool,
    /// Sessions whose KV cache stays in memory (least recently used is dropped).
    pub max_sessions: usize,
    /// Tokens one tool call may take before it is closed (still well-formed).
    pub call_budget: usize,
    pub sampling: SamplingOptions,
    /// Called with 0.0..=1.0 while the model loads.
    pub on_progress: Option<Arc<dyn Fn(f32) + Send + Sync>>,
    /// Where the KV cache of a prompt's system turn is kept between processes, so a new
    /// process does not evaluate it again (none: not kept). Not used with a rolling
    /// sliding-window cache (`swa_full` off on a model that has one).
    pub prefix_cache: Option<PathBuf>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            context_window: None,
            threads: None,
            chat_template: None,
            swa_full: false,
            max_sessions: 4,
            call_budget: 768,
            sampling: SamplingOptions::default(),
            on_progress: None,
            prefix_cache: None,
        }
    }
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("context_window", &self.context_window)
            .field("threads", &self.threads)
            .field("chat_template", &self.chat_template)
            .field("swa_full", &self.swa_full)
            .field("max_sessions", &self.max_sessions)
            .field("call_budget", &self.call_budget)
            .field("sampling", &self.sampling)
            .field("prefix_cache", &self.prefix_cache)
            .finish_non_exhaustive()
    }
}

fn backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            logs::install();
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Load {
            path: PathBuf::new(),
            reason: format!("llama.cpp backend: {e}"),
        })
}

/// A model loaded into this process. Models are never unloaded: they are loaded once and
/// shared by every engine and session that names the same file.
pub(crate) struct LoadedModel {
    pub(crate) path: PathBuf,
    pub(crate) model: &'static LlamaModel,
    pub(crate) n_swa: u32,
    constraints: OnceLock<Result<Constraints, String>>,
    closing: OnceLock<Vec<(LlamaToken, u8)>>,
}

impl LoadedModel {
    /// The process's copy of the model at `path`, loading it on first use.
    pub(crate) fn get(
        path: &Path,
        progress: Option<Arc<dyn Fn(f32) + Send + Sync>>,
    ) -> Result<Arc<LoadedModel>, EngineError> {
        static MODELS: Mutex<Vec<Arc<LoadedModel>>> = Mutex::new(Vec::new());
        check_gguf(path)?;
        let canonical = std::fs::canonicalize(path).map_err(|e| EngineError::ModelFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut models = MODELS.lock().map_err(|_| EngineError::Load {
            path: path.to_path_buf(),
            reason: "an earlier load panicked".into(),
        })?;
        if let Some(m) = models.iter().find(|m| m.path == canonical) {
            return Ok(m.clone());
        }
        let backend = backend()?;
        let mut params = LlamaModelParams::default();
        if let Some(progress) = progress {
            params = params.with_progress_callback(move |p| {
                progress(p);
                true
            });
        }
        logs::clear();
        let model = LlamaModel::load_from_file(backend, &canonical, &params).map_err(|e| {
            EngineError::Load {
                path: path.to_path_buf(),
                reason: logs::reason(&format!("llama.cpp refused it ({e})")),
            }
        })?;
        let model: &'static LlamaModel = Box::leak(Box::new(model));
        let arch = model
            .meta_val_str("general.architecture")
            .unwrap_or_default();
        let n_swa = model
            .meta_val_str(&format!("{arch}.attention.sliding_window"))
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let loaded = Arc::new(LoadedModel {
            path: canonical,
            model,
            n_swa,
            constraints: OnceLock::new(),
            closing: OnceLock::new(),
        });
        models.push(loaded.clone());
        Ok(loaded)
    }

    fn meta(&self, key: &str) -> Option<String> {
        self.model.meta_val_str(key).ok()
    }

    pub(crate) fn architecture(&self) -> String {
        self.meta("general.architecture").unwrap_or_default()
    }

    pub(crate) fn gguf_template(&self) -> Option<String> {
        self.meta("tokenizer.chat_template")
    }

    /// The template the model implies: its GGUF template's, else its architecture's.
    pub(crate) fn implied_template(&self) -> Option<ChatTemplate> {
        self.gguf_template()
            .as_deref()
            .and_then(ChatTemplate::recognise)
            .or_else(|| ChatTemplate::for_architecture(&self.architecture()))
    }

    pub(crate) fn metadata(&self) -> ModelMetadata {
        let arch = self.architecture();
        let template = self.gguf_template();
        let keel_template = self.implied_template().map(|t| t.name().to_string());
        ModelMetadata {
            path: self.path.clone(),
            name: self.meta("general.name"),
            parameters: self.model.n_params(),
            file_bytes: std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0),
            quantisation: self
                .meta("general.file_type")
                .and_then(|v| v.parse().ok())
                .map(file_type_name)
                .unwrap_or_else(|| "unknown".into()),
            context_length: self.model.n_ctx_train(),
            sliding_window: (self.n_swa > 0).then_some(self.n_swa),
            vocabulary: u32::try_from(self.model.n_vocab()).unwrap_or(0),
            layers: self.model.n_layer(),
            chat_template: template.is_some(),
            keel_template,
            architecture: arch,
        }
    }

    fn constraints(&self) -> Result<&Constraints, EngineError> {
        self.constraints
            .get_or_init(|| Constraints::new(self.model).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| EngineError::Grammar(e.clone()))
    }

    /// Tokens whose text starts by closing a JSON string, object or array or the call's
    /// markup, ranked: 0 = made only of `"`, `}`, `]`; 1 = starts with one of `"}]<`.
    fn closing_tokens(&self) -> &[(LlamaToken, u8)] {
        self.closing.get_or_init(|| {
            let vocab = self.model.vocab();
            let mut out = Vec::new();
            for id in 0..self.model.n_vocab() {
                let token = LlamaToken(id);
                let piece = vocab.token_to_piece(token, false, None);
                let Some(&first) = piece.first() else {
                    continue;
                };
                if piece.iter().all(|b| matches!(b, b'"' | b'}' | b']')) {
                    out.push((token, 0));
                } else if matches!(first, b'"' | b'}' | b']' | b'<') {
                    out.push((token, 1));
                }
            }
            out
        })
    }
}

/// What one prefill did (`Engine::prefill`, for tests and benchmarks).
#[derive(Debug, Clone)]
pub struct Prefill {
    /// Prompt tokens served from the cache.
    pub cached: usize,
    /// Prompt tokens evaluated now.
    pub evaluated: usize,
    /// Whether the sliding-window check threw the cache away.
    pub rebuilt: bool,
    /// The logits after the last prompt token.
    pub logits: Vec<f32>,
    pub elapsed: Duration,
}

/// The embedded engine for one model: per-session KV caches over the shared weights.
pub struct Engine {
    model: Arc<LoadedModel>,
    template: ChatTemplate,
    options: EngineOptions,
    n_ctx: u32,
    threads: i32,
    slots: Mutex<HashMap<String, Arc<Mutex<Slot>>>>,
    clock: AtomicU64,
    /// One evaluation at a time: sessions share the cores token by token.
    compute: Mutex<()>,
    /// System turns evaluated by earlier processes.
    prefixes: Option<PrefixStore>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("model", &self.model.path)
            .field("template", &self.template)
            .field("n_ctx", &self.n_ctx)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads (or reuses) the model and prepares an engine for it.
    pub fn load(path: &Path, options: EngineOptions) -> Result<Arc<Engine>, EngineError> {
        let model = LoadedModel::get(path, options.on_progress.clone())?;
        let template = match &options.chat_template {
            Some(name) => ChatTemplate::by_name(name)?,
            None => model.implied_template().ok_or_else(|| {
                EngineError::Template(format!(
                    "{} (architecture `{}`) has no chat template keel recognises; set `chat_template` to one of {}",
                    path.display(),
                    model.architecture(),
                    ChatTemplate::NAMES
                ))
            })?,
        };
        let trained = model.model.n_ctx_train().max(1);
        let n_ctx = options
            .context_window
            .unwrap_or(DEFAULT_CONTEXT)
            .clamp(256, trained.max(256));
        let threads = options
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let rolling_window = model.n_swa > 0 && !options.swa_full;
        let prefixes = options
            .prefix_cache
            .clone()
            .filter(|_| !rolling_window)
            .map(|dir| {
                let settings = format!(
                    "keel {} n_ctx {n_ctx} batch {BATCH} swa_full {}",
                    env!("CARGO_PKG_VERSION"),
                    options.swa_full
                );
                PrefixStore::new(dir, &model.path, &settings)
            });
        Ok(Arc::new(Engine {
            model,
            template,
            n_ctx,
            threads: i32::try_from(threads.max(1)).unwrap_or(1),
            options,
            slots: Mutex::new(HashMap::new()),
            clock: AtomicU64::new(0),
            compute: Mutex::new(()),
            prefixes,
        }))
    }

    pub fn context_window(&self) -> u32 {
        self.n_ctx
    }

    /// The call dialect the model's own chat template trains it on, if any.
    pub fn dialect(&self) -> Option<keel_llm::ToolProtocol> {
        self.model
            .gguf_template()
            .as_deref()
            .and_then(keel_llm::ToolProtocol::of_template)
    }

    pub fn template(&self) -> ChatTemplate {
        self.template
    }

    pub fn threads(&self) -> usize {
        self.threads as usize
    }

    /// The model's tokens for `text` (markup recognised when `special`).
    pub fn tokenize(&self, text: &str, special: bool) -> Vec<i32> {
        self.model
            .model
            .vocab()
            .tokenize(text.as_bytes(), false, special)
            .into_iter()
            .map(|t| t.0)
            .collect()
    }

    /// Forgets a session's cache.
    pub fn drop_session(&self, session: &str) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(session);
        }
    }

    fn slot(&self, session: &str) -> Result<Arc<Mutex<Slot>>, EngineError> {
        static CREATE: Mutex<()> = Mutex::new(());
        let mut slots = self
            .slots
            .lock()
            .map_err(|_| EngineError::Context("session table poisoned".into()))?;
        if let Some(slot) = slots.get(session) {
            return Ok(slot.clone());
        }
        while slots.len() >= self.options.max_sessions.max(1) {
            // Drop the least recently used cache that no request is using.
            let idle = slots
                .iter()
                .filter(|(_, s)| Arc::strong_count(s) == 1)
                .filter_map(|(k, s)| s.try_lock().ok().map(|s| (s.last_used, k.clone())))
                .min();
            match idle {
                Some((_, key)) => {
                    slots.remove(&key);
                }
                None => break,
            }
        }
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(self.n_ctx))
            .with_n_batch(BATCH)
            .with_n_ubatch(BATCH)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads)
            .with_swa_full(self.options.swa_full);
        let backend = backend()?;
        // llama.cpp mutates the model while creating a context: one at a time.
        let _guard = CREATE
            .lock()
            .map_err(|_| EngineError::Context("poisoned".into()))?;
        logs::clear();
        let ctx = self
            .model
            .model
            .new_context(backend, params)
            .map_err(|e| EngineError::Context(logs::reason(&e.to_string())))?;
        let slot = Arc::new(Mutex::new(Slot::new(ctx)));
        slots.insert(session.to_string(), slot.clone());
        Ok(slot)
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Makes `session`'s cache hold `tokens` (reusing what it can) and returns the
    /// logits after the last one.
    pub fn prefill(&self, session: &str, tokens: &[i32]) -> Result<Prefill, EngineError> {
        let slot = self.slot(session)?;
        let mut slot = slot
            .lock()
            .map_err(|_| EngineError::Context("session poisoned".into()))?;
        slot.last_used = self.tick();
        let prompt: Vec<LlamaToken> = tokens.iter().map(|&t| LlamaToken(t)).collect();
        let started = Instant::now();
        let (reuse, last) = self.evaluate(&mut slot, &prompt, 0, &|| false)?;
        let logits = slot.ctx.get_logits_ith(last).to_vec();
        Ok(Prefill {
            cached: reuse.kept,
            evaluated: prompt.len() - reuse.kept,
            rebuilt: reuse.rebuilt,
            logits,
            elapsed: started.elapsed(),
        })
    }
}
