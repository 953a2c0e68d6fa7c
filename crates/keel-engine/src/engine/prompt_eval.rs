//! From a request's messages to a filled KV cache: the prompt as tokens (the model's own
//! replies as the ids it generated), the system turn taken from the prefix store or
//! saved there, and the rest evaluated in batches after what the cache already holds.

use std::collections::HashMap;

use keel_protocol::{Message, Role};
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

use super::{BATCH, Engine, prefix_store};
use crate::slot::{Reuse, Slot};
use crate::template::Part;
use crate::{EngineError, logs};

impl Engine {
    /// Message text, tokenised literally — except the call markup `<tool_call>` and
    /// `</tool_call>`, which become the model's own tokens where its vocabulary has them
    /// (as its training data had them), so a call in the history or the prompt's example
    /// looks to the model like the calls it writes. Nothing else is recognised: text
    /// cannot end a turn.
    pub(super) fn tokenize_text(&self, text: &str) -> Vec<LlamaToken> {
        const MARKUP: [&str; 2] = [keel_llm::calls::OPEN, keel_llm::calls::CLOSE];
        let vocab = self.model.model.vocab();
        let mut out = Vec::new();
        let mut rest = text;
        while let Some((at, tag)) = MARKUP
            .iter()
            .filter_map(|tag| rest.find(tag).map(|at| (at, *tag)))
            .min()
        {
            out.extend(vocab.tokenize(&rest.as_bytes()[..at], false, false));
            let special = vocab.tokenize(tag.as_bytes(), false, true);
            if special.len() == 1 {
                out.extend(special);
            } else {
                out.extend(vocab.tokenize(tag.as_bytes(), false, false));
            }
            rest = &rest[at + tag.len()..];
        }
        out.extend(vocab.tokenize(rest.as_bytes(), false, false));
        out
    }

    /// The prompt tokens for `messages` in this session: markup with special tokens,
    /// text literally, the model's earlier replies as the ids it generated.
    pub(super) fn prompt_tokens(&self, slot: &mut Slot, messages: &[Message]) -> Vec<LlamaToken> {
        let mut used = HashMap::new();
        let out = self.render_tokens(messages, &slot.replies, &mut used);
        slot.replies = used;
        out
    }

    /// How many of `prompt`'s tokens are its system turn, the same in every session with
    /// the same tools — worked out only when the prefix store could serve it (a store, an
    /// empty cache); else, or without a system turn, 0. A warm session skips the render.
    pub(super) fn system_turn_len(
        &self,
        slot: &Slot,
        messages: &[Message],
        prompt: &[LlamaToken],
    ) -> usize {
        if self.prefixes.is_none()
            || !slot.tokens.is_empty()
            || messages.first().map(|m| m.role) != Some(Role::System)
        {
            return 0;
        }
        let system = self.render_tokens(&messages[..1], &HashMap::new(), &mut HashMap::new());
        system
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
    }

    /// `messages` as tokens, the model's replies found in `replies` as the ids it
    /// generated (those used are put in `used`).
    fn render_tokens(
        &self,
        messages: &[Message],
        replies: &HashMap<String, Vec<LlamaToken>>,
        used: &mut HashMap<String, Vec<LlamaToken>>,
    ) -> Vec<LlamaToken> {
        let vocab = self.model.model.vocab();
        let mut out = Vec::new();
        for part in self.template.render(messages) {
            match part {
                Part::Bos => {
                    if vocab.should_add_bos() {
                        out.push(vocab.bos());
                    }
                }
                Part::Markup(s) => out.extend(vocab.tokenize(s.as_bytes(), false, true)),
                Part::Text(s) => out.extend(self.tokenize_text(&s)),
                // `get`, not `remove`: a model that repeats a reply word for word must
                // get the same ids at both places, or the prefix diverges there.
                Part::Reply(s) => match replies.get(&s).cloned() {
                    Some(ids) => {
                        out.extend(ids.iter().copied());
                        used.insert(s, ids);
                    }
                    None => out.extend(self.tokenize_text(&s)),
                },
            }
        }
        out
    }

    /// Evaluates `prompt` after whatever of it the cache already holds. On return the
    /// slot holds the prompt and the logits of its last token are ready at index
    /// `returned.1`. The first `fixed` tokens are the system turn: an empty cache takes
    /// them from the prefix store, or evaluates them apart and saves them there.
    pub(super) fn evaluate(
        &self,
        slot: &mut Slot,
        prompt: &[LlamaToken],
        fixed: usize,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(Reuse, i32), EngineError> {
        // What llama.cpp logs from here on explains a failed decode of this request.
        logs::clear();
        if prompt.is_empty() {
            return Err(EngineError::Decode("empty prompt".into()));
        }
        if prompt.len() >= self.n_ctx as usize {
            return Err(EngineError::ContextOverflow {
                needed: prompt.len() + 1,
                window: self.n_ctx,
            });
        }
        // The part of the system turn evaluated by this call (not served from a cache).
        let mut evaluated_now = 0;
        if let Some(store) = &self.prefixes
            && slot.tokens.is_empty()
            && (prefix_store::MIN_TOKENS..prompt.len()).contains(&fixed)
        {
            let prefix = &prompt[..fixed];
            if store.load(&mut slot.ctx, prefix) {
                slot.tokens = prefix.to_vec();
            } else {
                // Evaluated on its own, so the values saved are the ones a load gives.
                self.feed(slot, prompt, 0, fixed, cancelled)?;
                evaluated_now = slot.tokens.len();
                if evaluated_now == fixed {
                    store.save(&slot.ctx, prefix);
                }
            }
        }
        let mut reuse = slot.reuse(
            prompt,
            if self.options.swa_full {
                0
            } else {
                self.model.n_swa
            },
        );
        let last = self.feed(slot, prompt, reuse.kept, prompt.len(), cancelled)?;
        reuse.kept = reuse.kept.saturating_sub(evaluated_now);
        Ok((reuse, last))
    }

    /// Evaluates `prompt[from..to]` in batches (the cache holds `prompt[..from]`); the
    /// logits are kept for the prompt's last token only. Returns its index in the last
    /// batch.
    fn feed(
        &self,
        slot: &mut Slot,
        prompt: &[LlamaToken],
        from: usize,
        to: usize,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<i32, EngineError> {
        let mut batch = LlamaBatch::new(BATCH as usize, 1);
        let mut last = 0;
        for (n, chunk) in prompt[from..to].chunks(BATCH as usize).enumerate() {
            if cancelled() {
                break;
            }
            batch.clear();
            let start = from + n * BATCH as usize;
            for (i, token) in chunk.iter().enumerate() {
                let pos = start + i;
                let is_last = pos + 1 == prompt.len();
                batch
                    .add(*token, pos as i32, &[0], is_last)
                    .map_err(|e| EngineError::Decode(e.to_string()))?;
            }
            self.decode(slot, &mut batch)?;
            slot.tokens.extend_from_slice(chunk);
            last = batch.n_tokens() - 1;
        }
        Ok(last)
    }

    pub(super) fn decode(
        &self,
        slot: &mut Slot,
        batch: &mut LlamaBatch,
    ) -> Result<(), EngineError> {
        let _turn = self
            .compute
            .lock()
            .map_err(|_| EngineError::Decode("poisoned".into()))?;
        slot.ctx.decode(batch).map_err(|e| {
            let reason = logs::reason(&e.to_string());
            slot.clear();
            EngineError::Decode(reason)
        })
    }
}
