//! One session's KV cache and the token ids it holds.
//!
//! A new prompt keeps the longest common prefix with the cached tokens and evaluates only
//! the rest. Sliding-window-attention models (Gemma 3) keep just the last window of
//! positions in their SWA layers: rolling back further than that would leave the new
//! tokens attending to positions that are gone, and llama.cpp would silently compute
//! wrong logits. The minimum position still cached tells; when it is too late, the cache
//! is rebuilt from scratch.

use std::collections::HashMap;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::token::LlamaToken;

pub(crate) struct Slot {
    pub(crate) ctx: LlamaContext<'static>,
    /// The tokens whose keys and values are in `ctx`, position by position.
    pub(crate) tokens: Vec<LlamaToken>,
    /// The model's own replies in this session (trimmed text → the ids it generated),
    /// so a reply goes back into the prompt exactly as it was produced.
    pub(crate) replies: HashMap<String, Vec<LlamaToken>>,
    /// When the slot was last used (engine-wide counter; least recent is evicted first).
    pub(crate) last_used: u64,
}

/// How a prompt was matched against the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reuse {
    /// Prompt tokens already in the cache.
    pub(crate) kept: usize,
    /// Whether the cache had to be thrown away because of the sliding window.
    pub(crate) rebuilt: bool,
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Slot {
    pub(crate) fn new(ctx: LlamaContext<'static>) -> Self {
        Self {
            ctx,
            tokens: Vec::new(),
            replies: HashMap::new(),
            last_used: 0,
        }
    }

    /// Drops everything cached.
    pub(crate) fn clear(&mut self) {
        self.ctx.clear_kv_cache();
        self.tokens.clear();
    }

    /// Trims the cache to the part of `prompt` it can serve and says how much that is.
    /// At least one prompt token is always left to evaluate (its logits start the
    /// reply). `n_swa` is the model's sliding window (0: none).
    pub(crate) fn reuse(&mut self, prompt: &[LlamaToken], n_swa: u32) -> Reuse {
        let mut keep = common_prefix(&self.tokens, prompt).min(prompt.len().saturating_sub(1));
        if keep == self.tokens.len() {
            return Reuse {
                kept: keep,
                rebuilt: false,
            };
        }
        let mut rebuilt = false;
        if keep > 0 && n_swa > 0 {
            // Positions before `keep - n_swa` are no longer needed by the new tokens;
            // anything later must still be cached.
            let pos_min = self.ctx.kv_cache_seq_pos_min(0);
            let needed = keep.saturating_sub(n_swa as usize) as i64;
            if i64::from(pos_min) > needed {
                keep = 0;
                rebuilt = true;
            }
        }
        if keep == 0 {
            self.clear();
        } else {
            let removed = self
                .ctx
                .clear_kv_cache_seq(Some(0), u32::try_from(keep).ok(), None)
                .unwrap_or(false);
            if removed {
                self.tokens.truncate(keep);
            } else {
                self.clear();
                keep = 0;
                rebuilt = true;
            }
        }
        Reuse {
            kept: keep,
            rebuilt,
        }
    }
}
