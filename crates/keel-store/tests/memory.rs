//! Project memory on a real SQLite file.

use keel_store::{FileRef, MemoryKind, NewChange, Store, content_hash, file_hash};

fn file(root: &std::path::Path, path: &str, content: &str) -> FileRef {
    std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
    std::fs::write(root.join(path), content).unwrap();
    FileRef {
        path: path.into(),
        hash: Some(content_hash(content.as_bytes())),
        added: Some(2),
        removed: Some(1),
    }
}

#[test]
fn facts_and_changes_are_searched_per_project_by_relevance() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("keel.db")).unwrap();
    store
        .add_fact("/p", "tests run with `make check`", None, &[])
        .unwrap();
    store
        .add_fact("/p", "auth lives in src/auth/", None, &[])
        .unwrap();
    store
        .add_fact("/other", "auth lives elsewhere", None, &[])
        .unwrap();
    let files = [FileRef {
        path: "src/auth.py".into(),
        hash: Some("1".into()),
        added: Some(3),
        removed: Some(1),
    }];
    store
        .add_change(&NewChange {
            project: "/p",
            session_id: "s1",
            request: "reject expired tokens",
            outcome: "verified",
            summary: "valid() checks the expiry",
            files: &files,
        })
        .unwrap();

    let found = store.search("/p", "where does auth live?", 10).unwrap();
    assert_eq!(found[0].text, "auth lives in src/auth/");
    assert!(found.iter().all(|m| m.text != "auth lives elsewhere"));
    // Stemming: "change" finds the entry that says "changed".
    let found = store
        .search("/p", "what did we change last session", 10)
        .unwrap();
    assert_eq!(found[0].kind, MemoryKind::Change);
    assert!(
        found[0].text.contains("src/auth.py (+3 -1)"),
        "{}",
        found[0].text
    );
    assert_eq!(
        found[0].summary.as_deref(),
        Some("valid() checks the expiry")
    );
    assert_eq!(found[0].files, files);
    assert!(store.search("/p", "?!", 10).unwrap().is_empty());
    assert_eq!(store.memories("/p", 10).unwrap().len(), 3);
}

#[test]
fn the_last_sessions_changes_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("keel.db")).unwrap();
    let change = |session: &'static str, summary: &'static str| NewChange {
        project: "/p",
        session_id: session,
        request: "r",
        outcome: "completed",
        summary,
        files: &[],
    };
    assert!(store.last_session_changes("/p", None).unwrap().is_empty());
    store.add_change(&change("s1", "first")).unwrap();
    store.add_change(&change("s2", "second a")).unwrap();
    store.add_change(&change("s2", "second b")).unwrap();
    let last: Vec<_> = store
        .last_session_changes("/p", None)
        .unwrap()
        .into_iter()
        .map(|m| m.summary.unwrap())
        .collect();
    assert_eq!(last, ["second a", "second b"]);
    let before: Vec<_> = store
        .last_session_changes("/p", Some("s2"))
        .unwrap()
        .into_iter()
        .map(|m| m.summary.unwrap())
        .collect();
    assert_eq!(before, ["first"]);
}

#[test]
fn memories_about_changed_files_become_stale_and_can_be_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("project");
    let store = Store::open(&dir.path().join("keel.db")).unwrap();
    let auth = file(&root, "src/auth.py", "def valid(): pass\n");
    let id = store
        .add_fact("/p", "valid() is in src/auth.py", None, &[auth])
        .unwrap();
    let mut memory = store.memories("/p", 1).unwrap().remove(0);
    assert!(
        store
            .check_staleness(&root, &mut memory)
            .unwrap()
            .is_empty()
    );
    assert!(!memory.stale);
    std::fs::write(root.join("src/auth.py"), "def valid(): return False\n").unwrap();
    assert_eq!(
        store.check_staleness(&root, &mut memory).unwrap(),
        ["src/auth.py"]
    );
    assert!(store.memories("/p", 1).unwrap()[0].stale);
    std::fs::write(root.join("src/auth.py"), "def valid(): pass\n").unwrap();
    assert_eq!(file_hash(&root, "src/auth.py"), memory.files[0].hash);
    assert!(
        store
            .check_staleness(&root, &mut memory)
            .unwrap()
            .is_empty()
    );
    assert!(!store.memories("/p", 1).unwrap()[0].stale);

    assert!(store.forget("/other", id).is_err());
    store.forget("/p", id).unwrap();
    assert!(store.memories("/p", 10).unwrap().is_empty());
    assert!(store.search("/p", "valid auth", 10).unwrap().is_empty());
}

#[test]
fn a_version_one_database_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel.db");
    let v1 = "CREATE TABLE sessions (id TEXT PRIMARY KEY, workspace TEXT NOT NULL, model TEXT NOT NULL, started_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, turns INTEGER NOT NULL DEFAULT 0, outcome TEXT); CREATE INDEX sessions_by_workspace ON sessions (workspace, updated_at); CREATE INDEX sessions_by_update ON sessions (updated_at); CREATE TABLE events (session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE, seq INTEGER NOT NULL, ts INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (session_id, seq)) WITHOUT ROWID; INSERT INTO sessions VALUES ('old', '/p', 'replay:x', 1, 2, 1, 'verified'); PRAGMA user_version = 1;";
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3; c = sqlite3.connect({:?}); c.executescript({v1:?}); c.commit()",
            path.display().to_string()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let store = Store::open(&path).unwrap();
    assert_eq!(store.sessions(None, 10).unwrap()[0].id, "old");
    store.add_fact("/p", "upgraded", None, &[]).unwrap();
    assert_eq!(store.search("/p", "upgraded", 1).unwrap().len(), 1);
}

#[test]
fn search_looks_past_the_recent_window_when_it_finds_too_little() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("keel.db")).unwrap();
    store
        .add_fact("/p", "the flux capacitor lives in src/time.rs", None, &[])
        .unwrap();
    for i in 0..keel_store::RECENT_WINDOW + 1 {
        store
            .add_fact("/p", &format!("unrelated note {i}"), None, &[])
            .unwrap();
    }
    let found = store.search("/p", "flux capacitor", 5).unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].text.contains("flux capacitor"));
}
