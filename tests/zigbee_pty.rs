//! The Zigbee stack end to end through a real pseudo-terminal against the
//! ZNP coordinator simulator: start-up and formation, pairing, interview,
//! readings; the port vanishing and coming back; bit errors on the line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use carebridge::config::Dur;
use carebridge::model::{Ingest, Kind};
use carebridge::zigbee::sim::{SimDeviceKind, SimHandle, Simulator};
use carebridge::zigbee::{
    self, MemoryStore, NetworkParams, NetworkStore, ZigbeeCommand, ZigbeeConfig, ZigbeeCounters,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

struct Rig {
    _dir: tempfile::TempDir,
    sim: SimHandle,
    rx: mpsc::Receiver<Ingest>,
    cmds: mpsc::Sender<ZigbeeCommand>,
    store: Arc<MemoryStore>,
    counters: Arc<ZigbeeCounters>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn fast_config(port: &str) -> ZigbeeConfig {
    ZigbeeConfig {
        port: port.into(),
        request_timeout: Dur(Duration::from_millis(400)),
        startup_timeout: Dur(Duration::from_secs(2)),
        interview_timeout: Dur(Duration::from_millis(800)),
        ping_interval: Dur(Duration::from_millis(250)),
        backoff_min: Dur(Duration::from_millis(50)),
        backoff_max: Dur(Duration::from_millis(400)),
        ..ZigbeeConfig::default()
    }
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("carebridge-zigbee");
    let sim = Simulator::start(&link).unwrap();
    let (tx, rx) = mpsc::channel(1024);
    let (cmds, crx) = mpsc::channel(8);
    let store = Arc::new(MemoryStore::default());
    let token = CancellationToken::new();
    let cfg = fast_config(link.to_str().unwrap());
    let counters = Arc::new(ZigbeeCounters::default());
    let task = tokio::spawn(zigbee::run(
        cfg,
        tx,
        crx,
        store.clone(),
        counters.clone(),
        token.clone(),
    ));
    Rig {
        _dir: dir,
        sim,
        rx,
        cmds,
        store,
        counters,
        token,
        task,
    }
}

impl Rig {
    async fn until<T>(&mut self, within: Duration, mut f: impl FnMut(&Ingest) -> Option<T>) -> T {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(i)) => {
                    if std::env::var_os("ZB_TRACE").is_some() {
                        eprintln!("ingest: {i:?}");
                    }
                    if let Some(t) = f(&i) {
                        return t;
                    }
                }
                Ok(None) => panic!("zigbee task ended"),
                Err(_) => panic!("nothing matching within {within:?}"),
            }
        }
    }
    async fn link(&mut self, up: bool, within: Duration) {
        self.until(within, |i| {
            matches!(i, Ingest::Link(l) if l.up == up).then_some(())
        })
        .await
    }
    async fn stop(self) {
        self.token.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn is_reading(i: &Ingest, ieee: u64, kind: Kind) -> Option<f64> {
    match i {
        Ingest::Reading(r) if r.kind == kind && r.device.as_str() == format!("zb-{ieee:016x}") => {
            Some(r.value)
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_network_pairs_interviews_and_reads_a_panic_button_and_thermometer() {
    let mut r = rig();
    r.link(true, Duration::from_secs(10)).await;
    let (pan, ext, channel, key) = r.sim.network().expect("stick formed a network");
    assert_eq!(channel, 15);
    let saved = NetworkParams::from_bytes(&r.store.load().unwrap()).unwrap();
    assert_eq!(
        (saved.pan_id, saved.ext_pan_id, saved.network_key),
        (pan, ext, key)
    );

    let sos = r.sim.add_device(SimDeviceKind::PanicButton);
    let th = r.sim.add_device(SimDeviceKind::Temperature);
    r.cmds
        .send(ZigbeeCommand::PermitJoin { secs: 60 })
        .await
        .unwrap();
    let mut models = Vec::new();
    while models.len() < 2 {
        let d = r
            .until(Duration::from_secs(10), |i| match i {
                Ingest::Device(d) => Some(d.clone()),
                _ => None,
            })
            .await;
        assert_eq!(d.manufacturer.as_deref(), Some("carebridge-sim"));
        models.push(d.model.unwrap());
        if d.ieee == Some(format!("0x{sos:016x}")) {
            assert_eq!(d.battery, Some(90.0));
            assert_eq!(d.lqi, Some(120));
        }
    }
    models.sort();
    assert_eq!(models, vec!["SIM-SOS", "SIM-TH"]);
    assert!(
        r.sim.is_enrolled(sos),
        "IAS zone enrolled with our IEEE as CIE"
    );
    assert_eq!(r.sim.bound_clusters(th), vec![0x0001, 0x0402, 0x0405]);

    r.sim.press_panic(sos);
    let v = r
        .until(Duration::from_secs(5), |i| is_reading(i, sos, Kind::Panic))
        .await;
    assert_eq!(v, 1.0);
    r.sim.report_temperature(th, 21.5, 40.25);
    let v = r
        .until(Duration::from_secs(5), |i| {
            is_reading(i, th, Kind::Temperature)
        })
        .await;
    assert_eq!(v, 21.5);
    let saved = NetworkParams::from_bytes(&r.store.load().unwrap()).unwrap();
    assert_eq!(saved.devices.len(), 2, "devices persisted with the network");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comes_back_within_ten_seconds_after_the_port_vanishes_twenty_times() {
    let mut r = rig();
    r.link(true, Duration::from_secs(10)).await;
    let sos = r.sim.add_device(SimDeviceKind::PanicButton);
    r.cmds
        .send(ZigbeeCommand::PermitJoin { secs: 200 })
        .await
        .unwrap();
    r.until(Duration::from_secs(10), |i| {
        matches!(i, Ingest::Device(_)).then_some(())
    })
    .await;
    let formations = r.sim.stats().formations;
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        r.sim.vanish();
        r.link(false, Duration::from_secs(5)).await;
        std::thread::sleep(Duration::from_millis(30));
        let t = Instant::now();
        r.sim.reappear().unwrap();
        r.link(true, Duration::from_secs(10)).await;
        worst = worst.max(t.elapsed());
    }
    eprintln!("worst recovery after replug: {worst:?}");
    assert!(worst < Duration::from_secs(10));
    assert_eq!(
        r.sim.stats().formations,
        formations,
        "the network was restored, not re-formed"
    );
    // The device is still known after all that (from the persisted parameters).
    r.sim.press_panic(sos);
    r.until(Duration::from_secs(5), |i| is_reading(i, sos, Kind::Panic))
        .await;
    // Port losses are restarts, not stick resets.
    assert!(r.counters.restarts() >= 20);
    assert_eq!(r.counters.resets(), 0);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_one_bit_error_per_ten_thousand_bytes_without_losing_intact_frames() {
    let mut r = rig();
    r.link(true, Duration::from_secs(10)).await;
    let th = r.sim.add_device(SimDeviceKind::Temperature);
    r.cmds
        .send(ZigbeeCommand::PermitJoin { secs: 60 })
        .await
        .unwrap();
    r.until(Duration::from_secs(10), |i| {
        matches!(i, Ingest::Device(_)).then_some(())
    })
    .await;
    r.sim.set_bit_error_rate(1e-4);
    let (bytes0, flips0, _) = r.sim.io_counts();
    let n: u32 = 1500;
    let mut got = 0usize;
    for k in 0..n {
        r.sim
            .report_temperature(th, 20.0 + f64::from(k % 100) / 100.0, 50.0);
        if k % 50 == 49 {
            // Drain as we go so the channel never fills.
            while let Ok(i) = r.rx.try_recv() {
                got += usize::from(
                    matches!(i, Ingest::Reading(ref x) if x.kind == Kind::Temperature || x.kind == Kind::Humidity),
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        match tokio::time::timeout(Duration::from_millis(300), r.rx.recv()).await {
            Ok(Some(i)) => {
                got += usize::from(
                    matches!(i, Ingest::Reading(ref x) if x.kind == Kind::Temperature || x.kind == Kind::Humidity),
                )
            }
            _ => break,
        }
    }
    r.sim.set_bit_error_rate(0.0);
    let (bytes1, flips1, _) = r.sim.io_counts();
    let flips = (flips1 - flips0) as usize;
    eprintln!(
        "{} bytes, {flips} bit errors, {got} of {} readings",
        bytes1 - bytes0,
        2 * n as usize
    );
    // Each flipped bit spoils at most its own frame (one reading): every other frame arrives.
    assert!(
        got + flips >= 2 * n as usize,
        "lost more frames than were corrupted: {got} + {flips} < {}",
        2 * n as usize
    );
    // What was lost shows in the counters (/metrics reads them).
    if got < 2 * n as usize {
        assert!(
            r.counters.bad_frames() > 0,
            "readings were lost but no frame error was counted"
        );
    }
    assert!(r.counters.frames() >= got as u64);
    // And the link is still healthy.
    r.sim.report_temperature(th, 30.0, 50.0);
    r.until(Duration::from_secs(5), |i| {
        is_reading(i, th, Kind::Temperature).filter(|v| *v == 30.0)
    })
    .await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stick_or_error_frames_take_the_link_down_and_it_recovers() {
    let mut r = rig();
    r.link(true, Duration::from_secs(10)).await;
    r.sim.set_silent(true);
    r.link(false, Duration::from_secs(5)).await;
    r.sim.set_silent(false);
    r.link(true, Duration::from_secs(10)).await;
    r.sim.set_rpc_errors(true);
    r.cmds
        .send(ZigbeeCommand::PermitJoin { secs: 10 })
        .await
        .unwrap();
    r.link(false, Duration::from_secs(5)).await;
    r.sim.set_rpc_errors(false);
    r.link(true, Duration::from_secs(10)).await;
    // Garbage and a half frame on the line are skipped.
    r.sim.inject_bytes(&[0x00, 0xFE, 0x30, 0x45, 0xFF, 0x13]);
    let sos = r.sim.add_device(SimDeviceKind::PanicButton);
    r.cmds
        .send(ZigbeeCommand::PermitJoin { secs: 10 })
        .await
        .unwrap();
    r.until(Duration::from_secs(10), |i| {
        matches!(i, Ingest::Device(_)).then_some(())
    })
    .await;
    r.sim.press_panic(sos);
    r.until(Duration::from_secs(5), |i| is_reading(i, sos, Kind::Panic))
        .await;
    // The silent stick and the error frames each restarted the session;
    // the garbage was counted as skipped, not as frames.
    assert!(r.counters.restarts() >= 2, "{:?}", r.counters.snapshot());
    assert!(r.counters.timeouts() >= 1, "{:?}", r.counters.snapshot());
    assert!(r.counters.rpc_errors() >= 1, "{:?}", r.counters.snapshot());
    assert_eq!(r.counters.resets(), 0);
    // A reset the gateway did not ask for (SYS_RESET_IND, as after a
    // brown-out) is counted apart and the link comes back.
    use carebridge::zigbee::wire::Msg as _;
    let mut reset = Vec::new();
    carebridge::zigbee::frame::encode(
        &carebridge::zigbee::sys::ResetInd {
            reason: 0,
            transport_rev: 2,
            product_id: 1,
            major: 2,
            minor: 7,
            maint: 1,
        }
        .to_frame(),
        &mut reset,
    );
    r.sim.inject_bytes(&reset);
    r.link(false, Duration::from_secs(5)).await;
    r.link(true, Duration::from_secs(10)).await;
    assert_eq!(r.counters.resets(), 1, "{:?}", r.counters.snapshot());
    r.stop().await;
}
