//! `cmd/update` through the running daemon and a real Mosquitto: the
//! command is taken at once (other commands are not held up by a
//! download), and a download that cannot succeed ends in a `failed` result
//! naming why, with the gateway still serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;

fn send(port: u16, topic: &str, body: &str) {
    let ok = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic, "-m", body])
        .status()
        .expect("mosquitto_pub")
        .success();
    assert!(ok);
}

fn results(col: &Collector) -> Vec<serde_json::Value> {
    col.snapshot()
        .into_iter()
        .filter(|m| m.topic == "cb/gw-ota/cmd/update/result")
        .map(|m| m.json)
        .collect()
}

#[test]
fn an_update_that_cannot_download_is_reported_failed_and_the_gateway_keeps_serving() {
    if !cloud_peers() {
        return;
    }
    let up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let extra = format!("[ota]\nkeys_dir = \"{}\"\n", keys.display());
    let _gw = Gateway::start(dir.path(), "gw-ota", up.port, &extra);
    assert!(eventually(Duration::from_secs(30), || col
        .snapshot()
        .iter()
        .any(|m| m.topic == "cb/gw-ota/status")));

    // Nothing listens on port 1: the download fails.
    let dead = format!(
        "{{\"url\":\"http://127.0.0.1:1/carebridge.cbb\",\"sha256\":\"{}\",\"size\":1000}}",
        "ab".repeat(32)
    );
    send(up.port, "cb/gw-ota/cmd/update", &dead);
    assert!(
        eventually(Duration::from_secs(20), || results(&col)
            .iter()
            .any(|r| r["phase"] == "failed")),
        "{:?}",
        results(&col)
    );
    let r = results(&col);
    assert_eq!(r[0]["ok"], true, "taken at once: {r:?}");
    let failed = r.iter().find(|r| r["phase"] == "failed").unwrap();
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );

    // A malformed command is refused with its reason.
    send(
        up.port,
        "cb/gw-ota/cmd/update",
        "{\"url\":\"x\",\"sha256\":\"12\"}",
    );
    assert!(
        eventually(Duration::from_secs(30), || results(&col)
            .iter()
            .filter(|r| r["phase"] == "failed")
            .count()
            == 2),
        "{:?}",
        results(&col)
    );

    // Still serving: ping answers.
    send(up.port, "cb/gw-ota/cmd/ping", "{}");
    assert!(eventually(Duration::from_secs(30), || col
        .snapshot()
        .iter()
        .any(
            |m| m.topic == "cb/gw-ota/cmd/ping/result" && m.json["ok"] == true
        )));
}
