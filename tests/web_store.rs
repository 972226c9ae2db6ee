//! The web API over the real backend (`StoreBackend`: SQLite store, the
//! active-rules handle, the hub's command channel), with a stand-in hub
//! task that records what the UI asked of the rule engine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod web_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use carebridge::hub::{HubCommand, Live};
use carebridge::model::{DeviceId, Kind, Reading, Time};
use carebridge::rules::ReloadSummary;
use carebridge::rules::active::{Rules, Version};
use carebridge::store::{Store, StoreConfig, Write};
use carebridge::web::memory::MemoryBackend;
use carebridge::web::{StoreBackend, serve};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use web_common::*;

/// What the stand-in hub was asked.
#[derive(Debug, Default)]
struct Asked {
    acks: Vec<(String, Option<DeviceId>)>,
    rule_sets: Vec<usize>,
    /// Who set the household's mode (the source the hub was given).
    modes: Vec<String>,
}

struct Rig {
    s: Server,
    store: Store,
    live: broadcast::Sender<Live>,
    asked: Arc<Mutex<Asked>>,
    backend: Arc<StoreBackend>,
    /// The configuration overlay the backend routes device edits through.
    config: carebridge::remote_config::ConfigState,
    cfg: carebridge::config::Config,
}

fn config(dir: &std::path::Path, mqtt_port: u16) -> carebridge::config::Config {
    let mut cfg = carebridge::config::Config::default();
    cfg.gateway.id = "test-home".into();
    cfg.gateway.data_dir = dir.to_path_buf();
    cfg.ota = Some(carebridge::ota::OtaConfig {
        keys_dir: dir.join("keys"),
        ..Default::default()
    });
    cfg.uplink.mqtt = Some(carebridge::config::MqttUplinkConfig {
        url: format!("mqtt://127.0.0.1:{mqtt_port}").into(),
        ..Default::default()
    });
    cfg
}

async fn rig() -> Rig {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let store = Store::open(&dir.path().join("carebridge.db"), &StoreConfig::default()).unwrap();
    let (hub_tx, mut hub_rx) = mpsc::channel::<HubCommand>(16);
    let asked = Arc::new(Mutex::new(Asked::default()));
    let (a, st) = (asked.clone(), store.clone());
    tokio::spawn(async move {
        // Modes are set in a real rule engine (its refusals are the real ones).
        let mut engine = carebridge::rules::Engine::minimal();
        while let Some(cmd) = hub_rx.recv().await {
            match cmd {
                HubCommand::Mode {
                    mode,
                    until,
                    source,
                    reply,
                } => {
                    let mut out = Vec::new();
                    let now = carebridge::wall::now();
                    let r = engine
                        .set_mode(mode, until, &source, now, &mut out)
                        .map(|()| engine.mode().clone())
                        .map_err(|e| e.to_string());
                    a.lock().unwrap().modes.push(source);
                    let _ = reply.send(r);
                }
                HubCommand::Ack {
                    rule,
                    device,
                    reply,
                } => {
                    a.lock().unwrap().acks.push((rule, device));
                    let _ = reply.send(true);
                }
                HubCommand::AckInstance { instance, reply } => {
                    a.lock().unwrap().acks.push((instance, None));
                    let _ = reply.send(true);
                }
                HubCommand::Rules { set, reply } => {
                    a.lock().unwrap().rule_sets.push(set.rules.len());
                    let _ = reply.send(ReloadSummary {
                        fresh: set.rules.len(),
                        ..Default::default()
                    });
                }
                HubCommand::Device(info) => st.submit(Write::Device(Box::new(info))).await.unwrap(),
            }
        }
    });
    let base = Version {
        version: 0,
        source: "built-in".into(),
        applied_at: 0,
        text: carebridge::rules::MINIMAL_RULES.to_string(),
    };
    let rules = Rules::new(store.clone(), hub_tx.clone(), base);
    let (live, _) = broadcast::channel(64);
    let status: carebridge::uplink::mqtt::StatusFn = Arc::new(|| carebridge::status::Status {
        gateway: "test-home".into(),
        timezone: "UTC".into(),
        at: carebridge::wall::now(),
        ..Default::default()
    });
    let closed = free_port();
    let cfg = config(dir.path(), closed);
    let config_state = carebridge::remote_config::ConfigState::new(
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
    let backend = Arc::new(
        StoreBackend::new(store.clone(), hub_tx, live.clone(), status, &cfg, rules)
            .with_config_state(config_state.clone()),
    );
    let s = serve_on(backend.clone(), dir).await;
    Rig {
        s,
        store,
        live,
        asked,
        backend,
        config: config_state,
        cfg,
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The web server over `backend` (the harness's `backend` field is unused here).
async fn serve_on(backend: Arc<StoreBackend>, dir: Arc<tempfile::TempDir>) -> Server {
    let shutdown = CancellationToken::new();
    let cfg = carebridge::web::WebConfig::demo("127.0.0.1:0".into());
    let (addr, _t) = serve(cfg, backend, dir.path(), shutdown.clone())
        .await
        .unwrap();
    Server {
        addr,
        origin: format!("http://{addr}"),
        backend: Arc::new(MemoryBackend::new()),
        dir,
        shutdown,
    }
}

async fn eventually(mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition never held");
}

#[tokio::test]
async fn acknowledging_in_the_ui_acknowledges_in_the_rule_engine_and_survives_a_restart() {
    let r = rig().await;
    let c = setup(&r.s).await;
    r.live.send(Live::Alert(panic_alert())).unwrap();
    let id = wait_for_alert(&r.s, &c).await;
    let a = c
        .call(&r.s, "POST", &format!("/api/v1/alerts/{id}/ack"), "")
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["engine"], true);
    assert_eq!(
        r.asked.lock().unwrap().acks,
        vec![("panic".to_string(), Some(DeviceId::new("pendant").unwrap()))]
    );
    // A restart of the web server keeps the list and the acknowledgement.
    r.s.shutdown.cancel();
    let s2 = serve_on(r.backend.clone(), r.s.dir.clone()).await;
    let l = login(&s2, "admin", PASSWORD).await;
    let c2 = client_from(&l);
    let j = c2.call(&s2, "GET", "/api/v1/alerts", "").await.json();
    assert_eq!(j["recent"][0]["id"], id);
    assert_eq!(j["recent"][0]["acked_by"], "admin");
    assert_eq!(j["recent"][0]["rule"], "panic");
    let again = c2
        .call(&s2, "POST", &format!("/api/v1/alerts/{id}/ack"), "")
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(r.asked.lock().unwrap().acks.len(), 1, "no second ack");
}

#[tokio::test]
async fn the_mode_card_sets_away_mode_in_the_engine_and_bad_input_names_the_field() {
    let r = rig().await;
    let c = setup(&r.s).await;
    let ok = c
        .call(&r.s, "POST", "/api/v1/mode", r#"{"mode":"away"}"#)
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.json()["mode"]["mode"], "away");
    assert_eq!(ok.json()["mode"]["source"], "web UI (admin)");
    let bad = c
        .call(&r.s, "POST", "/api/v1/mode", r#"{"mode":"holiday"}"#)
        .await;
    assert_eq!(
        (bad.status, bad.json()["field"].as_str()),
        (400, Some("mode")),
        "{bad:?}"
    );
    let past = c
        .call(
            &r.s,
            "POST",
            "/api/v1/mode",
            r#"{"mode":"visitor","until":"2020-01-01T00:00:00Z"}"#,
        )
        .await;
    assert_eq!(
        (past.status, past.json()["field"].as_str()),
        (400, Some("until")),
        "{past:?}"
    );
    assert!(
        past.json()["error"].as_str().unwrap().contains("after now"),
        "{past:?}"
    );
    assert_eq!(
        r.asked.lock().unwrap().modes,
        ["web UI (admin)", "web UI (admin)"],
        "the bad mode name never reached the engine"
    );
}

#[tokio::test]
async fn each_alert_shows_the_path_that_delivered_it_or_that_it_is_still_queued() {
    let r = rig().await;
    let c = setup(&r.s).await;
    // Two alerts raised through the gateway (the hub stamps the UUID the
    // store sends upstream); the first is acknowledged over LoRaWAN.
    let mut first = panic_alert();
    first.uid = Some("9b2f8c1e-0d4a-4c6b-8e21-5a7d3f9e0c11".into());
    let mut second = panic_alert();
    second.device = DeviceId::new("bedroom-pendant").unwrap();
    second.uid = Some("1c3e5a7b-9d2f-4e6a-8b0c-2d4f6a8c0e13".into());
    for a in [&first, &second] {
        r.store
            .submit(Write::Alert(Box::new(a.clone())))
            .await
            .unwrap();
    }
    r.store.flush().await.unwrap();
    let rows = r
        .store
        .outbox_fetch(carebridge::model::Class::Alert, 0, 10)
        .await
        .unwrap();
    r.store
        .submit(Write::Delivered {
            via: carebridge::store::Via::Lorawan,
            rows: vec![(carebridge::model::Class::Alert, rows[0].seq)],
        })
        .await
        .unwrap();
    r.store.flush().await.unwrap();
    r.live.send(Live::Alert(first)).unwrap();
    r.live.send(Live::Alert(second)).unwrap();
    let st = &r.s;
    let mut j = serde_json::Value::Null;
    eventually(async || {
        j = c.call(st, "GET", "/api/v1/alerts", "").await.json();
        j["open"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
    let by_device = |d: &str| {
        j["open"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["device"] == d)
            .cloned()
            .unwrap()
    };
    let p = by_device("pendant");
    assert_eq!(p["delivery"], "delivered", "{p}");
    assert_eq!(p["delivered_via"], "lorawan", "{p}");
    assert!(p["delivered_at"].is_string(), "{p}");
    let b = by_device("bedroom-pendant");
    assert_eq!(b["delivery"], "waiting", "{b}");
    assert!(b.get("delivered_via").is_none(), "{b}");
    // The overview's open alerts carry the same.
    let o = c.call(st, "GET", "/api/v1/status", "").await.json();
    assert!(
        o["open_alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["delivered_via"] == "lorawan"),
        "{o}"
    );
}

#[tokio::test]
async fn a_device_edit_in_the_ui_is_a_new_config_version_kept_over_a_restart_and_removal_undoes_it()
{
    let r = rig().await;
    let c = setup(&r.s).await;
    let pendant = DeviceId::new("pendant").unwrap();
    r.store
        .submit(Write::Device(Box::new(carebridge::model::DeviceInfo {
            id: Some(pendant.clone()),
            ..Default::default()
        })))
        .await
        .unwrap();
    r.store.flush().await.unwrap();
    let versions = r.config.watch();
    assert_eq!(versions.borrow().version, 0);
    let a = c
        .call(
            &r.s,
            "PUT",
            "/api/v1/devices/pendant",
            r#"{"name":"Front pendant","room":"hall"}"#,
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    // A new version, from the UI: the heartbeat and the retained config
    // topic carry it, so the cloud sees the drift.
    assert_eq!(versions.borrow().version, 1);
    assert_eq!(versions.borrow().source, "ui:admin");
    // The hub got the facts (the stand-in writes them to the registry).
    let st = r.store.clone();
    let p = pendant.clone();
    eventually(async || {
        st.device(&p)
            .await
            .unwrap()
            .is_some_and(|d| d.room.as_deref() == Some("hall"))
    })
    .await;
    // A second edit merges (the name stays), one more version.
    let b = c
        .call(
            &r.s,
            "PUT",
            "/api/v1/devices/pendant",
            r#"{"role":"wearer"}"#,
        )
        .await;
    assert_eq!(b.status, 200, "{b:?}");
    assert_eq!(versions.borrow().version, 2);
    // After a restart the edit still wins over the config file.
    let (eff, active) = carebridge::remote_config::with_overlay(&r.store, &r.cfg)
        .await
        .unwrap();
    assert_eq!(active.version, 2);
    let d = &eff.devices["pendant"];
    assert_eq!(d.name.as_deref(), Some("Front pendant"));
    assert_eq!(d.room.as_deref(), Some("hall"));
    assert_eq!(d.role.as_deref(), Some("wearer"));
    // Removing the device takes it out of the overlay: a restart does not
    // bring it back.
    let del = c.call(&r.s, "DELETE", "/api/v1/devices/pendant", "").await;
    assert_eq!(del.status, 200, "{del:?}");
    assert_eq!(versions.borrow().version, 3);
    let (eff, _) = carebridge::remote_config::with_overlay(&r.store, &r.cfg)
        .await
        .unwrap();
    assert!(!eff.devices.contains_key("pendant"), "{:?}", eff.devices);
    // A hostile name never reaches the overlay.
    let bad = c
        .call(
            &r.s,
            "PUT",
            "/api/v1/devices/pendant",
            r#"{"room":"hall\"]\n[uplink"}"#,
        )
        .await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert_eq!(versions.borrow().version, 3);
}

#[tokio::test]
async fn a_rule_mistake_is_refused_with_line_and_key_then_the_fix_is_applied_and_audited() {
    let r = rig().await;
    let c = setup(&r.s).await;
    let g = c.call(&r.s, "GET", "/api/v1/rules", "").await.json();
    assert_eq!(g["available"], true);
    assert_eq!(g["active"]["version"], 0);
    assert_eq!(g["active"]["source"], "built-in");
    let bad =
        "[[rule]]\nid = \"cold\"\ntype = \"threshold\"\nkind = \"temperature\"\nbelow = \"cold\"\n";
    let body = serde_json::json!({ "text": bad }).to_string();
    let e = c.call(&r.s, "PUT", "/api/v1/rules", &body).await;
    assert_eq!(e.status, 400, "{e:?}");
    let j = e.json();
    assert_eq!(j["field"], "text");
    assert_eq!(j["problems"][0]["line"], 5, "{j}");
    assert!(
        r.asked.lock().unwrap().rule_sets.is_empty(),
        "nothing applied"
    );
    let good = bad.replace("below = \"cold\"", "below = 16.0");
    let good = format!("{good}{}", carebridge::rules::MINIMAL_RULES);
    let body = serde_json::json!({ "text": good }).to_string();
    let ok = c.call(&r.s, "PUT", "/api/v1/rules", &body).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.json()["applied"]["version"], 1);
    assert_eq!(ok.json()["applied"]["source"], "ui:admin");
    assert_eq!(r.asked.lock().unwrap().rule_sets, vec![6]);
    let g = c.call(&r.s, "GET", "/api/v1/rules", "").await.json();
    assert_eq!(g["active"]["version"], 1);
    assert!(g["active"]["text"].as_str().unwrap().contains("cold"));
    let audit = c.call(&r.s, "GET", "/api/v1/audit", "").await.json();
    assert_eq!(audit["entries"][0]["action"], "rules.apply");
    let back = c.call(&r.s, "POST", "/api/v1/rules/rollback", "").await;
    assert_eq!(back.status, 200, "{back:?}");
    assert_eq!(back.json()["applied"]["source"], "built-in");
    // Oversized and wrongly typed texts are named.
    let huge = serde_json::json!({ "text": "#".repeat(200 * 1024) }).to_string();
    let h = c.call(&r.s, "PUT", "/api/v1/rules", &huge).await;
    assert_eq!((h.status, h.json()["field"].as_str()), (400, Some("text")));
    let t = c.call(&r.s, "PUT", "/api/v1/rules", r#"{"text": 5}"#).await;
    assert_eq!(t.json()["error"], "text: must be a string, not a number");
}

#[tokio::test]
async fn try_it_replays_the_last_day_of_history_through_the_edited_rules() {
    let r = rig().await;
    let c = setup(&r.s).await;
    let now = carebridge::wall::now().as_millis();
    let dev = DeviceId::new("lounge-temp").unwrap();
    for (v, ago_min) in [(20.0, 180), (14.0, 60), (13.5, 30)] {
        let at = Time(now - ago_min * 60_000);
        let reading = Reading::new(dev.clone(), Kind::Temperature, v, at).unwrap();
        r.store.submit(Write::Reading(reading)).await.unwrap();
    }
    // Older than a day: not replayed.
    let old = Reading::new(
        dev.clone(),
        Kind::Temperature,
        5.0,
        Time(now - 30 * 3_600_000),
    );
    r.store.submit(Write::Reading(old.unwrap())).await.unwrap();
    r.store.flush().await.unwrap();
    let text = "[[rule]]\nid = \"cold-home\"\ntype = \"threshold\"\nkind = \"temperature\"\nbelow = 16.0\n";
    let body = serde_json::json!({ "text": text }).to_string();
    let t = c.call(&r.s, "POST", "/api/v1/rules/try", &body).await;
    assert_eq!(t.status, 200, "{t:?}");
    let j = t.json();
    assert_eq!(j["readings"], 3, "{j}");
    assert!(j["total"].as_u64().unwrap() >= 1, "{j}");
    assert_eq!(j["alerts"][0]["rule"], "cold-home");
    assert_eq!(j["alerts"][0]["device"], "lounge-temp");
    assert_eq!(j["capped"], false);
    assert!(
        r.asked.lock().unwrap().rule_sets.is_empty(),
        "try applies nothing"
    );
    let g = c.call(&r.s, "GET", "/api/v1/rules", "").await.json();
    assert_eq!(g["active"]["version"], 0);
    let bad = c
        .call(
            &r.s,
            "POST",
            "/api/v1/rules/try",
            r#"{"text":"[[rule]]\nid = \"x\"\n"}"#,
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["field"], "text");
}

#[tokio::test]
async fn restore_validates_config_rules_and_devices_before_writing_anything() {
    let r = rig().await;
    let c = setup(&r.s).await;
    r.store
        .submit(Write::Device(Box::new(carebridge::model::DeviceInfo {
            id: Some(DeviceId::new("pendant").unwrap()),
            room: Some("hall".into()),
            ..Default::default()
        })))
        .await
        .unwrap();
    r.store.flush().await.unwrap();
    let b = c.call(&r.s, "GET", "/api/v1/system/backup", "").await;
    assert_eq!(b.status, 200);
    let doc = b.json();
    assert!(
        doc["config"].as_str().unwrap().contains("test-home"),
        "{doc}"
    );
    assert_eq!(doc["rules"]["source"], "built-in");
    let restored = r.s.dir.path().join("restored-config.toml");
    let try_restore = |d: serde_json::Value| {
        let c = &c;
        let s = &r.s;
        async move {
            c.call(s, "POST", "/api/v1/system/restore", &d.to_string())
                .await
        }
    };
    let mut d = doc.clone();
    d["config"] = "[gateway]\nid = \"x\"\ntimezone = 5\n".into();
    let e = try_restore(d).await;
    assert_eq!(
        (e.status, e.json()["field"].as_str()),
        (400, Some("config")),
        "{e:?}"
    );
    let mut d = doc.clone();
    d["rules"]["text"] = "[[rule]]\nid = \"x\"\ntype = \"warp\"\n".into();
    let e = try_restore(d).await;
    assert_eq!(
        (e.status, e.json()["field"].as_str()),
        (400, Some("rules")),
        "{e:?}"
    );
    let mut d = doc.clone();
    d["devices"][0]["room"] = "hall; reboot".into();
    let e = try_restore(d).await;
    assert_eq!(e.json()["field"], "devices[0].room", "{e:?}");
    let mut d = doc.clone();
    d["format"] = "something-else".into();
    assert_eq!(try_restore(d).await.json()["field"], "format");
    assert!(!restored.exists(), "nothing written after a refusal");
    assert!(r.asked.lock().unwrap().rule_sets.is_empty());
    let mut d = doc.clone();
    d["rules"]["text"] = format!("{}\n# restored\n", carebridge::rules::MINIMAL_RULES).into();
    d["devices"][0]["room"] = "porch".into();
    let ok = try_restore(d).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(restored.exists());
    assert_eq!(r.asked.lock().unwrap().rule_sets, vec![5]);
    let store = r.store.clone();
    eventually(async || {
        let d = store
            .device(&DeviceId::new("pendant").unwrap())
            .await
            .unwrap();
        d.and_then(|d| d.room).as_deref() == Some("porch")
    })
    .await;
}

fn signed_bundle(dir: &std::path::Path, key_id: &str, trusted: bool) -> Vec<u8> {
    signed_version(dir, key_id, trusted, "99.1.0")
}

fn signed_version(dir: &std::path::Path, key_id: &str, trusted: bool, version: &str) -> Vec<u8> {
    use carebridge::ota::bundle::{EntrySource, ManifestInput, PayloadEntry, write_bundle};
    let private = dir.join("private").join(format!("{key_id}.pk8"));
    let g = if private.exists() {
        carebridge::ota::keys::GeneratedKey {
            key_id: key_id.into(),
            public_path: dir.join("private").join(format!("{key_id}.pub")),
            private_path: private,
        }
    } else {
        carebridge::ota::keys::generate(&dir.join("private"), key_id).unwrap()
    };
    if trusted {
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        std::fs::copy(
            &g.public_path,
            dir.join("keys").join(format!("{key_id}.pub")),
        )
        .unwrap();
    }
    let key = carebridge::ota::keys::load_private(&g.private_path).unwrap();
    let input = ManifestInput {
        version: version.into(),
        arch: std::env::consts::ARCH.into(),
        min_version: None,
        allow_downgrade: false,
        created: None,
        expires: None,
        gateways: Vec::new(),
        fleets: Vec::new(),
    };
    let entries = [PayloadEntry {
        name: carebridge::ota::archive::BINARY_NAME.into(),
        executable: true,
        source: EntrySource::Bytes(b"#!/bin/sh\nexit 0\n".to_vec()),
    }];
    let mut out = Vec::new();
    write_bundle(&key, key_id, &input, &entries, &mut out).unwrap();
    out
}

async fn upload(s: &Server, c: &Client, body: &[u8], csrf: bool) -> Resp {
    let stream = TcpStream::connect(s.addr).await.unwrap();
    let mut h = vec![("Cookie", c.cookie.as_str()), ("Origin", s.origin.as_str())];
    if csrf {
        h.push(("X-CSRF-Token", c.csrf.as_str()));
    }
    exchange(
        stream,
        raw("POST", &s.addr.to_string(), "/api/v1/system/ota", &h, body),
    )
    .await
}

#[tokio::test]
async fn an_uploaded_bundle_is_verified_and_refusals_say_why() {
    let r = rig().await;
    let c = setup(&r.s).await;
    let dir = r.s.dir.path();
    let e = upload(&r.s, &c, b"MZ this is not a bundle at all", true).await;
    assert_eq!(e.status, 422, "{e:?}");
    let msg = e.json()["error"].as_str().unwrap().to_string();
    assert!(msg.starts_with("bundle: refused:"), "{msg}");
    let foreign = signed_bundle(dir, "stranger", false);
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let e = upload(&r.s, &c, &foreign, true).await;
    assert!(
        e.json()["error"].as_str().unwrap().contains("unknown key"),
        "{e:?}"
    );
    let good = signed_bundle(dir, "release", true);
    let ok = upload(&r.s, &c, &good, true).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let j = ok.json();
    assert_eq!(j["verified"], true);
    assert_eq!(j["installed"], false, "no packaged layout here");
    assert_eq!(j["manifest"]["version"], "99.1.0");
    assert!(j["message"].as_str().unwrap().contains("packaged layout"));
    let mut tampered = good.clone();
    let n = tampered.len();
    tampered[n - 3] ^= 0x55;
    let e = upload(&r.s, &c, &tampered, true).await;
    assert_eq!(e.status, 422, "{e:?}");
    let no_csrf = upload(&r.s, &c, &good, false).await;
    assert_eq!(no_csrf.status, 403);
    let empty = upload(&r.s, &c, b"", true).await;
    assert_eq!(empty.json()["field"], "bundle");
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("ota-upload"))
        .collect();
    assert!(left.is_empty(), "temporary uploads are removed");
    let audit = c.call(&r.s, "GET", "/api/v1/audit", "").await.json();
    let actions: Vec<_> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert!(actions.contains(&"ota.verified".to_string()), "{actions:?}");
    assert!(actions.contains(&"ota.refused".to_string()), "{actions:?}");
}

#[tokio::test]
async fn mqtt_test_connection_reports_the_exact_error_and_logs_say_where_they_are() {
    let r = rig().await;
    let c = setup(&r.s).await;
    let t = c.call(&r.s, "POST", "/api/v1/uplinks/mqtt/test", "").await;
    assert_eq!(t.status, 200, "{t:?}");
    let j = t.json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["stage"], "connect");
    assert!(j["error"].as_str().unwrap().contains("refused"), "{j}");
    let l = c.call(&r.s, "GET", "/api/v1/system/logs", "").await;
    if std::env::var_os("INVOCATION_ID").is_none() && std::env::var_os("JOURNAL_STREAM").is_none() {
        assert_eq!(l.status, 503);
        assert!(
            l.json()["error"]
                .as_str()
                .unwrap()
                .contains("not running under systemd")
        );
    }
}

#[tokio::test]
async fn with_the_packaged_layout_an_upload_is_installed_on_trial_and_the_gateway_restarts() {
    let r = rig().await;
    let c = setup(&r.s).await;
    let dir = r.s.dir.path();
    // A gateway installed from a package: release 99.0.0 current and committed.
    let first = signed_version(dir, "release", true, "99.0.0");
    let paths = carebridge::ota::OtaPaths::under(dir);
    let keys = carebridge::ota::keys::TrustStore::load(&dir.join("keys")).unwrap();
    let opts = carebridge::ota::install::InstallOptions {
        arch: std::env::consts::ARCH,
        max_payload: 1 << 20,
        on_step: None,
        target: None,
        allow_rolled_back: false,
        clock_trusted: true,
    };
    carebridge::ota::install::install_bundle_from_reader(&mut &first[..], &paths, &keys, &opts)
        .unwrap();
    carebridge::ota::recover::commit_now(&paths, carebridge::wall::now()).unwrap();
    let next = signed_version(dir, "release", true, "99.1.0");
    let ok = upload(&r.s, &c, &next, true).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let j = ok.json();
    assert_eq!(j["installed"], true, "{j}");
    assert_eq!(j["install"]["version"], "99.1.0");
    assert_eq!(j["install"]["previous"], "99.0.0");
    assert_eq!(
        carebridge::ota::install::current_version(&paths).as_deref(),
        Some("99.1.0")
    );
    // The clean stop that lets systemd start the new release on trial.
    tokio::time::timeout(Duration::from_secs(20), r.s.shutdown.cancelled())
        .await
        .expect("the gateway stops to restart into the new release");
}
