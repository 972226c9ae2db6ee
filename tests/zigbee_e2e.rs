//! Zigbee end to end through the daemon with real peers: the coordinator
//! simulator as its own process on a real pseudo-terminal (`carebridge
//! sim-stick`), `carebridge run` with `[zigbee] port` at it, and Mosquitto as
//! the care organisation's broker.
//!
//! Pairing is opened with the upstream command `cmd/permit_join`; the
//! simulated pendant and thermometer join, are interviewed (the pendant's
//! IAS zone enrolled) and land in the device registry; a temperature report
//! arrives upstream as telemetry and a panic press as an urgent alert. Then
//! the stick process is killed (its pty closes, as when the USB stick is
//! pulled) and a new one started behind the same path, a few times: the
//! coordinator goes `down` upstream at once (and, left unplugged longer
//! than `outage_alert`, raises the `coordinator-outage` alert, cleared when
//! it is back), comes back `up` (the blank new stick gets the network
//! restored from the gateway's backup) and readings flow again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Collector, Gateway, Mosquitto, eventually, have};
use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};

const GW: &str = "zb-e2e";
const PENDANT: &str = "zb-00158d0000000001";
const THERMOMETER: &str = "zb-00158d0000000002";

/// `carebridge sim-stick` as a child process, driven line by line.
struct StickProc {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl StickProc {
    fn start(link: &Path, paired: bool) -> StickProc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_carebridge"));
        cmd.arg("sim-stick")
            .arg("--link")
            .arg(link)
            .arg("--devices")
            .arg("panic,temperature");
        if paired {
            cmd.arg("--paired");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn carebridge sim-stick");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut s = StickProc {
            child,
            stdin,
            lines,
        };
        let ready = s.line();
        assert!(ready.starts_with("ready "), "sim-stick said {ready:?}");
        s
    }

    fn line(&mut self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .expect("sim-stick answered")
    }

    /// Sends one command and returns its answer (one line, `ok…`).
    fn cmd(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let answer = self.line();
        assert!(answer.starts_with("ok"), "{line:?} → {answer:?}");
        answer
    }

    /// SIGKILL: the process dies with its pty master; nothing is cleaned up.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for StickProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_extra(link: &Path) -> String {
    // `heartbeat` still belongs to [uplink.mqtt]: a status document every
    // second lets the test see the coordinator go down and up.
    format!(
        "heartbeat = \"1s\"\n\n[zigbee]\nport = \"{}\"\nrequest_timeout = \"2s\"\n\
         interview_timeout = \"3s\"\nping_interval = \"1s\"\nbackoff_min = \"100ms\"\n\
         backoff_max = \"1s\"\noutage_alert = \"3s\"\n",
        link.display()
    )
}

/// The latest `coordinator` field of the status documents upstream.
fn coordinator(c: &Collector) -> Option<String> {
    c.snapshot()
        .iter()
        .rev()
        .filter(|m| m.topic == format!("cb/{GW}/status"))
        .find_map(|m| m.json.get("coordinator").and_then(|v| v.as_str()))
        .map(str::to_string)
}

/// Waits for status documents saying the coordinator is `want`, counting
/// only documents that arrive from now on.
fn wait_coordinator(c: &Collector, want: &str, within: Duration) -> bool {
    let from = c.snapshot().len();
    eventually(within, || {
        c.snapshot()[from..].iter().any(|m| {
            m.topic == format!("cb/{GW}/status")
                && m.json.get("coordinator").and_then(|v| v.as_str()) == Some(want)
        })
    })
}

fn telemetry_value(c: &Collector, device: &str, kind: &str, value: f64) -> bool {
    c.unique("telemetry").iter().any(|t| {
        t["device"] == device
            && t["kind"] == kind
            && t["value"]
                .as_f64()
                .is_some_and(|v| (v - value).abs() < 0.01)
    })
}

fn outage(c: &Collector, state: &str) -> bool {
    c.unique("alert").iter().any(|a| {
        a["rule"] == "coordinator-outage"
            && a["device"] == "zigbee-coordinator"
            && a["severity"] == "warning"
            && a["state"] == state
    })
}

/// Publishes an upstream command and waits for its result document.
fn command(port: u16, c: &Collector, base: &str, name: &str, payload: &str) -> serde_json::Value {
    let mut opts = MqttOptions::new(
        format!("operator-{}", common::free_port()),
        "127.0.0.1",
        port,
    );
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = Client::new(opts, 16);
    let pump = std::thread::spawn(move || {
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Incoming::Disconnect)) | Err(_) => break,
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                _ => {}
            }
        }
    });
    let topic = format!("{base}/cmd/{name}/result");
    let deadline = Instant::now() + Duration::from_secs(60);
    // The gateway subscribes to its commands once its uplink is connected:
    // repeat the command until a result comes back.
    let result = loop {
        let from = c.snapshot().len();
        client
            .publish(
                format!("{base}/cmd/{name}"),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .unwrap();
        let mut found = None;
        eventually(Duration::from_secs(3), || {
            found = c.snapshot()[from..]
                .iter()
                .find(|m| m.topic == topic)
                .map(|m| m.json.clone());
            found.is_some()
        });
        if let Some(r) = found {
            break r;
        }
        assert!(Instant::now() < deadline, "no result for cmd/{name}");
    };
    let _ = client.disconnect();
    let _ = pump.join();
    result
}

/// A registry row: (model, ieee, nwk).
fn registry(db: &Path, id: &str) -> Option<(Option<String>, Option<String>, Option<i64>)> {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    conn.busy_timeout(Duration::from_secs(2)).ok()?;
    conn.query_row(
        "SELECT model, ieee, nwk FROM devices WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .ok()
}

fn link_path(dir: &Path) -> PathBuf {
    dir.join("carebridge-zigbee")
}

#[test]
fn paired_zigbee_devices_reach_the_cloud_and_survive_the_stick_being_pulled() {
    if !have("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let link = link_path(dir.path());
    let mosquitto = Mosquitto::start();
    let collector = Collector::start(mosquitto.port, "cb/#");
    let mut stick = StickProc::start(&link, false);
    let gw = Gateway::start(dir.path(), GW, mosquitto.port, &config_extra(&link));

    // Start-up: the blank stick forms a network; the coordinator is up.
    assert!(
        wait_coordinator(&collector, "up", Duration::from_secs(60)),
        "coordinator never up; last status: {:?}",
        coordinator(&collector)
    );

    // Pairing from the cloud: cmd/permit_join.
    let base = format!("cb/{GW}");
    let r = command(
        mosquitto.port,
        &collector,
        &base,
        "permit_join",
        r#"{"seconds":60}"#,
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["seconds"], 60, "{r}");

    // Both devices join, are interviewed and land in the registry.
    let db = gw.db();
    assert!(
        eventually(Duration::from_secs(60), || {
            let a = stick.cmd("devices");
            a.contains("1:panic:00158d0000000001:1a2b:enrolled")
                && registry(&db, PENDANT).is_some_and(|r| r.0.as_deref() == Some("SIM-SOS"))
                && registry(&db, THERMOMETER).is_some_and(|r| r.0.as_deref() == Some("SIM-TH"))
        }),
        "devices not paired/interviewed: {} / {:?} / {:?}",
        stick.cmd("devices"),
        registry(&db, PENDANT),
        registry(&db, THERMOMETER)
    );
    let (_, ieee, nwk) = registry(&db, PENDANT).unwrap();
    assert_eq!(ieee.as_deref(), Some("0x00158d0000000001"));
    assert_eq!(nwk, Some(0x1a2b));

    // A report becomes telemetry upstream; a panic press an urgent alert.
    stick.cmd("temp 2 21.5 40");
    assert!(
        eventually(Duration::from_secs(90), || telemetry_value(
            &collector,
            THERMOMETER,
            "temperature",
            21.5
        ) && telemetry_value(
            &collector,
            THERMOMETER,
            "humidity",
            40.0
        )),
        "no temperature telemetry upstream"
    );
    stick.cmd("panic 1");
    assert!(
        eventually(Duration::from_secs(30), || collector
            .unique("alert")
            .iter()
            .any(|a| a["device"] == PENDANT
                && a["severity"] == "urgent"
                && a["state"] == "raised")),
        "no panic alert upstream: {:?}",
        collector.unique("alert")
    );

    // Pull the stick (kill its process: the pty closes) and plug in a new
    // one a few times. Each new stick is blank: the gateway restores the
    // network it backed up, and the devices stay paired.
    for round in 0..3 {
        stick.kill();
        assert!(
            wait_coordinator(&collector, "down", Duration::from_secs(30)),
            "round {round}: coordinator not reported down"
        );
        if round == 0 {
            // Left unplugged longer than `outage_alert`: the outage alert.
            assert!(
                eventually(Duration::from_secs(30), || outage(&collector, "raised")),
                "no coordinator-outage alert upstream: {:?}",
                collector.unique("alert")
            );
        }
        stick = StickProc::start(&link, true);
        let back = Instant::now();
        assert!(
            wait_coordinator(&collector, "up", Duration::from_secs(60)),
            "round {round}: coordinator not back up"
        );
        if round == 0 {
            assert!(
                eventually(Duration::from_secs(30), || outage(&collector, "cleared")),
                "coordinator-outage alert not cleared: {:?}",
                collector.unique("alert")
            );
        }
        let celsius = 18.0 + f64::from(round);
        stick.cmd(&format!("temp 2 {celsius} 50"));
        assert!(
            eventually(Duration::from_secs(90), || telemetry_value(
                &collector,
                THERMOMETER,
                "temperature",
                celsius
            )),
            "round {round}: no reading after the stick came back"
        );
        eprintln!("round {round}: back and reading in {:?}", back.elapsed());
    }
    // The same network throughout: one formation's parameters, restored.
    assert_eq!(registry(&db, PENDANT).unwrap().2, Some(0x1a2b));
    // The status upstream counts the link's life (what /metrics exports):
    // each pulled stick ended a session; frames were decoded.
    let zigbee = collector
        .snapshot()
        .iter()
        .rev()
        .filter(|m| m.topic == format!("cb/{GW}/status"))
        .find_map(|m| m.json.get("zigbee").cloned())
        .expect("a status document with zigbee counters");
    assert!(zigbee["restarts"].as_u64() >= Some(3), "{zigbee}");
    assert!(zigbee["frames"].as_u64() > Some(0), "{zigbee}");
}

/// `carebridge demo` runs a simulated stick whose seven devices wait to be
/// paired (four plain ones, then an Aqara door, a Tuya radar and a Frient
/// panic button with their real identities): one permit join (here the
/// demo's own upstream command, as the UI's pairing page does through the
/// web API) and all seven are in the registry, interviewed.
#[test]
fn demo_stick_devices_pair_on_permit_join() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_carebridge"))
        .args([
            "demo",
            "--mqtt",
            "127.0.0.1:0",
            "--web",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn carebridge demo");
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = demo.stdout.take().unwrap();
    let demo = Kill(demo);
    let mut port = None;
    let mut zigbee_line = None;
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("mqtt://127.0.0.1:").nth(1) {
            port = rest
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok());
        }
        if line.trim_start().starts_with("zigbee") {
            zigbee_line = Some(line.clone());
        }
        if line.trim_start().starts_with("web UI") {
            break;
        }
    }
    // Keep reading: a demo whose stdout is closed fails its next print.
    std::thread::spawn(move || lines.for_each(drop));
    let port = port.expect("the banner names the MQTT broker");
    let zigbee_line = zigbee_line.expect("the banner names the simulated stick");
    assert!(zigbee_line.contains("zigbee-stick"), "{zigbee_line}");

    let collector = Collector::start(port, "uplink/carebridge/#");
    let r = command(
        port,
        &collector,
        "uplink/carebridge/demo-home",
        "permit_join",
        r#"{"seconds":30}"#,
    );
    assert_eq!(r["ok"], true, "{r}");
    let db = data.join("carebridge.db");
    let models = [
        "SIM-PIR",
        "SIM-DOOR",
        "SIM-TH",
        "SIM-SOS",
        "lumi.sensor_magnet.aq2",
        "TS0601",
        "SOSZB-110",
    ];
    assert!(
        eventually(Duration::from_secs(60), || {
            (1..=7).all(|i| {
                registry(&db, &format!("zb-00158d000000000{i}"))
                    .is_some_and(|r| r.0.as_deref() == Some(models[i - 1]))
            })
        }),
        "demo devices not all paired: {:?}",
        (1..=7)
            .map(|i| registry(&db, &format!("zb-00158d000000000{i}")))
            .collect::<Vec<_>>()
    );
    drop(demo);
}
