//! Web API security over real sockets: sessions on every route, setup
//! code, Origin + CSRF, throttling, hostile input, headers, passwords.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod web_common;

use std::time::Duration;

use web_common::*;

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
    ("POST", "/api/v1/mode", r#"{"mode":"away"}"#),
    ("GET", "/api/v1/rules", ""),
    ("PUT", "/api/v1/rules", "{}"),
    ("POST", "/api/v1/rules/try", r#"{"text":""}"#),
    ("POST", "/api/v1/rules/rollback", ""),
    ("POST", "/api/v1/uplinks/mqtt/test", ""),
    ("POST", "/api/v1/system/restore", "{}"),
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
    ("GET", "/api/v1/device-credentials", ""),
    (
        "POST",
        "/api/v1/device-credentials",
        r#"{"device":"pendant"}"#,
    ),
    ("DELETE", "/api/v1/device-credentials/pendant", ""),
    ("POST", "/api/v1/devices/zb-00158d0000000001/identify", "{}"),
    ("POST", "/api/v1/commissioning/start", ""),
    (
        "POST",
        "/api/v1/commissioning/signoff",
        r#"{"installer":"x","started":"2026-01-01T00:00:00Z"}"#,
    ),
    ("GET", "/api/v1/commissioning/reports", ""),
    ("GET", "/api/v1/uplinks/settings", ""),
    (
        "PUT",
        "/api/v1/uplinks/settings",
        r#"{"uplink.mqtt.url":"mqtt://x:1883"}"#,
    ),
    ("POST", "/api/v1/uplinks/test", "{}"),
    ("POST", "/api/v1/uplinks/arc/test", "{}"),
    ("POST", "/api/v1/commissioning/arc_test", "{}"),
    ("POST", "/api/v1/uplinks/rollback", ""),
    ("POST", "/api/v1/uplinks/restart", ""),
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

#[test]
fn every_documented_path_is_in_the_no_session_sweep_or_public() {
    let doc = include_str!("../src/web/openapi.yaml");
    let public = ["/healthz", "/api/v1/setup", "/api/v1/login"];
    let mut n = 0;
    for line in doc.lines() {
        let Some(p) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) else {
            continue;
        };
        let path = format!("/{p}");
        n += 1;
        if public.contains(&path.as_str()) {
            continue;
        }
        let covered = PROTECTED.iter().any(|(_, route, _)| {
            let a: Vec<&str> = route.split('/').collect();
            let b: Vec<&str> = path.split('/').collect();
            a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x == y || y.starts_with('{'))
        });
        assert!(
            covered,
            "{path} is documented but not swept without a session"
        );
    }
    assert!(n >= 20, "found only {n} documented paths");
}

#[tokio::test]
async fn a_foreign_host_name_is_refused_against_dns_rebinding() {
    let s = start().await;
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let r = exchange(
        stream,
        raw("GET", "evil.example", "/api/v1/setup", &[], b""),
    )
    .await;
    assert_eq!(r.status, 421, "{r:?}");
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let r = exchange(
        stream,
        raw("GET", "carebridge.local:8443", "/api/v1/setup", &[], b""),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
}
