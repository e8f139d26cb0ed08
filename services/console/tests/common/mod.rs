//! What the console's tests share: a [`TestSystem`] with a policy of three
//! callers, the console started in-process against it, and a small HTTP/1
//! client that keeps the session cookie like a browser.
#![allow(dead_code)]

use std::{net::SocketAddr, path::Path, time::Duration};

use http_body_util::{BodyExt, Full};
use hyper::{Request, body::Bytes};
use hyper_util::rt::TokioIo;
use veltrix_testsystem::TestSystem;

pub const ADMIN: &str = "console-admin-token-0123456789";
pub const READER: &str = "console-reader-token-0123456789";

/// admin: read, write and admin everywhere; reader: read everywhere; the
/// client certificate `dns:console.example`: read and write everywhere.
pub fn write_policy(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("auth.yaml");
    let text = format!(
        "tokens:\n  - {{identity: admin, sha256: \"{}\"}}\n  - {{identity: reader, sha256: \"{}\"}}\n\
         grants:\n  - {{identity: admin, namespaces: [\"**\"], roles: [read, write, admin]}}\n\
         \x20 - {{identity: reader, namespaces: [\"**\"], roles: [read]}}\n\
         \x20 - {{identity: \"dns:console.example\", namespaces: [\"**\"], roles: [read, write]}}\n",
        veltrix_auth_digest(ADMIN),
        veltrix_auth_digest(READER),
    );
    std::fs::write(&path, text).expect("write the policy");
    path
}

fn veltrix_auth_digest(token: &str) -> String {
    veltrix_auth::token_digest(token)
}

pub struct Env {
    pub system: TestSystem,
    pub console: veltrix_console::Running,
    _dir: tempfile::TempDir,
}

/// Both services with authentication, and a console in front of them.
pub async fn start(adjust: impl FnOnce(&mut veltrix_console::Config)) -> Env {
    start_with(None, adjust).await
}

/// Like [`start`], the services serving TLS with `tls` when given.
pub async fn start_with(
    tls: Option<veltrix_server::tls::TlsArgs>,
    adjust: impl FnOnce(&mut veltrix_console::Config),
) -> Env {
    let dir = tempfile::tempdir().expect("a temp dir");
    let policy = write_policy(dir.path());
    let builder = TestSystem::builder().auth(&policy);
    let system = match tls {
        Some(tls) => builder.tls(tls).start().await,
        None => builder.start().await,
    };
    let console = start_console(&system, adjust).await;
    Env { system, console, _dir: dir }
}

pub fn console_config(system: &TestSystem) -> veltrix_console::Config {
    use clap::Parser;
    let mut config =
        veltrix_console::Config::parse_from(["veltrix-console", "--listen", "127.0.0.1:0", "--insecure-cookies"]);
    config.command_url = system.command_url();
    config.query_url = system.query_url();
    config
}

pub async fn start_console(
    system: &TestSystem,
    adjust: impl FnOnce(&mut veltrix_console::Config),
) -> veltrix_console::Running {
    let mut config = console_config(system);
    adjust(&mut config);
    veltrix_console::start(config).await.expect("the console starts")
}

/// One answer: status, headers and body.
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: serde_json::Value,
    pub text: String,
}

/// A browser's view of the console: one cookie jar (the session cookie) and
/// the CSRF token the app got from GET /api/session.
pub struct Browser {
    pub addr: SocketAddr,
    pub cookie: Option<String>,
    pub csrf: String,
}

impl Browser {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, cookie: None, csrf: String::new() }
    }

    /// Signs in with `token` and keeps the cookie and CSRF token.
    pub async fn sign_in(addr: SocketAddr, token: &str) -> Self {
        let mut browser = Self::new(addr);
        let answer = browser.send("POST", "/api/session", Some(serde_json::json!({ "token": token })), &[]).await;
        assert_eq!(answer.status, 200, "sign-in: {}", answer.text);
        browser.csrf = answer.body["csrf"].as_str().expect("a CSRF token").to_owned();
        browser
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, None, &[]).await
    }

    /// A write as the web app sends it: JSON, with the CSRF token.
    pub async fn write(&mut self, method: &str, path: &str, body: serde_json::Value) -> Answer {
        let csrf = self.csrf.clone();
        self.send(method, path, Some(body), &[("x-csrf-token", &csrf)]).await
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let (status, response_headers, bytes) = self.raw(method, path, body, headers).await;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Answer { status, headers: response_headers, body, text }
    }

    async fn raw(
        &mut self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> (u16, hyper::HeaderMap, Bytes) {
        let mut sender = connect(self.addr).await;
        let mut request = Request::builder().method(method).uri(path);
        if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
            request = request.header("host", self.addr.to_string());
        }
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        let response = sender.send_request(request.body(Full::new(body)).expect("a request")).await.expect("an answer");
        let status = response.status().as_u16();
        let response_headers = response.headers().clone();
        if let Some(set) = response_headers.get("set-cookie").and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap_or_default().to_owned();
            self.cookie = (!pair.ends_with('=')).then_some(pair);
        }
        let bytes = response.into_body().collect().await.expect("the body").to_bytes();
        (status, response_headers, bytes)
    }

    /// Opens an SSE stream; answers its status and a reader of its events.
    pub async fn events(&mut self, path: &str, headers: &[(&str, &str)]) -> (u16, Events) {
        let mut sender = connect(self.addr).await;
        let mut request =
            Request::builder().uri(path).header("host", self.addr.to_string()).header("accept", "text/event-stream");
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response =
            sender.send_request(request.body(Full::new(Bytes::new())).expect("a request")).await.expect("an answer");
        let status = response.status().as_u16();
        (status, Events { body: response.into_body(), buffer: String::new() })
    }
}

async fn connect(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the console");
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("HTTP/1 handshake");
    tokio::spawn(connection);
    sender
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: String,
    pub id: String,
    pub data: serde_json::Value,
}

pub struct Events {
    body: hyper::body::Incoming,
    buffer: String,
}

impl Events {
    /// The next event that is not `progress` (keep-alive comments skipped).
    pub async fn next_change(&mut self) -> Event {
        loop {
            let event = self.next().await;
            if event.kind != "progress" {
                return event;
            }
        }
    }

    /// Whether the stream ends (within 10 s) without another change.
    pub async fn ended(&mut self) -> bool {
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match self.body.frame().await {
                    None | Some(Err(_)) => return true,
                    Some(Ok(frame)) => {
                        let data = frame.into_data().unwrap_or_default();
                        if String::from_utf8_lossy(&data).contains("event: changes") {
                            return false;
                        }
                    }
                }
            }
        });
        ended.await.unwrap_or(false)
    }

    pub async fn next(&mut self) -> Event {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let mut event = Event { kind: "message".into(), id: String::new(), data: serde_json::Value::Null };
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            event.kind = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("id:") {
                            event.id = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if data.is_empty() && event.id.is_empty() {
                        continue; // a keep-alive comment
                    }
                    event.data = serde_json::from_str(&data).unwrap_or(serde_json::Value::Null);
                    return event;
                }
                let frame = self.body.frame().await.expect("the stream is open").expect("a frame");
                if let Ok(chunk) = frame.into_data() {
                    self.buffer.push_str(&String::from_utf8_lossy(&chunk));
                }
            }
        })
        .await
        .expect("an event within 10 s")
    }
}
