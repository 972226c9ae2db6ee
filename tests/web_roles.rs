//! The UI's paths into the gateway's roles, over real sockets with the
//! in-memory roles: acknowledgement reaches the alerting role (and says when
//! the engine had nothing open), delivery records show, the rules role
//! applies and rolls back through a real engine, and a server without a
//! rules role answers 501.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod web_common;

use std::sync::Arc;
use std::time::Duration;

use carebridge::hub::Live;
use carebridge::model::{AlertState, DeviceId};
use carebridge::store::{AlertDelivery, Via};
use carebridge::web::memory::MemoryBackend;
use web_common::*;

async fn recent_len(s: &Server, c: &Client, n: usize) {
    for _ in 0..100 {
        let j = c.call(s, "GET", "/api/v1/alerts", "").await.json();
        if j["recent"].as_array().map_or(0, |a| a.len()) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the recent list never reached {n} alerts");
}

#[tokio::test]
async fn an_ack_reaches_the_engine_and_says_when_the_engine_had_nothing_left_open() {
    let s = start().await;
    let c = setup(&s).await;
    let mut raised = panic_alert();
    raised.uid = Some("a-1".into());
    s.backend.inject(Live::Alert(raised.clone()));
    let first = wait_for_alert(&s, &c).await;
    // The alert went upstream: the list says by which path.
    s.backend.delivered(AlertDelivery {
        seq: 1,
        id: "a-1".into(),
        via: Via::Lorawan,
        queued_at: carebridge::wall::now(),
        delivered_at: carebridge::wall::now(),
    });
    let j = c.call(&s, "GET", "/api/v1/alerts", "").await.json();
    assert_eq!(j["open"][0]["delivery"], "delivered", "{j}");
    assert_eq!(j["open"][0]["delivered_via"], "lorawan", "{j}");
    // Cleared by the engine before anyone acknowledged it.
    let mut cleared = raised.clone();
    cleared.state = AlertState::Cleared;
    s.backend.inject(Live::Alert(cleared));
    recent_len(&s, &c, 2).await;
    let r = c
        .call(&s, "POST", &format!("/api/v1/alerts/{first}/ack"), "")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["engine"], false, "nothing open in the engine");
    // Raised again: this time the engine had it open.
    s.backend.inject(Live::Alert(raised));
    recent_len(&s, &c, 3).await;
    let again = c.call(&s, "GET", "/api/v1/alerts", "").await.json()["open"][0]["id"]
        .as_u64()
        .unwrap();
    let r = c
        .call(&s, "POST", &format!("/api/v1/alerts/{again}/ack"), "")
        .await;
    assert_eq!(r.json()["engine"], true, "{r:?}");
    let pendant = DeviceId::new("pendant").unwrap();
    assert_eq!(
        s.backend.acks_now(),
        vec![("panic".into(), pendant.clone()), ("panic".into(), pendant)]
    );
    let audit = c.call(&s, "GET", "/api/v1/audit", "").await.json();
    assert!(
        audit.to_string().contains("no open alert left"),
        "the audit says the engine had nothing open: {audit}"
    );
}

#[tokio::test]
async fn rules_are_applied_and_rolled_back_through_the_rules_role() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let s = start_with(Arc::new(MemoryBackend::new().with_rules()), dir).await;
    let c = setup(&s).await;
    let g = c.call(&s, "GET", "/api/v1/rules", "").await.json();
    assert_eq!(g["available"], true);
    assert_eq!(g["active"]["version"], 0);
    assert_eq!(g["can_rollback"], false);
    let bad = serde_json::json!({"text": "[[rule]]\nid = \"x\"\ntype = \"warp\"\n"});
    let e = c.call(&s, "PUT", "/api/v1/rules", &bad.to_string()).await;
    assert_eq!(e.status, 400, "{e:?}");
    assert_eq!(e.json()["field"], "text");
    let cold =
        "[[rule]]\nid = \"cold\"\ntype = \"threshold\"\nkind = \"temperature\"\nbelow = 16.0\n";
    let text = format!("{cold}{}", carebridge::rules::MINIMAL_RULES);
    let body = serde_json::json!({ "text": text }).to_string();
    let ok = c.call(&s, "PUT", "/api/v1/rules", &body).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let applied = &ok.json()["applied"];
    assert_eq!(applied["version"], 1);
    assert_eq!(applied["source"], "ui:admin");
    assert!(applied["fresh"].as_u64().unwrap() >= 1, "{applied}");
    let same = c.call(&s, "PUT", "/api/v1/rules", &body).await.json();
    assert_eq!(same["applied"]["unchanged"], true, "{same}");
    let g = c.call(&s, "GET", "/api/v1/rules", "").await.json();
    assert_eq!(g["active"]["version"], 1);
    assert_eq!(g["can_rollback"], true);
    let back = c.call(&s, "POST", "/api/v1/rules/rollback", "").await;
    assert_eq!(back.status, 200, "{back:?}");
    assert_eq!(
        back.json()["applied"]["version"],
        0,
        "back to the built-in rules"
    );
    let audit = c.call(&s, "GET", "/api/v1/audit", "").await.json();
    let actions: Vec<_> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert!(actions.contains(&"rules.apply".to_string()), "{actions:?}");
    assert!(
        actions.contains(&"rules.rollback".to_string()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_server_without_a_rules_role_says_so_and_refuses_changes_with_501() {
    let s = start().await;
    let c = setup(&s).await;
    let g = c.call(&s, "GET", "/api/v1/rules", "").await.json();
    assert_eq!(g["available"], false);
    let body = serde_json::json!({ "text": carebridge::rules::MINIMAL_RULES }).to_string();
    for (m, path, body) in [
        ("PUT", "/api/v1/rules", body.as_str()),
        ("POST", "/api/v1/rules/rollback", ""),
    ] {
        let r = c.call(&s, m, path, body).await;
        assert_eq!(r.status, 501, "{m} {path}: {r:?}");
        assert!(r.json()["error"].as_str().unwrap().contains("rule engine"));
    }
}

#[tokio::test]
async fn a_wrong_method_or_unknown_route_is_a_json_404_and_oversize_bodies_a_413() {
    let s = start().await;
    let c = setup(&s).await;
    for (m, path) in [
        ("DELETE", "/api/v1/status"),
        ("GET", "/api/v1/nope"),
        ("GET", "/nope"),
    ] {
        let r = c.call(&s, m, path, "").await;
        assert_eq!(r.status, 404, "{m} {path}: {r:?}");
        assert_eq!(r.json()["error"], "no such API route");
        assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
    }
    // Setup and login, open without a session, take small bodies only.
    let big = format!(
        r#"{{"username":"{}","password":"x"}}"#,
        "a".repeat(20 * 1024)
    );
    let r = req(&s, "POST", "/api/v1/login", &[("Origin", &s.origin)], &big).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.json()["error"].as_str().unwrap().contains("16 KiB"));
}
