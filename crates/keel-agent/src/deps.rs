//! The dependency guard: a package the agent adds — to a manifest (`requirements*.txt`,
//! `pyproject.toml`, `package.json`, `Cargo.toml`, `go.mod`) or with an install command
//! (`pip install`, `npm install`, `cargo add`, `go get`, …) — is checked against what the
//! project already uses, what is installed, and a list of popular names shipped with
//! keel. A name one edit away from a popular one (a typosquat, or a hallucinated near
//! miss) is refused; a name keel knows nothing about is asked about.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use serde_json::Value;

use crate::permissions::command_words;

/// Where a package comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ecosystem {
    PyPi,
    Npm,
    Crates,
    Go,
}

impl Ecosystem {
    fn name(self) -> &'static str {
        match self {
            Ecosystem::PyPi => "PyPI",
            Ecosystem::Npm => "npm",
            Ecosystem::Crates => "crates.io",
            Ecosystem::Go => "Go",
        }
    }

    fn popular(self) -> &'static BTreeSet<String> {
        static LISTS: OnceLock<[BTreeSet<String>; 4]> = OnceLock::new();
        let lists = LISTS.get_or_init(|| {
            let read = |text: &str, eco: Ecosystem| {
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| normalise(eco, l))
                    .collect()
            };
            [
                read(include_str!("../data/popular-pypi.txt"), Ecosystem::PyPi),
                read(include_str!("../data/popular-npm.txt"), Ecosystem::Npm),
                read(
                    include_str!("../data/popular-crates.txt"),
                    Ecosystem::Crates,
                ),
                read(include_str!("../data/popular-go.txt"), Ecosystem::Go),
            ]
        });
        &lists[self as usize]
    }
}

/// The form names are compared in: PyPI and crates.io treat `-`, `_` (and PyPI `.`)
/// alike and ignore case.
fn normalise(eco: Ecosystem, name: &str) -> String {
    match eco {
        Ecosystem::PyPi => name.to_lowercase().replace(['_', '.'], "-"),
        Ecosystem::Crates => name.to_lowercase().replace('_', "-"),
        Ecosystem::Npm | Ecosystem::Go => name.to_lowercase(),
    }
}

/// A package added by a call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Added {
    pub ecosystem: Ecosystem,
    pub name: String,
}

/// What the guard says about one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Judgement {
    Known,
    /// One edit away from this popular name.
    LooksLike(String),
    Unknown,
}

/// The verdict on a call's new packages: refusals (typos) and questions (unknown).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Guard {
    pub refuse: Vec<String>,
    pub ask: Vec<String>,
}

/// Checks the packages a call adds. `root` is the workspace.
pub(crate) fn check(root: &Path, tool: &str, arguments: &Value) -> Guard {
    let added = added_by(root, tool, arguments);
    let mut guard = Guard::default();
    if added.is_empty() {
        return guard;
    }
    let project = project_packages(root);
    for package in added {
        match judge(root, &project, &package) {
            Judgement::Known => {}
            Judgement::LooksLike(popular) => guard.refuse.push(format!(
                "`{}` is one letter away from the popular {} package `{popular}` — a likely typo or a typosquat; if `{popular}` is meant, use that name",
                package.name,
                package.ecosystem.name()
            )),
            Judgement::Unknown => guard.ask.push(format!(
                "`{}` is not a {} package keel knows (not in the project, not installed, not among the popular ones)",
                package.name,
                package.ecosystem.name()
            )),
        }
    }
    guard
}

fn judge(root: &Path, project: &BTreeSet<(Ecosystem, String)>, package: &Added) -> Judgement {
    let eco = package.ecosystem;
    let name = normalise(eco, &package.name);
    let popular = eco.popular();
    if popular.contains(&name)
        || project.contains(&(eco, name.clone()))
        || installed(root, eco).contains(&name)
    {
        return Judgement::Known;
    }
    if let Some(near) = popular
        .iter()
        .find(|p| name.len() >= 4 && strsim::damerau_levenshtein(p, &name) == 1)
    {
        return Judgement::LooksLike(near.clone());
    }
    Judgement::Unknown
}

/// The packages the project's manifests already name.
fn project_packages(root: &Path) -> BTreeSet<(Ecosystem, String)> {
    let mut found = BTreeSet::new();
    for (file, eco) in [
        ("requirements.txt", Ecosystem::PyPi),
        ("requirements-dev.txt", Ecosystem::PyPi),
        ("pyproject.toml", Ecosystem::PyPi),
        ("package.json", Ecosystem::Npm),
        ("Cargo.toml", Ecosystem::Crates),
        ("go.mod", Ecosystem::Go),
    ] {
        if let Ok(text) = std::fs::read_to_string(root.join(file)) {
            for name in manifest_names(file, &text) {
                found.insert((eco, normalise(eco, &name)));
            }
        }
    }
    found
}

/// Installed packages: Python distributions in the site-packages of `python3`, the
/// workspace's `node_modules`, the crates in cargo's registry.
fn installed(root: &Path, eco: Ecosystem) -> BTreeSet<String> {
    static PYTHON: OnceLock<BTreeSet<String>> = OnceLock::new();
    static CRATES: OnceLock<BTreeSet<String>> = OnceLock::new();
    match eco {
        Ecosystem::PyPi => PYTHON.get_or_init(python_distributions).clone(),
        Ecosystem::Crates => CRATES.get_or_init(registry_crates).clone(),
        Ecosystem::Npm => std::fs::read_dir(root.join("node_modules"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_lowercase())
            .collect(),
        Ecosystem::Go => BTreeSet::new(),
    }
}

fn python_distributions() -> BTreeSet<String> {
    let Ok(output) = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys; print('\\n'.join(p for p in sys.path if p))",
        ])
        .output()
    else {
        return BTreeSet::new();
    };
    let mut names = BTreeSet::new();
    for dir in String::from_utf8_lossy(&output.stdout).lines() {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let file = entry.file_name().to_string_lossy().to_string();
            if let Some(stem) = file
                .strip_suffix(".dist-info")
                .or_else(|| file.strip_suffix(".egg-info"))
            {
                let name = stem.split('-').next().unwrap_or(stem);
                names.insert(normalise(Ecosystem::PyPi, name));
            }
        }
    }
    names
}

fn registry_crates() -> BTreeSet<String> {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry/src")) else {
        return BTreeSet::new();
    };
    let mut names = BTreeSet::new();
    for index in std::fs::read_dir(src).into_iter().flatten().flatten() {
        for entry in std::fs::read_dir(index.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = entry.file_name().to_string_lossy().to_string();
            // `name-1.2.3`: the name is everything before the last `-` that starts a
            // version.
            if let Some((name, _)) = dir.rsplit_once('-') {
                names.insert(normalise(Ecosystem::Crates, name));
            }
        }
    }
    names
}

/// The packages a call adds: an install command's names, or the names a manifest gains.
pub(crate) fn added_by(root: &Path, tool: &str, arguments: &Value) -> Vec<Added> {
    let text = |key: &str| arguments.get(key).and_then(Value::as_str);
    match tool {
        "bash" => text("command").map(install_names).unwrap_or_default(),
        "write" | "edit" => {
            let Some(path) = text("path") else {
                return Vec::new();
            };
            let file = Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let Some(eco) = manifest_ecosystem(&file) else {
                return Vec::new();
            };
            let current = std::fs::read_to_string(root.join(path)).unwrap_or_default();
            let updated = if tool == "write" {
                text("content").unwrap_or("").to_string()
            } else {
                match (text("old_string"), text("new_string")) {
                    (Some(old), Some(new)) if current.contains(old) => {
                        current.replacen(old, new, 1)
                    }
                    _ => return Vec::new(),
                }
            };
            let before: BTreeSet<String> = manifest_names(&file, &current)
                .into_iter()
                .map(|n| normalise(eco, &n))
                .collect();
            manifest_names(&file, &updated)
                .into_iter()
                .filter(|n| !before.contains(&normalise(eco, n)))
                .map(|name| Added {
                    ecosystem: eco,
                    name,
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

fn manifest_ecosystem(file: &str) -> Option<Ecosystem> {
    if file.starts_with("requirements") && file.ends_with(".txt") || file == "pyproject.toml" {
        Some(Ecosystem::PyPi)
    } else if file == "package.json" {
        Some(Ecosystem::Npm)
    } else if file == "Cargo.toml" {
        Some(Ecosystem::Crates)
    } else if file == "go.mod" {
        Some(Ecosystem::Go)
    } else {
        None
    }
}

/// A requirement's name: `requests>=2 ; python_version>"3"` → `requests`.
fn requirement_name(spec: &str) -> Option<String> {
    let name: String = spec
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The dependency names a manifest's text lists.
pub(crate) fn manifest_names(file: &str, text: &str) -> Vec<String> {
    match manifest_ecosystem(file) {
        Some(Ecosystem::PyPi) if file.ends_with(".txt") => text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty() && !l.starts_with('-'))
            .filter_map(requirement_name)
            .collect(),
        Some(Ecosystem::PyPi) => {
            let Ok(doc) = text.parse::<toml::Table>() else {
                return Vec::new();
            };
            let mut names = Vec::new();
            let project = doc.get("project");
            let lists = project
                .and_then(|p| p.get("dependencies"))
                .into_iter()
                .chain(
                    project
                        .and_then(|p| p.get("optional-dependencies"))
                        .and_then(|o| o.as_table())
                        .into_iter()
                        .flat_map(|t| t.values()),
                );
            for list in lists {
                for item in list.as_array().into_iter().flatten() {
                    if let Some(name) = item.as_str().and_then(requirement_name) {
                        names.push(name);
                    }
                }
            }
            // Poetry.
            if let Some(deps) = doc
                .get("tool")
                .and_then(|t| t.get("poetry"))
                .and_then(|p| p.get("dependencies"))
                .and_then(|d| d.as_table())
            {
                names.extend(deps.keys().filter(|k| *k != "python").cloned());
            }
            names
        }
        Some(Ecosystem::Npm) => {
            let Ok(doc) = serde_json::from_str::<Value>(text) else {
                return Vec::new();
            };
            [
                "dependencies",
                "devDependencies",
                "peerDependencies",
                "optionalDependencies",
            ]
            .iter()
            .filter_map(|k| doc.get(k).and_then(Value::as_object))
            .flat_map(|o| o.keys().cloned())
            .collect()
        }
        Some(Ecosystem::Crates) => {
            let Ok(doc) = text.parse::<toml::Table>() else {
                return Vec::new();
            };
            let mut tables: Vec<&toml::Table> = Vec::new();
            for key in ["dependencies", "dev-dependencies", "build-dependencies"] {
                tables.extend(doc.get(key).and_then(|t| t.as_table()));
            }
            tables.extend(
                doc.get("workspace")
                    .and_then(|w| w.get("dependencies"))
                    .and_then(|t| t.as_table()),
            );
            for target in doc
                .get("target")
                .and_then(|t| t.as_table())
                .into_iter()
                .flat_map(|t| t.values())
            {
                for key in ["dependencies", "dev-dependencies"] {
                    tables.extend(target.get(key).and_then(|t| t.as_table()));
                }
            }
            tables
                .into_iter()
                .flat_map(|t| {
                    t.iter().map(|(key, value)| {
                        // `alias = { package = "real" }`.
                        value
                            .get("package")
                            .and_then(|p| p.as_str())
                            .unwrap_or(key)
                            .to_string()
                    })
                })
                .collect()
        }
        Some(Ecosystem::Go) => {
            let mut names = Vec::new();
            let mut in_block = false;
            for line in text.lines().map(str::trim) {
                if line.starts_with("require (") {
                    in_block = true;
                } else if in_block && line == ")" {
                    in_block = false;
                } else if let Some(rest) = line.strip_prefix("require ") {
                    names.extend(rest.split_whitespace().next().map(str::to_string));
                } else if in_block && !line.is_empty() && !line.starts_with("//") {
                    names.extend(line.split_whitespace().next().map(str::to_string));
                }
            }
            names
        }
        None => Vec::new(),
    }
}

/// The packages an install command names (flags, versions and local paths left out).
pub(crate) fn install_names(command: &str) -> Vec<Added> {
    let mut added = Vec::new();
    for words in command_words(command) {
        let (eco, skip) = match words.as_slice() {
            ["pip" | "pip3", "install", ..] => (Ecosystem::PyPi, 2),
            ["python" | "python3", "-m", "pip", "install", ..] => (Ecosystem::PyPi, 4),
            ["uv", "pip", "install", ..] => (Ecosystem::PyPi, 3),
            ["uv" | "poetry", "add", ..] => (Ecosystem::PyPi, 2),
            ["npm", "install" | "i" | "add", ..] => (Ecosystem::Npm, 2),
            ["yarn" | "pnpm", "add", ..] => (Ecosystem::Npm, 2),
            ["cargo", "add", ..] => (Ecosystem::Crates, 2),
            ["go", "get", ..] => (Ecosystem::Go, 2),
            _ => continue,
        };
        let mut rest = words[skip..].iter();
        while let Some(word) = rest.next() {
            if word.starts_with('-') {
                // Options that take a value: skip it too.
                if [
                    "-r",
                    "--requirement",
                    "-c",
                    "--constraint",
                    "-e",
                    "--editable",
                    "-i",
                    "--index-url",
                    "--target",
                    "-t",
                    "--features",
                    "-F",
                    "--rename",
                    "--registry",
                    "--path",
                    "--git",
                ]
                .contains(word)
                {
                    rest.next();
                }
                continue;
            }
            if word.contains('/') && eco != Ecosystem::Go && !word.starts_with('@')
                || word.starts_with('.')
            {
                continue; // a path or URL, not a registry name
            }
            let name = match eco {
                Ecosystem::Npm => {
                    // `pkg@1.2`, `@scope/pkg@1.2`.
                    let (scoped, body) =
                        word.strip_prefix('@').map_or((false, *word), |b| (true, b));
                    let body = body.split('@').next().unwrap_or(body);
                    if scoped {
                        format!("@{body}")
                    } else {
                        body.to_string()
                    }
                }
                Ecosystem::Go => word.split('@').next().unwrap_or(word).to_string(),
                Ecosystem::Crates => word.split('@').next().unwrap_or(word).to_string(),
                Ecosystem::PyPi => match requirement_name(word.trim_matches(['"', '\''])) {
                    Some(name) => name,
                    None => continue,
                },
            };
            if !name.is_empty() {
                added.push(Added {
                    ecosystem: eco,
                    name,
                });
            }
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(added: Vec<Added>) -> Vec<String> {
        added.into_iter().map(|a| a.name).collect()
    }

    #[test]
    fn install_commands_are_read() {
        assert_eq!(
            names(install_names(
                "pip install -U requests==2.31 'flask>=3' -r req.txt"
            )),
            ["requests", "flask"]
        );
        assert_eq!(
            names(install_names(
                "cd x && npm install --save-dev @types/node@20 lodash"
            )),
            ["@types/node", "lodash"]
        );
        assert_eq!(
            names(install_names("cargo add serde --features derive")),
            ["serde"]
        );
        assert_eq!(
            names(install_names("go get github.com/google/uuid@v1.6.0")),
            ["github.com/google/uuid"]
        );
        assert_eq!(
            names(install_names("python3 -m pip install ./local-pkg")),
            Vec::<String>::new()
        );
        assert!(install_names("pytest -q && pip list").is_empty());
    }

    #[test]
    fn manifests_are_read() {
        assert_eq!(
            manifest_names(
                "requirements.txt",
                "requests>=2\n# c\n-e .\nnumpy ; python_version>'3'\n"
            ),
            ["requests", "numpy"]
        );
        assert_eq!(
            manifest_names(
                "pyproject.toml",
                "[project]\nname='x'\ndependencies = [\"httpx>=0.27\", \"rich\"]\n"
            ),
            ["httpx", "rich"]
        );
        assert_eq!(
            manifest_names(
                "package.json",
                r#"{"name":"x","dependencies":{"react":"^18"},"devDependencies":{"vite":"5"}}"#
            ),
            ["react", "vite"]
        );
        assert_eq!(
            manifest_names(
                "Cargo.toml",
                "[package]\nname='x'\n[dependencies]\nserde = \"1\"\nmyrand = { package = \"rand\", version = \"0.8\" }\n"
            ),
            ["rand", "serde"]
        );
        assert_eq!(
            manifest_names(
                "go.mod",
                "module x\n\nrequire (\n\tgithub.com/lib/pq v1.10.9\n)\nrequire golang.org/x/text v0.14.0\n"
            ),
            ["github.com/lib/pq", "golang.org/x/text"]
        );
    }

    #[test]
    fn typos_are_refused_unknown_names_asked_known_ones_pass() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("requirements.txt"), "internal-tool-xyz\n").unwrap();
        let bash = |c: &str| check(dir.path(), "bash", &json!({"command": c}));
        assert_eq!(bash("pip install requests"), Guard::default());
        let typo = bash("pip install reqeusts");
        assert_eq!(typo.refuse.len(), 1, "{typo:?}");
        assert!(typo.refuse[0].contains("`requests`"), "{typo:?}");
        let unknown = bash("pip install zzq-made-up-package");
        assert_eq!(
            (unknown.refuse.len(), unknown.ask.len()),
            (0, 1),
            "{unknown:?}"
        );
        // What the project already uses is known.
        assert_eq!(bash("pip install internal_tool_xyz"), Guard::default());
        // A manifest edit: only the names it adds are checked.
        let edit = check(
            dir.path(),
            "edit",
            &json!({"path": "requirements.txt", "old_string": "internal-tool-xyz\n", "new_string": "internal-tool-xyz\nnumpyy\n"}),
        );
        assert!(edit.refuse[0].contains("`numpy`"), "{edit:?}");
        let npm = check(
            dir.path(),
            "write",
            &json!({"path": "package.json", "content": r#"{"dependencies": {"expresss": "4", "react": "18"}}"#}),
        );
        assert_eq!(npm.refuse.len(), 1, "{npm:?}");
        assert!(npm.refuse[0].contains("`express`"));
    }
}
