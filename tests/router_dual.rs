//! The dual path through the real daemon: Mosquitto as the cloud broker,
//! the LoRaWAN modem simulator on a pseudo-terminal as the radio network
//! (its decoded uplinks are the LoRaWAN receiving side).
//!
//! Timing is real: each radio uplink closes the sub-band for 100× its
//! airtime (~5 s at SF7), so these tests take tens of seconds. Waits are
//! generous; measured times are printed, never asserted tightly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use carebridge::uplink::lorawan::codec::{self, Uplink};
use carebridge::uplink::lorawan::sim::{ModemSim, SimConfig, SimUplink};
use common::*;

/// `[lorawan]` for the simulator at `port`, with short retries for tests.
fn lorawan_toml(dir: &Path, port: &str) -> String {
    let key = dir.join("appkey");
    std::fs::write(&key, "2B7E151628AED2A6ABF7158809CF4F3C\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "\n[lorawan]\nport = \"{port}\"\ndev_eui = \"AC1F09FFFE000001\"\n\
         app_key_file = \"{key}\"\njoin_backoff_min = \"1s\"\ncommand_timeout = \"1s\"\n\
         mqtt_grace = \"3s\"\nretry_min = \"1s\"\nretry_max = \"4s\"\nstatus_every = \"1h\"\n",
        key = key.display()
    )
}

/// Alerts the simulated network received (not lost), decoded.
fn radio_alerts(sim: &ModemSim) -> Vec<(SimUplink, codec::AlertMsg)> {
    sim.stats()
        .uplinks
        .into_iter()
        .filter(|u| !u.lost && u.port == 10)
        .filter_map(|u| match codec::decode(&u.data) {
            Ok((Uplink::Alert(a), _)) => Some((u, a)),
            _ => None,
        })
        .collect()
}

/// `(seq, via)` of every recorded delivery, and the alert rows still queued.
fn deliveries(db: &Path) -> (Vec<(u64, String)>, u64) {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let mut st = c
        .prepare("SELECT seq, via FROM deliveries ORDER BY seq")
        .unwrap();
    let rows = st
        .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let queued: i64 = c
        .query_row("SELECT count(*) FROM outbox WHERE class = 0", [], |r| {
            r.get(0)
        })
        .unwrap();
    (rows, queued as u64)
}

fn start_sim() -> Option<ModemSim> {
    match ModemSim::start(SimConfig::default()) {
        Ok(s) => Some(s),
        Err(e) => {
            assert!(!strict(), "no pseudo-terminal: {e}");
            eprintln!("skipped: no pseudo-terminal ({e})");
            None
        }
    }
}

#[test]
fn mqtt_killed_alert_still_arrives_over_lorawan_and_the_path_is_recorded() {
    if !have("mosquitto") {
        return;
    }
    let Some(sim) = start_sim() else { return };
    let up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let extra = lorawan_toml(dir.path(), sim.path());
    let gw = Gateway::start(dir.path(), "gw-dual", up.port, &extra);
    assert!(
        eventually(Duration::from_secs(20), || sim.stats().joins >= 1),
        "the gateway never joined the simulated network"
    );

    // Both paths up: the alert goes by MQTT, which acks within the grace.
    publish(gw.broker_port, &panics("pendant-a", 1));
    assert!(
        eventually(Duration::from_secs(30), || col.count("alert") >= 1),
        "MQTT alert missing: {:?}",
        col.snapshot()
    );
    assert!(
        eventually(Duration::from_secs(30), || deliveries(&gw.db()).0
            == vec![(1, "mqtt".to_string())]),
        "{:?}",
        deliveries(&gw.db())
    );

    // Kill the cloud broker for real, then raise an alert.
    drop(col);
    drop(up);
    let raised = Instant::now();
    publish(gw.broker_port, &panics("pendant-b", 1));
    assert!(
        eventually(Duration::from_secs(60), || !radio_alerts(&sim).is_empty()),
        "no alert over LoRaWAN; uplinks {:?}",
        sim.stats().uplinks
    );
    let (u, a) = radio_alerts(&sim).remove(0);
    eprintln!(
        "figure: alert → LoRaWAN uplink with MQTT dead: {:.2} s",
        u.at.duration_since(raised).as_secs_f64()
    );
    assert!(u.confirmed, "alerts go as confirmed uplinks");
    assert_eq!(a.kind, Some(carebridge::model::Kind::Panic));
    assert_eq!(a.severity, carebridge::model::Severity::Urgent);
    // The simulated network acked it: the row is gone, the path recorded.
    assert!(
        eventually(Duration::from_secs(20), || deliveries(&gw.db())
            == (vec![(1, "mqtt".to_string()), (2, "lorawan".to_string())], 0)),
        "{:?}",
        deliveries(&gw.db())
    );
}

#[test]
fn both_paths_down_alerts_wait_survive_a_crash_and_go_by_whichever_returns_first() {
    if !have("mosquitto") {
        return;
    }
    let Some(sim) = start_sim() else { return };
    let mut up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let extra = lorawan_toml(dir.path(), sim.path());
    let mut gw = Gateway::start(dir.path(), "gw-both", up.port, &extra);
    assert!(eventually(Duration::from_secs(20), || sim.stats().joins >= 1));

    // Both down: the radio loses every uplink, the broker is stopped.
    sim.set_loss(100);
    up.stop();
    publish(gw.broker_port, &panics("pendant-c", 1));
    assert!(
        eventually(Duration::from_secs(40), || sim
            .stats()
            .uplinks
            .iter()
            .any(|u| u.lost && u.port == 10)),
        "the gateway did not even try the radio"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(deliveries(&gw.db()), (vec![], 1), "buffered, not lost");
    // A crash while both are down loses nothing: the row is the truth.
    gw.kill9();
    gw.restart();
    // The modem kept its session: the restarted gateway asks, does not re-join.
    let asked = |sim: &ModemSim| {
        sim.stats()
            .commands
            .iter()
            .filter(|c| c.as_str() == "AT+NJS=?")
            .count()
    };
    assert!(eventually(Duration::from_secs(30), || asked(&sim) >= 2));
    assert_eq!(sim.stats().joins, 1, "session kept across the crash");

    // The radio returns first: the alert goes by LoRaWAN.
    sim.set_loss(0);
    assert!(
        eventually(Duration::from_secs(60), || deliveries(&gw.db())
            == (vec![(1, "lorawan".to_string())], 0)),
        "{:?} uplinks {:?}",
        deliveries(&gw.db()),
        sim.stats().uplinks
    );

    // Radio down again; now the broker returns first: MQTT delivers.
    sim.set_loss(100);
    publish(gw.broker_port, &panics("pendant-d", 1));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(deliveries(&gw.db()).1, 1, "buffered while both are down");
    up.restart();
    assert!(
        eventually(Duration::from_secs(30), || col
            .unique("alert")
            .iter()
            .any(|a| a["device"] == "pendant-d")),
        "{:?}",
        col.snapshot()
    );
    assert!(
        eventually(Duration::from_secs(20), || deliveries(&gw.db())
            == (vec![(1, "lorawan".to_string()), (2, "mqtt".to_string())], 0)),
        "{:?}",
        deliveries(&gw.db())
    );
    // The status document shows the paths (the birth message after reconnecting).
    assert!(
        eventually(Duration::from_secs(20), || col.snapshot().iter().any(|m| {
            m.topic == "cb/gw-both/status"
                && m.json["delivered"]["lorawan"] == 1
                && m.json["uplinks"]["lorawan"]["state"] == "joined"
        })),
        "{:?}",
        col.snapshot()
            .iter()
            .filter(|m| m.topic.ends_with("status"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn lorawan_downlinks_ack_an_alert_and_answer_a_ping_through_the_command_handler() {
    if !have("mosquitto") {
        return;
    }
    let Some(sim) = start_sim() else { return };
    let mut up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let extra = lorawan_toml(dir.path(), sim.path());
    let gw = Gateway::start(dir.path(), "gw-down", up.port, &extra);
    assert!(eventually(Duration::from_secs(20), || sim.stats().joins >= 1));
    let mut ack = Vec::new();
    codec::encode_downlink(&codec::Downlink::AckSeq { seq: 1 }, &mut ack);
    let mut ping = Vec::new();
    codec::encode_downlink(&codec::Downlink::Ping { token: 7 }, &mut ping);
    sim.queue_downlink(20, ack);
    sim.queue_downlink(20, ping);
    // MQTT down: the alerts go by radio, and the downlinks ride on them.
    up.stop();
    publish(gw.broker_port, &panics("pendant-e", 1));
    assert!(eventually(Duration::from_secs(30), || !radio_alerts(&sim).is_empty()));
    publish(gw.broker_port, &panics("pendant-f", 1));
    assert!(eventually(Duration::from_secs(30), || radio_alerts(&sim)
        .len()
        >= 2));
    // The answers wait for MQTT (the only path that carries results).
    up.restart();
    let result = |name: &str| {
        col.snapshot()
            .into_iter()
            .find(|m| m.topic == format!("cb/gw-down/cmd/{name}/result"))
            .map(|m| m.json)
    };
    assert!(
        eventually(Duration::from_secs(40), || result("ack").is_some()
            && result("ping").is_some()),
        "results: {:?}; uplinks {:?}",
        col.snapshot(),
        sim.stats().uplinks
    );
    assert_eq!(result("ack").unwrap()["ok"], true, "{:?}", result("ack"));
    assert_eq!(result("ping").unwrap()["ok"], true);
}
