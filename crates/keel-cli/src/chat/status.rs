//! The status line: model, context used of the window, generation speed, session.

use std::sync::Mutex;
use std::time::Instant;

use keel_protocol::Event;

#[derive(Default)]
struct State {
    /// When the current model request started.
    asked: Option<Instant>,
    prompt_tokens: Option<u64>,
    window: Option<u64>,
    tokens_per_second: Option<f64>,
}

/// Follows the events for the status line.
#[derive(Default)]
pub struct Status(Mutex<State>);

impl Status {
    pub fn observe(&self, event: &Event) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Thinking { .. } => state.asked = Some(Instant::now()),
            Event::Usage {
                prompt_tokens,
                completion_tokens,
                time_to_first_token_ms,
                context_window,
                ..
            } => {
                if prompt_tokens.is_some() {
                    state.prompt_tokens = *prompt_tokens;
                }
                if context_window.is_some() {
                    state.window = *context_window;
                }
                if let (Some(asked), Some(tokens)) = (state.asked, completion_tokens) {
                    let generating = asked.elapsed().as_secs_f64()
                        - time_to_first_token_ms.unwrap_or(0) as f64 / 1000.0;
                    if *tokens > 1 && generating > 0.0 {
                        state.tokens_per_second = Some(*tokens as f64 / generating);
                    }
                }
            }
            _ => {}
        }
    }

    /// `model · context 3.2k/32.8k (10%) · 14.1 tok/s · session 0193ab12`.
    pub fn line(&self, model: &str, session_id: &str) -> String {
        let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut parts = vec![model.to_string()];
        match (state.prompt_tokens, state.window) {
            (Some(used), Some(window)) if window > 0 => parts.push(format!(
                "context {}/{} ({}%)",
                thousands(used),
                thousands(window),
                used * 100 / window
            )),
            (Some(used), _) => parts.push(format!("context {}", thousands(used))),
            (None, Some(window)) => parts.push(format!("context 0/{}", thousands(window))),
            (None, None) => {}
        }
        if let Some(speed) = state.tokens_per_second {
            parts.push(format!("{speed:.1} tok/s"));
        }
        let short: String = session_id.chars().take(8).collect();
        parts.push(format!("session {short}"));
        parts.join(" · ")
    }
}

fn thousands(n: u64) -> String {
    if n >= 1000 {
        format!("{:.1}k", n as f64 / 1000.0)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_the_context_in_use() {
        let status = Status::default();
        assert_eq!(status.line("m", "0193ab12ffff"), "m · session 0193ab12");
        status.observe(&Event::Usage {
            prompt_tokens: Some(3200),
            cached_prompt_tokens: None,
            completion_tokens: Some(10),
            time_to_first_token_ms: None,
            constrained_calls: None,
            context_window: Some(32768),
        });
        assert_eq!(
            status.line("m", "0193ab12ffff"),
            "m · context 3.2k/32.8k (9%) · session 0193ab12"
        );
    }
}
