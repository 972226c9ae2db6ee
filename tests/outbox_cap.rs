//! The outbox size cap with the uplink down: alerts are all kept, the
//! oldest telemetry is evicted, and the heartbeat counts what was evicted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_full_outbox_keeps_every_alert_and_evicts_the_oldest_telemetry() {
    if !have("mosquitto") {
        return;
    }
    let mut up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        dir.path(),
        "gw-cap",
        up.port,
        "heartbeat = \"1s\"\n[store]\noutbox_max_mb = 1\n",
    );
    assert!(eventually(Duration::from_secs(30), || col
        .snapshot()
        .iter()
        .any(|m| m.topic == "cb/gw-cap/status")));
    up.stop();

    // ~120 bytes a row: 20,000 rows are well over 1 MiB.
    let total = 20_000;
    let mut readings = temperatures("living-temp", total);
    for i in 0..50 {
        readings.insert(
            i * 400 + 7,
            (
                format!("pendant-{i}"),
                serde_json::json!({"kind":"panic","value":true}),
            ),
        );
    }
    assert_eq!(publish(gw.broker_port, &readings), total + 50);
    std::thread::sleep(Duration::from_secs(2));
    up.restart();

    assert!(
        eventually(Duration::from_secs(60), || col.count("alert") == 50),
        "alerts lost: {} of 50 arrived",
        col.count("alert")
    );
    // Let the telemetry that survived drain.
    let mut last = 0;
    assert!(eventually(Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_secs(2));
        let n = col.count("telemetry");
        std::mem::replace(&mut last, n) == n
    }));
    let tel: Vec<_> = col
        .unique("telemetry")
        .into_iter()
        .filter(|t| t["device"] == "living-temp")
        .collect();
    assert!(
        tel.len() < total,
        "nothing was evicted ({} rows arrived)",
        tel.len()
    );
    assert!(
        tel.len() > 1000,
        "too much was evicted: only {} arrived",
        tel.len()
    );
    // What survived is the newest: the last reading (value total-1) is there,
    // and the values that arrived are one contiguous run up to it.
    let mut values: Vec<u64> = tel
        .iter()
        .map(|t| t["value"].as_f64().unwrap() as u64)
        .collect();
    values.sort_unstable();
    assert_eq!(*values.last().unwrap(), total as u64 - 1);
    let first = values[0];
    assert_eq!(
        values.len() as u64,
        total as u64 - first,
        "survivors are not the newest run"
    );
    assert_contiguous(&col.unique("alert"), "alerts");

    // The heartbeat reports the evictions: exactly the ones missing.
    // (Panic readings are telemetry too: count only what is missing.)
    let arrived_total = col.count("telemetry") as u64;
    let evicted = (total as u64 + 50) - arrived_total;
    assert!(
        eventually(Duration::from_secs(30), || col.snapshot().iter().any(|m| {
            m.topic == "cb/gw-cap/status"
                && m.json["evicted"]["telemetry"].as_u64() == Some(evicted)
        })),
        "no heartbeat reports {evicted} evicted telemetry rows; last status: {:?}",
        col.snapshot()
            .iter()
            .rev()
            .find(|m| m.topic == "cb/gw-cap/status")
            .map(|m| &m.json)
    );
}
