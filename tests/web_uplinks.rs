//! The Uplinks page's editor over the real backend (SQLite store and the
//! configuration overlay): a refused value names its configuration key,
//! "test connection" reaches a real Mosquitto with the *entered* URL and
//! fails clearly on a closed port, a save is a new version with the
//! password only in a 0600 file, and a rollback brings the previous one back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod web_common;

use std::sync::Arc;

use carebridge::hub::HubCommand;
use carebridge::rules::active::{Rules, Version};
use carebridge::store::{Store, StoreConfig};
use carebridge::web::memory::MemoryBackend;
use carebridge::web::{StoreBackend, serve};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use web_common::*;

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

async fn server() -> (Server, carebridge::remote_config::ConfigState) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let store = Store::open(&dir.path().join("carebridge.db"), &StoreConfig::default()).unwrap();
    let (hub_tx, mut hub_rx) = mpsc::channel::<HubCommand>(16);
    tokio::spawn(async move { while hub_rx.recv().await.is_some() {} });
    let mut cfg = carebridge::config::Config::default();
    cfg.gateway.id = "fresh-unit".into();
    cfg.gateway.data_dir = dir.path().to_path_buf();
    cfg.uplink.mqtt = Some(carebridge::config::MqttUplinkConfig {
        url: format!("mqtt://127.0.0.1:{}", closed_port()).into(),
        ..Default::default()
    });
    let base = Version {
        version: 0,
        source: "built-in".into(),
        applied_at: 0,
        text: carebridge::rules::MINIMAL_RULES.to_string(),
    };
    let rules = Rules::new(store.clone(), hub_tx.clone(), base);
    let config = carebridge::remote_config::ConfigState::new(
        store.clone(),
        hub_tx.clone(),
        None,
        cfg.clone(),
        cfg.clone(),
        carebridge::remote_config::Active {
            version: 0,
            source: "config".into(),
        },
    );
    let status: carebridge::uplink::mqtt::StatusFn = Arc::new(carebridge::status::Status::default);
    let (live, _) = broadcast::channel(8);
    let backend = Arc::new(
        StoreBackend::new(store, hub_tx, live, status, &cfg, rules)
            .with_config_state(config.clone()),
    );
    let shutdown = CancellationToken::new();
    let web = carebridge::web::WebConfig::demo("127.0.0.1:0".into());
    let (addr, _t) = serve(web, backend, dir.path(), shutdown.clone())
        .await
        .unwrap();
    let s = Server {
        addr,
        origin: format!("http://{addr}"),
        backend: Arc::new(MemoryBackend::new()),
        dir,
        shutdown,
    };
    (s, config)
}

#[tokio::test]
async fn uplink_settings_are_tested_saved_as_a_version_and_rolled_back() {
    let broker = common::Mosquitto::start();
    let (s, config) = server().await;
    let c = setup(&s).await;
    let r = c.call(&s, "GET", "/api/v1/uplinks/settings", "").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["values"]["gateway.id"], "fresh-unit");
    assert_eq!(r.json()["values"]["uplink.mqtt.password"], false);
    // A bad value is refused with the key `config check` names.
    let bad = r#"{"uplink.mqtt.url":"http://broker.example.org"}"#;
    let r = c.call(&s, "PUT", "/api/v1/uplinks/settings", bad).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["field"], "uplink.mqtt.url", "{r:?}");
    let r = c.call(&s, "POST", "/api/v1/uplinks/test", bad).await;
    assert_eq!(r.json()["field"], "uplink.mqtt.url", "{r:?}");
    // Test connection with the entered URL: the real broker answers.
    let good = serde_json::json!({
        "uplink.mqtt.url": format!("mqtt://127.0.0.1:{}", broker.port),
        "gateway.id": "home-0042",
        "uplink.mqtt.username": "home-0042",
        "uplink.mqtt.password": "a long broker secret",
    })
    .to_string();
    let r = c.call(&s, "POST", "/api/v1/uplinks/test", &good).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["mqtt"]["ok"], true, "{r:?}");
    assert_eq!(r.json()["lorawan"], serde_json::Value::Null);
    // The saved (file) settings point at a closed port: a clear failure.
    let r = c.call(&s, "POST", "/api/v1/uplinks/test", "{}").await;
    assert_eq!(r.json()["mqtt"]["ok"], false, "{r:?}");
    assert_eq!(r.json()["mqtt"]["stage"], "connect");
    // Save: version 1, the password only in a 0600 file.
    let r = c.call(&s, "PUT", "/api/v1/uplinks/settings", &good).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["version"], 1);
    let eff = config.effective().await;
    assert_eq!(eff.gateway.id, "home-0042");
    let m = eff.uplink.mqtt.clone().unwrap();
    assert_eq!(m.url, format!("mqtt://127.0.0.1:{}", broker.port).into());
    let pw = m.password_file.unwrap();
    assert_eq!(
        std::fs::read_to_string(&pw).unwrap().trim(),
        "a long broker secret"
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&pw).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let r = c.call(&s, "GET", "/api/v1/uplinks/settings", "").await;
    assert!(!r.body.contains("a long broker secret"), "{}", r.body);
    assert_eq!(r.json()["values"]["uplink.mqtt.password"], true);
    assert_eq!(r.json()["version"], 1);
    assert_eq!(r.json()["restart_needed"], true);
    // Rollback: the file's settings again.
    let r = c.call(&s, "POST", "/api/v1/uplinks/rollback", "").await;
    assert_eq!(r.status, 200, "{r:?}");
    let eff = config.effective().await;
    assert_eq!(eff.gateway.id, "fresh-unit");
    assert!(eff.uplink.mqtt.unwrap().password_file.is_none());
    let r = c.call(&s, "GET", "/api/v1/system/backup", "").await;
    assert!(!r.body.contains("a long broker secret"));
    let r = c.call(&s, "GET", "/api/v1/audit", "").await;
    assert!(
        r.body.contains("uplinks.save") && r.body.contains("uplinks.rollback"),
        "{}",
        r.body
    );
}
