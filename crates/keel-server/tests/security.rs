//! The security rules of `keel serve`, each checked over real HTTP: a token on every
//! request, a `Host` naming the server, no cross-origin state changes, no CORS.

mod common;

use std::sync::Arc;

use common::{TestServer, answer, error_code, script};
use keel_agent::{Agent, AgentConfig};
use keel_llm::ReplayClient;
use keel_server::{Server, ServerError};
use keel_store::Store;
use keel_tools::{ToolRegistry, Workspace};
use serde_json::{Value, json};

fn one_answer() -> String {
    script(&[answer("hello")])
}

#[tokio::test]
async fn every_endpoint_needs_the_token() {
    let server = TestServer::start(&one_answer()).await;
    let http = &server.http;
    let requests = [
        http.get(server.url("/")),
        http.get(server.url("/app.js")),
        http.get(server.url("/health")),
        http.get(server.url("/openapi.json")),
        http.get(server.url("/sessions")),
        http.get(server.url("/sessions/x/events")),
        http.post(server.url("/sessions/x/cancel")),
        http.delete(server.url("/session/x")),
        http.post(server.url("/chat"))
            .json(&json!({"message": "hi"})),
        http.request(reqwest::Method::OPTIONS, server.url("/chat")),
    ];
    for request in requests {
        let response = request.send().await.unwrap();
        let url = response.url().path().to_string();
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"keel\"",
            "{url}"
        );
        assert_eq!(
            error_code(response).await,
            (401, "unauthorized".into()),
            "{url}"
        );
    }
    let wrong = [
        http.get(server.url("/sessions")).bearer_auth("wrong-token"),
        http.get(server.url("/sessions"))
            .bearer_auth(&server.token[1..]),
        http.get(server.url("/sessions"))
            .bearer_auth(format!("{}x", server.token)),
        http.get(server.url("/sessions"))
            .header("authorization", server.token.clone()),
        http.get(server.url("/sessions"))
            .header("cookie", format!("keel_token_{}=nope", server.addr.port())),
        // Another server's cookie (another port) does not count.
        http.get(server.url("/sessions"))
            .header("cookie", format!("keel_token_1={}", server.token)),
        http.get(server.url(&format!("/sessions?token={}", server.token))),
    ];
    for request in wrong {
        let response = request.send().await.unwrap();
        assert_eq!(error_code(response).await.0, 401);
    }
    // Nothing ran.
    assert!(server.store.sessions(None, 10).unwrap().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn the_token_url_sets_a_strict_http_only_cookie_that_logs_the_browser_in() {
    let server = TestServer::start(&one_answer()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http
        .get(server.url(&format!("/?token={}", server.token)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "/",
        "the token leaves the address bar"
    );
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    let name = format!("keel_token_{}", server.addr.port());
    assert!(
        cookie.starts_with(&format!("{name}={};", server.token)),
        "{cookie}"
    );
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    let page = http
        .get(server.url("/"))
        .header("cookie", pair.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let response = http
        .post(server.url("/chat"))
        .header("cookie", pair)
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("event: done"));

    let response = http
        .get(server.url("/?token=not-the-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await.0, 401);
    server.shutdown().await;
}

#[tokio::test]
async fn a_host_header_that_does_not_name_the_server_is_refused() {
    let server = TestServer::start(&one_answer()).await;
    let port = server.addr.port();
    for host in [
        format!("evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        "127.0.0.1:1".to_string(),
        format!("192.168.1.20:{port}"),
    ] {
        let response = server
            .get("/sessions")
            .header("host", host.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(response).await,
            (403, "forbidden_host".into()),
            "{host}"
        );
        let response = server
            .chat(json!({"message": "hi"}))
            .header("host", host.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(response).await.0, 403, "{host}");
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        let response = server
            .get("/health")
            .header("host", host.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{host}");
    }
    assert!(server.store.sessions(None, 10).unwrap().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn a_cross_origin_state_change_is_refused_and_no_cors_is_offered() {
    let server = TestServer::start(&script(&[answer("hello"), answer("again")])).await;
    let port = server.addr.port();
    for origin in [
        "http://evil.example".to_string(),
        format!("http://evil.example:{port}"),
        "null".to_string(),
        format!("https://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
    ] {
        for request in [
            server.chat(json!({"message": "hi"})),
            server.post("/sessions/x/cancel"),
            server.delete("/session/x"),
        ] {
            let response = request
                .header("origin", origin.clone())
                .send()
                .await
                .unwrap();
            assert!(
                response
                    .headers()
                    .get("access-control-allow-origin")
                    .is_none()
            );
            assert_eq!(
                error_code(response).await,
                (403, "forbidden_origin".into()),
                "{origin}"
            );
        }
    }
    assert!(
        server.store.sessions(None, 10).unwrap().is_empty(),
        "nothing ran"
    );

    // A cross-origin read gets no CORS grant (the browser keeps it from the page).
    let response = server
        .get("/sessions")
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let response = server
        .http
        .request(reqwest::Method::OPTIONS, server.url("/chat"))
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert!(!response.status().is_success());

    // The page's own origin may.
    let response = server
        .chat(json!({"message": "hi"}))
        .header("origin", format!("http://127.0.0.1:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("event: done"));
    server.shutdown().await;
}

async fn bind(addr: &str, token: Option<&str>) -> Result<Server, ServerError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.jsonl");
    std::fs::write(&path, one_answer()).unwrap();
    let model = ReplayClient::open(&path, "replay:test").unwrap();
    let agent = Agent::new(
        Arc::new(model),
        ToolRegistry::builtin(),
        AgentConfig::default(),
    );
    let store = Arc::new(Store::open(&dir.path().join("keel.db")).unwrap());
    Server::bind(
        addr.parse().unwrap(),
        token.map(str::to_string),
        Arc::new(agent),
        store,
        Workspace::new(dir.path()).unwrap(),
    )
    .await
}

#[tokio::test]
async fn only_loopback_may_be_bound_without_a_token() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        match bind(addr, None).await {
            Err(ServerError::TokenRequired(_)) => {}
            Err(e) => panic!("{addr}: {e}"),
            Ok(_) => panic!("{addr} was bound without a token"),
        }
    }
    assert!(matches!(
        bind("127.0.0.1:0", Some("short")).await,
        Err(ServerError::TokenTooShort { .. })
    ));
    let server = bind("127.0.0.1:0", None).await.unwrap();
    assert_eq!(server.token().len(), 64, "256 random bits, hex");
    assert!(server.generated_token());
    assert!(
        server
            .login_url()
            .ends_with(&format!("/?token={}", server.token()))
    );
    let other = bind("127.0.0.1:0", None).await.unwrap();
    assert_ne!(server.token(), other.token(), "a new token per start");
}

#[tokio::test]
async fn every_address_with_a_token_takes_ip_hosts_but_not_names() {
    let token = "a-long-enough-user-token";
    let server = TestServer::start_with(&one_answer(), "0.0.0.0:0", Some(token)).await;
    let port = server.addr.port();
    let ok = server
        .http
        .get(server.url("/health"))
        .bearer_auth(token)
        .header("host", format!("10.1.2.3:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let health: Value = ok.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let named = server
        .http
        .get(server.url("/health"))
        .bearer_auth(token)
        .header("host", format!("rebind.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(named).await.0, 403);
    let no_token = server.http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    server.shutdown().await;
}
