pub mod llama;
pub mod mock;
