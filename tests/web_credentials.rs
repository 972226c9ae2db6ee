//! The Wi-Fi device credentials API over the real credential store: an
//! installer makes one (its secret in that answer only, with a QR code),
//! a carer may not, a duplicate is a conflict, revoking works once, and
//! every change is audited.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod web_common;

use std::sync::Arc;

use carebridge::config::Config;
use carebridge::devauth::{Verdict, prepare};
use carebridge::web::memory::MemoryBackend;
use web_common::*;

async fn server() -> (Server, carebridge::devauth::CredentialStore) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut cfg = Config::default();
    cfg.gateway.data_dir = dir.path().join("data");
    cfg.local_broker = Some(carebridge::config::LocalBrokerConfig {
        device_credentials: true,
        ..Default::default()
    });
    let p = prepare(&cfg, None).unwrap();
    let store = p.report.credentials().clone();
    let backend = MemoryBackend::new().with_credentials(Arc::new(p.report));
    (start_with(Arc::new(backend), dir).await, store)
}

#[tokio::test]
async fn an_installer_makes_a_credential_shown_once_and_revokes_it() {
    let (s, store) = server().await;
    let c = setup(&s).await;
    let r = c
        .call(
            &s,
            "POST",
            "/api/v1/device-credentials",
            r#"{"device":"bath"}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let j = r.json();
    let secret = j["password"].as_str().unwrap().to_string();
    assert_eq!(j["username"], "bath");
    assert_eq!(j["topic"], "carebridge/in/bath");
    assert_eq!(j["commands"], "carebridge/cmd/bath/#");
    assert!(j["qr_svg"].as_str().unwrap().starts_with("<svg"));
    assert!(j["qr_text"].as_str().unwrap().contains(&secret));
    assert_eq!(
        store.verify("bath", secret.as_bytes()),
        Verdict::Ok(carebridge::devauth::record::Holder::Device(
            carebridge::model::DeviceId::new("bath").unwrap()
        ))
    );
    let again = c
        .call(
            &s,
            "POST",
            "/api/v1/device-credentials",
            r#"{"device":"bath"}"#,
        )
        .await;
    assert_eq!(again.status, 409, "{again:?}");
    let list = c.call(&s, "GET", "/api/v1/device-credentials", "").await;
    assert_eq!(list.status, 200);
    assert!(
        !list.body.contains(&secret),
        "the list never holds a secret"
    );
    assert_eq!(list.json()["credentials"][0]["holder"]["device"], "bath");
    assert_eq!(list.json()["enabled"], true);
    let bad = c
        .call(
            &s,
            "POST",
            "/api/v1/device-credentials",
            r#"{"device":"a/#"}"#,
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["field"], "device");
    let svc = c
        .call(
            &s,
            "POST",
            "/api/v1/device-credentials",
            r#"{"device":"homeassistant"}"#,
        )
        .await;
    assert_eq!(svc.status, 400, "a device may not take the service's name");
    let ha = c
        .call(
            &s,
            "POST",
            "/api/v1/device-credentials",
            r#"{"service":"homeassistant"}"#,
        )
        .await;
    assert_eq!(ha.status, 201, "{ha:?}");
    assert_eq!(
        c.call(&s, "DELETE", "/api/v1/device-credentials/bath", "")
            .await
            .status,
        200
    );
    assert_eq!(
        c.call(&s, "DELETE", "/api/v1/device-credentials/bath", "")
            .await
            .status,
        404
    );
    assert_eq!(
        store.verify("bath", secret.as_bytes()),
        Verdict::UnknownUser
    );
    let audit = c.call(&s, "GET", "/api/v1/audit", "").await.body;
    assert!(
        audit.contains("device_credential.create") && audit.contains("device_credential.revoke")
    );
}

#[tokio::test]
async fn a_carer_may_not_see_or_make_credentials() {
    let (s, store) = server().await;
    let admin = setup(&s).await;
    let r = admin
        .call(
            &s,
            "POST",
            "/api/v1/users",
            r#"{"name":"carol","role":"carer","password":"0123456789ab"}"#,
        )
        .await;
    assert!(r.status < 300, "{r:?}");
    let carer = client_from(&login(&s, "carol", "0123456789ab").await);
    for (m, path, body) in [
        ("GET", "/api/v1/device-credentials", ""),
        ("POST", "/api/v1/device-credentials", r#"{"device":"bath"}"#),
        ("DELETE", "/api/v1/device-credentials/bath", ""),
    ] {
        assert_eq!(
            carer.call(&s, m, path, body).await.status,
            403,
            "{m} {path}"
        );
    }
    assert!(store.is_empty());
}

#[tokio::test]
async fn without_a_local_broker_the_page_says_so() {
    let s = start().await;
    let c = setup(&s).await;
    let r = c.call(&s, "GET", "/api/v1/device-credentials", "").await;
    assert_eq!(r.status, 501);
    assert!(r.body.contains("[local_broker]"));
}
