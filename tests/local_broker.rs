//! The embedded broker as Wi-Fi devices meet it: malformed publications are
//! counted and survive nothing worse than a log line; optional password
//! login; a busy port is refused at start-up instead of silently shared.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};

#[test]
fn malformed_payloads_are_counted_and_the_next_good_one_still_raises_an_alert() {
    if !have("mosquitto") {
        return;
    }
    let up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), "gw-bad", up.port, "heartbeat = \"1s\"\n");
    let junk = vec![
        ("kitchen".to_string(), serde_json::json!("not an object")),
        (
            "kitchen".to_string(),
            serde_json::json!({"kind": "teleport", "value": 1}),
        ),
        (
            "kitchen".to_string(),
            serde_json::json!({"kind": "panic", "value": "maybe"}),
        ),
    ];
    assert_eq!(publish(gw.broker_port, &junk), 3);
    assert_eq!(publish(gw.broker_port, &panics("pendant", 1)), 1);
    assert!(eventually(Duration::from_secs(30), || col.count("alert") == 1));
    assert!(
        eventually(Duration::from_secs(30), || col.snapshot().iter().any(|m| {
            m.topic == "cb/gw-bad/status" && m.json["counters"]["mqtt_malformed"] == 3
        })),
        "heartbeat should count 3 malformed publications"
    );
}

fn connect(port: u16, user: Option<(&str, &str)>) -> bool {
    let mut o = MqttOptions::new(format!("auth-{}", free_port()), "127.0.0.1", port);
    if let Some((u, p)) = user {
        o.set_credentials(u, p);
    }
    let (_c, mut conn) = Client::new(o, 4);
    for ev in conn.iter().take(3) {
        match ev {
            Ok(Event::Incoming(Incoming::ConnAck(a))) => {
                return a.code == rumqttc::ConnectReturnCode::Success;
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn the_local_broker_can_require_a_password() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "hunter22\n").unwrap();
    let port = free_port();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\ndata_dir = \"{}\"\n[local_broker]\nlisten = \"127.0.0.1:{port}\"\nusername = \"sensors\"\npassword_file = \"{}\"\n",
            dir.path().join("data").display(),
            dir.path().join("pw").display()
        ),
    )
    .unwrap();
    let _gw = Gateway::from_config(dir.path(), config, port);
    assert!(
        connect(port, Some(("sensors", "hunter22"))),
        "right password refused"
    );
    assert!(
        !connect(port, Some(("sensors", "wrong"))),
        "wrong password accepted"
    );
    assert!(!connect(port, None), "anonymous accepted");
    let _ = QoS::AtMostOnce;
}

#[test]
fn a_busy_listen_port_stops_start_up_with_a_clear_message() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\ndata_dir = \"{}\"\n[local_broker]\nlisten = \"127.0.0.1:{port}\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_carebridge"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("local_broker.listen") && err.contains(&port.to_string()),
        "{err}"
    );
}
