//! The rules that keep a local server that runs shell commands from being a remote
//! code execution target:
//!
//! - the `Host` header must name this server (loopback names, or the address it
//!   listens on): a page on another site cannot reach it through DNS rebinding;
//! - a state-changing request whose `Origin` is another site is refused: no
//!   cross-site request forgery, and no CORS headers are ever sent;
//! - every request carries the token, as `Authorization: Bearer …` or as the cookie
//!   that opening `/?token=…` sets (HttpOnly, SameSite=Strict).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

pub struct Guard {
    token: String,
    addr: SocketAddr,
    cookie: String,
}

impl Guard {
    pub fn new(token: String, addr: SocketAddr) -> Self {
        // Cookies are not kept apart by port: one name per port, so two servers on
        // one machine do not overwrite each other's.
        let cookie = format!("keel_token_{}", addr.port());
        Self {
            token,
            addr,
            cookie,
        }
    }

    /// Whether `host` (a `Host` header) names this server.
    fn host_allowed(&self, host: &str) -> bool {
        let (name, port) = split_host(host);
        if let Some(port) = port
            && port != self.addr.port()
        {
            return false;
        }
        if name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        match name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => {
                ip.is_loopback()
                    || ip == self.addr.ip()
                    // Listening on every address: any of the machine's addresses may be
                    // used, but never a name (that is what rebinding needs).
                    || self.addr.ip().is_unspecified()
            }
            Err(_) => false,
        }
    }

    fn token_matches(&self, given: &str) -> bool {
        constant_time_eq(given.as_bytes(), self.token.as_bytes())
    }

    fn presented_token<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        if let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            return value.strip_prefix("Bearer ").map(str::trim);
        }
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.cookie)
            .map(|(_, value)| value)
    }

    fn login_cookie(&self) -> String {
        format!(
            "{}={}; HttpOnly; SameSite=Strict; Path=/",
            self.cookie, self.token
        )
    }
}

/// Splits `host[:port]` (with `[v6]:port`).
fn split_host(host: &str) -> (&str, Option<u16>) {
    if host.starts_with('[') {
        return match host.rsplit_once("]:") {
            Some((name, port)) => (&host[..name.len() + 1], port.parse().ok().or(Some(0))),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, port.parse().ok().or(Some(0))),
        _ => (host, None),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware applying the rules to every request.
pub async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !guard.host_allowed(host) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            format!(
                "Host `{host}` is not this server; use http://127.0.0.1:{0}/ or http://localhost:{0}/",
                guard.addr.port()
            ),
        )
        .into_response();
    }
    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    if !safe && let Some(origin) = headers.get(header::ORIGIN) {
        let same = origin
            .to_str()
            .ok()
            .and_then(|o| o.strip_prefix("http://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !same {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                format!(
                    "cross-origin request from {} refused",
                    origin.to_str().unwrap_or("an unreadable origin")
                ),
            )
            .into_response();
        }
    }
    // Opening the printed URL: the token moves from the address into a cookie, and
    // the address bar (and history) keeps only `/`.
    if request.method() == Method::GET
        && request.uri().path() == "/"
        && let Some(token) = query_token(request.uri())
    {
        if !guard.token_matches(&token) {
            return unauthorized("the token in the address is wrong");
        }
        let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
        if let Ok(cookie) = HeaderValue::from_str(&guard.login_cookie()) {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        return response;
    }
    match guard.presented_token(headers) {
        None => unauthorized(
            "a token is required: send `Authorization: Bearer <token>`, or open the URL `keel serve` printed",
        ),
        Some(token) if !guard.token_matches(token) => unauthorized("the token is wrong"),
        Some(_) => {
            let mut response = next.run(request).await;
            let headers = response.headers_mut();
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            response
        }
    }
}

fn query_token(uri: &axum::http::Uri) -> Option<String> {
    let Query(mut query) = Query::<HashMap<String, String>>::try_from_uri(uri).ok()?;
    query.remove("token")
}

fn unauthorized(message: &str) -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(addr: &str) -> Guard {
        Guard::new("secret".into(), addr.parse().unwrap())
    }

    #[test]
    fn hosts_naming_this_server_pass() {
        let g = guard("127.0.0.1:8080");
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "127.0.0.1",
        ] {
            assert!(g.host_allowed(host), "{host}");
        }
        for host in [
            "evil.example:8080",
            "127.0.0.1:9090",
            "",
            "localhost.evil.example",
            "10.0.0.5:8080",
        ] {
            assert!(!g.host_allowed(host), "{host}");
        }
        let any = guard("0.0.0.0:8080");
        assert!(any.host_allowed("10.0.0.5:8080"));
        assert!(!any.host_allowed("rebind.example:8080"));
    }

    #[test]
    fn tokens_compare_whole() {
        let g = guard("127.0.0.1:1");
        assert!(g.token_matches("secret"));
        assert!(!g.token_matches("secre"));
        assert!(!g.token_matches("secreT"));
        let uri = "/?a=1&token=ab%2Fc".parse().unwrap();
        assert_eq!(query_token(&uri), Some("ab/c".into()));
    }
}
