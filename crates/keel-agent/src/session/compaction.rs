//! Keeping each request within the model's context window: counted before it is sent
//! (exactly where the backend can count, else estimated), and compacted — old tool
//! results to stubs, then older messages to a summary — when it passes `compact_at`
//! of the window. A compaction is an event, so a resumed session sees the same.

use std::time::Instant;

use keel_llm::ChatRequest;
use keel_protocol::{Event, Message, conversation};
use tokio_util::sync::CancellationToken;

use super::{Agent, EventSink, Session, stream};
use crate::budget::{self, COMPACT_TO};
use crate::compact::{self, KEEP_RECENT};

/// The fewest bytes a tool output is cut to, however full the window.
const OUTPUT_FLOOR: usize = 1024;

/// Completion tokens the summary may take (within a tenth of the window).
const SUMMARY_TOKENS: u32 = 400;

impl Session {
    /// The prompt tokens of the request `events` make.
    fn prompt_tokens_of(&self, agent: &Agent, events: &[Event]) -> u32 {
        let request = Self::request_from(&self.id, agent, events);
        agent
            .model
            .count_prompt_tokens(&request)
            .unwrap_or_else(|| self.calibration.tokens(request.prompt_bytes()))
    }

    /// The most bytes each of `calls` new tool outputs may take: half the room the
    /// window has left after the prompt and the reply's reserve, shared among them.
    /// `None` when the window is not known.
    pub(super) fn output_room(&self, agent: &Agent, calls: usize) -> Option<usize> {
        let window = agent.model.info().context_window?;
        let reserve = budget::reserve(window, agent.config.max_tokens);
        let used = self.prompt_tokens_of(agent, &self.events) + reserve;
        let room = self.calibration.bytes(window.saturating_sub(used) / 2);
        Some((room / calls.max(1)).max(OUTPUT_FLOOR))
    }

    /// A request was sent with `bytes` of prompt and took `tokens`.
    pub(super) fn calibrate(&mut self, bytes: usize, tokens: Option<u64>) {
        if let Some(tokens) = tokens {
            self.calibration.observe(bytes, tokens);
        }
    }

    /// Before a request: when the prompt and the reply's reserve pass `compact_at` of
    /// the window, compacts — stubs first, then a summary of the older messages (the
    /// model's; keel's own when the model gives none), then, if still over, everything
    /// but the last message summarised by keel. Each step is taken only when it frees
    /// something, so compaction never repeats itself without new content.
    pub(super) async fn fit_window(
        &mut self,
        agent: &Agent,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
    ) {
        let Some(window) = agent.model.info().context_window else {
            return;
        };
        let reserve = budget::reserve(window, agent.config.max_tokens);
        let limit = (window as f32 * agent.config.compact_at.clamp(0.2, 1.0)) as u32;
        let target = (window as f32 * COMPACT_TO.min(agent.config.compact_at)) as u32;
        let mut tokens = self.prompt_tokens_of(agent, &self.events);
        if tokens + reserve <= limit {
            return;
        }
        let messages = conversation(&self.events);
        let stubbed = compact::stubs(&messages);
        if !stubbed.is_empty() {
            tokens = self.compact(agent, sink, stubbed, 0, None, false, tokens);
            if tokens + reserve <= target {
                return;
            }
        }
        let messages = conversation(&self.events);
        let summary_bytes = compact::summary_bytes(window);
        if let Some(cut) = compact::cut(&messages, KEEP_RECENT) {
            let older = &messages[1..cut];
            let by_model = self.summarise(agent, older, window, cancel).await;
            let summary = by_model
                .clone()
                .unwrap_or_else(|| compact::mechanical_summary(older, summary_bytes));
            tokens = self.compact(
                agent,
                sink,
                Vec::new(),
                cut - 1,
                Some(summary),
                by_model.is_some(),
                tokens,
            );
        }
        if tokens + reserve <= limit {
            return;
        }
        // Still over: only the last message stays as it was.
        let messages = conversation(&self.events);
        if let Some(cut) = compact::cut(&messages, 1) {
            let summary = compact::mechanical_summary(&messages[1..cut], summary_bytes);
            self.compact(
                agent,
                sink,
                Vec::new(),
                cut - 1,
                Some(summary),
                false,
                tokens,
            );
        }
    }

    /// Emits a compaction event when it makes the prompt smaller; the prompt tokens
    /// after it (or as they were).
    #[allow(clippy::too_many_arguments)]
    fn compact(
        &mut self,
        agent: &Agent,
        sink: &dyn EventSink,
        stubbed: Vec<String>,
        summarized: usize,
        summary: Option<String>,
        by_model: bool,
        tokens_before: u32,
    ) -> u32 {
        let mut event = Event::Compaction {
            stubbed,
            summarized: summarized as u32,
            summary,
            by_model,
            tokens_before: tokens_before.into(),
            tokens_after: 0,
        };
        let mut events = self.events.clone();
        events.push(event.clone());
        let after = self.prompt_tokens_of(agent, &events);
        if after >= tokens_before {
            return tokens_before;
        }
        if let Event::Compaction { tokens_after, .. } = &mut event {
            *tokens_after = after.into();
        }
        self.emit(sink, event);
        after
    }

    /// The model's summary of `older`, if it writes a usable one. The request runs as a
    /// session of its own, so the main session's cached prefix stays.
    async fn summarise(
        &mut self,
        agent: &Agent,
        older: &[Message],
        window: u32,
        cancel: &CancellationToken,
    ) -> Option<String> {
        let room = window.saturating_sub(SUMMARY_TOKENS + 200) / 2;
        let text = compact::summary_request(older, room as usize * 3);
        let mut request = ChatRequest::new(
            format!("{}:compact", self.id),
            vec![Message::system(compact::SUMMARISER), Message::user(text)],
        );
        request.protocol = agent.protocol;
        request.max_tokens = Some(SUMMARY_TOKENS.min(window / 10));
        let stream = agent.model.stream(request);
        let streamed = stream::read(stream, Instant::now(), cancel, |_| {}).await;
        // A summary that went round in a loop keeps what it said before the loop (the
        // stream is cut after the first copy of the piece): the 0.5B listing 24 notes
        // one line each is a summary until it starts over.
        if streamed.cancelled || streamed.failure.is_some() {
            return None;
        }
        compact::usable_summary(&streamed.text, compact::summary_bytes(window))
    }
}
