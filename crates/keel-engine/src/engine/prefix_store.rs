//! The KV cache of a prompt's fixed start, kept on disk between processes.
//!
//! Every `keel run` is a new process, and every session's prompt starts with the same
//! system turn (the way of working and the tool definitions, ~1,000 tokens). On two CPU
//! cores a 1.5B model prefills that in 20–30 s before it writes a word. The first process
//! to evaluate a system turn saves its keys and values here; the next one loads them
//! (milliseconds) and evaluates only what follows.
//!
//! A file is named by a hash of the model file's identity (path, size, modification
//! time), the context settings and the prefix tokens, and holds the tokens themselves:
//! a load checks them, so a hash collision or a stale file costs a re-evaluation, never a
//! wrong answer. Files are written whole and renamed into place; the least recently used
//! go when there are more than [`KEEP`].

use std::path::{Path, PathBuf};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::token::LlamaToken;

/// Prefix files kept (one per model, tool set and dialect in use: a handful).
const KEEP: usize = 8;
/// Prefixes shorter than this are not worth a file.
pub(crate) const MIN_TOKENS: usize = 128;

/// A directory of saved prefixes for one engine (model file and context settings).
#[derive(Debug, Clone)]
pub(crate) struct PrefixStore {
    dir: PathBuf,
    /// Hash of everything but the tokens that decides what the KV values are.
    identity: u64,
}

/// FNV-1a, 64-bit: stable across builds and platforms (std's hasher is not).
fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

impl PrefixStore {
    /// The store in `dir` for the model at `model` evaluated under `settings` (anything
    /// that changes the values in the cache: context size, cache layout, batch size).
    pub(crate) fn new(dir: PathBuf, model: &Path, settings: &str) -> Self {
        let meta = std::fs::metadata(model).ok();
        let size = meta.as_ref().map_or(0, |m| m.len());
        let modified = meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let mut identity = fnv(FNV_START, model.to_string_lossy().as_bytes());
        identity = fnv(identity, &size.to_le_bytes());
        identity = fnv(identity, &modified.to_le_bytes());
        identity = fnv(identity, settings.as_bytes());
        Self { dir, identity }
    }

    /// The file that holds (or would hold) `tokens`.
    pub(crate) fn path(&self, tokens: &[LlamaToken]) -> PathBuf {
        let mut hash = self.identity;
        for t in tokens {
            hash = fnv(hash, &t.0.to_le_bytes());
        }
        self.dir.join(format!("{hash:016x}-{}.kv", tokens.len()))
    }

    /// Loads the saved cache of `tokens` into sequence 0 of `ctx` (which must be empty).
    /// `false` when there is none or it does not hold exactly these tokens; the context
    /// is then left empty.
    pub(crate) fn load(&self, ctx: &mut LlamaContext<'static>, tokens: &[LlamaToken]) -> bool {
        let path = self.path(tokens);
        if !path.is_file() {
            return false;
        }
        match ctx.state_seq_load_file(&path, 0, tokens.len()) {
            Ok((saved, _)) if saved == tokens => {
                // Recently used files are the ones kept.
                if let Ok(file) = std::fs::File::options().append(true).open(&path) {
                    let _ = file.set_modified(std::time::SystemTime::now());
                }
                true
            }
            _ => {
                ctx.clear_kv_cache();
                // Unreadable or not what its name says: the next process writes it again.
                let _ = std::fs::remove_file(&path);
                false
            }
        }
    }

    /// Saves sequence 0 of `ctx`, which holds exactly `tokens`. Failure (a full disk, a
    /// read-only home) only means the next process evaluates the prefix again.
    pub(crate) fn save(&self, ctx: &LlamaContext<'static>, tokens: &[LlamaToken]) {
        let path = self.path(tokens);
        if path.is_file() || std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let partial = path.with_extension(format!("kv.{}.partial", std::process::id()));
        let saved = ctx.state_seq_save_file(&partial, 0, tokens).is_ok()
            && std::fs::rename(&partial, &path).is_ok();
        if !saved {
            let _ = std::fs::remove_file(&partial);
            return;
        }
        self.prune();
    }

    /// Keeps the [`KEEP`] most recently used files.
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "kv"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if files.len() <= KEEP {
            return;
        }
        files.sort();
        for (_, path) in &files[..files.len() - KEEP] {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_name_depends_on_the_model_settings_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.gguf");
        std::fs::write(&model, b"GGUF").unwrap();
        let a = PrefixStore::new(dir.path().join("kv"), &model, "ctx=4096");
        let b = PrefixStore::new(dir.path().join("kv"), &model, "ctx=8192");
        let tokens = [LlamaToken(1), LlamaToken(2)];
        assert_eq!(a.path(&tokens), a.path(&tokens));
        assert_ne!(a.path(&tokens), b.path(&tokens));
        assert_ne!(a.path(&tokens), a.path(&[LlamaToken(1), LlamaToken(3)]));
        assert!(a.path(&tokens).to_string_lossy().ends_with("-2.kv"));
        // The same model file changed in place is another model.
        std::fs::write(&model, b"GGUF v2").unwrap();
        let c = PrefixStore::new(dir.path().join("kv"), &model, "ctx=4096");
        assert_ne!(a.path(&tokens), c.path(&tokens));
    }

    #[test]
    fn only_the_most_recently_used_files_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = PrefixStore::new(dir.path().to_path_buf(), Path::new("m"), "");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for n in 0..KEEP + 2 {
            let path = dir.path().join(format!("{n:02}.kv"));
            std::fs::write(&path, b"x").unwrap();
            let file = std::fs::File::options().append(true).open(&path).unwrap();
            file.set_modified(old + std::time::Duration::from_secs(n as u64))
                .unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"kept").unwrap();
        store.prune();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), KEEP + 1);
        assert!(!left.contains(&"00.kv".to_string()));
        assert!(!left.contains(&"01.kv".to_string()));
        assert!(left.contains(&"notes.txt".to_string()));
    }
}
