//! Counting a request's prompt tokens exactly, for keel's window budget: the same
//! template and tokenisation as generation, without touching a session's cache.

use keel_llm::ChatRequest;

use super::Engine;
use crate::template::Part;

impl Engine {
    /// The tokens the prompt of `request` takes. The model's earlier replies are
    /// tokenised from their text (generation reuses the ids it produced, which can
    /// differ by a token here and there).
    pub fn count_prompt_tokens(&self, request: &ChatRequest) -> usize {
        let messages = keel_llm::calls::to_text_messages(request.protocol, &request.messages);
        let vocab = self.model.model.vocab();
        self.template
            .render(&messages)
            .into_iter()
            .map(|part| match part {
                Part::Bos => usize::from(vocab.should_add_bos()),
                Part::Markup(s) => vocab.tokenize(s.as_bytes(), false, true).len(),
                Part::Text(s) | Part::Reply(s) => self.tokenize_text(&s).len(),
            })
            .sum()
    }
}
