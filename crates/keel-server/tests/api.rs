//! The HTTP API over real HTTP on 127.0.0.1, with the replay model.

mod common;

use common::{SseReader, TestServer, answer, call, error_code, names, script, session_id};
use serde_json::{Value, json};

fn read_then_answer() -> String {
    script(&[
        call("read", json!({"path": "notes.txt"})),
        answer("notes.txt holds `alpha` and `beta`."),
    ])
}

/// A turn that stays busy (a long command) until it is cancelled.
fn long_running() -> String {
    script(&[
        call("bash", json!({"command": "sleep 30"})),
        answer("slept"),
    ])
}

#[tokio::test]
async fn a_turn_streams_every_event_in_order_and_a_second_turn_continues_the_session() {
    let server = TestServer::start(&read_then_answer()).await;
    let response = server
        .chat(json!({"message": "what is in notes.txt?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let events = SseReader::new(response).rest().await;
    let order = names(&events);
    assert_eq!(
        order,
        [
            "session",
            "context",
            "user",
            "thinking",
            "delta",
            "usage",
            "assistant",
            "tool_call",
            "tool_result",
            "thinking",
            "delta",
            "delta",
            "usage",
            "assistant",
            "response",
            "done"
        ]
    );
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=events.len() as u64).collect::<Vec<_>>());
    for event in &events {
        assert_eq!(event.data["type"], event.event, "data carries its type");
        assert!(event.data["ts"].as_f64().is_some(), "emission time");
    }
    let session_id = session_id(&events);
    let result = events.iter().find(|e| e.event == "tool_result").unwrap();
    assert_eq!(result.data["output"], "     1\talpha\n     2\tbeta\n");
    assert_eq!(result.data["is_error"], false);
    let done = events.last().unwrap();
    assert_eq!(done.data["outcome"], "completed");
    assert_eq!(done.data["iterations"], 2);

    // Every event was stored as it was streamed.
    let stored = server.store.events(&session_id).unwrap();
    assert_eq!(stored.len(), events.len());

    // The same session again: `session` first, then the new turn, numbered on.
    let second = server
        .turn(json!({"message": "and again?", "session_id": session_id}))
        .await;
    assert_eq!(second[0].event, "session");
    assert_eq!(second[0].data["session_id"], session_id.as_str());
    assert_eq!(second[0].id, 1);
    assert_eq!(second[1].event, "user");
    assert_eq!(second[1].id, events.len() as u64 + 1);
    // The replay script is per session and now exhausted: the model fault is an
    // `error` event and the turn ends `failed`, not a broken stream.
    let tail = names(&second[1..]);
    assert_eq!(tail, ["user", "thinking", "usage", "error", "done"]);
    assert_eq!(second.last().unwrap().data["outcome"], "failed");
    let stored = server.store.events(&session_id).unwrap();
    assert_eq!(
        stored.len(),
        events.len() + second.len() - 1,
        "the second turn is stored"
    );

    let list = server.sessions().await;
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], session_id.as_str());
    assert_eq!(sessions[0]["turns"], 2);
    assert_eq!(sessions[0]["running"], false);
    server.shutdown().await;
}

#[tokio::test]
async fn a_busy_session_refuses_a_second_turn_and_cancel_stops_the_first() {
    let server = TestServer::start(&long_running()).await;
    let (mut stream, _, id) = server.begin("sleep").await;

    let again = server
        .chat(json!({"message": "are you there?", "session_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(again).await, (409, "session_busy".into()));
    let delete = server
        .delete(&format!("/session/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(delete).await, (409, "session_busy".into()));
    let list = server.sessions().await;
    assert_eq!(list["sessions"][0]["running"], true);
    let health: Value = server
        .get("/health")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["running_turns"], 1);

    // Another session runs meanwhile.
    let (mut other, _, other_id) = server.begin("sleep too").await;
    assert_ne!(other_id, id);

    let cancel = server
        .post(&format!("/sessions/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 202);
    let rest = stream.rest().await;
    let result = rest.iter().find(|e| e.event == "tool_result").unwrap();
    assert!(
        result.data["output"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{}",
        result.data
    );
    assert_eq!(rest.last().unwrap().event, "done");
    assert_eq!(rest.last().unwrap().data["outcome"], "cancelled");

    // Free again: cancelling now is a conflict, a new turn is accepted.
    let cancel = server
        .post(&format!("/sessions/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(cancel).await, (409, "not_running".into()));
    let next = server
        .turn(json!({"message": "next", "session_id": id}))
        .await;
    assert_eq!(next.last().unwrap().event, "done");

    server
        .post(&format!("/sessions/{other_id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.rest().await.last().unwrap().data["outcome"],
        "cancelled"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_disconnects_does_not_stop_the_turn_and_catches_up_later() {
    let server = TestServer::start(&script(&[
        call(
            "bash",
            json!({"command": "sleep 1; echo finished > done.txt; echo ok"}),
        ),
        answer("Wrote done.txt."),
    ]))
    .await;
    let (stream, seen, id) = server.begin("write it").await;
    let last_seen = seen.last().unwrap().id;
    drop(stream); // the client goes away mid-turn

    // It comes back and asks for what it missed (as EventSource does on reconnect).
    let response = server
        .get(&format!("/sessions/{id}/events"))
        .header("Last-Event-ID", last_seen.to_string())
        .send()
        .await
        .unwrap();
    let missed = SseReader::new(response).rest().await;
    assert_eq!(
        missed[0].id,
        last_seen + 1,
        "resumes right after what it saw"
    );
    assert_eq!(missed[0].event, "tool_result");
    assert_eq!(missed[0].data["output"], "ok\n[exit code 0]");
    assert_eq!(missed.last().unwrap().event, "done");
    assert_eq!(missed.last().unwrap().data["outcome"], "completed");
    assert_eq!(
        std::fs::read_to_string(server.workspace.path().join("done.txt")).unwrap(),
        "finished\n"
    );

    // The whole session replays from the store, numbered as it was streamed.
    let response = server
        .get(&format!("/sessions/{id}/events"))
        .send()
        .await
        .unwrap();
    let all = SseReader::new(response).rest().await;
    assert_eq!(all[0].event, "session");
    let ids: Vec<u64> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=all.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        all[..seen.len()]
            .iter()
            .map(|e| &e.data["type"])
            .collect::<Vec<_>>(),
        seen.iter().map(|e| &e.data["type"]).collect::<Vec<_>>()
    );
    let after: Vec<u64> = SseReader::new(
        server
            .get(&format!("/sessions/{id}/events?after=3"))
            .send()
            .await
            .unwrap(),
    )
    .rest()
    .await
    .iter()
    .map(|e| e.id)
    .collect();
    assert_eq!(after, (4..=all.len() as u64).collect::<Vec<_>>());
    server.shutdown().await;
}

#[tokio::test]
async fn a_follower_that_joins_a_running_turn_sees_it_to_the_end() {
    let server = TestServer::start(&long_running()).await;
    let (mut first, seen, id) = server.begin("sleep").await;
    let response = server
        .get(&format!("/sessions/{id}/events"))
        .send()
        .await
        .unwrap();
    let mut second = SseReader::new(response);
    let replayed = second.until("tool_call").await;
    assert_eq!(names(&replayed), names(&seen));
    server
        .post(&format!("/sessions/{id}/cancel"))
        .send()
        .await
        .unwrap();
    let a = first.rest().await;
    let b = second.rest().await;
    assert_eq!(names(&a), names(&b));
    assert_eq!(b.last().unwrap().data["outcome"], "cancelled");
    server.shutdown().await;
}

#[tokio::test]
async fn delete_forgets_a_session() {
    let server = TestServer::start(&read_then_answer()).await;
    let events = server.turn(json!({"message": "go"})).await;
    let id = session_id(&events);
    let response = server
        .delete(&format!("/session/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(server.store.events(&id).unwrap().is_empty());
    let list = server.sessions().await;
    assert_eq!(list["sessions"], json!([]));
    for response in [
        server
            .delete(&format!("/session/{id}"))
            .send()
            .await
            .unwrap(),
        server
            .get(&format!("/sessions/{id}/events"))
            .send()
            .await
            .unwrap(),
        server
            .chat(json!({"message": "hi", "session_id": id}))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(error_code(response).await, (404, "unknown_session".into()));
    }
    // `DELETE /sessions/{id}` is the same.
    let events = server.turn(json!({"message": "go"})).await;
    let id = session_id(&events);
    let response = server
        .delete(&format!("/sessions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_a_json_error_and_reach_no_agent() {
    let server = TestServer::start(&read_then_answer()).await;
    let raw = |body: &'static str| {
        server
            .post("/chat")
            .header("content-type", "application/json")
            .body(body)
    };
    let cases = [
        (raw("{\"message\": \"hi\""), 400, "malformed_json"),
        (raw("not json"), 400, "malformed_json"),
        (raw("{}"), 400, "bad_request"),
        (raw("{\"message\": 42}"), 400, "bad_request"),
        (raw("{\"message\": \"   \"}"), 400, "bad_request"),
        (raw("[\"hi\"]"), 400, "bad_request"),
        (
            raw("{\"message\": \"hi\", \"session_id\": 7}"),
            400,
            "bad_request",
        ),
        (
            server.post("/chat").body("{\"message\": \"hi\"}"),
            415,
            "unsupported_media_type",
        ),
        (
            server.chat(json!({"message": "hi", "session_id": "no-such-session"})),
            404,
            "unknown_session",
        ),
        (
            server.get("/sessions/no-such-session/events"),
            404,
            "unknown_session",
        ),
        (
            server.post("/sessions/no-such-session/cancel"),
            404,
            "unknown_session",
        ),
        (
            server.delete("/session/no-such-session"),
            404,
            "unknown_session",
        ),
        (server.get("/no/such/endpoint"), 404, "not_found"),
        (server.get("/sessions?limit=lots"), 400, "bad_request"),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.unwrap();
        let url = response.url().to_string();
        assert_eq!(
            error_code(response).await,
            (status, code.to_string()),
            "{url}"
        );
    }
    let big = "x".repeat(3 * 1024 * 1024);
    let response = server.chat(json!({ "message": big })).send().await.unwrap();
    assert_eq!(
        error_code(response).await,
        (413, "payload_too_large".into())
    );
    // Nothing reached the agent: no session was started.
    let list = server.sessions().await;
    assert_eq!(list["sessions"], json!([]));
    server.shutdown().await;
}

#[tokio::test]
async fn a_session_of_another_workspace_is_not_served() {
    let server = TestServer::start(&read_then_answer()).await;
    let elsewhere = keel_protocol::Event::Session {
        session_id: "other-ws".into(),
        workspace: "/somewhere/else".into(),
        model: "replay:test".into(),
    };
    server.store.append("other-ws", &elsewhere).unwrap();
    for response in [
        server
            .chat(json!({"message": "hi", "session_id": "other-ws"}))
            .send()
            .await
            .unwrap(),
        server
            .get("/sessions/other-ws/events")
            .send()
            .await
            .unwrap(),
        server.delete("/session/other-ws").send().await.unwrap(),
    ] {
        assert_eq!(error_code(response).await, (404, "unknown_session".into()));
    }
    let list = server.sessions().await;
    assert_eq!(list["sessions"], json!([]));
    assert_eq!(
        server.store.events("other-ws").unwrap().len(),
        1,
        "left alone"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_api_is_described_at_openapi_json() {
    let server = TestServer::start(&read_then_answer()).await;
    let doc: Value = server
        .get("/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let expected = [
        ("/chat", "post"),
        ("/sessions", "get"),
        ("/sessions/{id}/events", "get"),
        ("/sessions/{id}/cancel", "post"),
        ("/sessions/{id}/approvals/{call_id}", "post"),
        ("/sessions/{id}/turns/{turn}/diff", "get"),
        ("/sessions/{id}/undo", "post"),
        ("/sessions/{id}/redo", "post"),
        ("/sessions/{id}/plan/approve", "post"),
        ("/session/{id}", "delete"),
        ("/sessions/{id}", "delete"),
        ("/health", "get"),
        ("/openapi.json", "get"),
        ("/", "get"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), expected.len());
    for (path, method) in expected {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    // Every event the agent can emit is described.
    let described: Vec<&str> = doc["components"]["schemas"]["Event"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["properties"]["type"]["const"].as_str().unwrap())
        .collect();
    for name in [
        "session",
        "context",
        "user",
        "thinking",
        "delta",
        "assistant",
        "tool_call",
        "tool_result",
        "approval_request",
        "approval",
        "verification",
        "feedback",
        "repair",
        "response",
        "usage",
        "compaction",
        "checkpoint",
        "undo",
        "redo",
        "plan",
        "error",
        "done",
    ] {
        assert!(described.contains(&name), "{name}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_ui_is_served_from_the_binary() {
    let server = TestServer::start(&read_then_answer()).await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let response = server.get(path).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
        assert!(!response.text().await.unwrap().is_empty());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_cancels_running_turns_and_stores_their_end() {
    let server = TestServer::start(&long_running()).await;
    let (_stream, _, id) = server.begin("sleep").await;
    let store = std::sync::Arc::clone(&server.store);
    server.shutdown().await;
    let events = store.events(&id).unwrap();
    assert!(
        matches!(
            events.last(),
            Some(keel_protocol::Event::Done {
                outcome: keel_protocol::Outcome::Cancelled,
                ..
            })
        ),
        "{:?}",
        events.last()
    );
}

#[tokio::test]
async fn a_call_that_needs_approval_waits_for_the_answer_from_the_api() {
    let script = script(&[
        call(
            "bash",
            json!({"command": "curl -s -m 2 http://127.0.0.1:9/ || echo unreachable"}),
        ),
        answer("Could not fetch."),
    ]);
    let server = TestServer::start(&script).await;
    let (mut stream, _, id) = server.begin("fetch the page").await;
    let before = stream.until("approval_request").await;
    let request = before.last().unwrap();
    let call_id = request.data["call_id"].as_str().unwrap().to_string();
    assert!(request.data["reason"].as_str().unwrap().contains("network"));
    // An unknown call, another session: nothing waits there.
    let missing = server
        .post(&format!("/sessions/{id}/approvals/call_99"))
        .json(&json!({"allow": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(missing).await, (404, "no_request".into()));
    let answered = server
        .post(&format!("/sessions/{id}/approvals/{call_id}"))
        .json(&json!({"allow": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), 200);
    let rest = stream.rest().await;
    let approval = rest.iter().find(|e| e.event == "approval").unwrap();
    assert_eq!(approval.data["allowed"], false);
    assert_eq!(approval.data["by"], "user");
    let result = rest.iter().find(|e| e.event == "tool_result").unwrap();
    assert_eq!(result.data["is_error"], true);
    assert!(
        result.data["output"]
            .as_str()
            .unwrap()
            .contains("did not approve")
    );
    assert_eq!(rest.last().unwrap().event, "done");
}

#[tokio::test]
async fn a_turns_diff_then_undo_and_redo_through_the_api() {
    let server = TestServer::start(&script(&[
        call(
            "edit",
            json!({"path": "notes.txt", "old_string": "beta", "new_string": "gamma"}),
        ),
        answer("Changed beta to gamma."),
    ]))
    .await;
    let events = server.turn(json!({"message": "change beta"})).await;
    let id = session_id(&events);
    assert!(
        names(&events).contains(&"checkpoint"),
        "{:?}",
        names(&events)
    );
    let notes = || std::fs::read_to_string(server.workspace.path().join("notes.txt")).unwrap();
    assert_eq!(notes(), "alpha\ngamma\n");

    let diff: Value = server
        .get(&format!("/sessions/{id}/turns/1/diff"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(diff["files"][0]["path"], "notes.txt");
    assert_eq!(diff["files"][0]["added"], 1);
    assert!(
        diff["diff"].as_str().unwrap().contains("-beta\n+gamma\n"),
        "{diff}"
    );
    let (status, code) = error_code(
        server
            .get(&format!("/sessions/{id}/turns/7/diff"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "no_changes"));

    let undone: Value = server
        .post(&format!("/sessions/{id}/undo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(undone["turn"], 1);
    assert_eq!(notes(), "alpha\nbeta\n");
    let (status, code) = error_code(
        server
            .post(&format!("/sessions/{id}/undo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (409, "nothing_to_restore"));
    let redone = server
        .post(&format!("/sessions/{id}/redo"))
        .send()
        .await
        .unwrap();
    assert_eq!(redone.status(), 200);
    assert_eq!(notes(), "alpha\ngamma\n");
    // Undo and redo are stored with the session.
    let stored: Vec<String> = server
        .store
        .events(&id)
        .unwrap()
        .iter()
        .map(|e| e.name().to_string())
        .collect();
    assert!(
        stored.ends_with(&["undo".to_string(), "redo".to_string()]),
        "{stored:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_plan_made_through_the_api_is_approved_and_carried_out() {
    let server = TestServer::start(&script(&[
        call("write", json!({"path": "notes.txt", "content": "no\n"})),
        answer("1. Replace beta with gamma.\n2. Read it back."),
        call(
            "edit",
            json!({"path": "notes.txt", "old_string": "beta", "new_string": "gamma"}),
        ),
        answer("Done."),
    ]))
    .await;
    let events = server
        .turn(json!({"message": "change beta", "mode": "plan"}))
        .await;
    let id = session_id(&events);
    let plan = events.iter().find(|e| e.event == "plan").expect("a plan");
    assert_eq!(plan.data["steps"][0], "Replace beta with gamma.");
    let notes = || std::fs::read_to_string(server.workspace.path().join("notes.txt")).unwrap();
    assert_eq!(notes(), "alpha\nbeta\n", "plan mode refused the write");
    let response = server
        .post(&format!("/sessions/{id}/plan/approve"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = SseReader::new(response).rest().await;
    assert_eq!(names(&events).last(), Some(&"done"));
    assert_eq!(notes(), "alpha\ngamma\n");
    let (status, code) = error_code(
        server
            .post(&format!("/sessions/{id}/plan/approve"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (409, "no_plan"));
    let (status, _) = error_code(
        server
            .chat(json!({"message": "x", "mode": "dance"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    server.shutdown().await;
}
