//! Test harness: real peers for integration tests.
//!
//! - [`Mosquitto`]: the care organisation's broker, a real `mosquitto`
//!   process on a free loopback port, with persistence so a subscriber's
//!   session survives a broker restart;
//! - [`Gateway`]: carebridge itself as a child process (`carebridge run`);
//! - [`Collector`]: an MQTT subscriber recording what arrives upstream;
//! - [`publish`]: a device publishing readings to the embedded broker.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};

/// True when tests must not skip for a missing peer.
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Returns false (and says why) when a peer binary is missing outside CI;
/// panics under CI.
pub fn have(binary: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {binary}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if strict() {
            panic!("{binary} is not installed (the test command installs it)");
        }
        eprintln!("SKIP: {binary} is not installed; run the README's test command to install it");
    }
    found
}

/// A port free now and never handed out before in this test process.
/// Tests of one binary run in parallel and restart gateways on their port
/// (`kill -9`, then start again): without the record, another test could be
/// given that port while it is briefly free, and its gateway (or this one)
/// would fail to bind while the other answers in its place.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn wait_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Polls `f` until it returns true or the timeout passes. The timeout is a
/// failure budget, not a measurement: it returns as soon as `f` holds, so
/// budgets are generous (30 s) for shared CI machines that stall; figures
/// with a target are measured by the benches.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A real Mosquitto broker.
pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut m = Mosquitto {
            port: free_port(),
            dir,
            child: None,
        };
        m.restart();
        m
    }

    fn conf(&self) -> PathBuf {
        let path = self.dir.path().join("mosquitto.conf");
        let mut f = std::fs::File::create(&path).expect("conf");
        write!(
            f,
            "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n\
             persistence true\npersistence_location {dir}/\nautosave_interval 1\n\
             max_queued_messages 0\nmax_inflight_messages 0\nmax_keepalive 65535\n\
             log_dest stderr\nlog_type error\n",
            port = self.port,
            dir = self.dir.path().display()
        )
        .expect("write conf");
        path
    }

    /// (Re)starts the broker on the same port, with its persisted sessions.
    pub fn restart(&mut self) {
        let conf = self.conf();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn mosquitto");
        self.child = Some(child);
        assert!(
            wait_port(self.port, Duration::from_secs(10)),
            "mosquitto did not listen"
        );
    }

    /// Stops the broker cleanly (SIGTERM: sessions are saved).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "TERM");
            let _ = c.wait();
        }
    }

    /// Freezes the broker (SIGSTOP): the TCP connection stays open but
    /// nothing answers — a dead link that only a keepalive watchdog notices.
    pub fn freeze(&self) {
        if let Some(c) = &self.child {
            signal(c.id(), "STOP");
        }
    }

    pub fn thaw(&self) {
        if let Some(c) = &self.child {
            signal(c.id(), "CONT");
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.thaw();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// carebridge as a child process.
pub struct Gateway {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub broker_port: u16,
    child: Option<Child>,
}

impl Gateway {
    /// Writes a config for gateway `id` (local broker on a free port, uplink
    /// to `upstream`) plus `extra` TOML, and starts carebridge.
    pub fn start(dir: &Path, id: &str, upstream: u16, extra: &str) -> Gateway {
        let broker_port = free_port();
        let config = dir.join("carebridge.toml");
        let text = format!(
            "[gateway]\nid = \"{id}\"\ndata_dir = \"{data}\"\n\n\
             [local_broker]\nlisten = \"127.0.0.1:{broker_port}\"\n\n\
             [uplink.mqtt]\nurl = \"mqtt://127.0.0.1:{upstream}\"\ntopic_prefix = \"cb\"\n\
             keepalive = \"5s\"\nbackoff_min = \"100ms\"\nbackoff_max = \"1s\"\n{extra}\n",
            data = dir.join("data").display(),
        );
        std::fs::write(&config, text).expect("write config");
        Gateway::from_config(dir, config, broker_port)
    }

    /// Starts carebridge with a config file written by the caller.
    pub fn from_config(dir: &Path, config: PathBuf, broker_port: u16) -> Gateway {
        let mut g = Gateway {
            dir: dir.to_path_buf(),
            config,
            broker_port,
            child: None,
        };
        g.restart();
        g
    }

    pub fn restart(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_carebridge"))
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "warn,carebridge=info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn carebridge");
        self.child = Some(child);
        assert!(
            wait_port(self.broker_port, Duration::from_secs(10)),
            "carebridge's embedded broker did not listen"
        );
        // The port answers: make sure it is this gateway that answers.
        if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
            panic!(
                "carebridge exited at start ({status}): port {} taken?",
                self.broker_port
            );
        }
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        signal(c.id(), "TERM");
        c.wait().ok().and_then(|s| s.code())
    }

    /// SIGTERM, then waits at most `limit`: `Some((exit code, time taken))`,
    /// or `None` (and `kill -9`) when it did not exit in time.
    pub fn stop_within(&mut self, limit: Duration) -> Option<(Option<i32>, Duration)> {
        let c = self.child.as_mut()?;
        let started = Instant::now();
        signal(c.id(), "TERM");
        while started.elapsed() < limit {
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                return Some((status.code(), started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill9();
        None
    }

    pub fn db(&self) -> PathBuf {
        self.dir.join("data").join("carebridge.db")
    }

    /// What the gateway's store holds, for assertion messages: whether a
    /// missing upstream message was never ingested, or stored and not sent.
    pub fn diagnose(&self) -> String {
        // Running unless gone or a zombie (exited, not yet reaped): the
        // state letter follows the command name in /proc/PID/stat.
        let alive = self.child.as_ref().is_some_and(|c| {
            std::fs::read_to_string(format!("/proc/{}/stat", c.id()))
                .ok()
                .and_then(|st| st.rsplit_once(')').map(|(_, r)| r.trim_start().to_string()))
                .is_some_and(|r| !r.starts_with('Z'))
        });
        let store = rusqlite::Connection::open_with_flags(
            self.db(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| {
            let history: i64 = c.query_row("SELECT count(*) FROM history", [], |r| r.get(0))?;
            let mut q = c.prepare("SELECT class, count(*) FROM outbox GROUP BY class")?;
            let outbox = q
                .query_map([], |r| {
                    let class = u8::try_from(r.get::<_, i64>(0)?)
                        .ok()
                        .and_then(carebridge::model::Class::from_code)
                        .map_or("unknown class", |c| c.as_str());
                    Ok(format!("{class} {}", r.get::<_, i64>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(format!(
                "history rows {history}, unsent outbox rows {outbox:?}"
            ))
        })
        .unwrap_or_else(|e| format!("store unreadable: {e}"));
        format!("carebridge process alive: {alive}; {store}")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One message that arrived upstream.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub json: serde_json::Value,
}

/// A subscriber on the upstream broker recording every message in order.
/// It keeps a persistent session (clean_session = false), so messages
/// published while it reconnects after a broker restart are queued for it.
pub struct Collector {
    pub msgs: Arc<Mutex<Vec<Msg>>>,
    client: Client,
}

impl Collector {
    pub fn start(port: u16, filter: &str) -> Collector {
        let id = format!("collector-{}", free_port());
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_clean_session(false);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut conn) = Client::new(opts, 64);
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = msgs.clone();
        let sub = client.clone();
        let filter = filter.to_string();
        std::thread::spawn(move || {
            let mut first = Some(tx);
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        let _ = sub.subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        if let Some(tx) = first.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let json = serde_json::from_slice(&p.payload).unwrap_or(
                            serde_json::Value::String(
                                String::from_utf8_lossy(&p.payload).into_owned(),
                            ),
                        );
                        sink.lock().unwrap().push(Msg {
                            topic: p.topic.clone(),
                            json,
                        });
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("collector subscribed");
        Collector { msgs, client }
    }

    pub fn snapshot(&self) -> Vec<Msg> {
        self.msgs.lock().unwrap().clone()
    }

    /// Messages on `<prefix>/<gw>/<leaf>`, de-duplicated by `id` (first kept).
    pub fn unique(&self, leaf: &str) -> Vec<serde_json::Value> {
        let mut seen = std::collections::HashSet::new();
        self.snapshot()
            .into_iter()
            .filter(|m| m.topic.ends_with(&format!("/{leaf}")))
            .filter(|m| {
                m.json
                    .get("id")
                    .and_then(|v| v.as_str())
                    .is_some_and(|id| seen.insert(id.to_string()))
            })
            .map(|m| m.json)
            .collect()
    }

    pub fn count(&self, leaf: &str) -> usize {
        self.unique(leaf).len()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}

/// A device on the embedded broker: publishes readings at QoS 1 and waits
/// for every PUBACK. Returns how many were acknowledged.
pub fn publish(port: u16, readings: &[(String, serde_json::Value)]) -> usize {
    let id = format!("device-{}", free_port());
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_inflight(100);
    let (client, mut conn) = Client::new(opts, 256);
    let total = readings.len();
    let items: Vec<_> = readings.to_vec();
    let pubber = std::thread::spawn(move || {
        for (dev, payload) in items {
            if client
                .publish(
                    format!("carebridge/in/{dev}"),
                    QoS::AtLeastOnce,
                    false,
                    payload.to_string(),
                )
                .is_err()
            {
                break;
            }
        }
        client
    });
    let mut acked = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last_ok = Instant::now();
    for ev in conn.iter() {
        match ev {
            Ok(Event::Incoming(Incoming::PubAck(_))) => {
                last_ok = Instant::now();
                acked += 1;
                if acked == total {
                    break;
                }
            }
            Ok(_) => last_ok = Instant::now(),
            // A refused or reset connection: rumqttc reconnects on the next
            // poll and sends the unacknowledged publishes again, as a real
            // device would. A broker gone for 20 s is gone.
            Err(_) if last_ok.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(_) => break,
        }
        if Instant::now() > deadline {
            break;
        }
    }
    if let Ok(c) = pubber.join() {
        let _ = c.disconnect();
    }
    acked
}

/// `n` temperature readings from `dev`, values 0.0, 1.0, … (so each is identifiable).
pub fn temperatures(dev: &str, n: usize) -> Vec<(String, serde_json::Value)> {
    (0..n)
        .map(|i| {
            (
                dev.to_string(),
                serde_json::json!({"kind": "temperature", "value": i as f64}),
            )
        })
        .collect()
}

/// `n` panic presses from `n` distinct pendants (`{prefix}-0`, `{prefix}-1`, …):
/// presses of one pendant within the rule's cooldown are one situation, so
/// tests that count alerts need one pendant per expected alert.
pub fn panics(prefix: &str, n: usize) -> Vec<(String, serde_json::Value)> {
    (0..n)
        .map(|i| {
            (
                if n == 1 {
                    prefix.to_string()
                } else {
                    format!("{prefix}-{i}")
                },
                serde_json::json!({"kind": "panic", "value": true}),
            )
        })
        .collect()
}

/// Checks that `seq` values of `msgs` are exactly 1..=n (no gap, each once).
/// A door contact opening, published by device `dev`.
pub fn open_door(port: u16, dev: &str) {
    let r = vec![(
        dev.to_string(),
        serde_json::json!({"kind": "contact", "value": true}),
    )];
    assert_eq!(publish(port, &r), 1);
}

/// Whether the cloud-side peers (`mosquitto`, `mosquitto_pub`) are here;
/// under CI their absence fails the test.
pub fn cloud_peers() -> bool {
    let ok = have("mosquitto") && have("mosquitto_pub");
    assert!(ok || !strict(), "mosquitto and mosquitto_pub are required");
    ok
}

pub fn assert_contiguous(msgs: &[serde_json::Value], what: &str) {
    let mut by_seq: HashMap<u64, String> = HashMap::new();
    for m in msgs {
        let seq = m["seq"].as_u64().expect("seq");
        let id = m["id"].as_str().expect("id").to_string();
        if let Some(prev) = by_seq.insert(seq, id.clone()) {
            assert_eq!(
                prev, id,
                "{what}: seq {seq} was given to two different rows"
            );
        }
    }
    let max = by_seq.keys().copied().max().unwrap_or(0);
    let missing: Vec<u64> = (1..=max).filter(|s| !by_seq.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "{what}: seq gaps at {:?}",
        &missing[..missing.len().min(20)]
    );
}

/// The published documents of the alert rows in a gateway's outbox, in seq
/// order (rows store a compact body since schema v11: made whole as the
/// uplink reads them, `store::outbox::alert_doc`).
#[allow(dead_code)]
pub fn outbox_alert_docs(c: &rusqlite::Connection) -> Vec<serde_json::Value> {
    try_outbox_alert_docs(c).unwrap()
}

/// [`outbox_alert_docs`] that fails instead of panicking (the database may
/// be busy or not yet created).
#[allow(dead_code)]
pub fn try_outbox_alert_docs(c: &rusqlite::Connection) -> rusqlite::Result<Vec<serde_json::Value>> {
    let mut st =
        c.prepare("SELECT seq, id, at, payload FROM outbox WHERE class = 0 ORDER BY seq")?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Vec<u8>>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, id, at, stored) = row?;
        let doc = carebridge::store::outbox::alert_doc(
            &id,
            u64::try_from(seq).unwrap_or(0),
            carebridge::model::Time::from_millis(at),
            stored,
        );
        out.push(serde_json::from_slice(&doc).unwrap_or_default());
    }
    Ok(out)
}
