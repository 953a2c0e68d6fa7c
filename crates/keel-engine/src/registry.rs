//! Named models: `embedded:NAME` resolves through `models.toml` in keel's model directory
//! (`$KEEL_MODELS_DIR`, else `$XDG_DATA_HOME/keel/models`, else `~/.local/share/keel/models`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::EngineError;

/// The model keel runs when nothing else is configured; `scripts/setup.sh` installs and
/// registers it.
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-1.5b";

const REGISTRY_FILE: &str = "models.toml";

/// One registered model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub path: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RegistryFile {
    #[serde(default)]
    models: BTreeMap<String, ModelEntry>,
}

/// The registered models of one model directory.
#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
    file: RegistryFile,
}

/// keel's model directory.
pub fn models_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KEEL_MODELS_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("keel/models"))
}

impl Registry {
    /// Opens the registry of keel's model directory (empty when it does not exist yet).
    pub fn open_default() -> Result<Self, EngineError> {
        let dir = models_dir().ok_or_else(|| EngineError::Registry {
            path: PathBuf::from("~/.local/share/keel/models"),
            reason: "neither KEEL_MODELS_DIR, XDG_DATA_HOME nor HOME is set".into(),
        })?;
        Self::open(&dir)
    }

    /// Opens the registry kept in `dir`.
    pub fn open(dir: &Path) -> Result<Self, EngineError> {
        let path = dir.join(REGISTRY_FILE);
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| EngineError::Registry {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RegistryFile::default(),
            Err(e) => {
                return Err(EngineError::Registry {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Registered models, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &ModelEntry)> {
        self.file.models.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.file.models.get(name)
    }

    /// Registers (or re-points) `name` and writes the registry atomically. The path is
    /// stored absolute; the file must be a GGUF model.
    pub fn add(&mut self, name: &str, path: &Path) -> Result<(), EngineError> {
        check_name(name)?;
        check_gguf(path)?;
        let path = std::fs::canonicalize(path).map_err(|e| EngineError::ModelFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        self.file
            .models
            .insert(name.to_string(), ModelEntry { path });
        self.save()
    }

    fn save(&self) -> Result<(), EngineError> {
        let path = self.dir.join(REGISTRY_FILE);
        let err = |reason: String| EngineError::Registry {
            path: path.clone(),
            reason,
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| err(e.to_string()))?;
        let text = toml::to_string_pretty(&self.file).map_err(|e| err(e.to_string()))?;
        let tmp = self
            .dir
            .join(format!(".{REGISTRY_FILE}.{}", std::process::id()));
        std::fs::write(&tmp, text).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, &path).map_err(|e| err(e.to_string()))
    }

    /// What `embedded:SPEC` names: a registered model, else a path to a GGUF file.
    pub fn resolve(&self, spec: &str) -> Result<PathBuf, EngineError> {
        if let Some(entry) = self.get(spec) {
            return Ok(entry.path.clone());
        }
        let path = PathBuf::from(spec);
        let looks_like_path = spec.contains('/') || spec.ends_with(".gguf");
        if looks_like_path || path.exists() {
            return Ok(path);
        }
        let known: Vec<&str> = self.file.models.keys().map(String::as_str).collect();
        Err(EngineError::UnknownModel {
            name: spec.to_string(),
            known: if known.is_empty() {
                format!(
                    "no models are registered in {} (scripts/setup.sh installs the default; `keel model add NAME PATH` registers one)",
                    self.dir.display()
                )
            } else {
                format!("registered: {}", known.join(", "))
            },
        })
    }
}

/// Refuses what cannot be a GGUF model (missing, not a file, wrong magic) with the
/// reason, before llama.cpp is asked to load it.
pub fn check_gguf(path: &Path) -> Result<(), EngineError> {
    use std::io::Read;
    let bad = |reason: String| EngineError::ModelFile {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("not a file".into()));
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(|e| bad(format!("cannot read its header ({e})")))?;
    if &magic != b"GGUF" {
        return Err(bad(
            "not a GGUF model (the file does not start with `GGUF`)".into(),
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), EngineError> {
    let ok = !name.is_empty()
        && !name.contains('/')
        && !name.ends_with(".gguf")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_resolve_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let gguf = dir.path().join("m.gguf");
        std::fs::write(&gguf, b"GGUF").unwrap();
        let mut reg = Registry::open(dir.path()).unwrap();
        assert!(reg.resolve("small").is_err());
        reg.add("small", &gguf).unwrap();
        let again = Registry::open(dir.path()).unwrap();
        assert_eq!(
            again.resolve("small").unwrap(),
            std::fs::canonicalize(&gguf).unwrap()
        );
        assert_eq!(again.entries().count(), 1);
        // Paths pass through; unknown bare names list what is registered.
        assert_eq!(
            again.resolve("x/y.gguf").unwrap(),
            PathBuf::from("x/y.gguf")
        );
        let err = again.resolve("nope").unwrap_err().to_string();
        assert!(err.contains("small"), "{err}");
    }

    #[test]
    fn bad_names_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut reg = Registry::open(dir.path()).unwrap();
        assert!(matches!(
            reg.add("a/b", Path::new("/nonexistent")),
            Err(EngineError::InvalidName(_))
        ));
        let err = reg.add("ok", &dir.path().join("missing.gguf")).unwrap_err();
        assert!(err.to_string().contains("missing.gguf"), "{err}");
    }
}
