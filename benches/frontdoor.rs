//! The MQTT front door under bursts (a bench binary, not criterion: a
//! whole-system measurement of `carebridge run`, this build's binary).
//!
//! Three figures, each on a fresh daemon (only `[local_broker]`, no uplink,
//! so every reading is a history row and a telemetry outbox row):
//!
//! 1. **One client, `FD_READINGS` (50,000) QoS 1 readings at full speed**
//!    (at most 100 unacknowledged): readings/s from first publish to last
//!    PUBACK (a PUBACK means committed) and the daemon's peak RSS.
//! 2. **`FD_CLIENTS` (1,000) clients at once**, the same total spread over
//!    them (at most 10 unacknowledged each): readings/s and peak RSS.
//! 3. **Acknowledgement latency, idle**: one reading at a time, 500 times,
//!    PUBLISH → PUBACK (= the commit's fsync): p50, p99.
//!
//! Peak RSS is the kernel's high-water mark (`VmHWM` of the process).
//! The clients speak raw MQTT 3.1.1 (rumqttc's codec over a blocking
//! socket), so they cost next to nothing. `cargo bench --bench frontdoor`;
//! `FD_DISTINCT=1` makes every reading a panic press from a device never
//! seen before (memory that grows per device: the rules' device table,
//! the registry's gathered facts). `FD_WINDOW=N` sets every client's
//! window of unacknowledged readings (a client that fills the front door's
//! whole window: `FD_WINDOW=256`). `FD_CAREBRIDGE=<binary>` measures
//! another build (or a wrapper script, e.g. heaptrack). `FD_SKIP=1,3`
//! skips figures by number.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, Packet, Publish};

#[allow(dead_code)] // shared with the other bench binaries
mod peers;
use peers::{Kill, free_port, wait_port};

struct Raw {
    s: TcpStream,
    buf: BytesMut,
    out: BytesMut,
}

impl Raw {
    fn connect(port: u16, id: &str) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        let mut r = Raw {
            s,
            buf: BytesMut::with_capacity(4096),
            out: BytesMut::new(),
        };
        let mut c = Connect::new(id);
        c.keep_alive = 120;
        Packet::Connect(c).write(&mut r.out, usize::MAX).unwrap();
        r.flush();
        loop {
            if let Packet::ConnAck(a) = r.next() {
                assert_eq!(a.code, rumqttc::ConnectReturnCode::Success);
                return r;
            }
        }
    }

    fn publish(&mut self, device: &str, v: u64, pkid: u16, panic: bool) {
        let payload = if panic {
            r#"{"kind":"panic","value":1}"#.to_string()
        } else {
            format!(r#"{{"kind":"temperature","value":{v}}}"#)
        };
        let mut p = Publish::new(format!("carebridge/in/{device}"), QoS::AtLeastOnce, payload);
        p.pkid = pkid;
        Packet::Publish(p).write(&mut self.out, usize::MAX).unwrap();
    }

    fn flush(&mut self) {
        self.s.write_all(&self.out).unwrap();
        self.out.clear();
    }

    /// The next packet (blocks).
    fn next(&mut self) -> Packet {
        loop {
            if let Ok(p) = Packet::read(&mut self.buf, 1 << 20) {
                return p;
            }
            let mut chunk = [0u8; 8192];
            let n = self.s.read(&mut chunk).unwrap();
            assert!(n > 0, "the front door closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// `n` QoS 1 readings with at most `window` unacknowledged; with
/// `distinct`, each a panic press from a device of its own (`<client>-<n>`).
fn burst(port: u16, device: &str, n: u64, window: u64, distinct: bool) {
    let mut raw = Raw::connect(port, device);
    let (mut sent, mut acked) = (0u64, 0u64);
    while acked < n {
        while sent - acked < window && sent < n {
            let pkid = (sent % 60_000 + 1) as u16;
            if distinct {
                raw.publish(&format!("{device}-{sent}"), sent, pkid, true);
            } else {
                raw.publish(device, sent, pkid, false);
            }
            sent += 1;
        }
        raw.flush();
        if let Packet::PubAck(_) = raw.next() {
            acked += 1;
        }
    }
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn daemon(dir: &Path, max_connections: usize) -> (Kill, u16) {
    let port = free_port();
    let _ = std::fs::remove_dir_all(dir.join("data"));
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"gw-bench\"\ndata_dir = \"{}\"\n[local_broker]\nlisten = \"127.0.0.1:{port}\"\nmax_connections = {max_connections}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    // `FD_CAREBRIDGE=<binary>` runs another build (before/after, heaptrack).
    let exe = std::env::var("FD_CAREBRIDGE")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_carebridge").to_string());
    let child = Command::new(exe)
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port);
    std::thread::sleep(Duration::from_millis(300));
    (Kill(child), port)
}

fn report(what: &str, n: u64, took: Duration, pid: u32, idle_kb: u64) {
    println!(
        "{what}: {n} QoS 1 readings in {:.2} s = {:.0} readings/s; RSS idle {:.1} MB, peak {:.1} MB",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        idle_kb as f64 / 1024.0,
        status_kb(pid, "VmHWM:") as f64 / 1024.0
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches`: keep it quick
    }
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let n = env("FD_READINGS", 50_000);
    let clients = env("FD_CLIENTS", 1_000);
    // `FD_DISTINCT=1`: every reading a panic press from a device never seen
    // before (the engine and the registry grow by a device per reading).
    let distinct = env("FD_DISTINCT", 0) == 1;
    let window = |default: u64| env("FD_WINDOW", default).max(1);
    let skip = std::env::var("FD_SKIP").unwrap_or_default();
    let run = |figure: &str| !skip.split(',').any(|s| s.trim() == figure);
    let dir = tempfile::tempdir().unwrap();

    if run("1") {
        let (d, port) = daemon(dir.path(), 16);
        let idle = status_kb(d.0.id(), "VmRSS:");
        let t = Instant::now();
        burst(port, "one", n, window(100), distinct);
        report("1 client", n, t.elapsed(), d.0.id(), idle);
    }
    if run("2") {
        many(dir.path(), n, clients, window(10), distinct);
    }
    if run("3") {
        latency(dir.path());
    }
}

/// Figure 2: `clients` clients at once, `n` readings spread over them.
fn many(dir: &Path, n: u64, clients: u64, window: u64, distinct: bool) {
    let (d, port) = daemon(dir, clients as usize + 16);
    let idle = status_kb(d.0.id(), "VmRSS:");
    let each = (n / clients).max(1);
    let t = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || burst(port, &format!("c{i}"), each, window, distinct))
                .unwrap()
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    report(
        &format!("{clients} clients"),
        each * clients,
        t.elapsed(),
        d.0.id(),
        idle,
    );
}

/// Figure 3: acknowledgement latency of one reading at a time, idle.
fn latency(dir: &Path) {
    let (d, port) = daemon(dir, 16);
    let mut raw = Raw::connect(port, "latency");
    let mut lat: Vec<Duration> = Vec::new();
    let mut by_pkid: HashMap<u16, Instant> = HashMap::new();
    for i in 0..500u64 {
        let pkid = (i + 1) as u16;
        raw.publish("lat", i, pkid, false);
        by_pkid.insert(pkid, Instant::now());
        raw.flush();
        if let Packet::PubAck(a) = raw.next() {
            lat.push(by_pkid[&a.pkid].elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "ack latency idle (PUBLISH → commit → PUBACK), {} samples: p50 {:?}, p99 {:?}",
        lat.len(),
        pct(0.50),
        pct(0.99)
    );
    drop(d);
}
