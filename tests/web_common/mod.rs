//! Shared harness for the web tests: the server on 127.0.0.1:0 over the
//! in-memory backend, and a raw HTTP/1.1 client that behaves like a browser
//! (cookie, Origin, CSRF token).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use carebridge::hub::Live;
use carebridge::model::{Alert, AlertState, DeviceId, DeviceInfo, Kind, Severity};
use carebridge::web::memory::MemoryBackend;
use carebridge::web::{WebConfig, serve};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

pub const PASSWORD: &str = "correct horse battery";

pub struct Server {
    pub addr: SocketAddr,
    pub origin: String,
    pub backend: Arc<MemoryBackend>,
    pub dir: Arc<tempfile::TempDir>,
    pub shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start() -> Server {
    start_with(
        Arc::new(MemoryBackend::new()),
        Arc::new(tempfile::tempdir().unwrap()),
    )
    .await
}

pub async fn start_with(backend: Arc<MemoryBackend>, dir: Arc<tempfile::TempDir>) -> Server {
    let cfg = WebConfig::demo("127.0.0.1:0".into());
    let shutdown = CancellationToken::new();
    let (addr, _task) = serve(cfg, backend.clone(), dir.path(), shutdown.clone())
        .await
        .unwrap();
    backend.inject(Live::Device(DeviceInfo {
        id: Some(DeviceId::new("pendant").unwrap()),
        name: Some("Pendant".into()),
        room: Some("hall".into()),
        ..Default::default()
    }));
    Server {
        addr,
        origin: format!("http://{addr}"),
        backend,
        dir,
        shutdown,
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        let want = format!("{}:", name.to_ascii_lowercase());
        self.head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&want))
            .map(|l| l[want.len()..].trim().to_string())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, raw: Vec<u8>) -> Resp {
    s.write_all(&raw).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Resp {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

pub fn raw(method: &str, host: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        r.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    r.push_str("\r\n");
    let mut v = r.into_bytes();
    v.extend_from_slice(body);
    v
}

pub async fn req(
    s: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let stream = TcpStream::connect(s.addr).await.unwrap();
    let host = s.addr.to_string();
    exchange(stream, raw(method, &host, path, headers, body.as_bytes())).await
}

/// A logged-in browser: cookie, CSRF token and the right Origin.
pub struct Client {
    pub cookie: String,
    pub csrf: String,
}

impl Client {
    pub async fn call(&self, s: &Server, method: &str, path: &str, body: &str) -> Resp {
        let h = [
            ("Cookie", self.cookie.as_str()),
            ("Origin", s.origin.as_str()),
            ("X-CSRF-Token", self.csrf.as_str()),
        ];
        req(s, method, path, &h, body).await
    }
}

pub fn client_from(r: &Resp) -> Client {
    let cookie = r.header("set-cookie").expect("a session cookie");
    Client {
        cookie: cookie.split(';').next().unwrap().to_string(),
        csrf: r.json()["csrf"].as_str().unwrap().to_string(),
    }
}

pub fn setup_code(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("setup-code"))
        .unwrap()
        .trim()
        .to_string()
}

pub async fn setup(s: &Server) -> Client {
    let body = serde_json::json!({"code": setup_code(s.dir.path()), "username": "admin", "password": PASSWORD});
    let r = req(
        s,
        "POST",
        "/api/v1/setup",
        &[("Origin", &s.origin)],
        &body.to_string(),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    client_from(&r)
}

pub async fn login(s: &Server, user: &str, password: &str) -> Resp {
    let body = serde_json::json!({"username": user, "password": password}).to_string();
    req(s, "POST", "/api/v1/login", &[("Origin", &s.origin)], &body).await
}

pub fn panic_alert() -> Alert {
    Alert {
        uid: None,
        rule: "panic".into(),
        severity: Severity::Urgent,
        state: AlertState::Raised,
        device: DeviceId::new("pendant").unwrap(),
        room: Some("hall".into()),
        at: carebridge::wall::now(),
        message: "Panic button pressed in the hall".into(),
        value: Some(1.0),
        kind: Some(Kind::Panic),
        time_trusted: true,
        instance: None,
    }
}

pub async fn wait_for_alert(s: &Server, c: &Client) -> u64 {
    for _ in 0..100 {
        let j = c.call(s, "GET", "/api/v1/alerts", "").await.json();
        if let Some(id) = j["open"][0]["id"].as_u64() {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("alert never showed up");
}
