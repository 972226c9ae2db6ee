//! The cloud changes the rules of a running gateway with `cmd/config`
//! (through a real Mosquitto): applied without restart, kept across a
//! restart, refused with the `rules check` message when invalid, and
//! rolled back on request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;

const DOOR_RULES: &str = "[[rule]]\nid = \"door\"\ntype = \"immediate\"\nkinds = [\"contact\"]\nseverity = \"warning\"\n";

fn command(port: u16, gw: &str, name: &str, body: &serde_json::Value) {
    let status = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args([
            "-t",
            &format!("cb/{gw}/cmd/{name}"),
            "-m",
            &body.to_string(),
        ])
        .status()
        .expect("mosquitto_pub");
    assert!(status.success());
}

/// The n-th result on `cmd/config/result` (results carry no id: count them).
fn result(col: &Collector, n: usize) -> serde_json::Value {
    assert!(
        eventually(Duration::from_secs(30), || col
            .snapshot()
            .iter()
            .filter(|m| m.topic.ends_with("/cmd/config/result"))
            .count()
            > n),
        "no result #{n}: {:?}",
        col.snapshot()
    );
    col.snapshot()
        .into_iter()
        .filter(|m| m.topic.ends_with("/cmd/config/result"))
        .nth(n)
        .unwrap()
        .json
}

fn door_alerts(col: &Collector) -> Vec<String> {
    col.unique("alert")
        .iter()
        .filter(|a| a["rule"] == "door")
        .map(|a| a["device"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_rule_set_is_applied_without_restart_kept_refused_when_invalid_and_rolled_back() {
    if !cloud_peers() {
        return;
    }
    let up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(dir.path(), "gw-rules", up.port, "");
    assert!(eventually(Duration::from_secs(30), || col
        .snapshot()
        .iter()
        .any(|m| m.topic == "cb/gw-rules/status")));

    // The built-in rules do not alert on a door.
    open_door(gw.broker_port, "door-0");

    // A door-only set has no life-safety rules: refused, naming them…
    command(
        up.port,
        "gw-rules",
        "config",
        &serde_json::json!({"rules": DOOR_RULES, "version": 5}),
    );
    let r = result(&col, 0);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(
        r["missing_life_safety"],
        serde_json::json!(["panic", "fall", "smoke", "water_leak"]),
        "{r}"
    );
    // …unless sent on purpose.
    command(
        up.port,
        "gw-rules",
        "config",
        &serde_json::json!({"rules": DOOR_RULES, "version": 5, "allow_missing_life_safety": true}),
    );
    let r = result(&col, 1);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["version"], 5);
    open_door(gw.broker_port, "door-1");
    assert!(
        eventually(Duration::from_secs(30), || door_alerts(&col)
            == vec!["door-1".to_string()]),
        "{:?}",
        door_alerts(&col)
    );

    // Invalid: refused with line and key, nothing changed.
    command(
        up.port,
        "gw-rules",
        "config",
        &serde_json::json!({"rules": "[[rule]]\nid = \"x\"\ntype = \"immediate\"\nkindz = [\"contact\"]\n", "version": 6}),
    );
    let r = result(&col, 2);
    assert_eq!(r["ok"], false, "{r}");
    let err = r["error"].as_str().unwrap();
    assert!(err.contains(":4:") && err.contains("kindz"), "{err}");
    // A stale version is refused too.
    command(
        up.port,
        "gw-rules",
        "config",
        &serde_json::json!({"rules": "", "version": 4, "allow_missing_life_safety": true}),
    );
    let r = result(&col, 3);
    assert_eq!(r["ok"], false, "{r}");

    // Kept across a restart.
    gw.stop();
    gw.restart();
    open_door(gw.broker_port, "door-2");
    assert!(
        eventually(Duration::from_secs(30), || door_alerts(&col).len() == 2),
        "rules lost on restart: {:?}",
        door_alerts(&col)
    );

    // Rollback: back to the built-in rules, doors alert no more.
    command(
        up.port,
        "gw-rules",
        "config",
        &serde_json::json!({"rollback": true}),
    );
    let r = result(&col, 4);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["version"], 0);
    open_door(gw.broker_port, "door-3");
    // A panic after the door proves the door reading was processed.
    assert_eq!(publish(gw.broker_port, &panics("pendant-after", 1)), 1);
    assert!(eventually(Duration::from_secs(30), || col
        .unique("alert")
        .iter()
        .any(|a| a["device"] == "pendant-after")));
    assert_eq!(door_alerts(&col).len(), 2, "{:?}", door_alerts(&col));
}
