//! Serial frame → alert latency, printed (a bench binary against real peers):
//! a sensor board on a pseudo-terminal sends a panic line, the carebridge
//! daemon parses it, runs the rules, commits the alert (WAL,
//! `synchronous=FULL`) and publishes it at QoS 1 to a real Mosquitto, where a
//! subscriber timestamps its arrival. Target: p50 ≤ 2 ms, p99 ≤ 10 ms.
//!
//! `cargo bench --bench latency` (needs `mosquitto`); `LATENCY_N=500` to
//! change the number of presses (one pendant each, 20 ms apart).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Write;

use serialport::SerialPort;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod peers;
use peers::{Kill, mosquitto};

fn main() {
    if !peers::should_run("latency") {
        return;
    }
    let n: usize = std::env::var("LATENCY_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().unwrap();

    let (_mosq, port) = mosquitto(dir.path());

    // Arrival times by device, stamped as each alert comes in.
    let arrived: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut so = rumqttc::MqttOptions::new("lat-sub", "127.0.0.1", port);
    so.set_max_packet_size(1 << 20, 1 << 20);
    let (sub, mut conn) = rumqttc::Client::new(so, 64);
    sub.subscribe("lat/+/alert", rumqttc::QoS::AtMostOnce)
        .unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    {
        let arrived = arrived.clone();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p))) => {
                        let t = Instant::now();
                        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&p.payload)
                            && let Some(d) = v["device"].as_str()
                        {
                            arrived.lock().unwrap().entry(d.to_string()).or_insert(t);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
    }
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();

    // The board: a pseudo-terminal whose other end the daemon opens.
    let (mut board, slave) = serialport::TTYPort::pair().unwrap();
    let slave_path = slave.name().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"gw\"\ndata_dir = \"{}\"\n\
             [uplink.mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\ntopic_prefix = \"lat\"\ntelemetry = false\n\
             [[serial]]\nport = \"{slave_path}\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let exe = env!("CARGO_BIN_EXE_carebridge");
    let _gw = Kill(
        Command::new(exe)
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "error")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Warm up until the whole path works (serial open, uplink connected).
    let t0 = Instant::now();
    let mut w = 0;
    while !arrived.lock().unwrap().contains_key(&format!("warm-{w}")) {
        w += 1;
        writeln!(board, "warm-{w} panic 1").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(t0.elapsed() < Duration::from_secs(30), "path never came up");
    }
    std::thread::sleep(Duration::from_millis(500));

    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        let dev = format!("pendant-{i}");
        let line = format!("{dev} panic 1\n");
        let t = Instant::now();
        board.write_all(line.as_bytes()).unwrap();
        sent.push((dev, t));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(2));
    let arrived = arrived.lock().unwrap();
    let mut lat: Vec<f64> = sent
        .iter()
        .filter_map(|(d, t)| {
            arrived
                .get(d)
                .map(|a| a.duration_since(*t).as_secs_f64() * 1e3)
        })
        .collect();
    let lost = n - lat.len();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "serial line → alert at Mosquitto (durable first): n={} p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, missing {lost}",
        lat.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        lat[lat.len() - 1]
    );
    drop(slave);
}
