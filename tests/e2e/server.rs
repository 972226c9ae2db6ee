//! The e2e test server: the web UI over the in-memory backend, driven by
//! commands on stdin so a browser test can make devices and alerts appear.
//!
//! Usage: `cargo run --example web_e2e_server -- DATA_DIR [LISTEN] [--tls]`.
//! Prints `LISTENING <url>` once serving. Commands (one per line):
//! - `device ID ROOM NAME…` — a device joins (registry + live event);
//! - `reading ID KIND VALUE` — a reading arrives;
//! - `alert ID MESSAGE…` — an urgent alert is raised for device ID.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead as _;
use std::sync::Arc;

use carebridge::hub::Live;
use carebridge::model::{Alert, AlertState, DeviceId, DeviceInfo, Kind, Reading, Severity, Time};
use carebridge::web::memory::MemoryBackend;
use carebridge::web::{WebConfig, serve};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = std::path::PathBuf::from(
        args.first()
            .cloned()
            .unwrap_or_else(|| "/tmp/cb-e2e".into()),
    );
    let listen = args.get(1).cloned().unwrap_or_else(|| "127.0.0.1:0".into());
    let tls = args.iter().any(|a| a == "--tls");
    std::fs::create_dir_all(&data)?;
    carebridge::app::init_logging("info");
    let backend = Arc::new(MemoryBackend::new());
    for (id, room, name, kind) in [
        ("hall-motion", "hall", "Hall motion", Kind::Motion),
        ("front-door", "hall", "Front door", Kind::Contact),
        (
            "kitchen-temp",
            "kitchen",
            "Kitchen temperature",
            Kind::Temperature,
        ),
    ] {
        let id = DeviceId::new(id)?;
        backend.inject(Live::Device(DeviceInfo {
            id: Some(id.clone()),
            name: Some(name.into()),
            room: Some(room.into()),
            model: Some("SNZB-03".into()),
            battery: Some(87.0),
            lqi: Some(120),
            ..Default::default()
        }));
        backend.inject(Live::Reading(Reading::new(id, kind, 1.0, Time::now())?));
    }
    let cfg = WebConfig {
        listen,
        tls,
        ..WebConfig::demo(String::new())
    };
    let shutdown = CancellationToken::new();
    let (addr, task) = serve(cfg, backend.clone(), &data, shutdown.clone()).await?;
    println!("LISTENING {}://{addr}", if tls { "https" } else { "http" });
    let b = backend.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if let Err(e) = command(&b, &line) {
                eprintln!("bad command {line:?}: {e}");
            }
        }
        std::process::exit(0);
    });
    task.await?;
    Ok(())
}

fn command(b: &MemoryBackend, line: &str) -> anyhow::Result<()> {
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.as_slice() {
        ["device", id, room, name @ ..] => {
            let id = DeviceId::new(id)?;
            b.inject(Live::Device(DeviceInfo {
                id: Some(id.clone()),
                room: Some(room.to_string()),
                name: Some(name.join(" ")),
                model: Some("SNZB-01".into()),
                battery: Some(100.0),
                lqi: Some(200),
                last_seen: Some(Time::now()),
                ..Default::default()
            }));
        }
        ["reading", id, kind, value] => {
            let r = Reading::new(
                DeviceId::new(id)?,
                kind.parse()?,
                value.parse()?,
                Time::now(),
            )?;
            b.inject(Live::Reading(r));
        }
        ["alert", id, msg @ ..] => b.inject(Live::Alert(Alert {
            rule: "panic".into(),
            severity: Severity::Urgent,
            state: AlertState::Raised,
            device: DeviceId::new(id)?,
            room: Some("hall".into()),
            at: Time::now(),
            message: msg.join(" "),
            value: Some(1.0),
            kind: Some(Kind::Panic),
        })),
        _ => anyhow::bail!("unknown command"),
    }
    Ok(())
}
