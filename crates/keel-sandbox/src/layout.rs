//! The facts about the host the bubblewrap arguments depend on, gathered once so that
//! [`crate::bwrap_args`] stays a pure function.

use std::path::PathBuf;

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
        let path = std::env::var_os("PATH").unwrap_or_default();
        let entries: Vec<PathBuf> = std::env::split_paths(&path).collect();
        let toolchains = toolchains(&masked, &entries)
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

/// The directories to re-expose for the `PATH` entries that lie in a masked place: the
/// first hidden directory of the path below the masked place, whole (`~/.pyenv`,
/// `~/.cargo` and its companion `~/.rustup`), except the shared ones (`~/.local`), of
/// which only the entry itself; an entry without a hidden directory is exposed itself.
fn toolchains(masked: &[PathBuf], path: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut add = |p: PathBuf| {
        if !out.iter().any(|o| p.starts_with(o)) {
            out.retain(|o| !o.starts_with(&p));
            out.push(p);
        }
    };
    for entry in path.iter().filter(|e| e.is_absolute()) {
        let Some(base) = masked.iter().find(|m| entry.starts_with(m)) else {
            continue;
        };
        let mut dir = base.clone();
        let mut dot = None;
        for component in entry.strip_prefix(base).unwrap_or(entry).components() {
            dir.push(component);
            let name = component.as_os_str().to_string_lossy();
            if name.starts_with('.') {
                dot = Some((dir.clone(), name.to_string()));
                break;
            }
        }
        match dot {
            Some((_, name)) if SHARED_DOTDIRS.contains(&name.as_str()) => add(entry.clone()),
            Some((dir, name)) => {
                for (tool, companions) in COMPANIONS {
                    if let Some(parent) = dir.parent().filter(|_| name == *tool) {
                        for companion in *companions {
                            add(parent.join(companion));
                        }
                    }
                }
                add(dir);
            }
            None => add(entry.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolchains_under_home_are_exposed_whole_others_by_entry() {
        let masked = vec![
            PathBuf::from("/root"),
            PathBuf::from("/tmp"),
            PathBuf::from("/home"),
        ];
        let path: Vec<PathBuf> = [
            "/root/.pyenv/shims",
            "/root/.pyenv/bin",
            "/root/.cargo/bin",
            "/root/.local/bin",
            "/usr/bin",
            "/tmp/venv/bin",
            "relative/bin",
            "/root/bin",
            "/home/ann/.nvm/versions/node/v22/bin",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let got = toolchains(&masked, &path);
        let got: Vec<&str> = got.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            got,
            [
                "/root/.pyenv",
                "/root/.rustup",
                "/root/.cargo",
                "/root/.local/bin",
                "/tmp/venv/bin",
                "/root/bin",
                "/home/ann/.nvm"
            ]
        );
    }
}
