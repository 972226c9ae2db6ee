//! The shared half of the whole-system benches (`versus`, `e2e`): starting
//! `carebridge run` pinned to one CPU, a device-side MQTT publisher (raw
//! MQTT 3.1.1 packets, so the generator costs next to nothing), counting
//! what arrives upstream at Mosquitto, and reading a process's CPU, memory
//! and disk writes from `/proc`.
//!
//! Readings enter carebridge through its front door (`[local_broker]
//! listen`, `carebridge/in/<device>`) at **QoS 1, paced on PUBACK**: a
//! PUBACK comes only after the reading's SQLite commit, and at most
//! [`FRONT_DOOR_INFLIGHT`] are unacknowledged, as a real device's client
//! would keep them. (At QoS 0 the front door sheds readings while the hub's
//! queue is full: a burst at QoS 0 measures shedding, not the alert path.)

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::peers::{Kill, free_port, wait_port};

/// Unacknowledged QoS 1 publications the front door takes per connection
/// (`[local_broker] inflight`, default 256); a publisher keeps at most this
/// many, as a client without a limit of its own (mqtt.js, esp-mqtt) does.
/// `BENCH_INFLIGHT=N` runs a more cautious client (Mosquitto's and Paho's
/// libraries keep 20 by default; before 2026-12 the bench kept 64).
pub const FRONT_DOOR_INFLIGHT: u64 = 256;

/// The publisher's window: `BENCH_INFLIGHT`, else [`FRONT_DOOR_INFLIGHT`].
pub fn front_door_window() -> u64 {
    std::env::var("BENCH_INFLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &u64| n > 0)
        .unwrap_or(FRONT_DOOR_INFLIGHT)
}

/// The `[local_broker]` section of a carebridge config (the front door on a
/// free port) and that port; readings go to `carebridge/in/<device>`.
pub fn front_door_config() -> (String, u16) {
    let port = free_port();
    // `BENCH_BROKER='inflight = 1024'` adds `[local_broker]` keys (`;` between).
    let extra = std::env::var("BENCH_BROKER").unwrap_or_default();
    (
        format!(
            "[local_broker]\nlisten = \"127.0.0.1:{port}\"\n{}\n",
            extra.replace(';', "\n")
        ),
        port,
    )
}

/// Starts `exe run --config <config>` (pinned to CPU 0 with `taskset` when
/// `pin`), with `RUST_LOG=<log>`, and waits until `port` accepts.
pub fn start_daemon(exe: &str, config: &Path, pin: bool, log: &str, port: u16) -> (Kill, u32) {
    let mut cmd = pinned(exe, pin);
    let child = cmd
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let child = Kill(child);
    wait_port(port);
    (child, pid)
}

/// `exe` under `taskset -c 0` when `pin`.
pub fn pinned(exe: &str, pin: bool) -> Command {
    if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", exe]);
        c
    } else {
        Command::new(exe)
    }
}

// ---- raw MQTT 3.1.1 ---------------------------------------------------------

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

/// A PUBLISH at QoS 0 (`pkid` `None`) or QoS 1.
pub fn publish_packet(topic: &str, payload: &[u8], pkid: Option<u16>, out: &mut Vec<u8>) {
    out.push(if pkid.is_some() { 0x32 } else { 0x30 });
    let id_len = if pkid.is_some() { 2 } else { 0 };
    remaining_len(2 + topic.len() + id_len + payload.len(), out);
    out.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    if let Some(id) = pkid {
        out.extend_from_slice(&id.to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// Counts PUBACKs on a reader thread (ends when the socket closes).
fn count_pubacks(mut sock: TcpStream, acked: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
        let mut chunk = [0u8; 1 << 14];
        loop {
            let n = match sock.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let mut at = 0;
            let mut acks = 0;
            while let Some((kind, len)) = packet_at(&buf[at..]) {
                if kind == 0x40 {
                    acks += 1;
                }
                at += len;
            }
            buf.drain(..at);
            if acks > 0 {
                acked.fetch_add(acks, Ordering::Release);
            }
        }
    });
}

/// (packet type byte & 0xF0, whole length) of the packet at the start of
/// `b`, if complete.
fn packet_at(b: &[u8]) -> Option<(u8, usize)> {
    let first = *b.first()?;
    let (mut len, mut mul, mut i) = (0usize, 1usize, 1usize);
    loop {
        let d = *b.get(i)?;
        len += usize::from(d & 0x7f) * mul;
        mul *= 128;
        i += 1;
        if d & 0x80 == 0 {
            break;
        }
    }
    (b.len() >= i + len).then_some((first & 0xf0, i + len))
}

/// A device-side MQTT connection publishing readings at QoS 0 or at QoS 1
/// with at most `inflight` unacknowledged.
pub struct Publisher {
    sock: TcpStream,
    qos1: bool,
    inflight: u64,
    sent: u64,
    acked: Arc<AtomicU64>,
}

impl Publisher {
    pub fn connect(port: u16, client_id: &str, qos1: bool, inflight: u64) -> Publisher {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_nodelay(true).unwrap();
        sock.write_all(&connect_packet(client_id)).unwrap();
        let acked = Arc::new(AtomicU64::new(0));
        count_pubacks(sock.try_clone().unwrap(), Arc::clone(&acked));
        std::thread::sleep(Duration::from_millis(100));
        Publisher {
            sock,
            qos1,
            inflight: inflight.max(1),
            sent: 0,
            acked,
        }
    }

    /// Publications sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// PUBACKs received (QoS 1: readings committed by carebridge).
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// How many more may be sent now (QoS 0: no limit).
    pub fn room(&self) -> u64 {
        if self.qos1 {
            self.inflight.saturating_sub(self.sent - self.acked())
        } else {
            u64::MAX
        }
    }

    /// Appends the next publication to `out` (written by [`Self::write`]).
    pub fn encode(&mut self, topic: &str, payload: &[u8], out: &mut Vec<u8>) {
        let pkid = self.qos1.then(|| (self.sent % 65_535 + 1) as u16);
        publish_packet(topic, payload, pkid, out);
        self.sent += 1;
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).unwrap();
    }

    /// Sends one publication, first waiting (up to a minute) for room.
    pub fn send(&mut self, topic: &str, payload: &[u8]) {
        wait_until(Duration::from_secs(60), || self.room() > 0);
        let mut p = Vec::with_capacity(160);
        self.encode(topic, payload, &mut p);
        self.write(&p);
    }

    /// Waits up to `limit` until every QoS 1 publication is acknowledged.
    pub fn wait_all_acked(&self, limit: Duration) -> bool {
        !self.qos1 || wait_until(limit, || self.acked() >= self.sent)
    }
}

// ---- upstream ---------------------------------------------------------------

/// Counts what a system publishes upstream under `<prefix>/#` at
/// Mosquitto: alerts (`…/alert`, raised, payload containing `alert_mark`),
/// telemetry (`…/telemetry`) and anything mentioning `warm` (a warm-up
/// device, not counted as an event).
pub struct Upstream {
    pub alerts: Arc<AtomicU64>,
    pub telemetry: Arc<AtomicU64>,
    pub warm: Arc<AtomicU64>,
    client: rumqttc::Client,
}

impl Upstream {
    pub fn subscribe(port: u16, prefix: &str, alert_mark: &'static [u8], warm: &str) -> Upstream {
        let mut o = rumqttc::MqttOptions::new(format!("sub-{prefix}-{port}"), "127.0.0.1", port);
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut conn) = rumqttc::Client::new(o, 1024);
        client
            .subscribe(format!("{prefix}/#"), rumqttc::QoS::AtMostOnce)
            .unwrap();
        let (alerts, telemetry, warm_n) = (Arc::default(), Arc::default(), Arc::default());
        let (a, t, w): (Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>) = (
            Arc::clone(&alerts),
            Arc::clone(&telemetry),
            Arc::clone(&warm_n),
        );
        let warm = warm.as_bytes().to_vec();
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
                        if !warm.is_empty() && has(&warm) {
                            w.fetch_add(1, Ordering::Relaxed);
                        } else if p.topic.ends_with("/alert")
                            && has(b"\"raised\"")
                            && (alert_mark.is_empty() || has(alert_mark))
                        {
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
            warm: warm_n,
            client,
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}

// ---- /proc ------------------------------------------------------------------

/// utime + stime of the whole process `pid`, in seconds.
pub fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat_ticks(&stat).map_or(0.0, |(u, s)| (u + s) as f64 / 100.0)
}

/// (utime, stime) in ticks from a `stat` line.
fn stat_ticks(stat: &str) -> Option<(u64, u64)> {
    let close = stat.rfind(')')?;
    let f: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the name.
    Some((tick(11), tick(12)))
}

/// CPU seconds (total, in the kernel) of every thread of `pid`, by name.
pub fn cpu_by_thread(pid: u32) -> BTreeMap<String, (f64, f64)> {
    let mut m = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return m;
    };
    for t in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let Some((u, s)) = stat_ticks(&stat) else {
            continue;
        };
        let e: &mut (f64, f64) = m.entry(stat[open + 1..close].to_string()).or_default();
        e.0 += (u + s) as f64 / 100.0;
        e.1 += s as f64 / 100.0;
    }
    m
}

/// "name 41% (12% of it in the kernel), …" between two [`cpu_by_thread`].
pub fn thread_split(
    before: &BTreeMap<String, (f64, f64)>,
    after: &BTreeMap<String, (f64, f64)>,
) -> String {
    let mut split: Vec<(&String, f64, f64)> = after
        .iter()
        .map(|(k, v)| {
            let b = before.get(k).copied().unwrap_or_default();
            (k, v.0 - b.0, v.1 - b.1)
        })
        .filter(|(_, t, _)| *t > 0.0)
        .collect();
    let total: f64 = split.iter().map(|s| s.1).sum();
    split.sort_by(|a, b| b.1.total_cmp(&a.1));
    split
        .iter()
        .map(|(k, t, s)| {
            format!(
                "{k} {:.0}% ({:.0}% of it in the kernel)",
                100.0 * t / total.max(1e-9),
                100.0 * s / t.max(1e-9)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
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

/// Bytes written to the block device holding `path` (sectors written in
/// `/sys/dev/block/<major>:<minor>/stat`, partitions too), or `None` where
/// that is not readable. Counts what reaches the device: file data,
/// file-system journal and metadata — and any other process's writes to
/// it, so it is the process's own figure only on a dedicated file system
/// (`VERSUS_DIR` on a loop-mounted image, as an SD card stand-in).
pub fn device_written(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    let (major, minor) = (libc_major(dev), libc_minor(dev));
    let stat = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/stat")).ok()?;
    let sectors: u64 = stat.split_whitespace().nth(6)?.parse().ok()?;
    Some(sectors * 512)
}

fn libc_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)
}

fn libc_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0xff)
}

/// Waits until `cond` holds or `limit` passed; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while !cond() {
        if t0.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}
