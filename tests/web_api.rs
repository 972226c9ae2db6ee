//! The web API over real sockets: the server on 127.0.0.1:0 with the
//! in-memory backend, a raw HTTP/1.1 client (and rustls for HTTPS).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use carebridge::hub::Live;
use carebridge::model::{Alert, AlertState, DeviceId, DeviceInfo, Kind, Reading, Severity, Time};
use carebridge::web::memory::MemoryBackend;
use carebridge::web::{WebConfig, serve};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "correct horse battery";

struct Server {
    addr: SocketAddr,
    origin: String,
    backend: Arc<MemoryBackend>,
    dir: Arc<tempfile::TempDir>,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start() -> Server {
    start_with(
        Arc::new(MemoryBackend::new()),
        Arc::new(tempfile::tempdir().unwrap()),
    )
    .await
}

async fn start_with(backend: Arc<MemoryBackend>, dir: Arc<tempfile::TempDir>) -> Server {
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
struct Resp {
    status: u16,
    head: String,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        let want = format!("{}:", name.to_ascii_lowercase());
        self.head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&want))
            .map(|l| l[want.len()..].trim().to_string())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, raw: Vec<u8>) -> Resp {
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

fn raw(method: &str, host: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
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

async fn req(s: &Server, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let stream = TcpStream::connect(s.addr).await.unwrap();
    let host = s.addr.to_string();
    exchange(stream, raw(method, &host, path, headers, body.as_bytes())).await
}

/// A logged-in browser: cookie, CSRF token and the right Origin.
struct Client {
    cookie: String,
    csrf: String,
}

impl Client {
    async fn call(&self, s: &Server, method: &str, path: &str, body: &str) -> Resp {
        let h = [
            ("Cookie", self.cookie.as_str()),
            ("Origin", s.origin.as_str()),
            ("X-CSRF-Token", self.csrf.as_str()),
        ];
        req(s, method, path, &h, body).await
    }
}

fn client_from(r: &Resp) -> Client {
    let cookie = r.header("set-cookie").expect("a session cookie");
    Client {
        cookie: cookie.split(';').next().unwrap().to_string(),
        csrf: r.json()["csrf"].as_str().unwrap().to_string(),
    }
}

fn setup_code(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("setup-code"))
        .unwrap()
        .trim()
        .to_string()
}

async fn setup(s: &Server) -> Client {
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

async fn login(s: &Server, user: &str, password: &str) -> Resp {
    let body = serde_json::json!({"username": user, "password": password}).to_string();
    req(s, "POST", "/api/v1/login", &[("Origin", &s.origin)], &body).await
}

/// Every route that needs a session, with a plausible body.
const PROTECTED: &[(&str, &str, &str)] = &[
    ("GET", "/", ""),
    ("GET", "/devices", ""),
    ("GET", "/live", ""),
    ("GET", "/alerts", ""),
    ("GET", "/rules", ""),
    ("GET", "/uplinks", ""),
    ("GET", "/system", ""),
    ("GET", "/commissioning", ""),
    ("GET", "/api/v1/session", ""),
    ("POST", "/api/v1/logout", ""),
    (
        "POST",
        "/api/v1/session/password",
        r#"{"current":"x","new":"0123456789"}"#,
    ),
    ("GET", "/api/v1/status", ""),
    ("GET", "/api/v1/devices", ""),
    ("PUT", "/api/v1/devices/pendant", r#"{"room":"hall"}"#),
    ("DELETE", "/api/v1/devices/pendant", ""),
    ("POST", "/api/v1/devices/permit-join", r#"{"seconds":60}"#),
    ("GET", "/api/v1/events", ""),
    ("GET", "/api/v1/alerts", ""),
    ("POST", "/api/v1/alerts/1/ack", ""),
    ("GET", "/api/v1/rules", ""),
    ("PUT", "/api/v1/rules", "{}"),
    ("GET", "/api/v1/uplinks", ""),
    ("GET", "/api/v1/audit", ""),
    ("GET", "/api/v1/users", ""),
    (
        "POST",
        "/api/v1/users",
        r#"{"name":"x","role":"carer","password":"0123456789"}"#,
    ),
    ("DELETE", "/api/v1/users/admin", ""),
    ("GET", "/api/v1/commissioning", ""),
    ("GET", "/api/v1/system/backup", ""),
    (
        "POST",
        "/api/v1/system/factory-reset",
        r#"{"confirm":"RESET"}"#,
    ),
    ("POST", "/api/v1/system/ota", ""),
    ("GET", "/api/v1/system/logs", ""),
    ("GET", "/api/v1/openapi.yaml", ""),
    ("GET", "/api/v1/no-such-route", ""),
];

#[tokio::test]
async fn every_route_refuses_without_a_session_except_health_login_and_setup() {
    let s = start().await;
    let _admin = setup(&s).await;
    let forged = "cb_session=".to_string() + &"ab".repeat(32);
    for (m, path, body) in PROTECTED {
        for cookie in ["", forged.as_str()] {
            let mut h = vec![("Origin", s.origin.as_str())];
            if !cookie.is_empty() {
                h.push(("Cookie", cookie));
            }
            let r = req(&s, m, path, &h, body).await;
            if path.starts_with("/api/") {
                assert_eq!(r.status, 401, "{m} {path} {cookie}: {r:?}");
                assert!(r.json()["error"].as_str().unwrap().contains("log in"));
            } else {
                assert_eq!(r.status, 303, "{m} {path}");
                assert_eq!(r.header("location").as_deref(), Some("/login"));
            }
        }
    }
    assert_eq!(req(&s, "GET", "/healthz", &[], "").await.status, 200);
    assert_eq!(req(&s, "GET", "/login", &[], "").await.status, 200);
    assert_eq!(req(&s, "GET", "/assets/app.js", &[], "").await.status, 200);
    // Nothing changed: the device is still there.
    assert!(
        s.backend
            .devices_now()
            .iter()
            .any(|d| d.room.as_deref() == Some("hall"))
    );
}

#[tokio::test]
async fn setup_code_works_once_and_a_wrong_code_is_refused() {
    let s = start().await;
    assert_eq!(
        req(&s, "GET", "/", &[], "")
            .await
            .header("location")
            .as_deref(),
        Some("/setup")
    );
    let code = setup_code(s.dir.path());
    assert_eq!(code.len(), 14, "XXXX-XXXX-XXXX");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(s.dir.path().join("setup-code"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "root-only file");
    let wrong =
        serde_json::json!({"code": "AAAA-BBBB-CCCC", "username": "admin", "password": PASSWORD});
    let r = req(
        &s,
        "POST",
        "/api/v1/setup",
        &[("Origin", &s.origin)],
        &wrong.to_string(),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["field"], "code");
    // Typed in lower case with spaces: still accepted.
    let typed = code.to_lowercase().replace('-', " ");
    let ok = serde_json::json!({"code": typed, "username": "admin", "password": PASSWORD});
    let r = req(
        &s,
        "POST",
        "/api/v1/setup",
        &[("Origin", &s.origin)],
        &ok.to_string(),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    let cookie = r.header("set-cookie").unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let again = serde_json::json!({"code": code, "username": "evil", "password": PASSWORD});
    let r = req(
        &s,
        "POST",
        "/api/v1/setup",
        &[("Origin", &s.origin)],
        &again.to_string(),
    )
    .await;
    assert_eq!(r.status, 409, "setup works once");
    assert_eq!(req(&s, "GET", "/setup", &[], "").await.status, 303);
    assert_eq!(login(&s, "admin", PASSWORD).await.status, 200);
    assert_eq!(login(&s, "evil", PASSWORD).await.status, 401);
}

#[tokio::test]
async fn state_changes_need_the_gateway_origin_and_the_csrf_token() {
    let s = start().await;
    let c = setup(&s).await;
    let body = r#"{"room":"kitchen"}"#;
    let path = "/api/v1/devices/pendant";
    let bad_origin = [
        ("Cookie", c.cookie.as_str()),
        ("Origin", "http://evil.example"),
        ("X-CSRF-Token", c.csrf.as_str()),
    ];
    let no_origin = [
        ("Cookie", c.cookie.as_str()),
        ("X-CSRF-Token", c.csrf.as_str()),
    ];
    let no_token = [("Cookie", c.cookie.as_str()), ("Origin", s.origin.as_str())];
    let wrong_token = [
        ("Cookie", c.cookie.as_str()),
        ("Origin", s.origin.as_str()),
        ("X-CSRF-Token", "00"),
    ];
    let cross_site = [
        ("Cookie", c.cookie.as_str()),
        ("Origin", s.origin.as_str()),
        ("X-CSRF-Token", c.csrf.as_str()),
        ("Sec-Fetch-Site", "cross-site"),
    ];
    for h in [
        &bad_origin[..],
        &no_origin,
        &no_token,
        &wrong_token,
        &cross_site,
    ] {
        let r = req(&s, "PUT", path, h, body).await;
        assert_eq!(r.status, 403, "{h:?}: {r:?}");
    }
    assert_eq!(
        s.backend.devices_now()[0].room.as_deref(),
        Some("hall"),
        "nothing changed"
    );
    // Login CSRF: a foreign page cannot log the victim in either.
    let login_body = serde_json::json!({"username": "admin", "password": PASSWORD}).to_string();
    let r = req(
        &s,
        "POST",
        "/api/v1/login",
        &[("Origin", "http://evil.example")],
        &login_body,
    )
    .await;
    assert_eq!(r.status, 403);
    let r = c.call(&s, "PUT", path, body).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.backend.devices_now()[0].room.as_deref(), Some("kitchen"));
}

#[tokio::test]
async fn repeated_wrong_passwords_are_throttled_per_address() {
    let s = start().await;
    let _ = setup(&s).await;
    for i in 0..5 {
        let r = login(&s, "admin", "wrong password!").await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r = login(&s, "admin", "wrong password!").await;
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.json()["error"].as_str().unwrap().contains("try again"));
    // Even the right password waits: the throttle does not leak success.
    assert_eq!(login(&s, "admin", PASSWORD).await.status, 429);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(login(&s, "admin", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn hostile_values_are_refused_with_a_message_naming_the_field() {
    let s = start().await;
    let c = setup(&s).await;
    let long = "x".repeat(100 * 1024);
    let cases: Vec<(&str, &str, String, &str)> = vec![
        (
            "PUT",
            "/api/v1/devices/pendant",
            r#"{"room":"hall; rm -rf /"}"#.into(),
            "room",
        ),
        (
            "PUT",
            "/api/v1/devices/pendant",
            r#"{"role":"$(reboot)"}"#.into(),
            "role",
        ),
        (
            "PUT",
            "/api/v1/devices/pendant",
            format!(r#"{{"name":"{long}"}}"#),
            "name",
        ),
        (
            "PUT",
            "/api/v1/devices/pendant",
            r#"{"name":42}"#.into(),
            "name",
        ),
        (
            "PUT",
            "/api/v1/devices/pendant",
            r#"{"room":["hall"]}"#.into(),
            "room",
        ),
        (
            "PUT",
            "/api/v1/devices/pendant",
            r#"{"shell":"`id`"}"#.into(),
            "shell",
        ),
        ("PUT", "/api/v1/devices/pendant", r#"[1,2]"#.into(), "body"),
        ("PUT", "/api/v1/devices/pendant", "not json".into(), "body"),
        (
            "PUT",
            "/api/v1/devices/a;b",
            r#"{"room":"hall"}"#.into(),
            "id",
        ),
        (
            "POST",
            "/api/v1/devices/permit-join",
            r#"{"seconds":"60"}"#.into(),
            "seconds",
        ),
        (
            "POST",
            "/api/v1/devices/permit-join",
            r#"{"seconds":100000}"#.into(),
            "seconds",
        ),
        (
            "POST",
            "/api/v1/users",
            r#"{"name":"../root","role":"carer","password":"0123456789"}"#.into(),
            "name",
        ),
        (
            "POST",
            "/api/v1/users",
            r#"{"name":"bob","role":"root","password":"0123456789"}"#.into(),
            "role",
        ),
        (
            "POST",
            "/api/v1/users",
            r#"{"name":"bob","role":"carer","password":"short"}"#.into(),
            "password",
        ),
        (
            "POST",
            "/api/v1/users",
            format!(r#"{{"name":"{long}","role":"carer","password":"0123456789"}}"#),
            "name",
        ),
        (
            "POST",
            "/api/v1/system/factory-reset",
            r#"{"confirm":"yes"}"#.into(),
            "confirm",
        ),
        ("POST", "/api/v1/alerts/abc/ack", String::new(), "id"),
    ];
    for (m, path, body, field) in cases {
        let r = c.call(&s, m, path, &body).await;
        assert_eq!(
            r.status,
            400,
            "{m} {path} {}: {r:?}",
            &body[..body.len().min(60)]
        );
        let j = r.json();
        assert_eq!(j["field"], field, "{j}");
        assert!(j["error"].as_str().unwrap().starts_with(field), "{j}");
        assert!(
            j["error"].as_str().unwrap().len() < 300,
            "no echo of huge input"
        );
    }
    let huge = format!(r#"{{"name":"{}"}}"#, "y".repeat(300 * 1024));
    let r = c.call(&s, "PUT", "/api/v1/devices/pendant", &huge).await;
    assert_eq!(r.status, 413);
    let d = &s.backend.devices_now()[0];
    assert_eq!(
        (d.name.as_deref(), d.room.as_deref()),
        (Some("Pendant"), Some("hall"))
    );
}

#[tokio::test]
async fn security_headers_are_on_pages_api_and_errors() {
    let s = start().await;
    let c = setup(&s).await;
    for (path, cookie) in [
        ("/healthz", ""),
        ("/login", ""),
        ("/", c.cookie.as_str()),
        ("/api/v1/status", c.cookie.as_str()),
        ("/api/v1/nope", ""),
    ] {
        let h: Vec<(&str, &str)> = if cookie.is_empty() {
            vec![]
        } else {
            vec![("Cookie", cookie)]
        };
        let r = req(&s, "GET", path, &h, "").await;
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert_eq!(
            r.header("x-frame-options").as_deref(),
            Some("DENY"),
            "{path}"
        );
        assert_eq!(
            r.header("referrer-policy").as_deref(),
            Some("no-referrer"),
            "{path}"
        );
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            r.header("cache-control").as_deref(),
            Some("no-store"),
            "{path}"
        );
    }
    let page = req(&s, "GET", "/", &[("Cookie", &c.cookie)], "").await;
    assert!(
        !page.body.contains("<script>") && !page.body.contains("style="),
        "no inline code"
    );
}

#[tokio::test]
async fn carer_sees_status_and_acknowledges_but_cannot_configure() {
    let s = start().await;
    let admin = setup(&s).await;
    let r = admin
        .call(
            &s,
            "POST",
            "/api/v1/users",
            &serde_json::json!({"name": "carol", "role": "carer", "password": PASSWORD})
                .to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let carer = client_from(&login(&s, "carol", PASSWORD).await);
    s.backend.inject(Live::Alert(panic_alert()));
    let id = wait_for_alert(&s, &carer).await;
    for (m, path, body) in [
        ("PUT", "/api/v1/devices/pendant", r#"{"room":"kitchen"}"#),
        ("DELETE", "/api/v1/devices/pendant", ""),
        ("POST", "/api/v1/devices/permit-join", r#"{"seconds":60}"#),
        ("GET", "/api/v1/users", ""),
        ("GET", "/api/v1/audit", ""),
        ("GET", "/api/v1/system/backup", ""),
        (
            "POST",
            "/api/v1/system/factory-reset",
            r#"{"confirm":"RESET"}"#,
        ),
    ] {
        assert_eq!(
            carer.call(&s, m, path, body).await.status,
            403,
            "{m} {path}"
        );
    }
    assert_eq!(
        carer.call(&s, "GET", "/api/v1/status", "").await.status,
        200
    );
    let r = carer
        .call(&s, "POST", &format!("/api/v1/alerts/{id}/ack"), "")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["alert"]["acked_by"], "carol");
    assert_eq!(
        carer
            .call(&s, "POST", &format!("/api/v1/alerts/{id}/ack"), "")
            .await
            .status,
        409
    );
    let audit = admin.call(&s, "GET", "/api/v1/audit", "").await.json();
    let actions: Vec<_> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["user"].clone(), e["action"].clone()))
        .collect();
    assert!(
        actions.contains(&("carol".into(), "alert.ack".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("admin".into(), "user.create".into())),
        "{actions:?}"
    );
}

fn panic_alert() -> Alert {
    Alert {
        rule: "panic".into(),
        severity: Severity::Urgent,
        state: AlertState::Raised,
        device: DeviceId::new("pendant").unwrap(),
        room: Some("hall".into()),
        at: Time::now(),
        message: "Panic button pressed in the hall".into(),
        value: Some(1.0),
        kind: Some(Kind::Panic),
    }
}

async fn wait_for_alert(s: &Server, c: &Client) -> u64 {
    for _ in 0..100 {
        let j = c.call(s, "GET", "/api/v1/alerts", "").await.json();
        if let Some(id) = j["open"][0]["id"].as_u64() {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("alert never showed up");
}

#[tokio::test]
async fn device_changes_are_audited_with_who_and_what() {
    let s = start().await;
    let c = setup(&s).await;
    let r = c
        .call(
            &s,
            "PUT",
            "/api/v1/devices/pendant",
            r#"{"name":"Red pendant","room":"lounge"}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        c.call(&s, "PUT", "/api/v1/devices/ghost", r#"{"room":"x"}"#)
            .await
            .status,
        404
    );
    let e = &c.call(&s, "GET", "/api/v1/audit", "").await.json()["entries"][0];
    assert_eq!(e["user"], "admin");
    assert_eq!(e["action"], "device.update");
    assert!(e["detail"].as_str().unwrap().contains("lounge"), "{e}");
    assert!(e["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        c.call(&s, "DELETE", "/api/v1/devices/pendant", "")
            .await
            .status,
        200
    );
    assert!(s.backend.devices_now().is_empty());
}

#[tokio::test]
async fn live_events_reach_a_logged_in_event_stream() {
    let s = start().await;
    let c = setup(&s).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let host = s.addr.to_string();
    stream
        .write_all(&raw(
            "GET",
            &host,
            "/api/v1/events",
            &[("Cookie", &c.cookie)],
            b"",
        ))
        .await
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut injected = false;
    while !seen.contains("kitchen-temp") {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if seen.contains("event:hello") && !injected {
            injected = true;
            let r = Reading::new(
                DeviceId::new("kitchen-temp").unwrap(),
                Kind::Temperature,
                19.5,
                Time::now(),
            )
            .unwrap();
            s.backend.inject(Live::Reading(r));
        }
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(seen.contains(r#""type":"reading""#), "{seen}");
    let d = c.call(&s, "GET", "/api/v1/devices", "").await.json();
    let kt = d["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "kitchen-temp")
        .unwrap()
        .clone();
    assert_eq!(kt["kinds"], serde_json::json!(["temperature"]), "{kt}");
}

#[tokio::test]
async fn pairing_says_the_coordinator_is_not_configured_and_stubs_say_so() {
    let s = start().await;
    let c = setup(&s).await;
    let r = c
        .call(
            &s,
            "POST",
            "/api/v1/devices/permit-join",
            r#"{"seconds":120}"#,
        )
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "Zigbee coordinator not configured");
    let r = c.call(&s, "POST", "/api/v1/system/ota", "").await;
    assert_eq!(r.status, 501);
    assert!(r.json()["error"].as_str().unwrap().contains("OTA"));
    assert_eq!(
        c.call(&s, "GET", "/api/v1/system/logs", "").await.status,
        501
    );
    let r = c.call(&s, "GET", "/api/v1/rules", "").await.json();
    assert_eq!(r["available"], false);
    let b = c.call(&s, "GET", "/api/v1/system/backup", "").await;
    assert!(
        b.header("content-disposition")
            .unwrap()
            .contains("attachment")
    );
    assert!(
        !b.body.contains("hash") && !b.body.contains("salt"),
        "no secrets in the backup"
    );
}

#[tokio::test]
async fn accounts_survive_a_restart_and_factory_reset_brings_back_setup() {
    let backend = Arc::new(MemoryBackend::new());
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let s = start_with(backend.clone(), dir.clone()).await;
    let c = setup(&s).await;
    let code = setup_code(s.dir.path());
    drop(s);
    let s = start_with(backend, dir).await;
    assert_eq!(setup_code(s.dir.path()), code, "the label code stays");
    assert_eq!(
        c.call(&s, "GET", "/api/v1/session", "").await.status,
        401,
        "sessions are not persisted"
    );
    let c = client_from(&login(&s, "admin", PASSWORD).await);
    let r = c
        .call(
            &s,
            "POST",
            "/api/v1/system/factory-reset",
            r#"{"confirm":"RESET"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(s.backend.devices_now().is_empty());
    assert_eq!(c.call(&s, "GET", "/api/v1/session", "").await.status, 401);
    assert_eq!(login(&s, "admin", PASSWORD).await.status, 401);
    let j = req(&s, "GET", "/api/v1/setup", &[], "").await.json();
    assert_eq!(j["needed"], true);
    setup(&s).await;
}

#[tokio::test]
async fn https_is_the_default_with_a_generated_certificate_and_secure_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(MemoryBackend::new());
    let cfg = WebConfig {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    assert!(cfg.tls);
    let sd = CancellationToken::new();
    let (addr, _t) = serve(cfg, backend, dir.path(), sd.clone()).await.unwrap();
    let pem = std::fs::read(dir.path().join("web/cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cc = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cc));
    let tls = |name: &'static str| {
        let connector = connector.clone();
        async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            connector
                .connect(rustls::pki_types::ServerName::try_from(name).unwrap(), tcp)
                .await
                .unwrap()
        }
    };
    let host = format!("localhost:{}", addr.port());
    let r = exchange(
        tls("localhost").await,
        raw("GET", &host, "/healthz", &[], b""),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let code = setup_code(dir.path());
    let origin = format!("https://{host}");
    let body =
        serde_json::json!({"code": code, "username": "admin", "password": PASSWORD}).to_string();
    let r = exchange(
        tls("localhost").await,
        raw(
            "POST",
            &host,
            "/api/v1/setup",
            &[("Origin", &origin)],
            body.as_bytes(),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    let cookie = r.header("set-cookie").unwrap();
    assert!(
        cookie.starts_with("__Host-cb_session=") && cookie.contains("; Secure"),
        "{cookie}"
    );
    // Plain HTTP to the TLS port gets nothing useful.
    let r = req(
        &Server {
            addr,
            origin: String::new(),
            backend: Arc::new(MemoryBackend::new()),
            dir: Arc::new(tempfile::tempdir().unwrap()),
            shutdown: sd.clone(),
        },
        "GET",
        "/healthz",
        &[],
        "",
    )
    .await;
    assert_ne!(r.status, 200);
}

#[tokio::test]
async fn plain_http_off_loopback_and_a_busy_port_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(MemoryBackend::new());
    let cfg = WebConfig {
        listen: "0.0.0.0:0".into(),
        tls: false,
        ..Default::default()
    };
    let e = serve(cfg, b.clone(), dir.path(), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("web.tls"), "{e}");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = WebConfig::demo(busy.local_addr().unwrap().to_string());
    let e = serve(cfg, b, dir.path(), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("web.listen"), "{e:#}");
}

#[tokio::test]
async fn changing_your_password_needs_the_current_one_and_ends_other_sessions() {
    let s = start().await;
    let c = setup(&s).await;
    let other = client_from(&login(&s, "admin", PASSWORD).await);
    let r = c
        .call(
            &s,
            "POST",
            "/api/v1/session/password",
            r#"{"current":"not it at all","new":"a new long password"}"#,
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "current");
    let r = c
        .call(
            &s,
            "POST",
            "/api/v1/session/password",
            &serde_json::json!({"current": PASSWORD, "new": "short"}).to_string(),
        )
        .await;
    assert_eq!(r.json()["field"], "new");
    let r = c
        .call(
            &s,
            "POST",
            "/api/v1/session/password",
            &serde_json::json!({"current": PASSWORD, "new": "a new long password"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        c.call(&s, "GET", "/api/v1/session", "").await.status,
        200,
        "this session stays"
    );
    assert_eq!(
        other.call(&s, "GET", "/api/v1/session", "").await.status,
        401,
        "others end"
    );
    assert_eq!(login(&s, "admin", PASSWORD).await.status, 401);
    assert_eq!(login(&s, "admin", "a new long password").await.status, 200);
}
