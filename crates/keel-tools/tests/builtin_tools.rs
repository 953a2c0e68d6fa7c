//! The built-in tools against real files, processes and repositories.

mod common;

use common::{gone, running};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use keel_tools::{Limits, ToolContext, ToolOutput, ToolRegistry, Workspace};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Fixture {
    dir: tempfile::TempDir,
    outside: tempfile::TempDir,
    ctx: ToolContext,
    tools: ToolRegistry,
}

impl Fixture {
    fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    fn with_limits(limits: Limits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(
            dir.path().join("src/app.py"),
            "def add(a, b):\n    return a - b\n",
        )
        .unwrap();
        std::fs::write(outside.path().join("secret.txt"), "top secret\n").unwrap();
        symlink(
            outside.path().join("secret.txt"),
            dir.path().join("file_link"),
        )
        .unwrap();
        symlink(outside.path(), dir.path().join("dir_link")).unwrap();
        symlink(outside.path().join("nothing"), dir.path().join("dangling")).unwrap();
        let ctx = ToolContext::new(Workspace::new(dir.path()).unwrap(), limits);
        Self {
            dir,
            outside,
            ctx,
            tools: ToolRegistry::builtin(),
        }
    }

    fn path(&self, relative: &str) -> std::path::PathBuf {
        self.dir.path().join(relative)
    }

    async fn call(&self, name: &str, args: Value) -> ToolOutput {
        self.tools
            .call(&self.ctx, name, args, &CancellationToken::new())
            .await
    }

    async fn ok(&self, name: &str, args: Value) -> String {
        let out = self.call(name, args.clone()).await;
        assert!(!out.is_error, "{name} {args} failed: {}", out.content);
        out.content
    }

    async fn err(&self, name: &str, args: Value) -> String {
        let out = self.call(name, args.clone()).await;
        assert!(
            out.is_error,
            "{name} {args} should fail but gave: {}",
            out.content
        );
        out.content
    }
}

#[test]
fn the_seven_tools_are_registered_in_name_order() {
    let tools = ToolRegistry::builtin();
    assert_eq!(
        tools.names(),
        ["bash", "edit", "git", "glob", "grep", "read", "write"]
    );
    let read_only: Vec<bool> = tools.specs().iter().map(|s| s.read_only).collect();
    assert_eq!(read_only, [false, false, true, true, true, true, false]);
    for spec in tools.specs() {
        assert_eq!(spec.parameters["type"], "object", "{}", spec.name);
        assert!(spec.parameters.get("$schema").is_none());
    }
    let read = tools.get("read").unwrap().spec();
    assert_eq!(read.parameters["required"], json!(["path"]));
    assert_eq!(read.parameters["properties"]["offset"]["type"], "integer");
    assert_eq!(
        keel_tools::signature(&read.parameters),
        r#"{"path": string, "offset"?: integer, "limit"?: integer}"#
    );
    let git = tools.get("git").unwrap().spec();
    assert_eq!(
        git.parameters["properties"]["command"]["enum"],
        json!(["status", "diff", "log", "show", "blame"])
    );
}

#[tokio::test]
async fn every_file_tool_refuses_paths_outside_the_workspace() {
    let f = Fixture::new();
    let secret = f.outside.path().join("secret.txt");
    let secret = secret.to_str().unwrap();
    let escapes = [
        "../escape.txt",
        "src/../../escape.txt",
        "/etc/passwd",
        secret,
        "file_link",
        "dir_link/secret.txt",
        "dangling",
    ];
    for path in escapes {
        for (tool, args) in [
            ("read", json!({"path": path})),
            ("write", json!({"path": path, "content": "pwned"})),
            (
                "edit",
                json!({"path": path, "old_string": "top", "new_string": "pwned"}),
            ),
            ("glob", json!({"pattern": "*", "path": path})),
            ("grep", json!({"pattern": "secret", "path": path})),
        ] {
            let message = f.err(tool, args).await;
            assert!(
                message.contains("outside the workspace"),
                "{tool} {path}: {message}"
            );
        }
    }
    assert_eq!(
        std::fs::read_to_string(f.outside.path().join("secret.txt")).unwrap(),
        "top secret\n"
    );
    assert!(
        !f.outside.path().join("nothing").exists(),
        "write through a dangling link created its target"
    );
    assert!(!f.dir.path().parent().unwrap().join("escape.txt").exists());
}

#[tokio::test]
async fn read_numbers_lines_and_pages() {
    let f = Fixture::new();
    let out = f.ok("read", json!({"path": "src/app.py"})).await;
    assert_eq!(out, "     1\tdef add(a, b):\n     2\t    return a - b\n");
    let lines: String = (1..=50).map(|i| format!("line {i}\n")).collect();
    std::fs::write(f.path("many.txt"), lines).unwrap();
    let out = f
        .ok(
            "read",
            json!({"path": "many.txt", "offset": 10, "limit": 3}),
        )
        .await;
    assert!(
        out.starts_with("    10\tline 10\n    11\tline 11\n    12\tline 12\n"),
        "{out}"
    );
    assert!(
        out.ends_with("[showing lines 10-12 of 50; continue with offset 13]"),
        "{out}"
    );
    let past = f
        .ok("read", json!({"path": "many.txt", "offset": 99}))
        .await;
    assert!(past.contains("only 50 lines"), "{past}");
}

#[tokio::test]
async fn read_refuses_binary_huge_and_missing_files_with_advice() {
    let f = Fixture::new();
    std::fs::write(f.path("image.png"), [0x89, b'P', b'N', b'G', 0, 0, 1, 2]).unwrap();
    let message = f.err("read", json!({"path": "image.png"})).await;
    assert!(
        message.contains("binary") && message.contains("bash"),
        "{message}"
    );

    std::fs::write(f.path("big.log"), "x\n".repeat(300_000)).unwrap();
    let message = f.err("read", json!({"path": "big.log"})).await;
    assert!(
        message.contains("offset and limit") && message.contains("grep"),
        "{message}"
    );
    let part = f
        .ok("read", json!({"path": "big.log", "offset": 5, "limit": 2}))
        .await;
    assert!(part.starts_with("     5\tx\n     6\tx\n"), "{part}");

    let message = f.err("read", json!({"path": "src/ap.py"})).await;
    assert!(
        message.contains("not found") && message.contains("src/app.py"),
        "{message}"
    );
    let message = f.err("read", json!({"path": "src"})).await;
    assert!(message.contains("directory"), "{message}");
}

#[tokio::test]
async fn write_creates_parents_and_refuses_blind_overwrites() {
    let f = Fixture::new();
    let out = f
        .ok(
            "write",
            json!({"path": "pkg/deep/new.py", "content": "x = 1\n"}),
        )
        .await;
    assert!(out.starts_with("created pkg/deep/new.py"), "{out}");
    assert_eq!(
        std::fs::read_to_string(f.path("pkg/deep/new.py")).unwrap(),
        "x = 1\n"
    );

    // A small file not read: refused, and shown, so the next write may go ahead.
    let message = f
        .err("write", json!({"path": "src/app.py", "content": "oops"}))
        .await;
    assert!(message.contains("had not been read"), "{message}");
    assert!(message.contains("     1\tdef add(a, b):"), "{message}");
    assert!(
        std::fs::read_to_string(f.path("src/app.py"))
            .unwrap()
            .contains("def add")
    );
    // A big one: refused until it is read.
    let big: String = (0..100).map(|i| format!("x{i} = {i}\n")).collect();
    std::fs::write(f.path("big.py"), &big).unwrap();
    let message = f
        .err("write", json!({"path": "big.py", "content": "x = 1\n"}))
        .await;
    assert!(
        message.contains("has not been read") && !message.contains("x99"),
        "{message}"
    );
    f.ok("read", json!({"path": "big.py"})).await;
    f.ok("write", json!({"path": "big.py", "content": "x = 1\n"}))
        .await;

    let out = f
        .ok("write", json!({"path": "src/app.py", "content": "new\n"}))
        .await;
    assert!(out.starts_with("overwrote"), "{out}");
    // The same bytes again: said plainly (a small model rewrites its failed attempt).
    let out = f
        .ok("write", json!({"path": "src/app.py", "content": "new\n"}))
        .await;
    assert_eq!(
        out,
        "src/app.py already had exactly this content: nothing changed"
    );
    // A file this session created may be rewritten.
    f.ok(
        "write",
        json!({"path": "pkg/deep/new.py", "content": "x = 2\n"}),
    )
    .await;
}

#[tokio::test]
async fn edit_replaces_one_exact_occurrence() {
    let f = Fixture::new();
    let out = f
        .ok("edit", json!({"path": "src/app.py", "old_string": "return a - b", "new_string": "return a + b"}))
        .await;
    assert!(
        out.contains("edited src/app.py") && out.contains("return a + b"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(f.path("src/app.py")).unwrap(),
        "def add(a, b):\n    return a + b\n"
    );
}

/// A small model that cannot match old_string rewrites the file instead: the failed
/// edit showed it the whole file, so the write is no blind overwrite (the find-the-code
/// eval's `customer-names` ended `stalled` on that refusal).
#[tokio::test]
async fn a_failed_edit_that_showed_the_whole_file_counts_as_reading_it() {
    let f = Fixture::new();
    std::fs::write(
        f.path("names.py"),
        "def name(first, last):\n    return f\"{last} {first}\"\n",
    )
    .unwrap();
    let message = f
        .err(
            "edit",
            json!({"path": "names.py", "old_string": "LOVELACE ada", "new_string": "Ada Lovelace"}),
        )
        .await;
    assert!(message.contains("The whole file now:"), "{message}");
    assert!(
        message.contains("     2\t    return f\"{last} {first}\""),
        "{message}"
    );
    let out = f
        .ok("write", json!({"path": "names.py", "content": "def name(first, last):\n    return f\"{first} {last}\"\n"}))
        .await;
    assert!(out.starts_with("overwrote"), "{out}");

    // A file too long to show whole is still refused until it is read.
    let long: String = (0..400).map(|i| format!("x{i} = {i}\n")).collect();
    std::fs::write(f.path("long.py"), &long).unwrap();
    let message = f
        .err(
            "edit",
            json!({"path": "long.py", "old_string": "y = 1", "new_string": "y = 2"}),
        )
        .await;
    assert!(!message.contains("The whole file now:"), "{message}");
    let message = f
        .err("write", json!({"path": "long.py", "content": "x = 1\n"}))
        .await;
    assert!(message.contains("has not been read"), "{message}");
}

/// A small model asked to fix one function rewrites the file with that function alone;
/// what the new code still uses comes back from the old file, and the answer says so
/// (find-the-code's `slugs`: `NameError: name 're' is not defined`, then the model
/// deleted `re` from the code).
#[tokio::test]
async fn a_write_that_drops_what_its_code_uses_keeps_it() {
    let f = Fixture::new();
    let old = "\"\"\"Slugs.\"\"\"\n\nimport re\n\nSEPARATOR = \"-\"\n\n\ndef slugify(title):\n    return re.sub(r\"[^a-z0-9]\", SEPARATOR, title.lower())\n";
    std::fs::write(f.path("slug.py"), old).unwrap();
    f.ok("read", json!({"path": "slug.py"})).await;
    let out = f
        .ok("write", json!({"path": "slug.py", "content": "def slugify(title):\n    return re.sub(r'[^a-z0-9]+', SEPARATOR, title.lower()).strip(SEPARATOR)\n"}))
        .await;
    assert!(
        out.contains(
            "note: keel kept `import re` from the file's previous version: the new code uses `re`"
        ),
        "{out}"
    );
    assert!(out.contains("the constant `SEPARATOR`"), "{out}");
    assert_eq!(
        std::fs::read_to_string(f.path("slug.py")).unwrap(),
        "import re\n\nSEPARATOR = \"-\"\n\ndef slugify(title):\n    return re.sub(r'[^a-z0-9]+', SEPARATOR, title.lower()).strip(SEPARATOR)\n"
    );

    // An edit that deletes an import the code still uses gets it back, and the lines it
    // shows are the edited ones.
    let out = f
        .ok(
            "edit",
            json!({"path": "slug.py", "old_string": "import re\n", "new_string": ""}),
        )
        .await;
    assert!(out.contains("note: keel kept `import re`"), "{out}");
    assert!(
        std::fs::read_to_string(f.path("slug.py"))
            .unwrap()
            .starts_with("import re\n")
    );

    // A new file using a standard module it never imports.
    let out = f
        .ok("write", json!({"path": "acronym.py", "content": "def abbreviate(words):\n    return ''.join(w[0] for w in re.findall(r\"[A-Za-z']+\", words)).upper()\n"}))
        .await;
    assert!(out.contains("keel added `import re`"), "{out}");
    assert!(
        std::fs::read_to_string(f.path("acronym.py"))
            .unwrap()
            .starts_with("import re\n\ndef abbreviate")
    );
}

/// `raise ValueError('can't …')` was refused as unparsable four times in a row, word for
/// word, and the turn ended `stalled` (the `change` exercise, 1.5B, greedy).
#[tokio::test]
async fn an_apostrophe_that_breaks_a_string_is_requoted_not_refused() {
    let f = Fixture::new();
    std::fs::write(
        f.path("change.py"),
        "def find_fewest_coins(coins, target):\n    pass\n",
    )
    .unwrap();
    f.ok("read", json!({"path": "change.py"})).await;
    let out = f
        .ok("write", json!({"path": "change.py", "content": "def find_fewest_coins(coins, target):\n    if target < 0:\n        raise ValueError('target can't be negative')\n    return []\n"}))
        .await;
    assert!(out.contains("re-quoted the string on line 3"), "{out}");
    assert!(
        std::fs::read_to_string(f.path("change.py"))
            .unwrap()
            .contains("raise ValueError(\"target can't be negative\")")
    );
    // Other syntax errors are refused as before.
    let message = f
        .err("write", json!({"path": "change.py", "content": "def find_fewest_coins(coins, target:\n    return []\n"}))
        .await;
    assert!(message.contains("unparsable"), "{message}");
}

/// `return f'Clock({self.hour}, {self.minute})` with its closing quote missing: refused
/// eight times, word for word, until the `clock` exercise stalled (1.5B, greedy).
#[tokio::test]
async fn a_string_left_open_at_its_lines_end_is_closed_not_refused() {
    let f = Fixture::new();
    std::fs::write(f.path("clock.py"), "class Clock:\n    pass\n").unwrap();
    f.ok("read", json!({"path": "clock.py"})).await;
    let content = "class Clock:\n    def __init__(self, hour, minute):\n        self.hour, self.minute = hour, minute\n\n    def __repr__(self):\n        return f'Clock({self.hour}, {self.minute})\n\n    def __str__(self):\n        return f'{self.hour:02}:{self.minute:02}'\n";
    let out = f
        .ok("write", json!({"path": "clock.py", "content": content}))
        .await;
    assert!(
        out.contains("closed the string left open at the end of line 6"),
        "{out}"
    );
    assert!(
        std::fs::read_to_string(f.path("clock.py"))
            .unwrap()
            .contains("        return f'Clock({self.hour}, {self.minute})'\n")
    );
    // The same slip again is the same file: nothing changes, and the answer says so.
    let out = f
        .ok("write", json!({"path": "clock.py", "content": content}))
        .await;
    assert!(
        out.starts_with(
            "clock.py already had exactly this content once keel mended it: nothing changed"
        ),
        "{out}"
    );
}

/// find-the-code's `overselling`: the 1.5B indented `reserve` into the class above it,
/// and every test of the file failed at collection with `ImportError`.
#[tokio::test]
async fn a_change_that_drops_what_another_file_imports_is_refused_once() {
    let f = Fixture::new();
    let stock = "class OutOfStock(Exception):\n    pass\n\n\ndef reserve(stock, sku, quantity):\n    stock[sku] -= quantity\n    return stock[sku]\n";
    std::fs::create_dir_all(f.path("shop/inventory")).unwrap();
    std::fs::create_dir_all(f.path("tests")).unwrap();
    std::fs::write(f.path("shop/inventory/stock.py"), stock).unwrap();
    std::fs::write(
        f.path("tests/test_stock.py"),
        "from shop.inventory.stock import OutOfStock, reserve\n\n\ndef test_reserve():\n    assert reserve({\"mug\": 5}, \"mug\", 2) == 3\n",
    )
    .unwrap();
    f.ok("read", json!({"path": "shop/inventory/stock.py"}))
        .await;
    let nested = "class OutOfStock(Exception):\n    def reserve(stock, sku, quantity):\n        if stock.get(sku, 0) < quantity:\n            raise OutOfStock(sku)\n        stock[sku] -= quantity\n        return stock[sku]\n";
    let message = f
        .err(
            "write",
            json!({"path": "shop/inventory/stock.py", "content": nested}),
        )
        .await;
    assert!(
        message.contains("tests/test_stock.py imports `reserve` from shop/inventory/stock.py, and this content no longer defines it at the top level"),
        "{message}"
    );
    assert!(
        message.contains("`reserve` is defined indented"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(f.path("shop/inventory/stock.py")).unwrap(),
        stock
    );

    // Keeping it is fine; so is an edit that leaves it alone.
    let fixed = stock.replace("    stock[sku] -= quantity\n", "    if stock.get(sku, 0) < quantity:\n        raise OutOfStock(sku)\n    stock[sku] -= quantity\n");
    f.ok(
        "write",
        json!({"path": "shop/inventory/stock.py", "content": fixed}),
    )
    .await;
    // An edit that renames it is refused too; the same change again goes through.
    let rename = json!({"path": "shop/inventory/stock.py", "old_string": "def reserve(", "new_string": "def take("});
    let message = f.err("edit", rename.clone()).await;
    assert!(message.contains("imports `reserve`"), "{message}");
    assert!(
        message.contains("send this same content again"),
        "{message}"
    );
    f.ok("edit", rename).await;
    assert!(
        std::fs::read_to_string(f.path("shop/inventory/stock.py"))
            .unwrap()
            .contains("def take(")
    );
}

#[tokio::test]
async fn edit_explains_missing_and_repeated_matches() {
    let f = Fixture::new();
    std::fs::write(
        f.path("m.py"),
        "import os\n\ndef one():\n    value = compute(1)\n    return value\n\ndef two():\n    return 2\n\nx = 1\nx = 1\n",
    )
    .unwrap();
    let message = f
        .err("edit", json!({"path": "m.py", "old_string": "value = compute(2)\nreturn value", "new_string": "z"}))
        .await;
    assert!(message.contains("no match"), "{message}");
    assert!(message.contains("closest lines are 4-5"), "{message}");
    assert!(
        message.contains("     4\t    value = compute(1)"),
        "{message}"
    );

    let message = f
        .err(
            "edit",
            json!({"path": "m.py", "old_string": "x = 1", "new_string": "x = 2"}),
        )
        .await;
    assert!(
        message.contains("2 times") && message.contains("lines 10, 11"),
        "{message}"
    );

    let message = f
        .err(
            "edit",
            json!({"path": "m.py", "old_string": "", "new_string": "x"}),
        )
        .await;
    assert!(message.contains("empty"), "{message}");
    let message = f
        .err(
            "edit",
            json!({"path": "nope.py", "old_string": "a", "new_string": "b"}),
        )
        .await;
    assert!(message.contains("not found"), "{message}");
    // Nothing was changed by the failed edits.
    assert!(
        std::fs::read_to_string(f.path("m.py"))
            .unwrap()
            .ends_with("x = 1\nx = 1\n")
    );
}

#[tokio::test]
async fn edit_tolerates_whitespace_slips_only_when_unambiguous() {
    let f = Fixture::new();
    std::fs::write(
        f.path("w.py"),
        "class A:\n    def f(self):  \n        return 1\n",
    )
    .unwrap();
    // Indentation lost and trailing spaces dropped by the model.
    let out = f
        .ok("edit", json!({"path": "w.py", "old_string": "def f(self):\n    return 1", "new_string": "def f(self):\n    return 2"}))
        .await;
    assert!(out.contains("ignoring indentation"), "{out}");
    assert_eq!(
        std::fs::read_to_string(f.path("w.py")).unwrap(),
        "class A:\n    def f(self):\n        return 2\n"
    );
    // Trailing whitespace only.
    std::fs::write(f.path("t.py"), "a = 1   \nb = 2\n").unwrap();
    f.ok(
        "edit",
        json!({"path": "t.py", "old_string": "a = 1\nb = 2", "new_string": "a = 3\nb = 4"}),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(f.path("t.py")).unwrap(),
        "a = 3\nb = 4\n"
    );
    // Two places match once whitespace is ignored: refused.
    std::fs::write(f.path("d.py"), "if x:\n    y()\nif z:\n  y()\n").unwrap();
    let message = f
        .err(
            "edit",
            json!({"path": "d.py", "old_string": "y()  ", "new_string": "w()"}),
        )
        .await;
    assert!(message.contains("2 places"), "{message}");
}

#[tokio::test]
async fn glob_respects_gitignore_and_caps() {
    let f = Fixture::with_limits(Limits {
        search_results: 5,
        ..Limits::default()
    });
    std::fs::write(f.path(".gitignore"), "build/\n").unwrap();
    std::fs::create_dir_all(f.path("build")).unwrap();
    std::fs::write(f.path("build/gen.py"), "").unwrap();
    std::fs::create_dir_all(f.path("tests")).unwrap();
    std::fs::write(f.path("tests/test_app.py"), "").unwrap();
    let out = f.ok("glob", json!({"pattern": "*.py"})).await;
    let mut files: Vec<&str> = out.lines().collect();
    files.sort();
    assert_eq!(files, ["src/app.py", "tests/test_app.py"]);
    assert_eq!(
        f.ok("glob", json!({"pattern": "tests/*.py"})).await,
        "tests/test_app.py"
    );
    assert_eq!(
        f.ok("glob", json!({"pattern": "*.py", "path": "src"}))
            .await,
        "src/app.py"
    );
    for i in 0..8 {
        std::fs::write(f.path(&format!("src/m{i}.py")), "").unwrap();
    }
    let out = f.ok("glob", json!({"pattern": "**/*.py"})).await;
    assert!(
        out.ends_with("[5 more files not shown; narrow the pattern or the path]"),
        "{out}"
    );
    assert!(
        f.ok("glob", json!({"pattern": "*.zig"}))
            .await
            .starts_with("no files match")
    );
}

#[tokio::test]
async fn grep_finds_lines_respects_gitignore_and_caps() {
    let f = Fixture::with_limits(Limits {
        search_results: 3,
        ..Limits::default()
    });
    std::fs::write(f.path(".gitignore"), "*.log\n").unwrap();
    std::fs::write(f.path("debug.log"), "return a - b\n").unwrap();
    std::fs::write(f.path("blob.bin"), b"return a - b\0\0").unwrap();
    assert_eq!(
        f.ok("grep", json!({"pattern": r"return a \- b"})).await,
        "src/app.py:2:    return a - b"
    );
    assert_eq!(
        f.ok(
            "grep",
            json!({"pattern": "DEF ADD", "ignore_case": true, "glob": "*.py"})
        )
        .await,
        "src/app.py:1:def add(a, b):"
    );
    std::fs::write(f.path("many.txt"), "hit\n".repeat(10)).unwrap();
    let out = f
        .ok("grep", json!({"pattern": "hit", "path": "many.txt"}))
        .await;
    assert!(
        out.starts_with("many.txt:1:hit\nmany.txt:2:hit\nmany.txt:3:hit\n"),
        "{out}"
    );
    assert!(
        out.ends_with("[7 more matches not shown (10 in all); narrow the pattern, path or glob]"),
        "{out}"
    );
    let message = f.err("grep", json!({"pattern": "fn("})).await;
    assert!(message.contains("invalid regex"), "{message}");
    assert!(
        f.ok("grep", json!({"pattern": "zzz_nothing"}))
            .await
            .starts_with("no matches")
    );
}

fn git(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
}

#[tokio::test]
async fn git_reads_the_repository_and_refuses_writes() {
    let f = Fixture::new();
    std::fs::remove_file(f.path("file_link")).unwrap();
    std::fs::remove_file(f.path("dir_link")).unwrap();
    std::fs::remove_file(f.path("dangling")).unwrap();
    git(f.dir.path(), &["init", "-q"]);
    git(f.dir.path(), &["add", "."]);
    git(f.dir.path(), &["commit", "-qm", "first commit"]);
    std::fs::write(f.path("src/app.py"), "def add(a, b):\n    return a + b\n").unwrap();

    assert!(
        f.ok("git", json!({"command": "status"}))
            .await
            .contains(" M src/app.py")
    );
    let diff = f.ok("git", json!({"command": "diff"})).await;
    assert!(
        diff.contains("-    return a - b") && diff.contains("+    return a + b"),
        "{diff}"
    );
    assert!(
        f.ok("git", json!({"command": "log"}))
            .await
            .contains("first commit")
    );
    assert!(
        f.ok("git", json!({"command": "blame", "args": ["src/app.py"]}))
            .await
            .contains("def add")
    );
    let message = f
        .err(
            "git",
            json!({"command": "diff", "args": ["--output=/tmp/x"]}),
        )
        .await;
    assert!(message.contains("not allowed"), "{message}");
    let message = f.err("git", json!({"command": "push"})).await;
    assert!(
        message.contains("invalid arguments") && message.contains("status"),
        "{message}"
    );
    let message = f
        .err("git", json!({"command": "show", "args": ["no-such-rev"]}))
        .await;
    assert!(message.contains("git exit code 128"), "{message}");
}

#[tokio::test]
async fn bash_runs_in_the_root_and_reports_the_exit_code() {
    let f = Fixture::new();
    let out = f.ok("bash", json!({"command": "pwd; ls src"})).await;
    let root = f.dir.path().canonicalize().unwrap();
    assert_eq!(out, format!("{}\napp.py\n[exit code 0]", root.display()));
    let out = f
        .err("bash", json!({"command": "echo out; echo err >&2; exit 4"}))
        .await;
    assert_eq!(out, "out\nerr\n[exit code 4]");
}

#[tokio::test]
async fn bash_timeout_kills_the_whole_process_group() {
    let f = Fixture::new();
    let out = f
        .err(
            "bash",
            json!({"command": "bash -c 'sleep 303.5 & setsid sleep 303.75 & wait' ; echo never", "timeout": 1}),
        )
        .await;
    assert!(out.contains("timed out after 1 s"), "{out}");
    assert!(!out.contains("never"));
    // The grandchild, and the one in its own session, are gone.
    assert!(gone("sleep 303.5"), "{:?}", running("sleep 303.5"));
    assert!(gone("sleep 303.75"), "{:?}", running("sleep 303.75"));
}

#[tokio::test]
async fn bash_timeout_is_capped_by_configuration() {
    let f = Fixture::with_limits(Limits {
        bash_max_timeout: Duration::from_secs(5),
        ..Limits::default()
    });
    let out = f
        .ok("bash", json!({"command": "true", "timeout": 9999}))
        .await;
    assert!(
        out.contains("lowered to the configured maximum of 5 s"),
        "{out}"
    );
}

#[tokio::test]
async fn bash_caps_ten_megabytes_of_output() {
    let f = Fixture::new();
    let out = f
        .ok("bash", json!({"command": "head -c 10485760 /dev/zero | tr '\\0' 'a' | fold -w 99; echo; echo LAST"}))
        .await;
    assert!(out.len() < 13_000, "{} bytes reached the model", out.len());
    assert!(out.contains("cut from the middle of 10"), "{}", &out[..200]);
    assert!(out.starts_with("aaaa"));
    assert!(
        out.ends_with("LAST\n[exit code 0]"),
        "{}",
        &out[out.len() - 200..]
    );
}

#[tokio::test]
async fn bash_is_stopped_by_cancellation() {
    let f = Fixture::new();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    let out = f
        .tools
        .call(&f.ctx, "bash", json!({"command": "sleep 120"}), &cancel)
        .await;
    assert!(
        out.is_error && out.content.contains("cancelled"),
        "{}",
        out.content
    );
}

#[tokio::test]
async fn malformed_arguments_are_errors_that_show_the_expected_input() {
    let f = Fixture::new();
    let message = f.err("read", json!({})).await;
    assert!(message.contains("missing field `path`"), "{message}");
    assert!(
        message.contains(r#"Expected input: {"path": string"#),
        "{message}"
    );
    let message = f.err("read", json!({"path": 3})).await;
    assert!(message.contains("invalid type"), "{message}");
    let message = f.err("read", json!({"path": "a", "bogus": 1})).await;
    assert!(message.contains("unknown field `bogus`"), "{message}");
    let message = f.err("frobnicate", json!({})).await;
    assert!(
        message.contains("unknown tool `frobnicate`") && message.contains("bash, edit"),
        "{message}"
    );
}
