//! Rule engine benchmarks (harness = false; prints figures).
//!
//! - throughput and per-reading latency: 1,000 mixed rules over 10,000
//!   devices, 2,000,000 readings on one core (timers fire along the way);
//! - timers: 100,000 armed inactivity timers, time for the `on_tick` that
//!   fires them all (target: within 50 ms of their deadline);
//! - memory: resident set growth per compiled rule (target ≤ 2 KB).
//!
//! `cargo bench --bench rules` (pass `-- --quick` for a smaller run,
//! `-- timers` for the timer figure alone, `-- timers N` to repeat it N times).

// Test/bench code: a failed fixture should stop with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use carebridge::model::{DeviceId, DeviceInfo, Kind, Reading, Time};
use carebridge::rules::{Engine, RuleSet};

const DEVICES: usize = 10_000;
const ROOMS: usize = 500;
const RULES: usize = 1_000;

fn rules_text() -> String {
    let mut s = String::new();
    for i in 0..RULES {
        let room = format!("room-{:03}", i % ROOMS);
        let body = match i % 10 {
            0 | 1 => format!(
                "type = \"immediate\"\nkinds = [\"panic\", \"fall\", \"smoke\"]\nroom = \"{room}\"\n"
            ),
            2 | 3 => format!(
                "type = \"threshold\"\nkind = \"temperature\"\nroom = \"{room}\"\nbelow = 16.0\nfor = \"30m\"\n"
            ),
            4 => format!(
                "type = \"window\"\nkind = \"contact\"\nroom = \"{room}\"\nwindow = \"23:00-06:00\"\nfor = \"5m\"\n"
            ),
            5 => format!(
                "type = \"inactivity\"\nkind = \"motion\"\nroom = \"{room}\"\nper = \"room\"\nfor = \"4h\"\nwindow = \"07:00-22:00\"\n"
            ),
            6 => format!(
                "type = \"sequence\"\nwithin = \"30m\"\n[rule.start]\nkind = \"bed\"\nroom = \"{room}\"\nstate = \"idle\"\n[[rule.cancel]]\nkind = \"bed\"\nroom = \"{room}\"\n"
            ),
            7 => format!("type = \"silent\"\nroom = \"{room}\"\ninterval = \"2h\"\n"),
            8 => format!("type = \"low_battery\"\nroom = \"{room}\"\n"),
            _ => format!("type = \"routine\"\nroom = \"{room}\"\nwindow = \"05:00-12:00\"\n"),
        };
        // Header first: sub-tables must follow the rule's own keys.
        let (own, sub) = match body.find("[rule.") {
            Some(p) => body.split_at(p),
            None => (body.as_str(), ""),
        };
        s.push_str(&format!("[[rule]]\nid = \"r{i:04}\"\n{own}{sub}\n"));
    }
    s
}

fn rss_kb() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Nanoseconds this thread has spent on a CPU (Linux schedstat), so the
/// figures are not inflated when the machine is shared; 0 if unavailable.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// A small deterministic generator (no dependency).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn readings(n: usize, ids: &[DeviceId], start: i64) -> Vec<Reading> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut at = start;
    (0..n)
        .map(|_| {
            at += 10; // 100 readings per second of virtual time
            let r = rng.next();
            let dev = ids[(r % ids.len() as u64) as usize].clone();
            let (kind, value) = match (r >> 32) % 100 {
                0..=44 => (Kind::Motion, (r >> 40 & 1) as f64),
                45..=64 => (Kind::Temperature, 14.0 + ((r >> 40) % 80) as f64 / 10.0),
                65..=79 => (Kind::Contact, (r >> 40 & 1) as f64),
                80..=87 => (Kind::Bed, (r >> 40 & 1) as f64),
                88..=95 => (Kind::Battery, ((r >> 40) % 100) as f64),
                96..=97 => (Kind::Humidity, 50.0),
                _ => (Kind::Panic, 1.0),
            };
            Reading {
                device: dev,
                kind,
                value,
                at: Time(at),
            }
        })
        .collect()
}

fn pct(sorted: &[u32], p: f64) -> u32 {
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.saturating_sub(1).min(sorted.len() - 1)]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let args: Vec<String> = std::env::args().collect();
    if let Some(p) = args.iter().position(|a| a == "timers") {
        let runs = args
            .get(p + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1usize);
        let tz = jiff::tz::TimeZone::get("Europe/London").expect("zone");
        for _ in 0..runs {
            timers(&tz);
        }
        return;
    }
    let n_readings = if quick { 500_000 } else { 2_000_000 };
    let tz = jiff::tz::TimeZone::get("Europe/London").expect("zone");
    let text = rules_text();
    let set = RuleSet::parse(&text, "bench").expect("bench rules parse");

    // Memory per rule: RSS growth from compiling the rule set (fresh engine,
    // no devices yet), over several copies to rise above page granularity.
    let before = rss_kb();
    let engines: Vec<Engine> = (0..10)
        .map(|_| Engine::new(&set, tz.clone()).expect("engine"))
        .collect();
    let after = rss_kb();
    let per_rule = (after.saturating_sub(before)) as f64 * 1024.0 / (10 * RULES) as f64;
    drop(engines);

    let mut e = Engine::new(&set, tz.clone()).expect("engine");
    let ids: Vec<DeviceId> = (0..DEVICES)
        .map(|i| DeviceId::new(&format!("dev-{i:05}")).expect("id"))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        e.set_device(&DeviceInfo {
            id: Some(id.clone()),
            room: Some(format!("room-{:03}", i % ROOMS)),
            ..Default::default()
        });
    }
    let start = Time::parse_rfc3339("2026-11-22T06:00:00Z")
        .expect("time")
        .as_millis();
    let warm = readings(200_000, &ids, start);
    let mut out = Vec::with_capacity(1 << 16);
    for r in &warm {
        e.on_reading(r.at, r, &mut out);
    }
    let next = warm.last().map_or(start, |r| r.at.as_millis());
    let rs = readings(n_readings, &ids, next);
    out.clear();

    // Throughput: one tight loop.
    let t0 = Instant::now();
    let c0 = cpu_ns();
    let mut alerts = 0usize;
    for r in &rs {
        e.on_reading(r.at, r, &mut out);
        if out.len() > 4096 {
            alerts += out.len();
            out.clear();
        }
    }
    let el = t0.elapsed();
    let cpu = (cpu_ns() - c0) as f64 / 1e9;
    alerts += out.len();
    out.clear();
    let rate = n_readings as f64 / el.as_secs_f64();

    // Latency: each reading timed on its own (continuing the same stream).
    let rs2 = readings(
        n_readings / 2,
        &ids,
        rs.last().map_or(next, |r| r.at.as_millis()),
    );
    let mut lat: Vec<u32> = Vec::with_capacity(rs2.len());
    for r in &rs2 {
        let t = Instant::now();
        e.on_reading(r.at, r, &mut out);
        lat.push(t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
        out.clear();
    }
    lat.sort_unstable();
    println!(
        "rules bench ({} mode)",
        if quick { "quick" } else { "full" }
    );
    println!(
        "  {RULES} mixed rules, {DEVICES} devices, {n_readings} readings: {:.2} M readings/s per CPU-second ({:.2} M/s wall clock; {alerts} alerts, {} timers armed)",
        n_readings as f64 / cpu / 1e6,
        rate / 1e6,
        e.armed_timers()
    );
    println!(
        "  per reading: p50 {} ns, p99 {} ns, p99.9 {} ns, max {} µs",
        pct(&lat, 50.0),
        pct(&lat, 99.0),
        pct(&lat, 99.9),
        lat.last().copied().unwrap_or(0) / 1000
    );
    println!(
        "  memory: {per_rule:.0} bytes per compiled rule (RSS growth over {} rules)",
        10 * RULES
    );
    let snap = e.snapshot();
    println!("  snapshot of that engine: {} KB", snap.len() / 1024);
    drop(e);
    timers(&tz);
}

/// Timers: 100k armed inactivity timers, one per device, all due together.
fn timers(tz: &jiff::tz::TimeZone) {
    let start = Time::parse_rfc3339("2026-11-22T06:00:00Z")
        .expect("time")
        .as_millis();
    let mut out = Vec::new();
    let tset = RuleSet::parse(
        "[[rule]]\nid = \"quiet\"\ntype = \"inactivity\"\nper = \"device\"\nfor = \"4h\"\n",
        "t",
    )
    .expect("timer rule");
    let mut te = Engine::new(&tset, tz.clone()).expect("engine");
    let rss0 = rss_kb();
    for i in 0..100_000 {
        let r = Reading {
            device: DeviceId::new(&format!("m{i:06}")).expect("id"),
            kind: Kind::Motion,
            value: 1.0,
            at: Time(start),
        };
        te.on_reading(r.at, &r, &mut out);
    }
    let rss1 = rss_kb();
    let armed = te.armed_timers();
    let deadline = te.next_deadline().expect("armed");
    out.clear();
    out.reserve(100_000);
    let t = Instant::now();
    let c1 = cpu_ns();
    te.on_tick(deadline, &mut out);
    let fire = t.elapsed();
    let fire_cpu = (cpu_ns() - c1) as f64 / 1e6;
    println!(
        "  timers: {armed} armed inactivity timers (≈{} bytes each incl. device) fired in one on_tick: {fire_cpu:.1} ms CPU ({:.1} ms wall; {} alerts)",
        (rss1.saturating_sub(rss0)) * 1024 / armed.max(1),
        fire.as_secs_f64() * 1e3,
        out.len()
    );
    black_box(out);
}
