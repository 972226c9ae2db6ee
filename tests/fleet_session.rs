//! A fleet's uplink against real Mosquitto brokers: commands sent while a
//! gateway was stopped reach it over its persistent session, a repeated
//! command id runs once (also across a restart), a stale command is refused;
//! with two broker nodes in `url`, the gateway moves to the other node when
//! its node stops, and nothing it had accepted is lost.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;

fn command(port: u16, gw: &str, name: &str, body: &str) {
    let status = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", &format!("cb/{gw}/cmd/{name}"), "-m", body])
        .status()
        .expect("mosquitto_pub");
    assert!(status.success());
}

fn results(col: &Collector, name: &str) -> Vec<serde_json::Value> {
    let leaf = format!("/cmd/{name}/result");
    col.snapshot()
        .into_iter()
        .filter(|m| m.topic.ends_with(&leaf))
        .map(|m| m.json)
        .collect()
}

fn online(col: &Collector, gw: &str) -> Option<serde_json::Value> {
    col.snapshot()
        .into_iter()
        .rev()
        .find(|m| m.topic == format!("cb/{gw}/status") && m.json["state"] == "online")
        .map(|m| m.json)
}

#[test]
fn commands_sent_while_a_gateway_was_stopped_arrive_once_and_stale_ones_are_refused() {
    if !have("mosquitto") || !have("mosquitto_pub") {
        return;
    }
    let up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let gw_id = "gw-session";
    let mut gw = Gateway::start(dir.path(), gw_id, up.port, "");
    assert!(
        eventually(Duration::from_secs(20), || online(&col, gw_id).is_some()),
        "never online: {:?}",
        col.snapshot()
    );
    // Its persistent session (and the cmd/+ subscription) outlives it.
    assert_eq!(gw.stop(), Some(0));

    let later = chrono_like_in_one_hour();
    command(up.port, gw_id, "ping", r#"{"id":"c-1"}"#);
    command(up.port, gw_id, "ping", r#"{"id":"c-1"}"#); // the cloud retried
    command(
        up.port,
        gw_id,
        "ping",
        r#"{"id":"c-2","expires":"2020-01-01T00:00:00Z"}"#,
    );
    command(
        up.port,
        gw_id,
        "ping",
        &format!(r#"{{"id":"c-3","expires":"{later}"}}"#),
    );
    command(
        up.port,
        gw_id,
        "ping",
        r#"{"id":"c-4","expires":"not a time"}"#,
    );

    gw.restart();
    assert!(
        eventually(Duration::from_secs(30), || results(&col, "ping").len() >= 5),
        "queued commands did not arrive: {:?}",
        col.snapshot()
    );
    let trusted = online(&col, gw_id).unwrap()["clock"]["trusted"] == true;
    let r = results(&col, "ping");
    let by = |id: &str| -> Vec<&serde_json::Value> { r.iter().filter(|v| v["id"] == id).collect() };
    let c1 = by("c-1");
    assert_eq!(c1.len(), 2, "{r:?}");
    assert_eq!(
        c1.iter().filter(|v| v.get("pong").is_some()).count(),
        1,
        "ran once: {r:?}"
    );
    assert_eq!(
        c1.iter().filter(|v| v["duplicate"] == true).count(),
        1,
        "{r:?}"
    );
    let c2 = by("c-2");
    assert_eq!(c2.len(), 1, "{r:?}");
    if trusted {
        assert_eq!(c2[0]["ok"], false, "{r:?}");
        assert!(
            c2[0]["error"].as_str().unwrap().starts_with("expired"),
            "{r:?}"
        );
        assert!(c2[0].get("pong").is_none(), "not executed: {r:?}");
    } else {
        // An untrusted clock cannot judge expiry: it says so and runs it.
        assert!(
            c2[0]["expires_unchecked"]
                .as_str()
                .unwrap()
                .contains("not trusted"),
            "{r:?}"
        );
    }
    let c3 = by("c-3");
    assert_eq!(c3.len(), 1, "{r:?}");
    assert_eq!(c3[0]["ok"], true, "{r:?}");
    let bad: Vec<_> = r.iter().filter(|v| v.get("id").is_none()).collect();
    assert_eq!(bad.len(), 1, "{r:?}");
    assert!(
        bad[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("field expires"),
        "{r:?}"
    );

    // The ids are remembered on disk: after a restart c-1 still ran once.
    assert_eq!(gw.stop(), Some(0));
    gw.restart();
    command(up.port, gw_id, "ping", r#"{"id":"c-1"}"#);
    assert!(
        eventually(Duration::from_secs(20), || results(&col, "ping").len() >= 6),
        "{:?}",
        col.snapshot()
    );
    let r = results(&col, "ping");
    let last = r.last().unwrap();
    assert_eq!(last["id"], "c-1");
    assert_eq!(last["duplicate"], true, "{r:?}");
}

/// RFC 3339, one hour from now (UTC), without a date crate.
fn chrono_like_in_one_hour() -> String {
    let t = carebridge::model::Time(carebridge::wall::now().0 + 3_600_000);
    t.to_rfc3339()
}

#[test]
fn with_two_broker_nodes_the_gateway_moves_to_the_other_when_its_node_stops() {
    if !have("mosquitto") {
        return;
    }
    // Two independent brokers stand for two cluster nodes; the collector
    // listens on both (a cluster would route for it).
    let mut a = Mosquitto::start();
    let mut b = Mosquitto::start();
    let col_a = Collector::start(a.port, "cb/#");
    let col_b = Collector::start(b.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let broker_port = free_port();
    let config = dir.path().join("carebridge.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"gw-failover\"\ndata_dir = \"{data}\"\n\n\
             [local_broker]\nlisten = \"127.0.0.1:{broker_port}\"\n\n\
             [uplink.mqtt]\nurl = [\"mqtt://127.0.0.1:{pa}\", \"mqtt://127.0.0.1:{pb}\"]\n\
             topic_prefix = \"cb\"\nkeepalive = \"5s\"\nbackoff_min = \"100ms\"\nbackoff_max = \"500ms\"\n",
            data = dir.path().join("data").display(),
            pa = a.port,
            pb = b.port,
        ),
    )
    .unwrap();
    let _gw = Gateway::from_config(dir.path(), config, broker_port);
    let on = |c: &Collector| online(c, "gw-failover");
    assert!(
        eventually(Duration::from_secs(20), || on(&col_a).is_some()
            || on(&col_b).is_some()),
        "never online"
    );
    let (first, first_port, other_col) = if on(&col_a).is_some() {
        (&mut a, "a", &col_b)
    } else {
        (&mut b, "b", &col_a)
    };
    let status = on(if first_port == "a" { &col_a } else { &col_b }).unwrap();
    let node = status["uplinks"]["mqtt"]["node"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(node.starts_with("127.0.0.1:"), "{status}");

    // Readings accepted while the node is down must reach the other node.
    first.stop();
    let sent = publish(broker_port, &temperatures("t-fail", 20));
    assert_eq!(sent, 20);
    assert!(
        eventually(Duration::from_secs(30), || other_col.count("telemetry")
            >= 20),
        "moved node got {} of 20 telemetry",
        other_col.count("telemetry")
    );
    let moved = online(other_col, "gw-failover").unwrap();
    let node2 = moved["uplinks"]["mqtt"]["node"].as_str().unwrap();
    assert_ne!(node2, node, "{moved}");
    assert!(
        moved["uplinks"]["mqtt"]["failovers"].as_u64().unwrap() >= 1,
        "{moved}"
    );
    // It stays there: the node it left comes back and nothing moves.
    first.restart();
    std::thread::sleep(Duration::from_secs(3));
    let again = publish(broker_port, &temperatures("t-stay", 5));
    assert_eq!(again, 5);
    assert!(
        eventually(Duration::from_secs(20), || other_col.count("telemetry")
            >= 25),
        "{}",
        other_col.count("telemetry")
    );
}
