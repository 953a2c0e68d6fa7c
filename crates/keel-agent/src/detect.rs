//! Finding the project's test command from the files at its root.

use std::path::Path;

/// The test command a developer would run in this project, if it is recognisable.
pub fn detect_test_command(root: &Path) -> Option<String> {
    if root.join("Cargo.toml").is_file() {
        return Some("cargo test".into());
    }
    if root.join("go.mod").is_file() {
        return Some("go test ./...".into());
    }
    if let Ok(text) = std::fs::read_to_string(root.join("package.json"))
        && let Ok(package) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(test) = package.pointer("/scripts/test").and_then(|t| t.as_str())
        && !test.contains("no test specified")
    {
        return Some("npm test".into());
    }
    if is_python_project(root) {
        let python = if on_path("python") {
            "python"
        } else {
            "python3"
        };
        return Some(format!("{python} -m pytest"));
    }
    None
}

fn is_python_project(root: &Path) -> bool {
    [
        "pyproject.toml",
        "pytest.ini",
        "setup.py",
        "setup.cfg",
        "tox.ini",
    ]
    .iter()
    .any(|f| root.join(f).is_file())
        || has_python_files(&root.join("tests"))
        || has_python_tests(root)
}

/// pytest's own test file names (`test_*.py`, `*_test.py`) at the root: an Exercism
/// exercise has `two_fer_test.py` beside `two_fer.py` and nothing else.
fn has_python_tests(root: &Path) -> bool {
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .any(|name| {
            name.strip_suffix(".py")
                .is_some_and(|stem| stem.starts_with("test_") || stem.ends_with("_test"))
        })
}

fn has_python_files(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().extension().is_some_and(|x| x == "py"))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(files: &[(&str, &str)]) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        detect_test_command(dir.path())
    }

    #[test]
    fn recognises_common_projects() {
        assert_eq!(detect(&[("Cargo.toml", "")]).as_deref(), Some("cargo test"));
        assert_eq!(detect(&[("go.mod", "")]).as_deref(), Some("go test ./..."));
        assert_eq!(
            detect(&[("package.json", r#"{"scripts": {"test": "vitest"}}"#)]).as_deref(),
            Some("npm test")
        );
        assert!(
            detect(&[("pyproject.toml", "")])
                .unwrap()
                .ends_with(" -m pytest")
        );
        assert!(
            detect(&[("tests/test_x.py", "")])
                .unwrap()
                .ends_with(" -m pytest")
        );
        // An Exercism exercise: the test file beside the solution, nothing else.
        for layout in [
            [("two_fer.py", ""), ("two_fer_test.py", "")],
            [("calc.py", ""), ("test_calc.py", "")],
        ] {
            assert!(
                detect(&layout).unwrap().ends_with(" -m pytest"),
                "{layout:?}"
            );
        }
        assert_eq!(detect(&[("main.py", ""), ("testing.py", "")]), None);
    }

    #[test]
    fn ignores_what_is_not_a_test_setup() {
        assert_eq!(detect(&[]), None);
        assert_eq!(detect(&[("README.md", "")]), None);
        assert_eq!(
            detect(&[(
                "package.json",
                r#"{"scripts": {"test": "echo \"Error: no test specified\" && exit 1"}}"#
            )]),
            None
        );
        assert_eq!(detect(&[("package.json", "{}")]), None);
    }
}
