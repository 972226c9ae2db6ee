//! Store benchmarks (custom harness, prints figures):
//! - durable enqueue of `Write::Reading` (WAL, synchronous=FULL, group commit);
//! - single-alert durable latency (submit + flush), p50/p99;
//! - backlog drain rate (outbox_fetch pages + Ack) over a 500k-row backlog;
//! - RSS while that backlog builds (it lives on disk: RSS must stay flat).
//!
//! `cargo bench --bench store` (add `-- --quick` for a smaller run).

// A benchmark harness: failing loudly on any error is the point.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use carebridge::model::{Alert, AlertState, Class, DeviceId, Kind, Reading, Severity, Time};
use carebridge::store::{Store, StoreConfig, Write};

fn rss_mib() -> f64 {
    // statm: size resident shared ... in pages.
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

/// Process CPU time (user + system) in seconds, from /proc/self/stat.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn devices(n: usize) -> Vec<DeviceId> {
    (0..n)
        .map(|i| DeviceId::new(&format!("dev-{i:03}")).expect("valid id"))
        .collect()
}

fn reading(devs: &[DeviceId], i: usize) -> Write {
    let kind = [Kind::Temperature, Kind::Motion, Kind::Power, Kind::Battery][i % 4];
    Write::Reading(Reading {
        device: devs[i % devs.len()].clone(),
        kind,
        value: (i % 100) as f64 / 4.0,
        at: Time::from_millis(1_795_860_000_000 + i as i64),
    })
}

/// Returns (events/s wall clock, µs of process CPU per event).
fn enqueue_rate(store: &Store, devs: &[DeviceId], n: usize) -> (f64, f64) {
    let start = Instant::now();
    let cpu = cpu_secs();
    for i in 0..n {
        store.submit_blocking(reading(devs, i)).expect("submit");
    }
    store.flush_blocking().expect("flush");
    (
        n as f64 / start.elapsed().as_secs_f64(),
        (cpu_secs() - cpu) * 1e6 / n as f64,
    )
}

fn alert_latency(store: &Store, n: usize) -> (Duration, Duration) {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let a = Alert {
            uid: None,
            rule: "panic".into(),
            severity: Severity::Urgent,
            state: AlertState::Raised,
            device: DeviceId::new("hall-panic").expect("valid id"),
            room: Some("hall".into()),
            at: Time::from_millis(i as i64),
            message: "Panic button pressed in the hall".into(),
            value: Some(1.0),
            kind: Some(Kind::Panic),
            time_trusted: true,
            instance: None,
        };
        let t = Instant::now();
        store
            .submit_blocking(Write::Alert(Box::new(a)))
            .expect("submit");
        store.flush_blocking().expect("flush");
        lat.push(t.elapsed());
    }
    lat.sort();
    (lat[n / 2], lat[n * 99 / 100])
}

fn drain_rate(store: &Store, page: usize) -> (usize, f64) {
    let start = Instant::now();
    let mut after = 0;
    let mut total = 0;
    loop {
        let rows = store
            .outbox_fetch_blocking(Class::Telemetry, after, page)
            .expect("fetch");
        let Some(last) = rows.last() else { break };
        after = last.seq;
        total += rows.len();
        let acks = rows.iter().map(|r| (Class::Telemetry, r.seq)).collect();
        store.submit_blocking(Write::Ack(acks)).expect("ack");
    }
    store.flush_blocking().expect("flush");
    (total, total as f64 / start.elapsed().as_secs_f64())
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.db");
    let cfg = StoreConfig::default();
    let devs = devices(200);

    let store = Store::open(&path, &cfg).expect("open");
    let rss_start = rss_mib();
    let (warm, _) = enqueue_rate(&store, &devs, 10_000);
    let n = if quick { 100_000 } else { 200_000 };
    let (rate, cpu_us) = enqueue_rate(&store, &devs, n);
    let st = store.stats();
    println!(
        "durable enqueue Write::Reading: {rate:.0} events/s over {n} (warm-up {warm:.0}/s), \
         {cpu_us:.1} us CPU per event (all threads); last batch {} writes, last commit {} us, {} commits",
        st.last_batch, st.last_commit_us, st.commits
    );
    if std::env::args().any(|a| a == "--enqueue-only") {
        return;
    }
    let (p50, p99) = alert_latency(&store, if quick { 200 } else { 1000 });
    println!("single alert submit+flush (one fsync each): p50 {p50:?}, p99 {p99:?}");

    // Grow the backlog to 500k rows and watch RSS.
    let target = 500_000u64;
    let mut i = n + 10_000;
    let mut samples = Vec::new();
    while store.stats().telemetry.rows < target {
        for _ in 0..50_000 {
            store.submit_blocking(reading(&devs, i)).expect("submit");
            i += 1;
        }
        store.flush_blocking().expect("flush");
        samples.push((store.stats().telemetry.rows, rss_mib()));
    }
    let line: Vec<String> = samples
        .iter()
        .map(|(rows, rss)| format!("{}k:{rss:.1}", rows / 1000))
        .collect();
    println!(
        "RSS MiB by backlog rows (start {rss_start:.1}): {}",
        line.join(" ")
    );
    let st = store.stats();
    println!(
        "backlog: {} telemetry rows, {:.1} MiB payload; db file {:.1} MiB",
        st.telemetry.rows,
        st.telemetry.bytes as f64 / 1048576.0,
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0
    );

    let (drained, drate) = drain_rate(&store, 1000);
    println!(
        "drain (outbox_fetch 1000/page + Ack): {drained} rows at {drate:.0} rows/s; RSS after {:.1} MiB",
        rss_mib()
    );
    drop(store);

    // Reopen cost with a big backlog (counts recomputed at open).
    let store = Store::open(&path, &cfg).expect("reopen");
    for j in 0..300_000 {
        store.submit_blocking(reading(&devs, j)).expect("submit");
    }
    store.flush_blocking().expect("flush");
    drop(store);
    {
        let c = rusqlite::Connection::open(&path).expect("sqlite");
        let t = Instant::now();
        let _: String = c
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .expect("quick_check");
        println!("  (of which PRAGMA quick_check alone: {:?})", t.elapsed());
        let t = Instant::now();
        let _: (i64, i64) = c
            .query_row(
                "SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox WHERE class = 2",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("count");
        println!(
            "  (of which counting rows and bytes alone: {:?})",
            t.elapsed()
        );
    }
    let t = Instant::now();
    let store = Store::open(&path, &cfg).expect("reopen");
    println!(
        "open with a {}-row backlog (startup_check=quick): {:?}",
        store.stats().telemetry.rows,
        t.elapsed()
    );
    drop(store);
    let off = StoreConfig {
        startup_check: carebridge::store::StartupCheck::Off,
        ..cfg
    };
    let t = Instant::now();
    let store = Store::open(&path, &off).expect("reopen");
    println!(
        "open with a {}-row backlog (startup_check=off): {:?}",
        store.stats().telemetry.rows,
        t.elapsed()
    );
}
