//! Store benchmarks (run by `bench/run.py store`): event append rate, recall latency
//! over 100k memories, `sessions list` over 10k sessions. Prints one JSON object.

use std::time::Instant;

use keel_protocol::Event;
use keel_store::{NewChange, Store};

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let dir = std::env::temp_dir().join(format!("keel-store-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir.join("keel.db")).expect("open store");

    // 1. Append rate: a realistic turn mix (deltas, calls, results with output).
    store
        .append(
            "bench",
            &Event::Session {
                session_id: "bench".into(),
                workspace: "/w".into(),
                model: "m".into(),
            },
        )
        .expect("append");
    let output = "x".repeat(2_000);
    let events: Vec<Event> = (0..20_000)
        .map(|i| match i % 4 {
            0 => Event::Delta {
                text: format!("token {i} "),
            },
            1 => Event::ToolCall {
                call_id: format!("c{i}"),
                name: "read".into(),
                arguments: serde_json::json!({"path": "src/lib.rs"}),
            },
            2 => Event::ToolResult {
                call_id: format!("c{i}"),
                name: "read".into(),
                output: output.clone(),
                is_error: false,
                duration_ms: 1,
            },
            _ => Event::Thinking { iteration: i },
        })
        .collect();
    let started = Instant::now();
    for event in &events {
        store.append("bench", event).expect("append");
    }
    let append_per_s = events.len() as f64 / started.elapsed().as_secs_f64();

    // 2. Recall over 100k memories.
    let words = [
        "auth", "token", "parser", "cache", "render", "socket", "schema", "config", "retry",
        "index", "query", "session",
    ];
    let started = Instant::now();
    for i in 0..100_000usize {
        let a = words[i % words.len()];
        let b = words[(i / 7) % words.len()];
        let text = format!("fact {i}: the {a} module talks to {b} through handler_{i}");
        if i % 2 == 0 {
            store.add_fact("/p", &text, None, &[]).expect("fact");
        } else {
            store
                .add_change(&NewChange {
                    project: "/p",
                    session_id: "s",
                    request: &text,
                    outcome: "verified",
                    summary: "changed it",
                    files: &[],
                })
                .expect("change");
        }
    }
    let fill_s = started.elapsed().as_secs_f64();
    let queries = [
        "what did we change in the auth token code",
        "socket retry",
        "where is the schema cache",
        "handler_4242",
        "config parser index",
    ];
    let mut recall_ms = Vec::new();
    for round in 0..20 {
        let query = queries[round % queries.len()];
        let t = Instant::now();
        let found = store.search("/p", query, 8).expect("search");
        recall_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(!found.is_empty());
    }

    // 3. `sessions list` over 10k sessions.
    for i in 0..10_000 {
        let id = format!("s{i:05}");
        store
            .append(
                &id,
                &Event::Session {
                    session_id: id.clone(),
                    workspace: format!("/w{}", i % 50),
                    model: "m".into(),
                },
            )
            .expect("session");
    }
    let mut list_ms = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let all = store.sessions(None, 10_000).expect("list");
        list_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(all.len() >= 10_000);
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{}",
        serde_json::json!({
            "append_events_per_s": append_per_s.round(),
            "append_goal_per_s": 20_000,
            "memories": 100_000,
            "memory_fill_s": (fill_s * 10.0).round() / 10.0,
            "recall_ms_median": (median(recall_ms) * 1000.0).round() / 1000.0,
            "recall_goal_ms": 10,
            "sessions": 10_000,
            "sessions_list_ms_median": (median(list_ms) * 100.0).round() / 100.0,
            "sessions_list_goal_ms": 100,
        })
    );
}
