//! End to end through real peers: a device publishes to carebridge's
//! embedded broker, carebridge delivers upstream to a real Mosquitto.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn readings_and_a_panic_arrive_upstream_with_the_documented_fields() {
    if !have("mosquitto") {
        return;
    }
    let up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        dir.path(),
        "gw-e2e",
        up.port,
        "[devices.pendant]\nroom = \"hall\"\nname = \"Pendant\"\n",
    );
    let mut readings = temperatures("living-temp", 3);
    readings.extend(panics("pendant", 1));
    assert_eq!(publish(gw.broker_port, &readings), 4);

    assert!(
        eventually(Duration::from_secs(30), || col.count("telemetry") >= 4
            && col.count("alert") >= 1),
        "upstream got {:?}; {}",
        col.snapshot(),
        gw.diagnose()
    );
    let alert = &col.unique("alert")[0];
    for key in [
        "id", "seq", "rule", "severity", "state", "device", "room", "at", "message",
    ] {
        assert!(alert.get(key).is_some(), "alert lacks {key}: {alert}");
    }
    assert_eq!(alert["severity"], "urgent");
    assert_eq!(alert["state"], "raised");
    assert_eq!(alert["device"], "pendant");
    assert_eq!(alert["room"], "hall");
    assert_eq!(alert["id"].as_str().unwrap().len(), 36, "a UUID");

    let t = col
        .unique("telemetry")
        .into_iter()
        .find(|t| t["device"] == "living-temp" && t["value"] == 2.0)
        .expect("the third temperature");
    for key in ["id", "seq", "device", "kind", "value", "at"] {
        assert!(t.get(key).is_some(), "telemetry lacks {key}: {t}");
    }
    assert_eq!(t["kind"], "temperature");

    // The birth message is retained on status.
    let status: Vec<_> = col
        .snapshot()
        .into_iter()
        .filter(|m| m.topic == "cb/gw-e2e/status")
        .collect();
    assert!(
        status.iter().any(|m| m.json["state"] == "online"),
        "{status:?}"
    );
}

#[test]
fn outage_buffers_everything_and_delivers_alerts_first_without_gaps() {
    if !have("mosquitto") {
        return;
    }
    let mut up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), "gw-outage", up.port, "");
    // Connected first: one reading goes through.
    first_reading_goes_through(&gw, &col);

    up.stop();
    let mut readings = temperatures("living-temp", 10_000);
    // 100 panic presses spread through the stream, from distinct pendants:
    // repeated presses of one pendant are one situation (one alert, not a storm).
    for i in 0..100 {
        readings.insert(
            i * 100 + 50,
            (
                format!("pendant-{i}"),
                serde_json::json!({"kind":"panic","value":true}),
            ),
        );
    }
    assert_eq!(publish(gw.broker_port, &readings), 10_100);
    std::thread::sleep(Duration::from_secs(1)); // let the store commit
    let before = col.snapshot().len();
    up.restart();

    assert!(
        eventually(Duration::from_secs(120), || col.count("alert") == 100
            && col.count("telemetry") == 10_101), // warm-up + temperatures + the panic readings themselves
        "got {} alerts, {} telemetry; {}",
        col.count("alert"),
        col.count("telemetry"),
        gw.diagnose()
    );
    let alerts = col.unique("alert");
    let telemetry = col.unique("telemetry");
    assert_contiguous(&alerts, "alerts");
    assert_contiguous(&telemetry, "telemetry");

    // After the reconnect, every alert came before any buffered telemetry.
    let after: Vec<_> = col.snapshot().into_iter().skip(before).collect();
    let last_alert = after
        .iter()
        .rposition(|m| m.topic.ends_with("/alert"))
        .unwrap();
    let first_tel = after
        .iter()
        .position(|m| m.topic.ends_with("/telemetry"))
        .unwrap();
    assert!(
        last_alert < first_tel,
        "alert at {last_alert} after telemetry at {first_tel}"
    );
}

#[test]
fn a_frozen_broker_is_detected_within_one_and_a_half_keepalives() {
    if !have("mosquitto") {
        return;
    }
    let up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), "gw-frozen", up.port, "");
    first_reading_goes_through(&gw, &col);

    // The TCP connection stays open, nothing answers: only the watchdog can tell.
    up.freeze();
    std::thread::sleep(Duration::from_millis(9_000)); // 1.5 × 5 s keepalive + slack
    up.thaw();
    // The gateway must have dropped and re-established the link: a second
    // birth message appears (the collector kept its session).
    assert!(
        eventually(Duration::from_secs(30), || col
            .snapshot()
            .iter()
            .filter(|m| m.topic == "cb/gw-frozen/status" && m.json["state"] == "online")
            .count()
            >= 2),
        "no reconnect after a frozen broker: {:?}",
        col.snapshot().iter().map(|m| &m.topic).collect::<Vec<_>>()
    );
}

#[test]
fn ping_command_is_answered_on_its_result_topic() {
    if !have("mosquitto") {
        return;
    }
    let up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let _gw = Gateway::start(dir.path(), "gw-cmd", up.port, "");
    assert!(eventually(Duration::from_secs(30), || col
        .snapshot()
        .iter()
        .any(|m| m.topic == "cb/gw-cmd/status")));
    let status = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &up.port.to_string(), "-q", "1"])
        .args(["-t", "cb/gw-cmd/cmd/ping", "-m", "{}"])
        .status();
    if status.is_err() {
        assert!(!strict(), "mosquitto_pub missing");
        return;
    }
    assert!(
        eventually(Duration::from_secs(30), || col
            .snapshot()
            .iter()
            .any(
                |m| m.topic == "cb/gw-cmd/cmd/ping/result" && m.json["ok"] == true
            )),
        "{:?}",
        col.snapshot()
    );
}

/// One reading in, the same reading upstream: the link works before a test
/// breaks it. A failure says whether the store got the reading.
fn first_reading_goes_through(gw: &Gateway, col: &Collector) {
    assert_eq!(publish(gw.broker_port, &temperatures("warmup", 1)), 1);
    assert!(
        eventually(Duration::from_secs(30), || col.count("telemetry") == 1),
        "the first reading did not arrive upstream ({} telemetry); {}",
        col.count("telemetry"),
        gw.diagnose()
    );
}
