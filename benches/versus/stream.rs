//! The shared half of the side-by-side bench: the reading stream (raw MQTT
//! 3.1.1 QoS 0 packets, so the generator costs next to nothing), feeding it
//! at a pace, counting what arrives upstream at Mosquitto, and reading a
//! process's CPU, memory and disk writes from `/proc`.

use std::io::Write as _;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The device id of the warm-up readings (not counted as events).
pub const WARM: &str = "warm-up";

/// What a run sends and what counts as one event upstream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Flow {
    /// Panic presses from distinct pendants; an event is a raised alert.
    Alert,
    /// Temperature readings from `sensors` sensors; an event is a
    /// telemetry message.
    Telemetry { sensors: usize },
}

/// How fast the stream goes in.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// As fast as the system delivers, at most `window` events ahead of
    /// what has arrived upstream (the embedded broker's in-memory log must
    /// not overflow: see `e2e.rs`).
    Burst { window: u64 },
    /// One reading every `every`.
    Every(Duration),
}

/// The `i`-th reading of a flow as (device, JSON payload).
pub fn reading(flow: Flow, i: u64) -> (String, String) {
    let at = jiff::Timestamp::now().to_string();
    match flow {
        Flow::Alert => (
            format!("pendant-{i:06}"),
            format!("{{\"kind\":\"panic\",\"value\":true,\"at\":\"{at}\"}}"),
        ),
        Flow::Telemetry { sensors } => {
            let s = (i % sensors.max(1) as u64) as usize;
            let t = 18.0 + ((i * 7) % 60) as f64 / 10.0;
            (
                format!("temp-{s:03}"),
                format!("{{\"kind\":\"temperature\",\"value\":{t:.1},\"at\":\"{at}\"}}"),
            )
        }
    }
}

fn remaining_len(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60]);
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut p = vec![0x10];
    remaining_len(body.len(), &mut p);
    p.extend_from_slice(&body);
    p
}

fn publish_packet(topic: &str, payload: &[u8], out: &mut Vec<u8>) {
    out.push(0x30);
    remaining_len(2 + topic.len() + payload.len(), out);
    out.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(payload);
}

/// A device-side MQTT connection that publishes readings under `prefix`
/// (`<prefix><device>`).
pub struct Feeder {
    sock: TcpStream,
    prefix: String,
}

impl Feeder {
    pub fn connect(port: u16, prefix: &str, client_id: &str) -> Feeder {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_nodelay(true).unwrap();
        sock.write_all(&connect_packet(client_id)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        Feeder {
            sock,
            prefix: prefix.to_string(),
        }
    }

    pub fn send(&mut self, device: &str, payload: &str) {
        let mut p = Vec::with_capacity(160);
        publish_packet(
            &format!("{}{device}", self.prefix),
            payload.as_bytes(),
            &mut p,
        );
        self.sock.write_all(&p).unwrap();
    }

    /// Feeds readings `0..n` of `flow` at `pace`; `done()` says how many
    /// events have arrived upstream. Returns when all were sent.
    pub fn feed(&mut self, flow: Flow, n: u64, pace: Pace, done: &dyn Fn() -> u64) {
        match pace {
            Pace::Burst { window } => {
                // Pre-encoded in chunks so the generator only writes bytes.
                let mut sent = 0u64;
                let mut buf = Vec::with_capacity(256 * 1000);
                while sent < n {
                    if sent >= done() + window {
                        std::thread::sleep(Duration::from_micros(500));
                        continue;
                    }
                    buf.clear();
                    let to = (sent + 500).min(n);
                    for i in sent..to {
                        let (d, p) = reading(flow, i);
                        publish_packet(&format!("{}{d}", self.prefix), p.as_bytes(), &mut buf);
                    }
                    self.sock.write_all(&buf).unwrap();
                    sent = to;
                }
            }
            Pace::Every(every) => {
                let t0 = Instant::now();
                for i in 0..n {
                    let due = t0 + every * i as u32;
                    if let Some(w) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(w);
                    }
                    let (d, p) = reading(flow, i);
                    self.send(&d, &p);
                }
            }
        }
    }
}

/// Counts what a system publishes upstream under `<prefix>/#` at Mosquitto.
pub struct Upstream {
    pub alerts: Arc<AtomicU64>,
    pub telemetry: Arc<AtomicU64>,
    pub warm: Arc<AtomicU64>,
    client: rumqttc::Client,
}

impl Upstream {
    pub fn subscribe(port: u16, prefix: &str) -> Upstream {
        let mut o = rumqttc::MqttOptions::new(format!("vs-sub-{prefix}"), "127.0.0.1", port);
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut conn) = rumqttc::Client::new(o, 1024);
        client
            .subscribe(format!("{prefix}/#"), rumqttc::QoS::AtMostOnce)
            .unwrap();
        let (alerts, telemetry, warm) = (Arc::default(), Arc::default(), Arc::default());
        let (a, t, w): (Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>) = (
            Arc::clone(&alerts),
            Arc::clone(&telemetry),
            Arc::clone(&warm),
        );
        let mut subscribed = false;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::SubAck(_))) if !subscribed => {
                        subscribed = true;
                        let _ = tx.send(());
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p))) => {
                        let has = |s: &[u8]| p.payload.windows(s.len()).any(|x| x == s);
                        if has(WARM.as_bytes()) {
                            w.fetch_add(1, Ordering::Relaxed);
                        } else if p.topic.ends_with("/alert") && has(b"\"raised\"") {
                            a.fetch_add(1, Ordering::Relaxed);
                        } else if p.topic.ends_with("/telemetry") {
                            t.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("no SUBACK from Mosquitto");
        Upstream {
            alerts,
            telemetry,
            warm,
            client,
        }
    }

    pub fn events(&self, flow: Flow) -> u64 {
        match flow {
            Flow::Alert => self.alerts.load(Ordering::Relaxed),
            Flow::Telemetry { .. } => self.telemetry.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}

/// utime + stime of the whole process `pid`, in seconds.
pub fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (tick(11) + tick(12)) as f64 / 100.0
}

/// A `key:  value kB` line of `/proc/<pid>/status`, in KiB.
pub fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// `write_bytes` of `/proc/<pid>/io`: bytes the process caused to be sent
/// to storage (page-cache pages it dirtied).
pub fn write_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("write_bytes:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Waits until `cond` holds or `limit` passed; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while !cond() {
        if t0.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}
