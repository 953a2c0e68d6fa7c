//! The generation loop: tokens sampled one by one after the prompt, free text until the
//! model opens a call (`<tool_call>`, or a JSON object at the start of its reply), the
//! call then sampled under the llguidance grammar of the offered tools, and closed in the
//! fewest tokens when its budget is spent.

use std::time::{Duration, Instant};

use keel_llm::ChatRequest;
use keel_protocol::ToolSpec;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llguidance::Matcher;

use super::Engine;
use crate::EngineError;

/// The call opener, as bytes of the reply.
const TRIGGER: &[u8] = keel_llm::calls::OPEN.as_bytes();
/// Tokens a call in closing mode may still take beyond its budget before it is given up.
const CLOSING_EXTRA: usize = 96;

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    EndOfTurn,
    MaxTokens,
    Cancelled,
    /// The JSON demanded by `response_schema` is complete.
    SchemaComplete,
}

/// The result of one request.
#[derive(Debug, Clone)]
pub struct Generation {
    pub text: String,
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    /// Tool calls that were generated under the grammar.
    pub constrained_calls: usize,
    /// Calls the budget had to close.
    pub closed_calls: usize,
    pub time_to_first_token: Option<Duration>,
    pub decode_time: Duration,
    pub stop: Stop,
}

enum Mode {
    Free,
    /// Inside a `<tool_call>`, or a whole `response_schema` reply.
    Constrained {
        matcher: Box<Matcher>,
        tokens: usize,
        /// The budget is spent: the shortest well-formed ending is being forced.
        closing: bool,
        whole_reply: bool,
    },
}

impl Mode {
    fn constrained(matcher: Matcher, whole_reply: bool) -> Self {
        Mode::Constrained {
            matcher: Box::new(matcher),
            tokens: 0,
            closing: false,
            whole_reply,
        }
    }
}

impl Engine {
    /// Runs one request: the reply streams through `emit` piece by piece.
    /// `cancelled` is polled before every token. A request that requires a call (and
    /// offers tools) has its reply opened with `<tool_call>`, so all of it is sampled
    /// under the call grammar.
    pub fn generate(
        &self,
        request: &ChatRequest,
        cancelled: &dyn Fn() -> bool,
        emit: &mut dyn FnMut(&str),
    ) -> Result<Generation, EngineError> {
        let prefix = if request.require_call && !request.tools.is_empty() {
            keel_llm::calls::OPEN
        } else {
            ""
        };
        self.generate_with_prefix(request, prefix, cancelled, emit)
    }

    /// Like [`Engine::generate`], with the reply forced to begin with `prefix` (which
    /// counts as generated text: `<tool_call>` there opens a constrained call).
    pub fn generate_with_prefix(
        &self,
        request: &ChatRequest,
        prefix: &str,
        cancelled: &dyn Fn() -> bool,
        emit: &mut dyn FnMut(&str),
    ) -> Result<Generation, EngineError> {
        let started = Instant::now();
        let slot = self.slot(&request.session_id)?;
        let mut slot = slot
            .lock()
            .map_err(|_| EngineError::Context("session poisoned".into()))?;
        slot.last_used = self.tick();
        let messages = keel_llm::calls::to_text_messages(request.protocol, &request.messages);
        let prompt = self.prompt_tokens(&mut slot, &messages);
        let fixed = self.system_turn_len(&slot, &messages, &prompt);
        let (reuse, mut logits_at) = self.evaluate(&mut slot, &prompt, fixed, cancelled)?;
        let mut generation = Generation {
            text: String::new(),
            prompt_tokens: prompt.len(),
            cached_tokens: reuse.kept,
            completion_tokens: 0,
            constrained_calls: 0,
            closed_calls: 0,
            time_to_first_token: None,
            decode_time: Duration::ZERO,
            stop: Stop::Cancelled,
        };
        if slot.tokens.len() < prompt.len() {
            return Ok(generation);
        }
        let max_tokens = request.max_tokens.map_or(2048, |m| m as usize).max(1);
        let s = self.options.sampling;
        let (temperature, seed) = match request.temperature {
            // Raised for one reply to get out of a repeat: reproducible when the
            // configured decoding is (the seed then follows from the prompt).
            Some(floor) if floor > s.temperature => {
                (floor, s.seed.unwrap_or_else(|| prompt_seed(&prompt)))
            }
            _ => (s.temperature, s.seed.unwrap_or_else(rand_seed)),
        };
        let mut sampler = LlamaSampler::chain_simple([
            LlamaSampler::top_k(s.top_k),
            LlamaSampler::top_p(s.top_p, 1),
            LlamaSampler::temp(temperature),
            LlamaSampler::dist(seed),
        ]);
        let tools: &[ToolSpec] = &request.tools;
        let mut mode = match &request.response_schema {
            Some(schema) => Mode::constrained(self.model.constraints()?.json(schema)?, true),
            None => Mode::Free,
        };
        let vocab = self.model.model.vocab();
        let mut generated: Vec<LlamaToken> = Vec::new();
        let mut bytes: Vec<u8> = Vec::new();
        let mut emitted = 0usize;
        let mut batch = LlamaBatch::new(1, 1);
        let mut forced: std::collections::VecDeque<LlamaToken> = self.tokenize_text(prefix).into();
        let decode_started = Instant::now();
        loop {
            if cancelled() {
                generation.stop = Stop::Cancelled;
                break;
            }
            let over_budget = generated.len() >= max_tokens;
            let (mut commit, piece): (Vec<LlamaToken>, Vec<u8>) = match &mut mode {
                Mode::Free if !forced.is_empty() => {
                    let token = forced.pop_front().unwrap_or(LlamaToken(0));
                    (vec![token], vocab.token_to_piece(token, true, None))
                }
                Mode::Free => {
                    if over_budget {
                        generation.stop = Stop::MaxTokens;
                        break;
                    }
                    let token = sampler.sample(&slot.ctx, logits_at);
                    // A template may make its call opener a control token (Qwen's
                    // `<tool_call>`): that opens a call, it does not end the turn.
                    let opener = !tools.is_empty()
                        && vocab.is_control(token)
                        && vocab.token_to_piece(token, true, None) == TRIGGER;
                    if (vocab.is_eog(token) || vocab.is_control(token)) && !opener && !s.ignore_eog
                    {
                        // A reply that is only a fence opener ("```json") was going to
                        // be a call: open it rather than end on a fragment.
                        if !tools.is_empty() && is_fence_opener(&bytes) {
                            forced.extend(self.tokenize_text(keel_llm::calls::OPEN));
                            continue;
                        }
                        // Prose where a call must follow (the cause of a red run, said
                        // in a sentence): the call is opened where the reply would end.
                        // Not after a fenced block: that is the model's own way to
                        // write a file (the agent reads it as one), and a call after it
                        // only wrote the same code again, or ran the tests instead.
                        // Once: the opener starts a call, and the count then says so.
                        if request.end_with_call
                            && !tools.is_empty()
                            && generation.constrained_calls == 0
                            && find(&bytes, b"```").is_none()
                        {
                            forced.extend(
                                self.tokenize_text(&format!("\n{}", keel_llm::calls::OPEN)),
                            );
                            continue;
                        }
                        generation.stop = Stop::EndOfTurn;
                        break;
                    }
                    let piece = vocab.token_to_piece(token, opener, None);
                    (vec![token], piece)
                }
                Mode::Constrained {
                    matcher,
                    tokens,
                    closing,
                    ..
                } => {
                    if !*closing && (over_budget || *tokens >= self.options.call_budget) {
                        *closing = true;
                        generation.closed_calls += 1;
                    }
                    if *closing && generated.len() >= max_tokens + CLOSING_EXTRA {
                        generation.stop = Stop::MaxTokens;
                        break;
                    }
                    let logits = slot.ctx.get_logits_ith(logits_at);
                    let Some(token) =
                        self.constrained_pick(matcher, logits, *closing, &mut sampler)
                    else {
                        // The grammar allows nothing more: leave it to the parser.
                        mode = Mode::Free;
                        continue;
                    };
                    if vocab.is_eog(token) {
                        generation.stop = Stop::EndOfTurn;
                        break;
                    }
                    let _ = matcher.consume_token(token.0 as u32);
                    *tokens += 1;
                    (vec![token], vocab.token_to_piece(token, false, None))
                }
            };
            let mut piece = piece;
            // A reply that opens with a JSON object (bare or in a ```json fence) is a
            // call in the other form small models use: it is written as `<tool_call>`
            // instead, so the whole call is sampled under the grammar.
            if matches!(mode, Mode::Free)
                && !tools.is_empty()
                && forced.is_empty()
                && opens_json_call(&bytes, &piece)
            {
                piece = TRIGGER.to_vec();
                commit = self.tokenize_text(keel_llm::calls::OPEN);
            }
            // Lazy constraint: free text until the model writes `<tool_call>`.
            let mut enter_call = false;
            // The trigger can only complete in a piece holding its last byte.
            if matches!(mode, Mode::Free) && !tools.is_empty() && piece.contains(&b'>') {
                let before = bytes.len();
                let mut window: Vec<u8> =
                    bytes[before.saturating_sub(TRIGGER.len() - 1)..].to_vec();
                let offset = before - window.len();
                window.extend_from_slice(&piece);
                if let Some(at) = find(&window, TRIGGER) {
                    let end = offset + at + TRIGGER.len(); // in the combined buffer
                    let keep = end - before;
                    if keep < piece.len() {
                        piece.truncate(keep);
                        commit = vocab.tokenize(&piece, false, false);
                    }
                    enter_call = true;
                }
            }
            for token in &commit {
                batch.clear();
                let pos = slot.tokens.len();
                if pos + 1 >= self.n_ctx as usize {
                    return Err(EngineError::ContextOverflow {
                        needed: pos + 2,
                        window: self.n_ctx,
                    });
                }
                batch
                    .add(*token, pos as i32, &[0], true)
                    .map_err(|e| EngineError::Decode(e.to_string()))?;
                self.decode(&mut slot, &mut batch)?;
                slot.tokens.push(*token);
                generated.push(*token);
                logits_at = 0;
            }
            if generation.time_to_first_token.is_none() {
                generation.time_to_first_token = Some(started.elapsed());
            }
            bytes.extend_from_slice(&piece);
            emitted += emit_utf8(&bytes[emitted..], emit);
            if enter_call {
                mode = Mode::constrained(
                    self.model
                        .constraints()?
                        .tool_call(tools, request.protocol)?,
                    false,
                );
                generation.constrained_calls += 1;
            } else if let Mode::Constrained {
                matcher,
                whole_reply,
                ..
            } = &mut mode
                && (matcher.is_accepting().unwrap_or(false) || matcher.is_stopped())
            {
                if *whole_reply {
                    generation.stop = Stop::SchemaComplete;
                    break;
                }
                mode = Mode::Free;
            }
        }
        if emitted < bytes.len() {
            emit(&String::from_utf8_lossy(&bytes[emitted..]));
        }
        generation.text = String::from_utf8_lossy(&bytes).into_owned();
        generation.completion_tokens = generated.len();
        generation.decode_time = decode_started.elapsed();
        // An identical earlier reply keeps its ids: they are what the cache holds there.
        slot.replies
            .entry(generation.text.trim().to_string())
            .or_insert(generated);
        Ok(generation)
    }

    /// One token under the grammar: the allowed ones sampled as usual, or, when the
    /// call's budget is spent, the allowed token that closes fastest.
    fn constrained_pick(
        &self,
        matcher: &mut Matcher,
        logits: &[f32],
        closing: bool,
        sampler: &mut LlamaSampler,
    ) -> Option<LlamaToken> {
        let mask = matcher.compute_mask().ok()?;
        if closing {
            let best = self
                .model
                .closing_tokens()
                .iter()
                .filter(|(t, _)| mask.is_allowed(t.0 as u32))
                .min_by(|(a, ra), (b, rb)| {
                    ra.cmp(rb)
                        .then_with(|| logits[b.0 as usize].total_cmp(&logits[a.0 as usize]))
                });
            if let Some((token, _)) = best {
                return Some(*token);
            }
        }
        let mut candidates = Vec::new();
        mask.iter_set_entries(|i| {
            if let Some(&logit) = logits.get(i) {
                candidates.push(LlamaTokenData::new(LlamaToken(i as i32), logit, 0.0));
            }
        });
        match candidates.len() {
            0 => None,
            1 => Some(candidates[0].id()),
            _ if closing => candidates
                .iter()
                .max_by(|a, b| a.logit().total_cmp(&b.logit()))
                .map(|c| c.id()),
            _ => {
                let mut array = LlamaTokenDataArray::new(candidates, false);
                array.apply_sampler(sampler);
                let token = array.selected_token()?;
                sampler.accept(token);
                Some(token)
            }
        }
    }
}

/// Whether the reply so far is only a code-fence opening line (```` ```json ````).
fn is_fence_opener(bytes: &[u8]) -> bool {
    matches!(
        bytes.trim_ascii(),
        b"```json" | b"```tool_call" | b"```" | b"```xml"
    )
}

/// Whether `piece` opens a JSON object at the very start of the reply (after nothing
/// but whitespace, or a ```json / ```tool_call fence line).
/// Whether `piece` opens a JSON call: a `{` at the start of the reply, after a fence
/// opener, or after nothing but bare tags — the 1.5B echoed the prompt's `<tools>` list
/// as `<tools>\n\n</tools>\n\n` and then wrote its call as bare JSON, unconstrained, with
/// the tool's schema as its arguments.
fn opens_json_call(before: &[u8], piece: &[u8]) -> bool {
    // Checked for every freely sampled token: the piece first, the reply so far only
    // when the piece opens an object.
    if !piece.trim_ascii_start().starts_with(b"{") {
        return false;
    }
    let trimmed = before.trim_ascii();
    only_tags(trimmed)
        || (matches!(trimmed, b"```json" | b"```tool_call" | b"```") && before.ends_with(b"\n"))
}

/// Whether `text` is empty or only tags like `<tools>` and `</tools>`, with whitespace.
fn only_tags(mut text: &[u8]) -> bool {
    loop {
        text = text.trim_ascii_start();
        let Some(rest) = text.strip_prefix(b"<") else {
            return text.is_empty();
        };
        let rest = rest.strip_prefix(b"/").unwrap_or(rest);
        let name = rest
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        match rest.get(name) {
            Some(b'>') if name > 0 => text = &rest[name + 1..],
            _ => return false,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Emits the longest complete UTF-8 prefix of `pending` and returns its length.
fn emit_utf8(pending: &[u8], emit: &mut dyn FnMut(&str)) -> usize {
    let valid = match std::str::from_utf8(pending) {
        Ok(s) => s.len(),
        Err(e) if e.error_len().is_some() => pending.len(), // invalid, not incomplete
        Err(e) => e.valid_up_to(),
    };
    if valid > 0 {
        emit(&String::from_utf8_lossy(&pending[..valid]));
    }
    valid
}

fn rand_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

/// A seed that follows from the prompt: the same history samples the same reply.
fn prompt_seed(prompt: &[LlamaToken]) -> u32 {
    // FNV-1a over the token ids.
    let mut hash: u32 = 0x811c_9dc5;
    for token in prompt {
        for byte in token.0.to_le_bytes() {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::opens_json_call;

    #[test]
    fn a_json_call_opens_at_the_start_after_a_fence_or_after_bare_tags() {
        for (before, opens) in [
            (&b""[..], true),
            (b"\n", true),
            (b"```json\n", true),
            (b"<tools>\n\n</tools>\n\n", true),
            (b"<tool_calls>\n", true),
            (b"Here is the config: ", false),
            (b"<tools> list\n", false),
            (b"<a href=x>\n", false),
            (b"```json", false),
            (b"<>\n", false),
        ] {
            let text = String::from_utf8_lossy(before);
            assert_eq!(opens_json_call(before, b"{\""), opens, "{text:?}");
        }
        assert!(!opens_json_call(b"<tools>\n", b"text"));
    }
}
