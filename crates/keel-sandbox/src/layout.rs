//! The facts about the host the bubblewrap arguments depend on, gathered once so that
//! [`crate::bwrap_args`] stays a pure function.

use std::path::{Path, PathBuf};

/// Places under `/` whose content is private to the user or the machine's services and
/// is hidden (an empty tmpfs) unless a rule below exposes part of it.
const MASKED: &[&str] = &[
    "/home", "/root", "/tmp", "/var/tmp", "/run", "/mnt", "/media",
];

/// Toolchains under the home directory that need a sibling to work.
const COMPANIONS: &[(&str, &[&str])] = &[(".cargo", &[".rustup"])];

/// Home subdirectories that hold more than toolchains: only the `PATH` entry itself is
/// exposed, not the whole directory.
const SHARED_DOTDIRS: &[&str] = &[".local", ".config", ".cache"];

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// Masked places that exist on this host.
    pub masked: Vec<PathBuf>,
    /// Read-only places re-exposed inside masked ones: the toolchains on `PATH`.
    pub toolchains: Vec<PathBuf>,
    /// Places hidden even inside writable roots (keel's own data and configuration).
    pub hidden: Vec<PathBuf>,
}

impl Layout {
    /// Looks at this host: which masked places exist, which `PATH` directories live
    /// under them, and keel's own `hidden` directories (those that exist).
    pub fn probe(hidden: &[PathBuf]) -> Self {
        let masked: Vec<PathBuf> = MASKED
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.is_dir() && !p.is_symlink())
            .collect();
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let path = std::env::var_os("PATH").unwrap_or_default();
        let entries: Vec<PathBuf> = std::env::split_paths(&path).collect();
        let toolchains = toolchains(&masked, home.as_deref(), &entries)
            .into_iter()
            .filter(|p| p.exists())
            .collect();
        let hidden = hidden
            .iter()
            .filter_map(|p| p.canonicalize().ok())
            .filter(|p| p.is_dir())
            .collect();
        Self {
            masked,
            toolchains,
            hidden,
        }
    }
}

/// The directories to re-expose for the `PATH` entries that lie in a masked place:
/// under the home directory the whole top-level tool directory (`~/.pyenv`,
/// `~/.cargo` and `~/.rustup`), else the entry itself.
fn toolchains(masked: &[PathBuf], home: Option<&Path>, path: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut add = |p: PathBuf| {
        if !out.iter().any(|o| p.starts_with(o)) {
            out.retain(|o| !o.starts_with(&p));
            out.push(p);
        }
    };
    for entry in path.iter().filter(|e| e.is_absolute()) {
        if !masked.iter().any(|m| entry.starts_with(m)) {
            continue;
        }
        let top = home.and_then(|h| {
            let rest = entry.strip_prefix(h).ok()?;
            let first = rest.components().next()?.as_os_str().to_str()?.to_string();
            Some((h.join(&first), first))
        });
        match top {
            Some((_, first)) if SHARED_DOTDIRS.contains(&first.as_str()) => add(entry.clone()),
            Some((dir, first)) if first.starts_with('.') => {
                for (tool, companions) in COMPANIONS {
                    if first == *tool {
                        for companion in *companions {
                            add(home.map(|h| h.join(companion)).unwrap_or_default());
                        }
                    }
                }
                add(dir);
            }
            _ => add(entry.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolchains_under_home_are_exposed_whole_others_by_entry() {
        let masked = vec![PathBuf::from("/root"), PathBuf::from("/tmp")];
        let path: Vec<PathBuf> = [
            "/root/.pyenv/shims",
            "/root/.pyenv/bin",
            "/root/.cargo/bin",
            "/root/.local/bin",
            "/usr/bin",
            "/tmp/venv/bin",
            "relative/bin",
            "/root/bin",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let got = toolchains(&masked, Some(Path::new("/root")), &path);
        let got: Vec<&str> = got.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            got,
            [
                "/root/.pyenv",
                "/root/.rustup",
                "/root/.cargo",
                "/root/.local/bin",
                "/tmp/venv/bin",
                "/root/bin"
            ]
        );
    }
}
