//! A scripted HTTP server on 127.0.0.1 for the faults a real model server will not
//! produce on demand: bodies split anywhere, streams cut or stalled, error statuses.
//! It speaks just enough HTTP/1.1: one request per connection, bodies delimited by
//! closing the connection.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One piece of a scripted response body.
#[derive(Clone, Debug)]
pub enum Part {
    Bytes(Vec<u8>),
    Sleep(Duration),
    /// Stop sending but keep the connection open (a stalled server).
    Hang,
    /// Send keep-alive comments until the client goes away, then record that.
    KeepAliveUntilClosed,
}

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub parts: Vec<Part>,
}

impl Reply {
    /// No response: the request is read, then the connection closed (a server that
    /// closed a kept-alive connection just as the client sent on it).
    pub fn close() -> Self {
        Reply {
            status: 0,
            content_type: "",
            parts: Vec::new(),
        }
    }

    pub fn json(status: u16, body: &str) -> Self {
        Reply {
            status,
            content_type: "application/json",
            parts: vec![Part::Bytes(body.as_bytes().to_vec())],
        }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Reply {
            status,
            content_type: "text/html",
            parts: vec![Part::Bytes(body.as_bytes().to_vec())],
        }
    }

    /// An event stream sent in pieces of `size` bytes, each written separately.
    pub fn sse_in_pieces(body: &str, size: usize) -> Self {
        Reply {
            status: 200,
            content_type: "text/event-stream",
            parts: body
                .as_bytes()
                .chunks(size)
                .flat_map(|c| {
                    [
                        Part::Bytes(c.to_vec()),
                        Part::Sleep(Duration::from_millis(1)),
                    ]
                })
                .collect(),
        }
    }

    pub fn stream(content_type: &'static str, parts: Vec<Part>) -> Self {
        Reply {
            status: 200,
            content_type,
            parts,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: String,
    pub body: String,
}

#[derive(Default)]
struct Shared {
    routes: Mutex<HashMap<String, VecDeque<Reply>>>,
    /// Served to every request of a path once its queue is empty.
    fixed: Mutex<HashMap<String, Reply>>,
    requests: Mutex<Vec<Recorded>>,
    client_gone: AtomicBool,
}

pub struct MockServer {
    pub url: String,
    shared: Arc<Shared>,
}

impl MockServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        let serving = Arc::clone(&shared);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let shared = Arc::clone(&serving);
                tokio::spawn(serve(socket, shared));
            }
        });
        MockServer { url, shared }
    }

    /// Queues a reply for the next request to `path`.
    pub fn push(&self, path: &str, reply: Reply) -> &Self {
        self.shared
            .routes
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default()
            .push_back(reply);
        self
    }

    /// The reply for every request to `path` once its queue is used up.
    pub fn always(&self, path: &str, reply: Reply) -> &Self {
        self.shared
            .fixed
            .lock()
            .unwrap()
            .insert(path.to_string(), reply);
        self
    }

    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        self.shared
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn client_gone(&self) -> bool {
        self.shared.client_gone.load(Ordering::SeqCst)
    }
}

async fn serve(mut socket: TcpStream, shared: Arc<Shared>) {
    let _ = socket.set_nodelay(true);
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let mut request_line = head.lines().next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).to_string();
    shared.requests.lock().unwrap().push(Recorded {
        method,
        path: path.clone(),
        headers: head,
        body,
    });
    let queued = shared
        .routes
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front);
    let reply = queued
        .or_else(|| shared.fixed.lock().unwrap().get(&path).cloned())
        .unwrap_or_else(|| Reply::json(404, "{\"error\": \"no such route in the mock\"}"));
    if reply.status == 0 {
        return;
    }
    let head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nConnection: close\r\n\r\n",
        reply.status, reply.content_type
    );
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    for part in reply.parts {
        match part {
            Part::Bytes(bytes) => {
                if socket.write_all(&bytes).await.is_err() || socket.flush().await.is_err() {
                    return;
                }
            }
            Part::Sleep(d) => tokio::time::sleep(d).await,
            Part::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            Part::KeepAliveUntilClosed => loop {
                if socket.write_all(b": keep-alive\n\n").await.is_err()
                    || socket.flush().await.is_err()
                {
                    shared.client_gone.store(true, Ordering::SeqCst);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            },
        }
    }
    let _ = socket.shutdown().await;
}
