//! What a GGUF file says about its model (`keel model info`).

use std::path::{Path, PathBuf};

use crate::EngineError;
use crate::engine::LoadedModel;

/// A model's facts, from its GGUF metadata and llama.cpp's reading of the tensors.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelMetadata {
    pub path: PathBuf,
    pub name: Option<String>,
    pub architecture: String,
    pub parameters: u64,
    pub file_bytes: u64,
    pub quantisation: String,
    pub context_length: u32,
    pub sliding_window: Option<u32>,
    pub vocabulary: u32,
    pub layers: u32,
    /// Whether the GGUF carries `tokenizer.chat_template`.
    pub chat_template: bool,
    /// The template keel uses for it (from the GGUF's template, else the architecture).
    pub keel_template: Option<String>,
}

/// Loads the model (shared with any engine that already has it) and describes it.
pub fn read_metadata(path: &Path) -> Result<ModelMetadata, EngineError> {
    let loaded = LoadedModel::get(path, None)?;
    Ok(loaded.metadata())
}

/// llama.cpp's `llama_ftype` values as their usual names.
pub(crate) fn file_type_name(file_type: u32) -> String {
    let name = match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        other => return format!("file type {other}"),
    };
    name.to_string()
}
