//! carebridge and Node-RED 4 side by side on the same stream (a bench
//! binary, not criterion: whole-system figures against real peers).
//!
//! Each system runs alone, pinned to CPU 0 with `taskset -c 0` when that
//! exists, with a fresh data directory, and publishes upstream at QoS 1 to
//! one local Mosquitto, where a subscriber counts what arrives. The load
//! generator writes raw MQTT packets from the other CPU: into carebridge's
//! front door at QoS 1, at most 64 unacknowledged (a PUBACK means the
//! reading is committed; see `system`), and into Mosquitto (`nrin/<device>`)
//! at QoS 0 for Node-RED. carebridge commits every reading and alert to
//! SQLite before publishing it; Node-RED keeps nothing.
//!
//! Flows (`VERSUS_FLOWS`, comma-separated; default all but `minute`):
//! - `alert`: `VERSUS_N` (50,000) panic presses from distinct pendants as
//!   fast as the system delivers them (at most 6,000 ahead of upstream);
//!   one event = one raised alert at Mosquitto;
//! - `telemetry`: `VERSUS_N` temperature readings from 200 sensors, each
//!   one a telemetry message upstream; one event = one telemetry message;
//! - `home`: 600 readings at 10 a second from 20 sensors, telemetry on
//!   (carebridge: at QoS 0, as a home's Zigbee and serial sensors, whose
//!   readings nobody waits for; `VERSUS_HOME_QOS=1` for QoS 1);
//! - `minute`: a home of 20 sensors reporting once a minute (a reading
//!   every 3 s), `VERSUS_MINUTE_N` (60) readings: at the real rate, since
//!   commits are grouped in time (`[store] commit_delay`), a faster stream
//!   would put more readings in each commit than a home does.
//!
//! Figures per flow and system: daemon CPU per event (utime+stime of the
//! process over the run, so other load on the shared machine does not
//! inflate it; wall-clock figures do suffer from it), events per second,
//! RSS idle (after a warm-up reading) and peak (`VmHWM`), and bytes
//! written per reading (`write_bytes` of `/proc/<pid>/io`; for the home
//! flows also per year for a 20-sensor home reporting once a minute).
//! `VERSUS_SYSTEMS=carebridge` or `nodered` runs one of them;
//! `VERSUS_CAREBRIDGE=<binary>` measures another carebridge build (to
//! compare before and after a change, runs interleaved);
//! `VERSUS_STORE='commit_delay = "15s"'` adds `[store]` keys (`;` between);
//! `VERSUS_PREFILL=N` sends N readings at full speed before a home flow
//! (the WAL then has its full size, as after a few hours at a home);
//! `VERSUS_WALSTAT=1` prints what carebridge's commits wrote, by table
//! (`benches/tools/walstat.py`; `WALSTAT_COMMITS=1` lists every commit).
//! `write_bytes` counts page-cache memory dirtied, which on kernels that
//! cache ext4 files in large folios (6.16 and later) can be several times
//! what is written; `VERSUS_DEVICE=1` with `VERSUS_DIR` on a file system of
//! its own (a loop-mounted ext4 image stands in for the SD card) adds what
//! reached the block device, journal and metadata included, after `sync`.
//! Node-RED is installed once with npm into a cache directory (see `nodered.rs`);
//! where npm cannot install it the bench says so and runs carebridge alone.
//!
//! `cargo bench --bench versus` (needs `mosquitto`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Child;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[allow(dead_code)] // shared with the other bench binaries
mod peers;
use peers::{Kill, have, mosquitto};
#[allow(dead_code)] // shared with `e2e`
mod system;
use system::{Publisher, Upstream, front_door_window};

#[path = "versus/nodered.rs"]
mod nodered;
#[path = "versus/stream.rs"]
mod stream;
use stream::{Flow, Pace, WARM};

/// Readings in a year of a home with 20 sensors reporting once a minute.
const HOME_YEAR: f64 = 20.0 * 60.0 * 24.0 * 365.0;

struct Case {
    name: &'static str,
    flow: Flow,
    n: u64,
    pace: Pace,
    /// carebridge's readings at QoS 1 (a device waiting for each PUBACK,
    /// so each commit happens at once); else QoS 0, like the Zigbee and
    /// serial sensors of a home, whose readings nobody waits for (their
    /// commits are grouped: `[store] commit_delay`).
    qos1: bool,
}

impl Case {
    fn telemetry(&self) -> bool {
        matches!(self.flow, Flow::Telemetry { .. })
    }
    fn home(&self) -> bool {
        matches!(self.pace, Pace::Every(_))
    }
}

/// A system under test, started and ready for readings.
struct Sut {
    pid: u32,
    _child: Kill,
    /// Where the generator connects, and the topic prefix of a reading.
    entry: (u16, String),
    /// The topic prefix it publishes under at Mosquitto.
    upstream: &'static str,
    /// Readings go in at QoS 1, paced on PUBACK (else QoS 0).
    qos1: bool,
    /// carebridge's data directory (Node-RED: unused).
    data: std::path::PathBuf,
}

fn start_carebridge(dir: &Path, mqtt: u16, telemetry: bool, pin: bool) -> Sut {
    let data = dir.join("cb-data");
    let _ = std::fs::remove_dir_all(&data);
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nid = \"panic\"\ntype = \"immediate\"\nkinds = [\"panic\", \"fall\"]\n\n\
         [[rule]]\nid = \"cold\"\ntype = \"threshold\"\nkind = \"temperature\"\nbelow = 16.0\nfor = \"30m\"\n",
    )
    .unwrap();
    let (entry_cfg, port) = system::front_door_config();
    let config = dir.join("cb.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"vs\"\ndata_dir = \"{}\"\n{entry_cfg}\
             [uplink.mqtt]\nurl = \"mqtt://127.0.0.1:{mqtt}\"\ntopic_prefix = \"cb\"\ntelemetry = {telemetry}\n\
             [rules]\nfile = \"{}\"\n[store]\noutbox_max_mb = 4096\n{}\n",
            data.display(),
            rules.display(),
            std::env::var("VERSUS_STORE").unwrap_or_default().replace(';', "\n")
        ),
    )
    .unwrap();
    // `VERSUS_CAREBRIDGE=<binary>` runs another build (before/after).
    let exe = std::env::var("VERSUS_CAREBRIDGE")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_carebridge").to_string());
    let log = std::env::var("VERSUS_LOG").unwrap_or("warn".into());
    let (child, pid) = system::start_daemon(&exe, &config, pin, &log, port);
    Sut {
        pid,
        _child: child,
        entry: (port, "carebridge/in/".to_string()),
        upstream: "cb",
        qos1: true,
        data,
    }
}

fn start_nodered(red: &Path, dir: &Path, mqtt: u16, telemetry: bool, pin: bool) -> Sut {
    let _ = std::fs::remove_dir_all(dir.join("nr"));
    let child: Child = nodered::start(red, dir, mqtt, "nr", telemetry, pin);
    Sut {
        pid: child.id(),
        _child: Kill(child),
        entry: (mqtt, "nrin/".to_string()),
        upstream: "nr",
        qos1: false,
        data: dir.join("nr"),
    }
}

/// `VERSUS_PREFILL=N`: sends N readings of `flow` at QoS 1 as fast as
/// they are acknowledged, waits until they are upstream and the grouped
/// commits they left are done; returns how many telemetry messages that
/// was upstream (the run counts from there).
fn prefill(up: &Upstream, port: u16, prefix: &str, flow: Flow) -> u64 {
    let n: u64 = std::env::var("VERSUS_PREFILL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if n == 0 {
        return 0;
    }
    let base = up.telemetry.load(Ordering::Relaxed);
    let mut pb = Publisher::connect(port, "vs-prefill", true, front_door_window());
    let done = || up.telemetry.load(Ordering::Relaxed) - base;
    stream::feed(
        &mut pb,
        prefix,
        flow,
        n,
        Pace::Burst { window: 6_000 },
        &done,
    );
    system::wait_until(Duration::from_secs(600), || done() >= n);
    // Telemetry acknowledgements wait up to `commit_delay` (60 s).
    std::thread::sleep(Duration::from_secs(65));
    let _ = std::process::Command::new("sync").status();
    eprintln!("versus: prefilled {n} readings");
    up.telemetry.load(Ordering::Relaxed)
}

fn run(case: &Case, name: &str, sut: &Sut, mqtt: u16) {
    let up = Upstream::subscribe(mqtt, sut.upstream, b"", WARM);
    let (port, prefix) = (sut.entry.0, sut.entry.1.as_str());
    let qos1 = sut.qos1 && case.qos1;
    let mut pb = Publisher::connect(port, &format!("vs-gen-{name}"), qos1, front_door_window());
    // Warm-up: one reading from a device of its own, repeated until it
    // arrives upstream (Node-RED subscribes some time after it starts).
    let warm = match case.flow {
        Flow::Alert => "{\"kind\":\"panic\",\"value\":true}",
        Flow::Telemetry { .. } => "{\"kind\":\"temperature\",\"value\":20.0}",
    };
    let ready = system::wait_until(Duration::from_secs(60), || {
        if up.warm.load(Ordering::Relaxed) > 0 {
            return true;
        }
        pb.send(&format!("{prefix}{WARM}"), warm.as_bytes());
        std::thread::sleep(Duration::from_millis(300));
        false
    });
    if !ready {
        eprintln!("versus: {name} never published the warm-up reading; skipped");
        return;
    }
    std::thread::sleep(Duration::from_secs(1));
    // `VERSUS_PREFILL=N` (home flows): N readings at full speed first, so
    // the run starts where a gateway that has run for hours is: the WAL
    // grown to its limit once and reused in place (while it still grows,
    // every `fdatasync` also commits the file system's journal).
    let prefill = if case.home() {
        prefill(&up, port, prefix, case.flow)
    } else {
        0
    };
    // Only the run's own publications count from here.
    let mut pb = Publisher::connect(port, &format!("vs-run-{name}"), qos1, front_door_window());
    let pid = sut.pid;
    let rss_idle = system::status_kb(pid, "VmRSS:");
    let (cpu0, wb0, threads0) = (
        system::cpu_s(pid),
        system::write_bytes(pid),
        system::cpu_by_thread(pid),
    );
    // Writes reaching the data directory's device, after the kernel's
    // write-back of what the run dirtied (see `device_written`).
    if case.home() {
        let _ = std::process::Command::new("sync").status();
    }
    let dev0 = system::device_written(&sut.data);
    let t0 = Instant::now();
    let events = || match case.flow {
        Flow::Alert => up.alerts.load(Ordering::Relaxed),
        Flow::Telemetry { .. } => up.telemetry.load(Ordering::Relaxed) - prefill,
    };
    stream::feed(&mut pb, prefix, case.flow, case.n, case.pace, &events);
    let all = system::wait_until(Duration::from_secs(600), || events() >= case.n);
    let wall = t0.elapsed().as_secs_f64();
    if case.home() {
        // The acknowledgements' commits and `last_seen` belong to the run.
        std::thread::sleep(Duration::from_millis(1500));
    }
    let (cpu1, wb1, threads1) = (
        system::cpu_s(pid),
        system::write_bytes(pid),
        system::cpu_by_thread(pid),
    );
    let got = events();
    let cpu = cpu1 - cpu0;
    let per_reading = (wb1 - wb0) as f64 / case.n as f64;
    let dev_per_reading = dev0.and_then(|d0| {
        if case.home() {
            // `sync` makes the kernel write back what the run dirtied now
            // rather than up to 30 s later (the next run's window).
            let _ = std::process::Command::new("sync").status();
        }
        system::device_written(&sut.data).map(|d1| d1.saturating_sub(d0) as f64 / case.n as f64)
    });
    let mut line = format!(
        "{:<9} {:<10} QoS {} {got}/{} events{}; {:.0} events/s; CPU {:.2} s = {:.1} µs/event; RSS idle {:.1} MB, peak {:.1} MB; written {:.0} B/reading",
        case.name,
        name,
        u8::from(qos1),
        case.n,
        if all { "" } else { " (INCOMPLETE)" },
        got as f64 / wall,
        cpu,
        cpu * 1e6 / got.max(1) as f64,
        rss_idle as f64 / 1024.0,
        system::status_kb(pid, "VmHWM:") as f64 / 1024.0,
        per_reading,
    );
    // Commits are grouped in time: only the flow at the home's real rate
    // says what a year of it writes.
    if case.name == "minute" {
        line.push_str(&format!(
            " = {:.2} GB/year for 20 sensors once a minute",
            per_reading * HOME_YEAR / 1e9
        ));
    }
    // `VERSUS_DEVICE=1`: also what reached the data directory's block
    // device (only meaningful on a file system nothing else writes to).
    if let (Some(d), true) = (dev_per_reading, std::env::var_os("VERSUS_DEVICE").is_some()) {
        line.push_str(&format!("; device {d:.0} B/reading"));
        if case.name == "minute" {
            line.push_str(&format!(" = {:.2} GB/year", d * HOME_YEAR / 1e9));
        }
    }
    println!("{line}");
    if name == "carebridge" && std::env::var_os("VERSUS_WALSTAT").is_some() {
        let db = sut.data.join("carebridge.db");
        let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/tools/walstat.py");
        let _ = std::process::Command::new("python3")
            .arg(tool)
            .arg(&db)
            .status();
    }
    if name == "carebridge" {
        println!(
            "{:<20} CPU by thread: {}",
            "",
            system::thread_split(&threads0, &threads1)
        );
    }
}

fn main() {
    if !peers::should_run("versus") {
        return;
    }
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let n = env("VERSUS_N", 50_000);
    // `VERSUS_HOME_QOS=1`: the home flows at QoS 1 too.
    let home_qos1 = env("VERSUS_HOME_QOS", 0) == 1;
    let cases = [
        Case {
            name: "alert",
            flow: Flow::Alert,
            n,
            pace: Pace::Burst { window: 6_000 },
            qos1: true,
        },
        Case {
            name: "telemetry",
            flow: Flow::Telemetry { sensors: 200 },
            n,
            pace: Pace::Burst { window: 6_000 },
            qos1: true,
        },
        Case {
            name: "home",
            flow: Flow::Telemetry { sensors: 20 },
            n: 600,
            pace: Pace::Every(Duration::from_millis(100)),
            qos1: home_qos1,
        },
        Case {
            name: "minute",
            flow: Flow::Telemetry { sensors: 20 },
            n: env("VERSUS_MINUTE_N", 60),
            pace: Pace::Every(Duration::from_millis(3000)),
            qos1: home_qos1,
        },
    ];
    let flows = std::env::var("VERSUS_FLOWS").unwrap_or("alert,telemetry,home".into());
    let systems = std::env::var("VERSUS_SYSTEMS").unwrap_or("carebridge,nodered".into());
    let pin = have("taskset", "-V");
    if !pin {
        eprintln!("versus: taskset not found; the systems are not pinned to one CPU");
    }
    let red = if systems.contains("nodered") {
        match nodered::install() {
            Ok(r) => Some(r),
            Err(why) => {
                eprintln!("versus: Node-RED skipped: {why}");
                None
            }
        }
    } else {
        None
    };
    let dir = tempfile::tempdir_in(std::env::var("VERSUS_DIR").unwrap_or("/var/tmp".into()))
        .unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let (_m, mqtt) = mosquitto(dir.path());
    println!(
        "versus: pinned {pin}, load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    for case in cases
        .iter()
        .filter(|c| flows.split(',').any(|f| f == c.name))
    {
        if systems.contains("carebridge") {
            let sut = start_carebridge(dir.path(), mqtt, case.telemetry(), pin);
            run(case, "carebridge", &sut, mqtt);
        }
        if let Some(red) = &red {
            let sut = start_nodered(red, dir.path(), mqtt, case.telemetry(), pin);
            run(case, "node-red", &sut, mqtt);
        }
    }
}
