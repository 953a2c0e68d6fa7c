//! Model specs (`replay:FILE`, `embedded:…`, `openai:MODEL@URL`, `ollama:MODEL`) and
//! turning one into a client.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{ConnectOptions, LlmError, ModelClient, OllamaClient, OpenAiClient, ReplayClient};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    Replay(PathBuf),
    Embedded(String),
    OpenAi { model: String, base_url: String },
    Ollama { model: String, base_url: String },
}

impl ModelSpec {
    pub fn parse(spec: &str) -> Result<Self, LlmError> {
        let invalid = |reason: &str| LlmError::InvalidSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (kind, rest) = spec
            .split_once(':')
            .ok_or_else(|| invalid(&format!("expected one of {SPEC_FORMS}")))?;
        if rest.is_empty() {
            return Err(invalid("nothing after the colon"));
        }
        match kind {
            "replay" => Ok(ModelSpec::Replay(PathBuf::from(rest))),
            "embedded" => Ok(ModelSpec::Embedded(rest.to_string())),
            "openai" => {
                let (model, url) = rest
                    .rsplit_once('@')
                    .ok_or_else(|| invalid("expected `openai:MODEL@BASE_URL`"))?;
                check_url(url).map_err(|r| invalid(&r))?;
                Ok(ModelSpec::OpenAi {
                    model: model.to_string(),
                    base_url: url.to_string(),
                })
            }
            "ollama" => {
                let (model, url) = match rest.rsplit_once('@') {
                    Some((m, u)) => (m, u),
                    None => (rest, "http://localhost:11434"),
                };
                check_url(url).map_err(|r| invalid(&r))?;
                Ok(ModelSpec::Ollama {
                    model: model.to_string(),
                    base_url: url.to_string(),
                })
            }
            _ => Err(invalid(&format!(
                "unknown kind; the valid forms are {SPEC_FORMS}"
            ))),
        }
    }
}

/// The spec forms, for usage errors.
pub const SPEC_FORMS: &str = "replay:FILE, embedded:PATH_OR_NAME, openai:MODEL@BASE_URL (e.g. openai:qwen2.5-coder@http://localhost:8000/v1), ollama:MODEL[@BASE_URL]";

/// Makes a client for a spec string. Server backends are asked about the model
/// (context window, whether it exists) before this returns.
pub async fn connect(
    spec: &str,
    options: ConnectOptions,
) -> Result<Arc<dyn ModelClient>, LlmError> {
    match ModelSpec::parse(spec)? {
        ModelSpec::Replay(path) => Ok(Arc::new(
            ReplayClient::open(&path, spec)?.with_context_window(options.context_window),
        )),
        ModelSpec::Embedded(_) => Err(LlmError::Unsupported {
            backend: "embedded".into(),
        }),
        ModelSpec::OpenAi { model, base_url } => Ok(Arc::new(
            OpenAiClient::connect(spec, &model, &base_url, options).await?,
        )),
        ModelSpec::Ollama { model, base_url } => Ok(Arc::new(
            OllamaClient::connect(spec, &model, &base_url, options).await?,
        )),
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("the base URL `{url}` must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("the base URL `{url}` has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(
            ModelSpec::parse("replay:a/b.jsonl").unwrap(),
            ModelSpec::Replay("a/b.jsonl".into())
        );
        assert_eq!(
            ModelSpec::parse("openai:Qwen/Qwen2.5-Coder@http://localhost:8000/v1").unwrap(),
            ModelSpec::OpenAi {
                model: "Qwen/Qwen2.5-Coder".into(),
                base_url: "http://localhost:8000/v1".into()
            }
        );
        assert!(matches!(
            ModelSpec::parse("ollama:qwen2.5-coder:7b").unwrap(),
            ModelSpec::Ollama { ref base_url, .. } if base_url == "http://localhost:11434"
        ));
        assert!(ModelSpec::parse("gpt4").is_err());
        assert!(ModelSpec::parse("replay:").is_err());
        assert!(ModelSpec::parse("cloud:x").is_err());
        assert!(ModelSpec::parse("openai:m@localhost:8000").is_err());
        assert!(ModelSpec::parse("ollama:m@ftp://x").is_err());
    }
}
