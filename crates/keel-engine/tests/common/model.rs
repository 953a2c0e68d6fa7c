//! Where the real model for tests is. Shared by the engine tests and the CLI's.
#![allow(dead_code)]

use std::path::PathBuf;

/// The model file: `$KEEL_TEST_GGUF`, else where scripts/setup.sh puts it. Without it the
/// test is skipped loudly, or fails under scripts/test.sh (`KEEL_REQUIRE_LLAMA_SERVER=1`).
pub fn model() -> Option<PathBuf> {
    let path = std::env::var_os("KEEL_TEST_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| setup_models_dir().join("gemma-3-270m-q4_k_m.gguf"));
    present(path)
}

/// Where scripts/setup.sh puts the models (the same rule as keel's registry).
fn setup_models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KEEL_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".local/share"))
        .join("keel/models")
}

/// `path` when the file is there; else skipped loudly, or a failure under
/// scripts/test.sh (`KEEL_REQUIRE_LLAMA_SERVER=1`).
fn present(path: PathBuf) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path);
    }
    let message = format!("no model at {} (run scripts/setup.sh)", path.display());
    if std::env::var("KEEL_REQUIRE_LLAMA_SERVER").as_deref() == Ok("1") {
        panic!("{message}");
    }
    eprintln!("\n*** SKIPPED: {message} ***\n");
    None
}

/// A registered real coding model's GGUF, by its file name in keel's model directory
/// (`qwen2.5-coder-0.5b-instruct.gguf`, `qwen2.5-coder-1.5b-instruct-q4_k_m.gguf`), where
/// scripts/setup.sh puts them. Missing: skipped loudly, or a failure under scripts/test.sh.
pub fn coding_model(file: &str) -> Option<PathBuf> {
    present(setup_models_dir().join(file))
}
