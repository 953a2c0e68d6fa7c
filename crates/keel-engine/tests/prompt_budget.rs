//! DESIGN.md's budget, measured with the model's own tokenizer: the fixed part of every
//! prompt — system prompt and tool definitions, in the dialect keel speaks with Qwen —
//! stays within 1,200 tokens, with the memory tools included (what `keel run` offers).

#[path = "common/model.rs"]
mod model;

use std::sync::Arc;

use keel_agent::{Agent, AgentConfig};
use keel_engine::{Engine, EngineOptions};
use keel_llm::{ProtocolChoice, ReplayClient, ToolProtocol};
use keel_tools::ToolRegistry;
use model::coding_model;

#[test]
fn the_fixed_prompt_fits_1200_qwen_tokens_in_each_dialect() {
    // The 0.5B and the 1.5B share Qwen2.5's tokenizer.
    let Some(path) = coding_model("qwen2.5-coder-0.5b-instruct.gguf") else {
        return;
    };
    let engine = Engine::load(&path, EngineOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("empty.jsonl");
    std::fs::write(&script, "").unwrap();
    let store = Arc::new(keel_store::Store::open(&dir.path().join("keel.db")).unwrap());
    for protocol in [ToolProtocol::Hermes, ToolProtocol::Xml] {
        let model = Arc::new(ReplayClient::open(&script, "replay:empty").unwrap());
        let config = AgentConfig {
            protocol: ProtocolChoice::Fixed(protocol),
            ..AgentConfig::default()
        };
        let agent = Agent::new(model, ToolRegistry::builtin(), config).with_memory(store.clone());
        assert_eq!(agent.tool_specs().len(), 9);
        let tokens = engine.tokenize(agent.system_prompt(), false).len();
        eprintln!("{protocol:?}: system prompt with 9 tools = {tokens} Qwen tokens");
        assert!(tokens <= 1200, "{protocol:?}: {tokens} tokens");
    }
}
