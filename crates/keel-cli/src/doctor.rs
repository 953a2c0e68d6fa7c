//! `keel doctor`: the health of the configured model and of keel's own store, one
//! line per check — PASS, WARN or FAIL with the number and the threshold.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::StreamExt;
use keel_agent::{Agent, call_schema, estimate_tokens, read_call};
use keel_llm::{ChatRequest, LlmError, ModelClient, ModelEvent, ModelSpec};
use keel_mcp::{McpServers, ServerState};
use keel_protocol::{Message, Usage};
use keel_tools::ToolRegistry;

use crate::config::{self, DoctorThresholds, Layer};
use crate::run::workspace_dir;

#[path = "doctor_smoke.rs"]
mod smoke;
use crate::sessions_cmd::open_store;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// Prints each check as it finishes and remembers whether any failed.
#[derive(Default)]
struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, status: Status, check: &str, detail: impl AsRef<str>) {
        self.failed |= status == Status::Fail;
        println!("{}  {check:<13} {}", status.label(), detail.as_ref());
    }
}

/// Tokens in the decode check's prompt (about; the text is fixed).
const DECODE_PROMPT: &str = "Here is a short description of a software project. It is a command-line tool written in Rust that reads a repository, plans a change, edits files, runs the tests and repeats until they pass. It keeps a record of each session in a local database so that work can be resumed after a restart, and it remembers facts about each project. Continue this description with a few sentences about how such a tool should handle errors.";

pub async fn run(model_flag: Option<String>, workspace: Option<PathBuf>, fix: bool) -> Result<u8> {
    let dir = workspace_dir(workspace)?;
    let settings = config::load(
        &dir,
        Layer {
            model: model_flag,
            ..Layer::default()
        },
    )?;
    let thresholds = settings.doctor;
    let mut report = Report::default();
    // Opened first: the agent checked below is the one `keel run` would build,
    // memory tools included, so the context-window threshold is the same.
    let store = open_store().map(Arc::new);
    // The configured MCP servers, started beside the model as `keel run` does: their
    // tools count towards the prompt the context window must hold.
    let mut mcp = None;
    let mut fix_model = None;

    match crate::model::model_spec(settings.model.clone()) {
        Err(e) => report.line(Status::Fail, "model", format!("{e:#}")),
        Ok(spec) => {
            // A spec that does not parse is a usage error, as everywhere else.
            let parsed = ModelSpec::parse(&spec)?;
            fix_model = Some(spec.clone());
            let timed_open = async {
                let started = Instant::now();
                let opened = crate::model::open(&spec, &settings).await;
                (opened, started.elapsed())
            };
            let ((opened, connect_time), servers) = tokio::join!(
                timed_open,
                McpServers::start(settings.mcp.clone(), settings.workspace.root()),
            );
            mcp = Some(servers);
            match opened {
                Err(crate::model::OpenError::Usage(e)) => {
                    report.line(Status::Fail, "model", format!("{e:#}"))
                }
                Err(crate::model::OpenError::Failed(e)) => {
                    report.line(Status::Fail, "model", e.to_string())
                }
                Ok(client) => {
                    let mut tools = ToolRegistry::builtin();
                    tools.register_all(mcp.iter().flat_map(McpServers::tools));
                    let mut agent = Agent::new(client, tools, settings.agent.clone());
                    if let Ok(store) = &store {
                        agent = agent.with_memory(Arc::clone(store));
                    }
                    model_checks(
                        &mut report,
                        &agent,
                        thresholds,
                        connect_time,
                        matches!(parsed, ModelSpec::Replay(_)),
                    )
                    .await
                }
            }
        }
    }

    if let Some(servers) = mcp {
        for server in servers.reports() {
            let check = format!("mcp {}", server.name);
            match &server.state {
                ServerState::Running { protocol, tools } => report.line(
                    Status::Pass,
                    &check,
                    format!("running, {} tools, protocol {protocol}", tools.len()),
                ),
                ServerState::Failed(reason) => report.line(Status::Fail, &check, reason),
            }
        }
        servers.shutdown().await;
    }

    if fix {
        match &fix_model {
            Some(model) => smoke::fix(&mut report, model).await,
            None => report.line(Status::Fail, "fix", "no model to run the sample task with"),
        }
    }
    smoke::memory(&mut report);

    match store.and_then(|store| Ok(store.check_writable()?)) {
        Ok(()) => {
            let path = crate::config::keel_home()
                .map(|h| h.join("keel.db").display().to_string())
                .unwrap_or_default();
            report.line(Status::Pass, "store", format!("{path} is writable"))
        }
        Err(e) => report.line(Status::Fail, "store", format!("{e:#}")),
    }
    Ok(if report.failed { 1 } else { 0 })
}

async fn model_checks(
    report: &mut Report,
    agent: &Agent,
    thresholds: DoctorThresholds,
    connect_time: Duration,
    replay: bool,
) {
    let client = agent.model();
    let info = client.info();
    let server = info
        .server
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    let prompt = agent.system_prompt().to_string();
    let needed = agent.context_needed();
    let reached = format!(
        "{}{server} answered in {} ms",
        info.name,
        connect_time.as_millis()
    );
    match (info.context_window, agent.check_context_window()) {
        (_, Err(e)) => report.line(Status::Fail, "model", format!("{reached}; {e}")),
        (Some(window), Ok(())) => report.line(
            Status::Pass,
            "model",
            format!("{reached}; context window {window} tokens (threshold ≥ {needed})"),
        ),
        (None, Ok(())) if replay => report.line(
            Status::Pass,
            "model",
            format!("{reached}; scripted responses, no context window"),
        ),
        (None, Ok(())) => report.line(
            Status::Warn,
            "model",
            format!(
                "{reached}; the server does not report its context window: set `context_window` in the configuration (keel needs ≥ {needed})"
            ),
        ),
    }
    if replay {
        for check in ["decode", "prefix cache", "constrained"] {
            report.line(
                Status::Warn,
                check,
                "not measured: the replay backend only plays a script",
            );
        }
        return;
    }

    // (2) decode throughput.
    let request = ChatRequest {
        max_tokens: Some(64),
        ..ChatRequest::new(
            "doctor",
            vec![
                Message::system("You are a helpful assistant."),
                Message::user(DECODE_PROMPT),
            ],
        )
    };
    match timed(client, request).await {
        Err(e) => report.line(Status::Fail, "decode", e.to_string()),
        Ok(run) => {
            let tokens = run.usage.completion_tokens.unwrap_or(run.pieces as u64);
            let decoding = run.total.saturating_sub(run.first);
            if tokens < 8 || decoding.is_zero() {
                report.line(
                    Status::Warn,
                    "decode",
                    format!("the model stopped after {tokens} tokens: too few to measure"),
                );
            } else {
                let rate = (tokens - 1) as f64 / decoding.as_secs_f64();
                let status = if rate >= thresholds.min_decode_tokens_per_second {
                    Status::Pass
                } else {
                    Status::Warn
                };
                report.line(
                    status,
                    "decode",
                    format!(
                        "{rate:.1} tok/s over {tokens} tokens (threshold ≥ {} tok/s)",
                        thresholds.min_decode_tokens_per_second
                    ),
                );
            }
        }
    }

    // (3) prefix caching: one long, stable system prompt three times. The nonce at
    // its start keeps an earlier doctor run from warming the first request.
    let nonce = uuid::Uuid::now_v7();
    let mut long_prompt = format!("Run {nonce}.\n{prompt}");
    while estimate_tokens(&long_prompt) < 1500 {
        long_prompt
            .push_str("\nKeep answers short and exact. Prefer reading code before changing it.");
    }
    let mut firsts = Vec::new();
    let mut cached = Vec::new();
    let mut failure = None;
    for _ in 0..3 {
        let request = ChatRequest {
            max_tokens: Some(1),
            ..ChatRequest::new(
                "doctor",
                vec![
                    Message::system(long_prompt.clone()),
                    Message::user("Say OK."),
                ],
            )
        };
        match timed(client, request).await {
            Ok(run) => {
                firsts.push(run.first);
                cached.push(run.usage.cached_prompt_tokens);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    match failure {
        Some(e) => report.line(Status::Fail, "prefix cache", e.to_string()),
        None => {
            let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
            let cold = ms(&firsts[0]).max(0.001);
            let ratio = ms(&firsts[1]).max(ms(&firsts[2])) / cold;
            let mut detail = format!(
                "time to first token {:.0} → {:.0} / {:.0} ms ({ratio:.2}×, threshold ≤ {:.2}×)",
                ms(&firsts[0]),
                ms(&firsts[1]),
                ms(&firsts[2]),
                thresholds.max_cached_ttft_ratio
            );
            if let Some(Some(n)) = cached.last() {
                let _ = write!(detail, "; {n} prompt tokens reused");
            }
            if ratio <= thresholds.max_cached_ttft_ratio {
                report.line(Status::Pass, "prefix cache", detail);
            } else {
                detail.push_str(
                    ": the repeats are not much faster, so prefix caching is off on the server or the prompt is not stable",
                );
                report.line(Status::Warn, "prefix cache", detail);
            }
        }
    }

    // (4) constrained tool calls.
    let Some(constraint) = info.constraint else {
        report.line(
            Status::Warn,
            "constrained",
            "the backend cannot constrain responses: a malformed tool call is reported to the model, not repaired",
        );
        return;
    };
    let specs = agent.tool_specs();
    // Bounded strings keep each sample short, so the check ends in seconds even on
    // a slow machine; it tests the mechanism, not the model's appetite for text.
    let mut schema = call_schema(specs);
    bound_strings(&mut schema, 64);
    let tries = 3;
    let mut valid = 0;
    let mut last_problem = None;
    for _ in 0..tries {
        let request = ChatRequest {
            max_tokens: Some(192),
            response_schema: Some(schema.clone()),
            ..ChatRequest::new(
                "doctor",
                vec![
                    Message::system(prompt.clone()),
                    Message::user(
                        "Read the file README.md. Answer with the call as JSON {\"name\": TOOL, \"input\": {…}}.",
                    ),
                ],
            )
        };
        match timed(client, request).await {
            Ok(run) => match read_call(&run.text, specs) {
                Ok(_) => valid += 1,
                Err(problem) => last_problem = Some(problem),
            },
            Err(e) => last_problem = Some(e.to_string()),
        }
    }
    let detail = format!(
        "{valid}/{tries} schema-constrained tool calls valid via {constraint:?} (threshold {tries}/{tries})"
    );
    match (valid, last_problem) {
        (v, _) if v == tries => report.line(Status::Pass, "constrained", detail),
        (0, problem) => report.line(
            Status::Fail,
            "constrained",
            format!("{detail}: {}", problem.unwrap_or_default()),
        ),
        (_, problem) => report.line(
            Status::Warn,
            "constrained",
            format!("{detail}: {}", problem.unwrap_or_default()),
        ),
    }
}

/// Gives every string in `schema` without a `maxLength` one of `max`.
fn bound_strings(schema: &mut serde_json::Value, max: u64) {
    match schema {
        serde_json::Value::Object(object) => {
            let is_string = match object.get("type") {
                Some(serde_json::Value::String(kind)) => kind == "string",
                Some(serde_json::Value::Array(kinds)) => kinds.iter().any(|k| k == "string"),
                _ => false,
            };
            if is_string && !object.contains_key("maxLength") {
                object.insert("maxLength".into(), max.into());
            }
            for value in object.values_mut() {
                bound_strings(value, max);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                bound_strings(item, max);
            }
        }
        _ => {}
    }
}

/// One measured request.
struct Timed {
    /// Until the first streamed item (the end, when nothing streamed).
    first: Duration,
    total: Duration,
    pieces: usize,
    text: String,
    usage: Usage,
}

async fn timed(client: &dyn ModelClient, request: ChatRequest) -> Result<Timed, LlmError> {
    let started = Instant::now();
    let mut stream = client.stream(request);
    let mut first = None;
    let mut pieces = 0;
    let mut text = String::new();
    let mut usage = Usage::default();
    while let Some(item) = stream.next().await {
        match item? {
            ModelEvent::Text(piece) => {
                first.get_or_insert_with(|| started.elapsed());
                pieces += 1;
                text.push_str(&piece);
            }
            ModelEvent::ToolCall { .. } => {
                first.get_or_insert_with(|| started.elapsed());
                pieces += 1;
            }
            ModelEvent::Usage(reported) => usage = reported,
        }
    }
    let total = started.elapsed();
    Ok(Timed {
        first: first.unwrap_or(total),
        total,
        pieces,
        text,
        usage,
    })
}
