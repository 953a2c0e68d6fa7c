use keel_engine::{Engine, EngineOptions};
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let engine = Engine::load(std::path::Path::new(&path), EngineOptions::default()).unwrap();
    for text in [
        "<tool_call>",
        "</tool_call>",
        "```json\n<tool_call>",
        "<|im_end|>",
    ] {
        println!(
            "{text:?}: literal {:?} special {:?}",
            engine.tokenize(text, false),
            engine.tokenize(text, true)
        );
    }
}
