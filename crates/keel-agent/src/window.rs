//! Whether the model's context window can hold keel at all.

/// Tokens a session needs beyond the system prompt: the project context, the task,
/// a few tool results and the model's answers.
pub const WORKING_MARGIN: u32 = 2048;

/// A model whose window is too small for keel; the message says what to change.
#[derive(Debug, thiserror::Error)]
#[error(
    "the model's context window is {window} tokens, but keel's system prompt takes about {prompt} and a session needs at least {margin} more. Give the model a larger context (llama.cpp server: `-c 16384`; vLLM: `--max-model-len 16384`) or, where the server does not report its window (Ollama, some servers), set `context_window = 16384` in the keel configuration"
)]
pub struct ContextTooSmall {
    pub window: u32,
    pub prompt: u32,
    pub margin: u32,
}

/// A deliberately high estimate of a text's token count (about 3 bytes per token;
/// English prose and code average nearer 4), so the check errs on the safe side.
pub fn estimate_tokens(text: &str) -> u32 {
    (text.len() as u32).div_ceil(3)
}
