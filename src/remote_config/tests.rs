use super::*;
use ring::rand::SystemRandom;

fn key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn trust(k: &Ed25519KeyPair) -> impl FnOnce() -> Result<TrustStore, String> {
    let pk = public_key(k);
    move || Ok(TrustStore::from_keys([("ops".to_string(), pk)]))
}

#[test]
fn json_and_toml_bodies_give_the_same_fields() {
    let j = parse_body(r#"{"version": 3, "config": "[log]\nlevel = \"debug\"\n"}"#).unwrap();
    let t = parse_body("version = 3\nconfig = '''\n[log]\nlevel = \"debug\"\n'''\n").unwrap();
    assert_eq!(j, t);
    assert!(parse_body("[1, 2]").is_err());
    let e = parse_body("{nope").unwrap_err().to_string();
    assert!(e.contains("JSON"), "{e}");
}

#[test]
fn a_signed_body_opens_and_names_its_key() {
    let k = key();
    let env = sign(&k, "ops", r#"{"version": 2, "gateway": "gw-1"}"#);
    let o = open(env.to_string().as_bytes(), "gw-1", true, trust(&k)).unwrap();
    assert_eq!(o.signed_by.as_deref(), Some("ops"));
    assert_eq!(o.body["version"], 2);
}

#[test]
fn unsigned_is_refused_only_when_signatures_are_required() {
    let k = key();
    let body = br#"{"version": 2}"#;
    assert!(matches!(
        open(body, "gw", true, trust(&k)),
        Err(RemoteError::Unsigned)
    ));
    assert!(
        open(body, "gw", false, trust(&k))
            .unwrap()
            .signed_by
            .is_none()
    );
}

#[test]
fn a_tampered_body_or_foreign_key_is_refused() {
    let k = key();
    let mut env = sign(&k, "ops", r#"{"version": 2}"#);
    env["body"] = r#"{"version": 3}"#.into();
    assert!(matches!(
        open(env.to_string().as_bytes(), "gw", false, trust(&k)),
        Err(RemoteError::BadSignature)
    ));
    let other = key();
    let env = sign(&other, "ops", r#"{"version": 2}"#);
    assert!(matches!(
        open(env.to_string().as_bytes(), "gw", false, trust(&k)),
        Err(RemoteError::BadSignature)
    ));
    let env = sign(&k, "nobody", r#"{"version": 2}"#);
    assert!(matches!(
        open(env.to_string().as_bytes(), "gw", false, trust(&k)),
        Err(RemoteError::UnknownKey(_))
    ));
    let env = sign(&k, "ops", r#"{"version": 2}"#);
    let pk = public_key(&k);
    let revoked = move || {
        let mut t = TrustStore::from_keys([("ops".to_string(), pk)]);
        t.revoke("ops");
        Ok(t)
    };
    assert!(matches!(
        open(env.to_string().as_bytes(), "gw", false, revoked),
        Err(RemoteError::Revoked(_))
    ));
}

#[test]
fn a_body_for_another_gateway_is_refused() {
    let k = key();
    let env = sign(&k, "ops", r#"{"version": 2, "gateway": "gw-2"}"#);
    assert!(matches!(
        open(env.to_string().as_bytes(), "gw-1", false, trust(&k)),
        Err(RemoteError::WrongGateway(_))
    ));
}

#[test]
fn fragments_outside_devices_and_log_need_a_restart() {
    let t: toml::Table =
        toml::from_str("[devices.a]\nroom = \"hall\"\n[log]\nlevel = \"debug\"\n").unwrap();
    assert_eq!(needs_restart(&t), None);
    let t: toml::Table = toml::from_str("[uplink.mqtt]\nurl = \"mqtt://x\"\n").unwrap();
    assert_eq!(needs_restart(&t).as_deref(), Some("uplink.mqtt"));
}

#[test]
fn a_fragment_object_becomes_toml_text() {
    let v = serde_json::json!({"devices": {"door-1": {"room": "hall"}}});
    let t = fragment_text(&v).unwrap();
    let back: toml::Table = toml::from_str(&t).unwrap();
    assert_eq!(back["devices"]["door-1"]["room"].as_str(), Some("hall"));
    assert!(fragment_text(&serde_json::json!(5)).is_err());
}

#[test]
fn a_fragment_is_checked_merged_with_config_check_messages() {
    let base = Config::default();
    let merged = crate::config::check_fragment(
        &base,
        "[devices.door-1]\nroom = \"hall\"\n",
        "remote config",
    )
    .unwrap();
    assert_eq!(merged.devices["door-1"].room.as_deref(), Some("hall"));
    assert_eq!(merged.gateway, base.gateway);
    let e =
        crate::config::check_fragment(&base, "[devices.door-1]\nrooom = \"x\"\n", "remote config")
            .unwrap_err()
            .to_string();
    assert!(e.starts_with("remote config:2:"), "{e}");
    assert!(e.contains("rooom"), "{e}");
    let e = crate::config::check_fragment(&base, "[log]\nlevel = \"x=loud\"\n", "remote config")
        .unwrap_err()
        .to_string();
    assert!(e.contains("remote config:2: log.level"), "{e}");
}

#[test]
fn only_changed_device_facts_are_sent_to_the_hub() {
    let mut a = Config::default();
    a.devices.insert(
        "d1".into(),
        crate::config::DeviceConfig {
            room: Some("hall".into()),
            ..Default::default()
        },
    );
    let mut b = a.clone();
    b.devices.insert(
        "d2".into(),
        crate::config::DeviceConfig {
            room: Some("lounge".into()),
            ..Default::default()
        },
    );
    let ch = changed_devices(&a, &b);
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].id.as_ref().unwrap().as_str(), "d2");
}

#[tokio::test]
async fn every_version_change_is_published_retained_on_the_config_topic() {
    let (rules_tx, rules_rx) = watch::channel(Active {
        version: 2,
        source: "remote".into(),
    });
    let (_cfg_tx, cfg_rx) = watch::channel(Active::default());
    let (direct_tx, mut direct_rx) = mpsc::channel(8);
    let sd = tokio_util::sync::CancellationToken::new();
    let v = Versions {
        rules: rules_rx,
        config: cfg_rx,
    };
    let task = tokio::spawn(report_versions(v, direct_tx, sd.clone()));
    let first = direct_rx.recv().await.unwrap();
    assert_eq!(first.subtopic, "config");
    assert!(first.retain);
    let doc: serde_json::Value = serde_json::from_slice(&first.payload).unwrap();
    assert_eq!(doc["rules"]["version"], 2);
    // A local edit in the UI: drift the cloud must hear about.
    rules_tx.send_replace(Active {
        version: 3,
        source: "ui:installer".into(),
    });
    let next = direct_rx.recv().await.unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&next.payload).unwrap();
    assert_eq!(doc["rules"]["version"], 3);
    assert_eq!(doc["rules"]["source"], "ui:installer");
    sd.cancel();
    task.await.unwrap().unwrap();
}

#[test]
fn a_fragment_merges_over_every_section_of_the_default_file() {
    let base = Config::parse(&crate::config::defaults_toml(), "defaults").unwrap();
    let mut full = base.clone();
    full.simulator = Some(Default::default());
    full.ota = Some(Default::default());
    full.zigbee = Some(Default::default());
    let merged =
        crate::config::check_fragment(&full, "[log]\nlevel = \"debug\"\n", "remote config")
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(merged.log.level, "debug");
    assert_eq!(merged.uplink, full.uplink);
    assert_eq!(merged.store, full.store);
    assert_eq!(merged.zigbee, full.zigbee);
    assert_eq!(merged.web, full.web);
}
