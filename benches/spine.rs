//! Spine figures, printed (a bench binary, not criterion: these are
//! whole-system measurements against a real Mosquitto).
//!
//! - backlog drain: N telemetry rows already in the outbox, the MQTT uplink
//!   connects and drains them to Mosquitto at QoS 1 (target ≥ 30 k msg/s,
//!   576 k in < 30 s);
//! - daemon RSS: `carebridge run` idle, then while 500 k readings pile up in
//!   the outbox with the uplink down (target ≤ 15 MB idle, flat);
//! - start-up: exec → the local MQTT broker accepts connections and the web
//!   UI answers `/healthz` (target ≤ 200 ms), median of 10 runs with a
//!   store that already holds a day of history.
//!
//! `cargo bench --bench spine [-- startup drain rss]` (needs `mosquitto`);
//! `SPINE_ROWS=576000` to change the backlog size.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use carebridge::config::{Dur, MqttUplinkConfig};
use carebridge::model::{DeviceId, Kind, Reading, Time};
use carebridge::store::{Store, StoreConfig, Write};
use carebridge::uplink::UplinkState;
use carebridge::uplink::mqtt::{Links, Prepared};

mod peers;
use peers::{Kill, free_port, mosquitto, wait_port};

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    if !peers::should_run("spine") {
        return;
    }
    let rows: u64 = std::env::var("SPINE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(576_000);
    // `cargo bench --bench spine -- startup rss` runs only those parts.
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |p: &str| parts.is_empty() || parts.iter().any(|a| a == p);
    if want("startup") {
        startup(10);
    }
    if want("drain") {
        drain(rows);
    }
    if want("rss") {
        daemon_rss(500_000);
    }
}

/// A busy home's day: 100 k readings from 40 devices over the last 24 h
/// (the engine learns routines from history at start-up).
fn day_of_history(db: &std::path::Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open(db, &StoreConfig::default()).unwrap();
        let now = carebridge::wall::now().as_millis();
        let kinds = [
            Kind::Motion,
            Kind::Contact,
            Kind::Temperature,
            Kind::Humidity,
        ];
        for i in 0..100_000i64 {
            let dev = DeviceId::new(&format!("dev-{}", i % 40)).unwrap();
            let kind = kinds[(i % 4) as usize];
            let v = if kind.is_binary() {
                (i % 2) as f64
            } else {
                20.0
            };
            let r = Reading::new(dev, kind, v, Time(now - 86_400_000 + i * 864)).unwrap();
            store.submit(Write::ReadingNoTelemetry(r)).await.unwrap();
        }
        store.close().await.unwrap();
    });
}

/// Milliseconds from exec until both the broker port and `/healthz` answer.
fn startup(runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_carebridge");
    let mut times = Vec::new();
    for i in 0..=runs {
        let (broker, web) = (free_port(), free_port());
        let config = dir.path().join("s.toml");
        std::fs::write(
            &config,
            format!(
                "[gateway]\nid = \"su\"\ndata_dir = \"{}\"\n[local_broker]\nlisten = \"127.0.0.1:{broker}\"\n\
                 [web]\nlisten = \"127.0.0.1:{web}\"\ntls = false\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let t0 = Instant::now();
        let child = Command::new(exe)
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "error")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let _guard = Kill(child);
        wait_port(broker);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", web)) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
                let mut b = String::new();
                let _ = s.read_to_string(&mut b);
                if b.starts_with("HTTP/1.1 200") || b.starts_with("HTTP/1.0 200") {
                    break;
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "never healthy");
            std::thread::sleep(Duration::from_millis(2));
        }
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        // Run 0 creates the data dir, the TLS-less web state, the setup code.
        if i > 0 {
            times.push(ms);
        } else {
            println!("start-up, first boot (creates database and setup code): {ms:.0} ms");
            drop(_guard);
            day_of_history(&dir.path().join("data").join("carebridge.db"));
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "start-up to broker + /healthz: median {:.0} ms, max {:.0} ms over {runs} runs",
        times[times.len() / 2],
        times[times.len() - 1]
    );
}

fn drain(rows: u64) {
    let dir = tempfile::tempdir().unwrap();
    let (_m, port) = mosquitto(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::open(&dir.path().join("db.sqlite"), &StoreConfig { outbox_max_mb: 4096, ..Default::default() }).unwrap();
        let dev = DeviceId::new("bench-temp").unwrap();
        let t0 = Instant::now();
        for i in 0..rows {
            let r = Reading::new(dev.clone(), Kind::Temperature, (i % 300) as f64 / 10.0, Time(1_795_000_000_000 + i as i64)).unwrap();
            store.submit(Write::Reading(r)).await.unwrap();
        }
        store.flush().await.unwrap();
        let enq = t0.elapsed();
        println!(
            "durable enqueue: {rows} readings in {:.2} s = {:.0} readings/s (history + outbox + registry, synchronous=FULL)",
            enq.as_secs_f64(),
            rows as f64 / enq.as_secs_f64()
        );

        // A subscriber counts what Mosquitto relays.
        let got = Arc::new(AtomicU64::new(0));
        let mut so = rumqttc::MqttOptions::new("bench-sub", "127.0.0.1", port);
        so.set_max_packet_size(1 << 20, 1 << 20);
        let (sub, mut sel) = rumqttc::AsyncClient::new(so, 64);
        sub.subscribe("bench/#", rumqttc::QoS::AtMostOnce).await.unwrap();
        let g = got.clone();
        tokio::spawn(async move {
            while let Ok(ev) = sel.poll().await {
                if let rumqttc::Event::Incoming(rumqttc::Incoming::Publish(_)) = ev {
                    g.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;

        let cfg = MqttUplinkConfig {
            url: format!("mqtt://127.0.0.1:{port}").into(),
            topic_prefix: "bench".into(),
            keepalive: Dur::secs(30),
            ..Default::default()
        };
        let prep = Prepared::new(&cfg, "gw").unwrap();
        let (cmd_tx, _cmd_rx) = tokio::sync::mpsc::channel(8);
        let (_direct_tx, direct_rx) = tokio::sync::mpsc::channel(8);
        let (state_tx, _state_rx) = tokio::sync::watch::channel(UplinkState::off());
        let links = Links { commands: cmd_tx, direct: direct_rx, state: state_tx };
        let shutdown = tokio_util::sync::CancellationToken::new();
        let status: carebridge::uplink::mqtt::StatusFn = Arc::new(carebridge::status::Status::default);
        let t1 = Instant::now();
        let up = tokio::spawn(carebridge::uplink::mqtt::run(prep, store.clone(), status, links, shutdown.clone()));
        while got.load(Ordering::Relaxed) < rows && t1.elapsed() < Duration::from_secs(300) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let relayed = t1.elapsed();
        // Wait for the acknowledgements to be committed too.
        while store.stats().telemetry.rows > 0 && t1.elapsed() < Duration::from_secs(300) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let acked = t1.elapsed();
        println!(
            "backlog drain: {rows} messages relayed by Mosquitto in {:.2} s = {:.0} msg/s; outbox empty (acks committed) after {:.2} s",
            relayed.as_secs_f64(),
            rows as f64 / relayed.as_secs_f64(),
            acked.as_secs_f64()
        );
        shutdown.cancel();
        let _ = up.await;
        store.close().await.unwrap();
    });
}

fn daemon_rss(readings: u64) {
    let dir = tempfile::tempdir().unwrap();
    let broker = free_port();
    let dead = free_port(); // nothing listens: the uplink stays down
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"rss\"\ndata_dir = \"{}\"\n[local_broker]\nlisten = \"127.0.0.1:{broker}\"\n\
             [uplink.mqtt]\nurl = \"mqtt://127.0.0.1:{dead}\"\n[store]\noutbox_max_mb = 4096\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let exe = env!("CARGO_BIN_EXE_carebridge");
    let child = Command::new(exe)
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "error")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _guard = Kill(child);
    wait_port(broker);
    std::thread::sleep(Duration::from_secs(2));
    println!("daemon RSS idle: {:.1} MB", rss_kb(pid) as f64 / 1024.0);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut o = rumqttc::MqttOptions::new("rss-dev", "127.0.0.1", broker);
        o.set_inflight(200);
        let (c, mut el) = rumqttc::AsyncClient::new(o, 1000);
        tokio::spawn(async move { while el.poll().await.is_ok() {} });
        let step = readings / 5;
        for i in 0..readings {
            let p = format!("{{\"kind\":\"temperature\",\"value\":{}}}", i % 300);
            c.publish(
                "carebridge/in/rss-temp",
                rumqttc::QoS::AtLeastOnce,
                false,
                p,
            )
            .await
            .unwrap();
            if (i + 1) % step == 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                println!(
                    "daemon RSS with {:>7} readings buffered: {:.1} MB",
                    i + 1,
                    rss_kb(pid) as f64 / 1024.0
                );
            }
        }
    });
}
