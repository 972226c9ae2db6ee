//! End-to-end throughput through the real daemon (a bench binary, not
//! criterion: a whole-system measurement).
//!
//! `carebridge run` (the release binary of this build) is started with its
//! embedded broker, a rules file (a few hundred mixed rules over 1,000
//! devices in 100 rooms) and an MQTT uplink to a local Mosquitto, pinned to
//! CPU 0 with `taskset -c 0` when that exists. A load generator on the other
//! CPU publishes readings as JSON (`carebridge/in/<device>`, QoS 0, written
//! as raw MQTT packets so the generator costs next to nothing) and keeps at
//! most a window of readings ahead of what the store has committed (it
//! polls `max(rowid)` of the history table read-only), so the embedded
//! broker's log never overflows. Among the readings, one panic press from
//! each of `E2E_PANICS` distinct pendants: each must arrive upstream as an
//! alert.
//!
//! Figures: readings/s from first publish until the last reading is
//! committed (wall clock, pinned), readings per CPU-second of the daemon
//! (utime+stime of the process, so other load on the machine does not
//! inflate it), and the daemon's CPU split by thread (where the time goes).
//! Run twice: telemetry off (alerts only upstream) and on (every reading is
//! also an outbox row published upstream).
//!
//! `cargo bench --bench e2e` (needs `mosquitto`; skips with a message
//! otherwise). `E2E_READINGS` (default 400,000), `E2E_DEVICES` (readings
//! spread over this many sensors, 1,000), `E2E_PANICS` (1,000) and
//! `E2E_TELEMETRY` (`off`, `on` or `both`, the default).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ROOMS: usize = 100;
/// Readings the generator may be ahead of the store: ~110 bytes each, well
/// inside the embedded broker's in-memory log (4 × 256 KB per filter, see
/// `broker.rs`); more and the broker drops the oldest segment, the readings
/// in it never arrive, and the run waits for them until its time limit.
const WINDOW: u64 = 6_000;

mod peers;
use peers::{Kill, free_port, have, mosquitto, wait_port};

fn room(d: usize) -> String {
    format!("room-{:03}", d % ROOMS)
}

fn rules_text() -> String {
    let mut s = String::new();
    for r in 0..ROOMS {
        let room = format!("room-{r:03}");
        s.push_str(&format!(
            "[[rule]]\nid = \"panic-{r}\"\ntype = \"immediate\"\nkinds = [\"panic\", \"fall\"]\nroom = \"{room}\"\n\n\
             [[rule]]\nid = \"cold-{r}\"\ntype = \"threshold\"\nkind = \"temperature\"\nroom = \"{room}\"\nbelow = 16.0\nfor = \"30m\"\n\n\
             [[rule]]\nid = \"quiet-{r}\"\ntype = \"inactivity\"\nkind = \"motion\"\nroom = \"{room}\"\nfor = \"4h\"\n\n\
             [[rule]]\nid = \"door-{r}\"\ntype = \"window\"\nkind = \"contact\"\nroom = \"{room}\"\nwindow = \"23:00-06:00\"\nfor = \"5m\"\n\n\
             [[rule]]\nid = \"battery-{r}\"\ntype = \"low_battery\"\nroom = \"{room}\"\n\n"
        ));
    }
    s.push_str("[[rule]]\nid = \"silent\"\ntype = \"silent\"\ninterval = \"2h\"\n");
    s
}

/// utime + stime of every thread of `pid`, by thread name, in seconds
/// (`sys:<name>` holds the stime part alone).
fn cpu_by_thread(pid: u32) -> BTreeMap<String, f64> {
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
        let name = stat[open + 1..close].to_string();
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the name.
        let utime = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let stime = f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        *m.entry(format!("sys:{name}")).or_insert(0.0) += stime as f64 / 100.0;
        *m.entry(name).or_insert(0.0) += (utime + stime) as f64 / 100.0;
    }
    m
}

fn total(m: &BTreeMap<String, f64>) -> f64 {
    m.iter()
        .filter(|(k, _)| !k.starts_with("sys:"))
        .map(|(_, v)| v)
        .sum()
}

// ---- a minimal MQTT 3.1.1 publisher (QoS 0) ---------------------------------

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

/// The i-th reading of the stream as (topic, payload); `pendant` when the
/// reading is a panic press (from its own pendant).
fn reading(i: u64, n: u64, panics: u64, devices: usize, base_ms: i64) -> (String, String) {
    let at = jiff::Timestamp::from_millisecond(base_ms + i as i64)
        .unwrap()
        .to_string();
    let every = (n / panics.max(1)).max(1);
    if panics > 0 && i % every == every / 2 && i / every < panics {
        let p = i / every;
        return (
            format!("carebridge/in/pendant-{p:05}"),
            format!("{{\"kind\":\"panic\",\"value\":true,\"at\":\"{at}\"}}"),
        );
    }
    let r = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
    let dev = (r % devices as u64) as usize;
    let (kind, value) = match (r >> 12) % 10 {
        0..=3 => ("motion", format!("{}", (r >> 20) & 1 == 1)),
        4..=6 => (
            "temperature",
            format!("{:.1}", 16.0 + ((r >> 20) % 80) as f64 / 10.0),
        ),
        7 | 8 => ("contact", format!("{}", (r >> 20) & 1 == 1)),
        _ => ("battery", format!("{}", 30 + (r >> 20) % 70)),
    };
    (
        format!("carebridge/in/dev-{dev:04}"),
        format!("{{\"kind\":\"{kind}\",\"value\":{value},\"at\":\"{at}\"}}"),
    )
}

struct Run {
    telemetry: bool,
    devices: usize,
    readings: u64,
    panics: u64,
}

fn run(dir: &Path, upstream: u16, taskset: bool, cfg: &Run) {
    let data = dir.join(if cfg.telemetry { "data-t" } else { "data-a" });
    let broker = free_port();
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, rules_text()).unwrap();
    let mut devices = String::new();
    for d in 0..cfg.devices {
        devices.push_str(&format!("[devices.dev-{d:04}]\nroom = \"{}\"\n", room(d)));
    }
    for p in 0..cfg.panics {
        devices.push_str(&format!(
            "[devices.pendant-{p:05}]\nroom = \"{}\"\n",
            room(p as usize)
        ));
    }
    let config = dir.join(if cfg.telemetry { "t.toml" } else { "a.toml" });
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"e2e\"\ndata_dir = \"{}\"\n\
             [local_broker]\nlisten = \"127.0.0.1:{broker}\"\n\
             [uplink.mqtt]\nurl = \"mqtt://127.0.0.1:{upstream}\"\ntopic_prefix = \"cb\"\ntelemetry = {}\n\
             [rules]\nfile = \"{}\"\n[store]\noutbox_max_mb = 4096\n{devices}",
            data.display(),
            cfg.telemetry,
            rules.display()
        ),
    )
    .unwrap();
    let exe = env!("CARGO_BIN_EXE_carebridge");
    let mut cmd = if taskset {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", exe]);
        c
    } else {
        Command::new(exe)
    };
    let child = cmd
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "error")
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _guard = Kill(child);
    wait_port(broker);

    // Upstream: count alerts (and telemetry) as Mosquitto relays them.
    let alerts = Arc::new(AtomicU64::new(0));
    let telemetry = Arc::new(AtomicU64::new(0));
    let mut so = rumqttc::MqttOptions::new(format!("e2e-sub-{broker}"), "127.0.0.1", upstream);
    so.set_max_packet_size(1 << 20, 1 << 20);
    let (sub, mut conn) = rumqttc::Client::new(so, 1024);
    sub.subscribe("cb/e2e/#", rumqttc::QoS::AtMostOnce).unwrap();
    let (a, t) = (alerts.clone(), telemetry.clone());
    std::thread::spawn(move || {
        for ev in conn.iter() {
            match ev {
                Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p))) => {
                    if p.topic.ends_with("/alert")
                        && p.payload.windows(7).any(|w| w == b"\"panic-")
                        && p.payload.windows(8).any(|w| w == b"\"raised\"")
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

    // The store's progress, read-only beside the daemon (WAL).
    let db = data.join("carebridge.db");
    let mut reader = None;
    for _ in 0..500 {
        if let Ok(c) =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            && c.query_row("SELECT count(*) FROM devices", [], |r| r.get::<_, i64>(0))
                .is_ok()
        {
            reader = Some(c);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let reader = reader.unwrap_or_else(|| panic!("cannot open {}", db.display()));
    let committed = || -> u64 {
        reader
            .query_row("SELECT coalesce(max(rowid), 0) FROM history", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap_or(0) as u64
    };
    std::thread::sleep(Duration::from_millis(500));

    // Pre-encode the whole stream so the generator only writes bytes.
    let base_ms = jiff::Timestamp::now().as_millisecond() - cfg.readings as i64;
    let mut packets: Vec<u8> = Vec::with_capacity(cfg.readings as usize * 110);
    let mut ends: Vec<usize> = Vec::with_capacity(cfg.readings as usize);
    for i in 0..cfg.readings {
        let (topic, payload) = reading(i, cfg.readings, cfg.panics, cfg.devices, base_ms);
        publish_packet(&topic, payload.as_bytes(), &mut packets);
        ends.push(packets.len());
    }
    let mut sock = TcpStream::connect(("127.0.0.1", broker)).unwrap();
    sock.set_nodelay(true).unwrap();
    sock.write_all(&connect_packet("e2e-gen")).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let cpu0 = cpu_by_thread(pid);
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut done = 0u64;
    let chunk = 1_000u64;
    while done < cfg.readings && t0.elapsed() < Duration::from_secs(600) {
        if sent < cfg.readings && sent < done + WINDOW {
            let to = (sent + chunk).min(cfg.readings);
            let from_byte = if sent == 0 {
                0
            } else {
                ends[sent as usize - 1]
            };
            sock.write_all(&packets[from_byte..ends[to as usize - 1]])
                .unwrap();
            sent = to;
            continue;
        }
        std::thread::sleep(Duration::from_millis(5));
        done = committed();
    }
    let stored = t0.elapsed();
    let cpu1 = cpu_by_thread(pid);
    while alerts.load(Ordering::Relaxed) < cfg.panics && t0.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let alerted = t0.elapsed();
    let cpu = total(&cpu1) - total(&cpu0);
    println!(
        "e2e, telemetry {}: {} readings ({} devices, {} rules) committed in {:.2} s = {:.0} readings/s wall clock{}; daemon CPU {:.2} s = {:.0} readings per CPU-second",
        if cfg.telemetry { "on " } else { "off" },
        done,
        cfg.devices + cfg.panics as usize,
        ROOMS * 5 + 1,
        stored.as_secs_f64(),
        done as f64 / stored.as_secs_f64(),
        if taskset {
            " (daemon pinned to CPU 0)"
        } else {
            ""
        },
        cpu,
        done as f64 / cpu.max(1e-9)
    );
    println!(
        "    {} of {} panic alerts upstream after {:.2} s; {} telemetry messages relayed by then",
        alerts.load(Ordering::Relaxed),
        cfg.panics,
        alerted.as_secs_f64(),
        telemetry.load(Ordering::Relaxed)
    );
    let mut split: Vec<(String, f64)> = cpu1
        .iter()
        .map(|(k, v)| (k.clone(), v - cpu0.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    split.sort_by(|a, b| b.1.total_cmp(&a.1));
    let parts: Vec<String> = split
        .iter()
        .filter(|(k, _)| !k.starts_with("sys:"))
        .map(|(k, v)| {
            let sys = split
                .iter()
                .find(|(s, _)| s.strip_prefix("sys:") == Some(k.as_str()))
                .map_or(0.0, |(_, s)| *s);
            format!(
                "{k} {:.0}% ({:.0}% of it in the kernel)",
                100.0 * v / cpu.max(1e-9),
                100.0 * sys / v.max(1e-9)
            )
        })
        .collect();
    println!("    daemon CPU by thread: {}", parts.join(", "));
    let _ = sub.disconnect();
}

fn main() {
    if !peers::should_run("e2e") {
        return;
    }
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let readings = env("E2E_READINGS", 400_000);
    let panics = env("E2E_PANICS", 1_000);
    let devices = env("E2E_DEVICES", 1_000).max(1) as usize;
    let taskset = have("taskset", "-V");
    if !taskset {
        eprintln!("e2e bench: taskset not found; the daemon is not pinned to one CPU");
    }
    let dir = tempfile::tempdir().unwrap();
    let (_m, upstream) = mosquitto(dir.path());
    let modes: &[bool] = match std::env::var("E2E_TELEMETRY").as_deref() {
        Ok("off") => &[false],
        Ok("on") => &[true],
        _ => &[false, true],
    };
    for &telemetry in modes {
        run(
            dir.path(),
            upstream,
            taskset,
            &Run {
                telemetry,
                devices,
                readings,
                panics,
            },
        );
    }
}
