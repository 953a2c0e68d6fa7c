//! The store on real SQLite files.

use keel_protocol::{Event, Outcome};
use keel_store::{Store, StoreError};

fn session_event(id: &str, workspace: &str) -> Event {
    Event::Session {
        session_id: id.into(),
        workspace: workspace.into(),
        model: "replay:x".into(),
    }
}

fn user(text: &str) -> Event {
    Event::User {
        content: text.into(),
    }
}

fn done(outcome: Outcome) -> Event {
    Event::Done {
        outcome,
        iterations: 1,
    }
}

#[test]
fn events_are_appended_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("keel.db")).unwrap();
    let events = vec![
        session_event("s1", "/w"),
        user("fix it"),
        Event::Delta { text: "ok".into() },
        done(Outcome::Verified),
        user("more"),
        done(Outcome::Stalled),
    ];
    for event in &events {
        store.append("s1", event).unwrap();
    }
    assert_eq!(store.events("s1").unwrap(), events);
    let lines = store.export("s1").unwrap();
    assert_eq!(lines[1], r#"{"type":"user","content":"fix it"}"#);
    let info = &store.sessions(None, 10).unwrap()[0];
    assert_eq!(
        (info.id.as_str(), info.turns, info.outcome.as_deref()),
        ("s1", 2, Some("stalled"))
    );
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn sessions_are_listed_newest_first_and_by_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("keel.db")).unwrap();
    for (id, ws) in [("a1", "/one"), ("b2", "/two"), ("c3", "/one")] {
        store.append(id, &session_event(id, ws)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    let ids = |ws: Option<&str>| -> Vec<String> {
        store
            .sessions(ws, 10)
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect()
    };
    assert_eq!(ids(None), ["c3", "b2", "a1"]);
    assert_eq!(ids(Some("/one")), ["c3", "a1"]);
    store.append("a1", &user("again")).unwrap();
    assert_eq!(ids(Some("/one")), ["a1", "c3"]);
}

#[test]
fn ids_resolve_by_unique_prefix_and_delete_cascades() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("keel.db")).unwrap();
    for id in ["0195-aaaa", "0195-aabb", "0196-cccc"] {
        store.append(id, &session_event(id, "/w")).unwrap();
        store.append(id, &user("x")).unwrap();
    }
    assert_eq!(store.resolve("0196").unwrap(), "0196-cccc");
    assert_eq!(store.resolve("0195-aabb").unwrap(), "0195-aabb");
    assert!(matches!(
        store.resolve("0195-aa"),
        Err(StoreError::AmbiguousSession { count: 2, .. })
    ));
    assert!(matches!(
        store.resolve("9"),
        Err(StoreError::UnknownSession(_))
    ));
    assert!(matches!(
        store.resolve("0195_"),
        Err(StoreError::UnknownSession(_))
    ));
    store.delete("0196-cccc").unwrap();
    assert!(store.events("0196-cccc").unwrap().is_empty());
    assert!(matches!(
        store.delete("0196-cccc"),
        Err(StoreError::UnknownSession(_))
    ));
    assert!(matches!(
        store.append("nope", &user("x")),
        Err(StoreError::UnknownSession(_))
    ));
}

#[test]
fn a_corrupt_file_is_reported_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel.db");
    let garbage =
        b"this is not a database, but it is long enough to look like a header..".repeat(20);
    std::fs::write(&path, &garbage).unwrap();
    let error = Store::open(&path).err().expect("opening garbage must fail");
    let message = error.to_string();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{message}");
    assert!(
        message.contains(&path.display().to_string()) && message.contains("mv "),
        "{message}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn an_older_database_is_upgraded_and_a_newer_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel.db");
    create_version_zero_database(&path);
    let store = Store::open(&path).unwrap();
    store.append("s", &session_event("s", "/w")).unwrap();
    drop(store);
    set_user_version(&path, 99);
    let error = Store::open(&path).err().unwrap();
    assert!(
        matches!(error, StoreError::TooNew { found: 99, .. }),
        "{error}"
    );
}

/// A version-0 database with an unrelated table, as an older keel could leave.
fn create_version_zero_database(path: &std::path::Path) {
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3; c = sqlite3.connect({:?}); c.execute('CREATE TABLE old_stuff (x)'); c.commit()",
            path.display().to_string()
        ))
        .status()
        .unwrap();
    assert!(status.success());
}

fn set_user_version(path: &std::path::Path, version: i64) {
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3; c = sqlite3.connect({:?}); c.execute('PRAGMA user_version = {version}'); c.commit()",
            path.display().to_string()
        ))
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn two_writers_on_one_database_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel.db");
    let threads: Vec<_> = (0..2)
        .map(|n| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = Store::open(&path).unwrap();
                let id = format!("writer{n}");
                store.append(&id, &session_event(&id, "/w")).unwrap();
                for i in 0..500 {
                    store
                        .append(
                            &id,
                            &Event::Delta {
                                text: i.to_string(),
                            },
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let store = Store::open(&path).unwrap();
    for n in 0..2 {
        assert_eq!(store.events(&format!("writer{n}")).unwrap().len(), 501);
    }
    assert_eq!(store.integrity_check().unwrap(), "ok");
}
