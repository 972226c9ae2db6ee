//! Remote configuration through a real Mosquitto: a configuration fragment
//! (`[devices.*]`) applied without restart and reported, refused with the
//! `config check` message when invalid (nothing changed), refused when it
//! needs a restart, rolled back, kept across a restart; with
//! `[remote] require_signed` an unsigned body is refused, a signed one
//! accepted and a tampered one refused. Also `cmd/diagnostics`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;

const DOOR_RULES: &str = "[[rule]]\nid = \"door\"\ntype = \"immediate\"\nkinds = [\"contact\"]\nseverity = \"warning\"\n";

fn command(port: u16, gw: &str, name: &str, body: &str) {
    let status = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", &format!("cb/{gw}/cmd/{name}"), "-m", body])
        .status()
        .expect("mosquitto_pub");
    assert!(status.success());
}

/// The n-th result on `cmd/<name>/result`.
fn result(col: &Collector, name: &str, n: usize) -> serde_json::Value {
    let leaf = format!("/cmd/{name}/result");
    let of = |c: &Collector| {
        c.snapshot()
            .into_iter()
            .filter(|m| m.topic.ends_with(&leaf))
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(Duration::from_secs(20), || of(col).len() > n),
        "no {name} result #{n}: {:?}",
        col.snapshot()
    );
    of(col).into_iter().nth(n).unwrap().json
}

/// The latest retained `<prefix>/<gw>/config` document.
fn versions(col: &Collector, gw: &str) -> Option<serde_json::Value> {
    let t = format!("cb/{gw}/config");
    col.snapshot()
        .into_iter()
        .rev()
        .find(|m| m.topic == t)
        .map(|m| m.json)
}

fn config_version(col: &Collector, gw: &str) -> Option<u64> {
    versions(col, gw).and_then(|v| v["config"]["version"].as_u64())
}

#[test]
fn a_config_fragment_is_applied_reported_refused_rolled_back_and_signed() {
    if !cloud_peers() {
        return;
    }
    let up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let key = carebridge::ota::keys::generate(&keys, "ops").unwrap();
    let pair = carebridge::ota::keys::load_private(&key.private_path).unwrap();
    let remote = format!("\n[remote]\nkeys_dir = \"{}\"\n", keys.display());
    let gw_id = "gw-cfg";
    let mut gw = Gateway::start(dir.path(), gw_id, up.port, &remote);
    assert!(
        eventually(Duration::from_secs(30), || config_version(&col, gw_id)
            == Some(0)),
        "no config versions published: {:?}",
        col.snapshot()
    );

    // A rule set as a TOML body.
    // A door-only set has no life-safety rules: sent on purpose.
    let body =
        format!("version = 1\nallow_missing_life_safety = true\nrules = '''\n{DOOR_RULES}'''\n");
    command(up.port, gw_id, "config", &body);
    let r = result(&col, "config", 0);
    assert_eq!(r["ok"], true, "{r}");

    // A fragment: the door's room, applied without restart.
    let frag = serde_json::json!({"version": 3,
        "config": "[devices.door-1]\nroom = \"hall\"\nrole = \"front_door\"\n"});
    command(up.port, gw_id, "config", &frag.to_string());
    let r = result(&col, "config", 1);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["version"], 3);
    assert_eq!(r["config"]["devices"], 1);
    assert!(eventually(Duration::from_secs(30), || config_version(
        &col, gw_id
    ) == Some(3)));
    open_door(gw.broker_port, "door-1");
    assert!(
        eventually(Duration::from_secs(30), || col
            .unique("alert")
            .iter()
            .any(|a| a["rule"] == "door" && a["room"] == "hall")),
        "{:?}",
        col.unique("alert")
    );

    // Invalid: refused with the config-check message; nothing changed.
    let bad = serde_json::json!({"version": 4, "config": "[devices.door-1]\nrooom = \"x\"\n"});
    command(up.port, gw_id, "config", &bad.to_string());
    let r = result(&col, "config", 2);
    assert_eq!(r["ok"], false, "{r}");
    let err = r["error"].as_str().unwrap();
    assert!(
        err.contains("remote config:2:") && err.contains("rooom"),
        "{err}"
    );
    // Needs a restart: refused, named.
    let restart =
        serde_json::json!({"version": 4, "config": {"uplink": {"mqtt": {"keepalive": "9s"}}}});
    command(up.port, gw_id, "config", &restart.to_string());
    let r = result(&col, "config", 3);
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("needs a restart"),
        "{r}"
    );
    assert_eq!(config_version(&col, gw_id), Some(3));

    // Rollback of the fragment: back to the file (version 0).
    command(up.port, gw_id, "config", r#"{"rollback": "config"}"#);
    let r = result(&col, "config", 4);
    assert_eq!(r["ok"], true, "{r}");
    assert!(eventually(Duration::from_secs(30), || config_version(
        &col, gw_id
    ) == Some(0)));

    // Diagnostics: bounded, with the device and the versions.
    command(up.port, gw_id, "diagnostics", "");
    let d = result(&col, "diagnostics", 0);
    assert_eq!(d["ok"], true, "{d}");
    assert!(d.to_string().len() <= 64 * 1024);
    assert!(
        d["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == "door-1"),
        "{d}"
    );
    assert_eq!(d["status"]["config_version"]["rules"]["version"], 1, "{d}");
    assert!(d["memory"]["rss_bytes"].as_u64().unwrap() > 0);
    assert!(d["disk"]["free_bytes"].as_u64().is_some(), "{d}");

    // Kept across a restart, now requiring signatures.
    let frag =
        serde_json::json!({"version": 5, "config": "[devices.door-2]\nroom = \"kitchen\"\n"});
    command(up.port, gw_id, "config", &frag.to_string());
    assert_eq!(result(&col, "config", 5)["ok"], true);
    gw.stop();
    let text = std::fs::read_to_string(&gw.config).unwrap();
    std::fs::write(
        &gw.config,
        text.replace("[remote]\n", "[remote]\nrequire_signed = true\n"),
    )
    .unwrap();
    let before = col.snapshot().len();
    gw.restart();
    assert!(
        eventually(Duration::from_secs(30), || col.snapshot()[before..]
            .iter()
            .any(
                |m| m.topic == format!("cb/{gw_id}/config") && m.json["config"]["version"] == 5
            )),
        "overlay version lost on restart"
    );

    // Unsigned: refused.
    let body = serde_json::json!({"version": 6, "config": "[devices.door-3]\nroom = \"loft\"\n"})
        .to_string();
    command(up.port, gw_id, "config", &body);
    let r = result(&col, "config", 6);
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("unsigned"), "{r}");
    // Signed: accepted.
    let env = carebridge::remote_config::sign(&pair, "ops", &body);
    command(up.port, gw_id, "config", &env.to_string());
    let r = result(&col, "config", 7);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["version"], 6);
    // Tampered: refused, nothing changed.
    let mut env = carebridge::remote_config::sign(&pair, "ops", &body.replace("6", "7"));
    env["body"] = body.replace("6", "8").replace("loft", "cellar").into();
    command(up.port, gw_id, "config", &env.to_string());
    let r = result(&col, "config", 8);
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("signature"), "{r}");
    assert!(eventually(Duration::from_secs(30), || config_version(
        &col, gw_id
    ) == Some(6)));
}
