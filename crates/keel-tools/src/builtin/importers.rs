//! What other Python files of the workspace import by name from a module, so that a
//! `write` or `edit` that drops one of those names is refused before the tests find it.
//!
//! A small model rewriting a module often loses a function the rest of the project
//! imports: it indents `reserve` into the class above it, or writes `tax.py` with the one
//! function it fixed and without `gross`. The next test run ends in `ImportError: cannot
//! import name 'reserve'` at collection, every test of the file fails, and the model
//! reads that as its fix being wrong (find-the-code's `overselling`, Qwen2.5-Coder 1.5B).
//!
//! Only `from MODULE import NAME` statements are read (a regex over each file, not a
//! parse): `import pkg.mod` with `mod.name` later cannot be told from a local variable.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

use crate::workspace::walker;

/// Python files read at most, and the size of each: a bound on the cost of a write in a
/// big repository.
const MAX_FILES: usize = 5_000;
const MAX_BYTES: u64 = 512 * 1024;

/// `from MODULE import NAMES` with NAMES up to the end of the line, or in parentheses
/// over several lines.
static FROM_IMPORT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?m)^[ \t]*from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]*)").ok()
});

/// One name a file imports from the module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Importer {
    /// The importing file, relative to the workspace root.
    pub file: String,
    pub name: String,
}

/// The dotted module a file under `root` is (`shop/inventory/stock.py` →
/// `shop.inventory.stock`, `pkg/__init__.py` → `pkg`).
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(root).ok()?.with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "__init__") {
        parts.pop();
    }
    (!parts.is_empty()).then(|| parts.join("."))
}

/// The absolute module a `from` statement in `importer` (a dotted module) names.
fn resolve(importer: &str, is_package: bool, from: &str) -> Option<String> {
    let dots = from.chars().take_while(|&c| c == '.').count();
    let rest = &from[dots..];
    if dots == 0 {
        return Some(rest.to_string());
    }
    let mut base: Vec<&str> = importer.split('.').collect();
    // `.x` in `a/b/m.py` is `a.b.x`; in `a/b/__init__.py` (the module `a.b`) also `a.b.x`.
    let up = if is_package { dots - 1 } else { dots };
    for _ in 0..up {
        base.pop()?;
    }
    if !rest.is_empty() {
        base.push(rest);
    }
    Some(base.join("."))
}

/// Whether a `from` target names the module `module` (absolute, or its tail: a `src/`
/// layout imports `src/pkg/mod.py` as `pkg.mod`).
fn names_module(target: &str, module: &str) -> bool {
    !target.is_empty()
        && (target == module
            || module
                .strip_suffix(target)
                .is_some_and(|head| head.ends_with('.')))
}

/// The names of an import list: `a, b as c` → `a`, `b`; `*` is no name.
fn imported(list: &str) -> impl Iterator<Item = &str> {
    list.trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .filter_map(|item| item.split_whitespace().next())
        .filter(|name| *name != "*" && name.chars().all(|c| c.is_alphanumeric() || c == '_'))
}

/// Every name another Python file under `root` imports from the module at `target`.
pub(crate) fn importers(root: &Path, target: &Path) -> Vec<Importer> {
    let Some(regex) = FROM_IMPORT.as_ref() else {
        return Vec::new();
    };
    let Some(module) = module_of(root, target) else {
        return Vec::new();
    };
    let mut found = BTreeSet::new();
    let files = walker(root)
        .build()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .filter(|e| e.path().extension().is_some_and(|x| x == "py"))
        .filter(|e| e.path() != target)
        .take(MAX_FILES);
    for entry in files {
        let path = entry.path();
        if entry.metadata().map_or(true, |m| m.len() > MAX_BYTES) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        if !text.contains("import") {
            continue;
        }
        let Some(own) = module_of(root, path) else {
            continue;
        };
        let is_package = path.file_stem().is_some_and(|s| s == "__init__");
        for capture in regex.captures_iter(&text) {
            let (Some(from), Some(list)) = (capture.get(1), capture.get(2)) else {
                continue;
            };
            let Some(absolute) = resolve(&own, is_package, from.as_str()) else {
                continue;
            };
            if !names_module(&absolute, &module) {
                continue;
            }
            let file = path
                .strip_prefix(root)
                .unwrap_or(path)
                .display()
                .to_string();
            for name in imported(list.as_str()) {
                found.insert(Importer {
                    file: file.clone(),
                    name: name.to_string(),
                });
            }
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_and_relative_imports_resolve() {
        let root = Path::new("/w");
        assert_eq!(
            module_of(root, Path::new("/w/shop/inventory/stock.py")).as_deref(),
            Some("shop.inventory.stock")
        );
        assert_eq!(
            module_of(root, Path::new("/w/shop/__init__.py")).as_deref(),
            Some("shop")
        );
        assert_eq!(
            resolve("shop.inventory.audit", false, ".stock").as_deref(),
            Some("shop.inventory.stock")
        );
        assert_eq!(
            resolve("shop.inventory.audit", false, "..billing.tax").as_deref(),
            Some("shop.billing.tax")
        );
        assert_eq!(
            resolve("shop.inventory", true, ".stock").as_deref(),
            Some("shop.inventory.stock")
        );
        assert_eq!(resolve("m", false, "...x"), None);
        assert!(names_module("stock", "shop.inventory.stock"));
        assert!(names_module("inventory.stock", "src.inventory.stock"));
        assert!(!names_module("tock", "shop.inventory.stock"));
        let names: Vec<&str> = imported("(\n    OutOfStock,\n    reserve as take,  \n)").collect();
        assert_eq!(names, ["OutOfStock", "reserve"]);
        assert_eq!(imported("*").count(), 0);
    }

    #[test]
    fn the_files_that_import_from_a_module_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("shop/inventory/stock.py", "def reserve(): pass\n");
        write(
            "tests/test_stock.py",
            "from shop.inventory.stock import OutOfStock, reserve  # the API\n",
        );
        write(
            "shop/inventory/audit.py",
            "from .stock import (\n    available,\n)\nfrom .other import reserve\n",
        );
        write(
            "shop/orders/cart.py",
            "import shop.inventory.stock as stock\n",
        );
        write("notes.txt", "from shop.inventory.stock import secret\n");
        let found = importers(root, &root.join("shop/inventory/stock.py"));
        let pairs: Vec<(&str, &str)> = found
            .iter()
            .map(|i| (i.file.as_str(), i.name.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("shop/inventory/audit.py", "available"),
                ("tests/test_stock.py", "OutOfStock"),
                ("tests/test_stock.py", "reserve"),
            ]
        );
    }
}
