//! The MQTT front door as devices meet it, with real peers: bursts of QoS 1
//! readings are stored exactly once; a PUBACK means the reading is in the
//! database, even across `kill -9`; QoS 0 overload is shed, counted and
//! alerted; mosquitto_pub/mosquitto_sub work through it (readings, Home
//! Assistant discovery and plain topics through the embedded broker).
//!
//! The burst clients speak MQTT 3.1.1 with rumqttc's codec directly, so the
//! test knows exactly which packet id (and so which reading) each PUBACK
//! acknowledged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, Packet, Publish};

/// A device speaking raw MQTT 3.1.1 over a blocking socket.
struct Raw {
    s: TcpStream,
    buf: BytesMut,
    out: BytesMut,
}

impl Raw {
    fn connect(port: u16, id: &str) -> std::io::Result<Raw> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_millis(20)))?;
        let mut r = Raw {
            s,
            buf: BytesMut::with_capacity(4096),
            out: BytesMut::new(),
        };
        let mut c = Connect::new(id);
        c.keep_alive = 60;
        r.queue(Packet::Connect(c));
        r.flush()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            for p in r.poll()? {
                if let Packet::ConnAck(a) = p {
                    assert_eq!(a.code, rumqttc::ConnectReturnCode::Success);
                    return Ok(r);
                }
            }
        }
        Err(std::io::Error::other("no CONNACK"))
    }

    fn queue(&mut self, p: Packet) {
        p.write(&mut self.out, usize::MAX).unwrap();
    }

    fn publish(&mut self, device: &str, payload: String, qos: QoS, pkid: u16) {
        let mut p = Publish::new(format!("carebridge/in/{device}"), qos, payload);
        p.pkid = pkid;
        self.queue(Packet::Publish(p));
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.s.write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    /// Packets that arrived (waits up to 20 ms for some).
    fn poll(&mut self) -> std::io::Result<Vec<Packet>> {
        let mut chunk = [0u8; 16 * 1024];
        match self.s.read(&mut chunk) {
            Ok(0) => return Err(std::io::Error::other("closed")),
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
        let mut got = Vec::new();
        while let Ok(p) = Packet::read(&mut self.buf, 1 << 20) {
            got.push(p);
        }
        Ok(got)
    }
}

/// Publishes temperature readings `0..n` of `device` at QoS 1 with up to
/// `window` unacknowledged, until all are acknowledged, `stop` says so or
/// the connection fails. Returns the values whose PUBACK arrived.
fn burst(port: u16, device: &str, n: u64, window: usize, stop: &dyn Fn() -> bool) -> Vec<u64> {
    let Ok(mut raw) = Raw::connect(port, &format!("burst-{device}")) else {
        return Vec::new();
    };
    let mut inflight: HashMap<u16, u64> = HashMap::new();
    let mut acked = Vec::new();
    let (mut next, mut pkid) = (0u64, 0u16);
    while (acked.len() as u64) < n && !stop() {
        while inflight.len() < window && next < n {
            pkid = pkid % 60_000 + 1;
            let payload = format!(r#"{{"kind":"temperature","value":{next}}}"#);
            raw.publish(device, payload, QoS::AtLeastOnce, pkid);
            inflight.insert(pkid, next);
            next += 1;
        }
        if raw.flush().is_err() {
            break;
        }
        match raw.poll() {
            Ok(packets) => {
                for p in packets {
                    if let Packet::PubAck(a) = p
                        && let Some(v) = inflight.remove(&a.pkid)
                    {
                        acked.push(v);
                    }
                }
            }
            Err(_) => break,
        }
    }
    acked
}

/// A gateway with only the front door (and `extra`), no uplink.
fn gateway(dir: &Path, extra: &str) -> Gateway {
    let port = free_port();
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"gw-fd\"\ndata_dir = \"{}\"\n[local_broker]\nlisten = \"127.0.0.1:{port}\"\n{extra}",
            dir.join("data").display()
        ),
    )
    .unwrap();
    Gateway::from_config(dir, config, port)
}

/// (value, times stored) of `device`'s readings.
fn stored(db: &PathBuf, device: &str) -> HashMap<u64, u64> {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut q = c
        .prepare("SELECT value, count(*) FROM history WHERE device = ?1 GROUP BY value")
        .unwrap();
    q.query_map([device], |r| {
        Ok((r.get::<_, f64>(0)? as u64, r.get::<_, i64>(1)? as u64))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn assert_each_once(db: &PathBuf, device: &str, n: u64) {
    let s = stored(db, device);
    let twice: Vec<_> = s.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(
        twice.is_empty(),
        "{device}: stored more than once: {twice:?}"
    );
    let missing: Vec<u64> = (0..n).filter(|v| !s.contains_key(v)).take(5).collect();
    assert!(
        missing.is_empty(),
        "{device}: acknowledged but not stored: {missing:?}"
    );
}

#[test]
fn fifty_thousand_qos1_readings_from_one_client_are_each_stored_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(dir.path(), "");
    let n = 50_000;
    let t = Instant::now();
    let acked = burst(gw.broker_port, "burst", n, 100, &|| false);
    let took = t.elapsed();
    eprintln!("{n} QoS 1 readings acknowledged in {took:?}");
    assert_eq!(acked.len() as u64, n, "every reading acknowledged");
    assert_eq!(gw.stop(), Some(0));
    assert_each_once(&gw.db(), "burst", n);
}

#[test]
fn two_hundred_clients_at_once_get_every_reading_stored_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(dir.path(), "");
    let (clients, each) = (200, 250u64);
    let port = gw.broker_port;
    let threads: Vec<_> = (0..clients)
        .map(|i| std::thread::spawn(move || burst(port, &format!("c{i}"), each, 20, &|| false)))
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        assert_eq!(t.join().unwrap().len() as u64, each, "client c{i}");
    }
    assert_eq!(gw.stop(), Some(0));
    for i in 0..clients {
        assert_each_once(&gw.db(), &format!("c{i}"), each);
    }
}

#[test]
fn every_acknowledged_reading_survives_kill_9_during_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = gateway(dir.path(), "");
    let mut total = 0;
    for round in 0..10u64 {
        if round > 0 {
            gw.restart();
        }
        let device = format!("k{round}");
        let port = gw.broker_port;
        let until = Instant::now() + Duration::from_millis(300 + 50 * round);
        let client = std::thread::spawn(move || burst(port, &device, 1_000_000, 64, &|| false));
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        gw.kill9();
        let acked = client.join().unwrap();
        assert!(
            !acked.is_empty(),
            "round {round}: nothing acknowledged before the kill"
        );
        let s = stored(&gw.db(), &format!("k{round}"));
        let lost: Vec<_> = acked
            .iter()
            .filter(|v| !s.contains_key(v))
            .take(5)
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged, lost after kill -9: {lost:?}",
            acked.len()
        );
        total += acked.len();
    }
    eprintln!("{total} acknowledged readings over 10 kills, none lost");
}

/// Panic presses from pendants `<prefix>-0`, `<prefix>-1`, … at QoS 1 (up
/// to 8 unacknowledged) until `stop` or the connection fails; returns the
/// numbers of the pendants whose press was acknowledged.
fn presses(port: u16, prefix: &str, stop: &dyn Fn() -> bool) -> Vec<u64> {
    let Ok(mut raw) = Raw::connect(port, &format!("press-{prefix}")) else {
        return Vec::new();
    };
    let mut inflight: HashMap<u16, u64> = HashMap::new();
    let mut acked = Vec::new();
    let (mut next, mut pkid) = (0u64, 0u16);
    while !stop() {
        while inflight.len() < 8 {
            pkid = pkid % 60_000 + 1;
            let payload = r#"{"kind":"panic","value":true}"#.to_string();
            raw.publish(&format!("{prefix}-{next}"), payload, QoS::AtLeastOnce, pkid);
            inflight.insert(pkid, next);
            next += 1;
        }
        if raw.flush().is_err() {
            break;
        }
        match raw.poll() {
            Ok(packets) => {
                for p in packets {
                    if let Packet::PubAck(a) = p
                        && let Some(v) = inflight.remove(&a.pkid)
                    {
                        acked.push(v);
                    }
                }
            }
            Err(_) => break,
        }
    }
    acked
}

/// QoS 0 temperature readings of `device`, one every 2 ms, until `stop`.
fn trickle(port: u16, device: &str, stop: &dyn Fn() -> bool) {
    let Ok(mut raw) = Raw::connect(port, &format!("trickle-{device}")) else {
        return;
    };
    let mut v = 0u64;
    while !stop() {
        let payload = format!(r#"{{"kind":"temperature","value":{v}}}"#);
        raw.publish(device, payload, QoS::AtMostOnce, 0);
        if raw.flush().is_err() {
            return;
        }
        v += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn with_commit_grouping_every_acknowledged_reading_and_its_alert_survive_kill_9() {
    // Readings nobody waits for (QoS 0) wait up to 30 s to be committed
    // together; a QoS 1 press must still be committed, with its alert,
    // before its PUBACK, and taken along the waiting readings.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nid = \"panic\"\ntype = \"immediate\"\nkinds = [\"panic\"]\n",
    )
    .unwrap();
    let extra = format!(
        "[rules]\nfile = \"{}\"\n[store]\ncommit_delay = \"30s\"\n",
        rules.display()
    );
    let mut gw = gateway(dir.path(), &extra);
    let mut total = 0;
    for round in 0..6u64 {
        if round > 0 {
            gw.restart();
        }
        let port = gw.broker_port;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let halt = {
            let stop = stop.clone();
            move || stop.load(std::sync::atomic::Ordering::Relaxed)
        };
        let h2 = halt.clone();
        let quiet = std::thread::spawn(move || trickle(port, &format!("t{round}"), &h2));
        let prefix = format!("p{round}");
        let client = std::thread::spawn(move || presses(port, &prefix, &halt));
        std::thread::sleep(Duration::from_millis(300 + 60 * round));
        gw.kill9();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let acked = client.join().unwrap();
        quiet.join().unwrap();
        assert!(!acked.is_empty(), "round {round}: no press acknowledged");
        let c = rusqlite::Connection::open(gw.db()).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        let history: HashSet<String> = c
            .prepare("SELECT device FROM history WHERE device LIKE 'p%'")
            .unwrap()
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let alerted: HashSet<String> = outbox_alert_docs(&c)
            .into_iter()
            .map(|v| v["device"].as_str().unwrap_or_default().to_string())
            .collect();
        for i in &acked {
            let dev = format!("p{round}-{i}");
            assert!(
                history.contains(&dev),
                "round {round}: press of {dev} acknowledged but not stored"
            );
            assert!(
                alerted.contains(&dev),
                "round {round}: press of {dev} acknowledged but its alert was lost"
            );
        }
        total += acked.len();
    }
    eprintln!("{total} acknowledged presses over 6 kills, none lost, every alert kept");
}

/// `GET /metrics` from the metrics listener.
fn metrics(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn qos0_overload_is_shed_counted_and_raises_a_warning_alert() {
    let dir = tempfile::tempdir().unwrap();
    let own = free_port();
    let gw = gateway(
        dir.path(),
        &format!("[metrics]\nlisten = \"127.0.0.1:{own}\"\n"),
    );
    assert!(wait_port(own, Duration::from_secs(10)));
    let mut raw = Raw::connect(gw.broker_port, "flood").unwrap();
    let n: u64 = 200_000;
    for chunk in 0..(n / 1000) {
        for i in 0..1000 {
            let v = chunk * 1000 + i;
            raw.publish(
                "flood",
                format!(r#"{{"kind":"temperature","value":{v}}}"#),
                QoS::AtMostOnce,
                0,
            );
        }
        raw.flush().unwrap();
    }
    // Nothing silent: every publication is either taken or counted as shed.
    let mut last = String::new();
    let all_counted = eventually(Duration::from_secs(60), || {
        last = metrics(own);
        sample(&last, "carebridge_mqtt_ingest_accepted_total")
            + sample(&last, "carebridge_mqtt_shed_total{cause=\"qos0_overload\"}")
            == n
    });
    assert!(all_counted, "accepted + shed != {n}:\n{last}");
    let shed = sample(&last, "carebridge_mqtt_shed_total{cause=\"qos0_overload\"}");
    assert!(
        shed > 0,
        "a 200 k QoS 0 flood should overload the hub:\n{last}"
    );
    // The warning alert is queued for the uplink.
    let db = gw.db();
    let alerted = eventually(Duration::from_secs(30), || {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        outbox_alert_docs(&c).iter().any(|v| {
            v["rule"] == "ingest-shed" && v["severity"] == "warning" && v["state"] == "raised"
        })
    });
    assert!(
        alerted,
        "no ingest-shed warning alert in the outbox (shed {shed})"
    );
    drop(raw);
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn mosquitto_clients_publish_readings_and_reach_the_embedded_broker_through_the_front_door() {
    if !(have("mosquitto_pub") && have("mosquitto_sub")) {
        assert!(!strict(), "mosquitto-clients are required");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "[homeassistant]\nenabled = true\n");
    let port = gw.broker_port.to_string();
    // A reading at QoS 1: when mosquitto_pub returns, PUBACK came, so the
    // reading is already in the database.
    for qos in ["1", "2"] {
        let (ok, text) = run(Command::new("mosquitto_pub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-q",
            qos,
            "-t",
            &format!("carebridge/in/smoke-{qos}"),
            "-m",
            r#"{"kind":"panic","value":true}"#,
        ]));
        assert!(ok, "{text}");
        assert_eq!(
            stored(&gw.db(), &format!("smoke-{qos}")).get(&1),
            Some(&1),
            "QoS {qos}"
        );
    }
    // Home Assistant discovery, retained on the embedded broker, through the proxy.
    let (ok, text) = run(Command::new("mosquitto_sub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "homeassistant/#",
        "-C",
        "1",
        "-W",
        "10",
        "-v",
    ]));
    assert!(ok && text.starts_with("homeassistant/"), "{text}");
    // A plain topic: publish through the front door, receive through it.
    let mut sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "home/lamp",
            "-q",
            "1",
            "-C",
            "1",
            "-W",
            "10",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let got = eventually(Duration::from_secs(10), || {
        let (ok, _) = run(Command::new("mosquitto_pub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-q",
            "1",
            "-t",
            "home/lamp",
            "-m",
            "on",
        ]));
        ok && matches!(sub.try_wait(), Ok(Some(_)))
    });
    let out = sub.wait_with_output().unwrap();
    assert!(got, "the subscriber got nothing");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "on");
    // MQTT 5 is refused with "unacceptable protocol version", not hung up on.
    let (ok, text) = run(Command::new("mosquitto_pub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-V",
        "mqttv5",
        "-t",
        "x",
        "-m",
        "y",
    ]));
    assert!(!ok && text.to_lowercase().contains("protocol"), "{text}");
}

#[test]
fn refused_and_malformed_publications_are_acknowledged_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let own = free_port();
    let gw = gateway(
        dir.path(),
        &format!("[metrics]\nlisten = \"127.0.0.1:{own}\"\n"),
    );
    assert!(wait_port(own, Duration::from_secs(10)));
    let mut raw = Raw::connect(gw.broker_port, "junk").unwrap();
    raw.publish("bad", "not json".into(), QoS::AtLeastOnce, 7);
    raw.publish(
        "bad",
        r#"{"kind":"warp","value":1}"#.into(),
        QoS::ExactlyOnce,
        8,
    );
    raw.flush().unwrap();
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 2 && Instant::now() < deadline {
        for p in raw.poll().unwrap() {
            match p {
                Packet::PubAck(a) => {
                    seen.insert(("puback", a.pkid));
                }
                Packet::PubRec(r) => {
                    seen.insert(("pubrec", r.pkid));
                }
                _ => {}
            }
        }
    }
    assert_eq!(seen, HashSet::from([("puback", 7), ("pubrec", 8)]));
    assert!(eventually(Duration::from_secs(10), || sample(
        &metrics(own),
        "carebridge_mqtt_ingest_malformed_total"
    ) == 2));
}
