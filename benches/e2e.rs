//! End-to-end throughput through the real daemon (a bench binary, not
//! criterion: a whole-system measurement).
//!
//! `carebridge run` (the release binary of this build) is started with its
//! embedded broker, a rules file (a few hundred mixed rules over 1,000
//! devices in 100 rooms) and an MQTT uplink to a local Mosquitto, pinned to
//! CPU 0 with `taskset -c 0` when that exists. A load generator on the other
//! CPU publishes readings as JSON into the front door
//! (`carebridge/in/<device>`, raw MQTT packets so the generator costs next
//! to nothing) at QoS 1 with at most 64 unacknowledged: a PUBACK comes only
//! after the reading's commit, so the stream is paced by the store and the
//! last PUBACK means everything is stored. (At QoS 0 the front door sheds
//! readings while the hub's queue is full, and a run waiting for every
//! reading to be committed never ends.) Among the readings, one panic press
//! from each of `E2E_PANICS` distinct pendants: each must arrive upstream
//! as an alert.
//!
//! Figures: readings/s from first publish until the last reading is
//! acknowledged (wall clock, pinned), readings per CPU-second of the daemon
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

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const ROOMS: usize = 100;

#[allow(dead_code)] // shared with the other bench binaries
mod peers;
use peers::{have, mosquitto};
#[allow(dead_code)] // shared with `versus`
mod system;
use system::{Publisher, Upstream, front_door_window};

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

/// The i-th reading of the stream as (device, payload); `pendant` when the
/// reading is a panic press (from its own pendant).
fn reading(i: u64, n: u64, panics: u64, devices: usize, base_ms: i64) -> (String, String) {
    let at = jiff::Timestamp::from_millisecond(base_ms + i as i64)
        .unwrap()
        .to_string();
    let every = (n / panics.max(1)).max(1);
    if panics > 0 && i % every == every / 2 && i / every < panics {
        let p = i / every;
        return (
            format!("pendant-{p:05}"),
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
        format!("dev-{dev:04}"),
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
    let (front_door, broker) = system::front_door_config();
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
             {front_door}\
             [uplink.mqtt]\nurl = \"mqtt://127.0.0.1:{upstream}\"\ntopic_prefix = \"cb\"\ntelemetry = {}\n\
             [rules]\nfile = \"{}\"\n[store]\noutbox_max_mb = 4096\n{devices}",
            data.display(),
            cfg.telemetry,
            rules.display()
        ),
    )
    .unwrap();
    let exe = env!("CARGO_BIN_EXE_carebridge");
    let (_guard, pid) = system::start_daemon(exe, &config, taskset, "error", broker);
    // Upstream: count panic alerts (and telemetry) as Mosquitto relays them.
    let up = Upstream::subscribe(upstream, "cb/e2e", b"\"panic-", "");
    std::thread::sleep(Duration::from_millis(500));

    // Pre-encode the whole stream so the generator only writes bytes.
    let window = front_door_window();
    let mut pb = Publisher::connect(broker, "e2e-gen", true, window);
    let base_ms = jiff::Timestamp::now().as_millisecond() - cfg.readings as i64;
    let mut packets: Vec<u8> = Vec::with_capacity(cfg.readings as usize * 110);
    let mut ends: Vec<usize> = Vec::with_capacity(cfg.readings as usize);
    for i in 0..cfg.readings {
        let (device, payload) = reading(i, cfg.readings, cfg.panics, cfg.devices, base_ms);
        pb.encode(
            &format!("carebridge/in/{device}"),
            payload.as_bytes(),
            &mut packets,
        );
        ends.push(packets.len());
    }

    let cpu0 = system::cpu_by_thread(pid);
    let t0 = Instant::now();
    let mut sent = 0u64;
    while pb.acked() < cfg.readings && t0.elapsed() < Duration::from_secs(600) {
        let room = (window - (sent - pb.acked())).min(cfg.readings - sent);
        if room == 0 {
            std::thread::sleep(Duration::from_micros(100));
            continue;
        }
        let from = if sent == 0 {
            0
        } else {
            ends[sent as usize - 1]
        };
        let to = sent + room;
        pb.write(&packets[from..ends[to as usize - 1]]);
        sent = to;
    }
    let done = pb.acked();
    let stored = t0.elapsed();
    let cpu1 = system::cpu_by_thread(pid);
    let alerts = &up.alerts;
    while alerts.load(Ordering::Relaxed) < cfg.panics && t0.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let alerted = t0.elapsed();
    let cpu: f64 =
        cpu1.values().map(|v| v.0).sum::<f64>() - cpu0.values().map(|v| v.0).sum::<f64>();
    println!(
        "e2e, telemetry {}: {} readings ({} devices, {} rules) acknowledged (committed) in {:.2} s = {:.0} readings/s wall clock{}; daemon CPU {:.2} s = {:.0} readings per CPU-second",
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
        up.telemetry.load(Ordering::Relaxed)
    );
    println!(
        "    daemon CPU by thread: {}",
        system::thread_split(&cpu0, &cpu1)
    );
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
