//! Trust in a project's own configuration. A repository brings its `.keel/config.toml`
//! with it, so until the user trusts that directory the configuration may only set
//! harmless keys: anything that starts a process, names a network address, reads an
//! environment variable, widens file access, loosens the sandbox or switches
//! verification off is ignored, with one warning naming it. Trust is recorded per
//! canonical directory together with the hash of the configuration it was given for:
//! a changed configuration is untrusted again.

use std::io::{BufRead, IsTerminal, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cli::TrustArgs;
use crate::config::keel_home;

/// The project configuration files whose content trust is given for.
pub const PROJECT_CONFIG: &str = ".keel/config.toml";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// Canonical directory.
    pub path: String,
    /// sha256 of the project configuration it was trusted with ("" when it had none).
    pub config_sha256: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TrustFile {
    #[serde(default)]
    trusted: Vec<Entry>,
}

/// The record of trusted directories: `$KEEL_HOME/trust.toml`.
pub struct TrustStore {
    path: PathBuf,
}

impl TrustStore {
    pub fn open() -> Result<Self> {
        let home =
            keel_home().context("cannot find keel's data directory: set KEEL_HOME (or HOME)")?;
        Ok(Self {
            path: home.join("trust.toml"),
        })
    }

    fn read(&self) -> Result<TrustFile> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("invalid trust record {}", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrustFile::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    fn write(&self, file: &TrustFile) -> Result<()> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let text = toml::to_string(file).context("cannot encode the trust record")?;
        let temporary = self.path.with_extension("toml.tmp");
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Whether `dir` is trusted with its configuration as it is now.
    pub fn is_trusted(&self, dir: &Path) -> bool {
        let (Ok(file), Ok(canonical)) = (self.read(), dir.canonicalize()) else {
            return false;
        };
        let hash = config_hash(&canonical);
        let path = canonical.display().to_string();
        file.trusted
            .iter()
            .any(|e| e.path == path && e.config_sha256 == hash)
    }

    /// Trusts `dir` with its configuration as it is now.
    pub fn trust(&self, dir: &Path) -> Result<Entry> {
        let canonical = dir
            .canonicalize()
            .with_context(|| format!("cannot open {}", dir.display()))?;
        let entry = Entry {
            path: canonical.display().to_string(),
            config_sha256: config_hash(&canonical),
        };
        let mut file = self.read()?;
        file.trusted.retain(|e| e.path != entry.path);
        file.trusted.push(entry.clone());
        self.write(&file)?;
        Ok(entry)
    }

    /// Forgets `dir`; whether it was trusted.
    pub fn revoke(&self, dir: &Path) -> Result<bool> {
        let path = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .display()
            .to_string();
        let mut file = self.read()?;
        let before = file.trusted.len();
        file.trusted.retain(|e| e.path != path);
        let removed = file.trusted.len() != before;
        if removed {
            self.write(&file)?;
        }
        Ok(removed)
    }

    pub fn list(&self) -> Result<Vec<Entry>> {
        Ok(self.read()?.trusted)
    }
}

/// sha256 of the directory's project configuration and the MCP JSON files it names
/// ("" when it has none).
pub fn config_hash(dir: &Path) -> String {
    let config = dir.join(PROJECT_CONFIG);
    let Ok(text) = std::fs::read(&config) else {
        return String::new();
    };
    let mut hasher = Sha256::new();
    hasher.update(&text);
    // `[mcp] files = [...]`: their content is configuration too.
    let files: Vec<PathBuf> = std::str::from_utf8(&text)
        .ok()
        .and_then(|t| toml::from_str::<toml::Table>(t).ok())
        .and_then(|t| t.get("mcp")?.get("files")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(PathBuf::from))
        .collect();
    for file in files {
        hasher.update(b"\0");
        hasher.update(std::fs::read(dir.join(".keel").join(file)).unwrap_or_default());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How an untrusted configuration with risky keys is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Ask on the terminal when there is one (`keel run`).
    Terminal,
    /// Never ask: the keys are ignored (`keel serve`, `keel mcp`, `keel doctor`, …).
    Never,
}

/// Asks on the terminal whether to trust `dir`, whose configuration sets `keys`.
/// `false` without a terminal.
pub fn ask(dir: &Path, keys: &[&str]) -> bool {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return false;
    }
    eprint!(
        "{} sets {} — settings that can run programs, reach the network or loosen keel's guards.\nTrust this directory's configuration? [y/N] ",
        dir.join(PROJECT_CONFIG).display(),
        keys.join(", ")
    );
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes" | "Yes")
}

/// `keel trust [DIR] | --list | --revoke DIR`.
pub fn run(args: TrustArgs) -> Result<u8> {
    let store = TrustStore::open()?;
    if args.list {
        let entries = store.list()?;
        if entries.is_empty() {
            println!("no trusted directories");
        }
        for entry in entries {
            let state = match Path::new(&entry.path).canonicalize() {
                Ok(dir) if config_hash(&dir) == entry.config_sha256 => "trusted",
                Ok(_) => "configuration changed since: untrusted",
                Err(_) => "missing",
            };
            println!("{}\t{state}", entry.path);
        }
        return Ok(0);
    }
    if let Some(dir) = args.revoke {
        return Ok(if store.revoke(&dir)? {
            println!("no longer trusted: {}", dir.display());
            0
        } else {
            eprintln!("keel: {} was not trusted", dir.display());
            1
        });
    }
    let dir = args.dir.unwrap_or_else(|| PathBuf::from("."));
    let entry = store.trust(&dir)?;
    if entry.config_sha256.is_empty() {
        println!(
            "trusted: {} (it has no {PROJECT_CONFIG} yet; one added later is asked about again)",
            entry.path
        );
    } else {
        println!(
            "trusted: {} with its {PROJECT_CONFIG} as it is now",
            entry.path
        );
    }
    Ok(0)
}
