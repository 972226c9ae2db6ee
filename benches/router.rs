//! The dual path: the routing decision (criterion), then the time from an
//! alert to its LoRaWAN send on an idle budget, through the real pipeline
//! (store commit → router → modem task → AT command on a pty → simulator).
//!
//! Run: `cargo bench --bench router -- --quick`. The pipeline part runs in
//! real time (each uplink closes the sub-band for ~5 s at SF7, so samples
//! are spaced 7 s apart); `ROUTER_BENCH_SAMPLES` (default 5) sets how many.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use carebridge::config::Dur;
use carebridge::model::{Alert, AlertState, DeviceId, Kind, Severity, Time};
use carebridge::store::{Store, StoreConfig, Write};
use carebridge::uplink::dual::{Dual, SharedStatus};
use carebridge::uplink::lorawan::sim::{ModemSim, SimConfig};
use carebridge::uplink::lorawan::{LorawanConfig, channel, run};
use carebridge::uplink::router::{LoraJob, LoraResult, Router, RouterConfig};
use criterion::Criterion;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn decision(c: &mut Criterion) {
    c.bench_function("router/alert_decision_cycle", |b| {
        let mut r = Router::new(RouterConfig::default(), Time(0));
        r.handle_lora(true, Time(0));
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            let now = Time(i64::try_from(seq).unwrap_or(0));
            r.handle_outbox(black_box(&[seq]), true, now);
            let a = r.poll_action(now);
            r.handle_lora_result(LoraJob::Alert(seq), LoraResult::Acked, now);
            black_box((a, r.poll_action(now)))
        })
    });
}

fn alert(i: usize) -> Alert {
    Alert {
        uid: None,
        rule: "panic".into(),
        severity: Severity::Urgent,
        state: AlertState::Raised,
        device: DeviceId::new(&format!("pendant-{i}")).unwrap(),
        room: Some("hall".into()),
        at: carebridge::wall::now(),
        message: "Panic button pressed".into(),
        value: None,
        kind: Some(Kind::Panic),
        time_trusted: true,
        instance: None,
    }
}

fn pipeline(samples: usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), &StoreConfig::default()).unwrap();
        let sim = ModemSim::start(SimConfig::default()).unwrap();
        let key = dir.path().join("appkey");
        std::fs::write(&key, "2B7E151628AED2A6ABF7158809CF4F3C\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cfg = LorawanConfig {
            port: sim.path().to_string(),
            dev_eui: "AC1F09FFFE000001".into(),
            app_key_file: key.display().to_string(),
            join_backoff_min: Dur::secs(1),
            ..Default::default()
        };
        let stop = CancellationToken::new();
        let (lora, queue) = channel(16);
        let (etx, events) = mpsc::channel(64);
        let status = SharedStatus::default();
        let (ctx, _crx) = mpsc::channel(8);
        let dual = Dual {
            store: store.clone(),
            lora,
            events,
            mqtt: None,
            commands: ctx,
            router: cfg.router_config(),
            confirmed_alerts: true,
            status: status.clone(),
        };
        let t1 = tokio::spawn(run(cfg, queue, etx, stop.clone()));
        let t2 = tokio::spawn(dual.run(stop.clone()));
        let joined = || status.lock().map(|s| s.state == "joined").unwrap_or(false);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !joined() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(joined(), "never joined the simulator");
        // With no MQTT the router sends a status summary soon after start:
        // let it go first so the samples see an idle budget.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !sim.stats().uplinks.iter().any(|u| u.port == 11) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut times = Vec::new();
        for i in 0..samples {
            // Let the sub-band's off time (after the join or the last alert) pass.
            tokio::time::sleep(Duration::from_secs(7)).await;
            let before = sim.stats().uplinks.len();
            let t0 = Instant::now();
            store.submit(Write::Alert(Box::new(alert(i)))).await.unwrap();
            let deadline = t0 + Duration::from_secs(30);
            let at = loop {
                if let Some(u) = sim.stats().uplinks.get(before) {
                    break u.at;
                }
                assert!(Instant::now() < deadline, "no uplink");
                tokio::time::sleep(Duration::from_micros(200)).await;
            };
            times.push(at.duration_since(t0));
            eprintln!("sample {i}: {:?}", at.duration_since(t0));
        }
        stop.cancel();
        let _ = t1.await;
        let _ = t2.await;
        store.close().await.unwrap();
        times.sort();
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        println!(
            "router/alert_to_lorawan_send (idle budget, SF7, {} samples): min {:.2} ms, median {:.2} ms, max {:.2} ms",
            times.len(),
            times.first().map_or(0.0, ms),
            times.get(times.len() / 2).map_or(0.0, ms),
            times.last().map_or(0.0, ms),
        );
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    decision(&mut c);
    c.final_summary();
    let samples = std::env::var("ROUTER_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    pipeline(samples);
}
