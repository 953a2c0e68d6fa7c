//! A model response → the calls to run: the tolerant reader, the canonical rewrite (so
//! the history shows every call in the dialect's own form and the model copies that),
//! and the constrained repair of calls that could not be read.

use std::time::Instant;

use keel_llm::{ToolProtocol, calls, parse_lenient_json};
use keel_protocol::{Event, Message, ToolCall};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{Agent, EventSink, PendingCall, Response, Session, stream};
use crate::{code_blocks, repair};

impl Session {
    pub(super) fn new_call_id(&mut self) -> String {
        self.next_call += 1;
        format!("call_{}", self.next_call)
    }

    /// The native calls the backend streamed, with ids and parsed arguments.
    pub(super) fn native_calls(&mut self, raw: Vec<stream::RawCall>) -> Vec<ToolCall> {
        raw.into_iter()
            .map(|call| ToolCall {
                id: call.id.unwrap_or_else(|| self.new_call_id()),
                name: call.name,
                arguments: parse_lenient_json(&call.arguments)
                    .unwrap_or(Value::String(call.arguments)),
            })
            .collect()
    }

    /// The prose and the calls of a response, in the order they were written. Calls
    /// found in the text in a form other than the dialect's own are rewritten into it
    /// (in `native` mode they become native calls), so the stored reply — and every
    /// later prompt — shows them the canonical way.
    pub(super) fn calls_of(
        &mut self,
        agent: &Agent,
        response: &mut Response,
    ) -> (String, Vec<PendingCall>) {
        let protocol = agent.protocol;
        let parsed = calls::parse_response(&response.text);
        let mut pending = Vec::new();
        if protocol == ToolProtocol::Native {
            if !parsed.calls.is_empty() {
                let mut kept = Vec::new();
                for call in &parsed.calls {
                    match call {
                        Ok(call) => {
                            let id = self.new_call_id();
                            response.native_calls.push(ToolCall {
                                id,
                                name: call.name.clone(),
                                arguments: call.arguments.clone(),
                            });
                        }
                        Err(bad) => kept.push(Err(bad.clone())),
                    }
                }
                response.text = calls::render_reply(protocol, &parsed.prose, &kept);
                for bad in kept.into_iter().filter_map(Result::err) {
                    let id = self.new_call_id();
                    pending.push(PendingCall {
                        id,
                        name: bad.name.clone().unwrap_or_else(|| "unknown".into()),
                        arguments: Err(bad.message(protocol)),
                    });
                }
            }
        } else {
            if !parsed.is_canonical(protocol) {
                response.text = calls::render_reply(protocol, &parsed.prose, &parsed.calls);
            }
            for call in parsed.calls {
                let id = self.new_call_id();
                pending.push(match call {
                    Ok(call) => PendingCall {
                        id,
                        name: call.name,
                        arguments: Ok(call.arguments),
                    },
                    Err(bad) => PendingCall {
                        id,
                        name: bad.name.clone().unwrap_or_else(|| "unknown".into()),
                        arguments: Err(bad.message(protocol)),
                    },
                });
            }
        }
        for call in &response.native_calls {
            let arguments = match &call.arguments {
                Value::Object(_) => Ok(call.arguments.clone()),
                Value::String(raw) => Err(format!(
                    "malformed tool call: the arguments of `{}` are not valid JSON: {raw}",
                    call.name
                )),
                _ => Err(format!(
                    "malformed tool call: the arguments of `{}` must be a JSON object",
                    call.name
                )),
            };
            pending.push(PendingCall {
                id: call.id.clone(),
                name: call.name.clone(),
                arguments,
            });
        }
        (parsed.prose, pending)
    }

    /// The `write` calls a reply without calls stands for when its code blocks can be
    /// placed (see [`code_blocks`]); the reply is rewritten with them in the canonical
    /// form and `prose` loses the blocks. Empty when no block could be placed.
    pub(super) fn calls_of_blocks(
        &mut self,
        agent: &Agent,
        response: &mut Response,
        prose: &mut String,
    ) -> Vec<PendingCall> {
        let Some(writes) = self.block_writes(prose, code_blocks::Placing::Any) else {
            return Vec::new();
        };
        if agent.protocol == ToolProtocol::Native {
            response.text = prose.clone();
            let pending = self.pending(writes);
            for call in &pending {
                if let Ok(arguments) = &call.arguments {
                    response.native_calls.push(ToolCall {
                        id: call.id.clone(),
                        name: call.name.clone(),
                        arguments: arguments.clone(),
                    });
                }
            }
            return pending;
        }
        let wrapped: Vec<_> = writes.iter().cloned().map(Ok).collect();
        response.text = calls::render_reply(agent.protocol, prose, &wrapped);
        self.pending(writes)
    }

    /// The `write` calls of the blocks in a reply that also calls tools: only blocks
    /// that name their file, run before the reply's calls (a file, then the tests). The
    /// reply is rewritten with them as calls in the canonical form, before its own.
    pub(super) fn calls_of_named_blocks(
        &mut self,
        agent: &Agent,
        response: &mut Response,
        prose: &mut String,
    ) -> Vec<PendingCall> {
        let Some(writes) = self.block_writes(prose, code_blocks::Placing::Named) else {
            return Vec::new();
        };
        let mut shown: Vec<_> = writes.iter().cloned().map(Ok).collect();
        shown.extend(calls::parse_response(&response.text).calls);
        response.text = calls::render_reply(agent.protocol, prose, &shown);
        self.pending(writes)
    }

    /// The blocks of `prose` that can be placed, read as `write` calls; `prose` loses
    /// them. `None` when none could be placed.
    fn block_writes(
        &mut self,
        prose: &mut String,
        placing: code_blocks::Placing,
    ) -> Option<Vec<calls::ParsedCall>> {
        let (edits, rest) = code_blocks::edits(self.tool_ctx.workspace.root(), prose, placing);
        if edits.is_empty() {
            return None;
        }
        *prose = rest;
        Some(
            edits
                .into_iter()
                .map(|edit| {
                    // keel read the file to place the block: a whole write of it is no
                    // blind overwrite.
                    if let Ok(resolved) = self.tool_ctx.workspace.resolve(&edit.path) {
                        self.tool_ctx.mark_read(&resolved);
                    }
                    calls::ParsedCall {
                        name: "write".into(),
                        arguments: json!({"path": edit.path, "content": edit.content}),
                    }
                })
                .collect(),
        )
    }

    /// Well-formed calls to run, with ids.
    fn pending(&mut self, calls: Vec<calls::ParsedCall>) -> Vec<PendingCall> {
        calls
            .into_iter()
            .map(|call| PendingCall {
                id: self.new_call_id(),
                name: call.name,
                arguments: Ok(call.arguments),
            })
            .collect()
    }

    /// Sends each malformed call written in the text back as a request constrained to
    /// a valid call and, where that works, rewrites the response with the repaired calls.
    pub(super) async fn repair_calls(
        &mut self,
        agent: &Agent,
        response: &mut Response,
        sink: &dyn EventSink,
        cancel: &CancellationToken,
    ) {
        let parsed = calls::parse_response(&response.text);
        if parsed.calls.iter().all(Result::is_ok) {
            return;
        }
        let schema = repair::call_schema(&agent.tool_specs);
        let mut repaired_calls = Vec::with_capacity(parsed.calls.len());
        let mut any_repaired = false;
        for call in parsed.calls {
            let bad = match call {
                Ok(call) => {
                    repaired_calls.push(Ok(call));
                    continue;
                }
                Err(bad) => bad,
            };
            let mut request = self.request(agent);
            request
                .messages
                .push(Message::assistant(response.text.clone(), Vec::new()));
            request
                .messages
                .push(Message::user(repair::instruction(&bad, &agent.tool_specs)));
            request.response_schema = Some(schema.clone());
            request.max_tokens = Some(agent.config.max_tokens.unwrap_or(repair::REPAIR_MAX_TOKENS));
            let streamed =
                stream::read(agent.model.stream(request), Instant::now(), cancel, |_| {}).await;
            if streamed.cancelled {
                return;
            }
            self.emit_usage(agent, sink, &streamed);
            let result = match (streamed.failure, &streamed.looped) {
                (Some(reason), _) => Err(reason.to_string()),
                (None, Some(_)) => Err("the repair went round in a loop".to_string()),
                (None, None) => repair::read_call(&streamed.text, &agent.tool_specs),
            };
            self.emit(
                sink,
                Event::Repair {
                    problem: bad.problem.clone(),
                    repaired: result.is_ok(),
                },
            );
            match result {
                Ok(call) => {
                    any_repaired = true;
                    repaired_calls.push(Ok(call));
                }
                Err(_) => repaired_calls.push(Err(bad)),
            }
        }
        if any_repaired {
            response.text = calls::render_reply(agent.protocol, &parsed.prose, &repaired_calls);
        }
    }

    /// The `usage` event of one response.
    pub(super) fn emit_usage(
        &mut self,
        agent: &Agent,
        sink: &dyn EventSink,
        streamed: &stream::Streamed,
    ) {
        let usage = streamed.usage;
        self.emit(
            sink,
            Event::Usage {
                prompt_tokens: usage.prompt_tokens,
                cached_prompt_tokens: usage.cached_prompt_tokens,
                completion_tokens: usage.completion_tokens,
                time_to_first_token_ms: streamed.first_token.map(|d| d.as_millis() as u64),
                constrained_calls: usage.constrained_calls,
                context_window: agent.model.info().context_window.map(u64::from),
            },
        );
    }
}
