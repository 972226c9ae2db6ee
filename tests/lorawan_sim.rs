//! The LoRaWAN uplink task against the modem simulator, through real
//! pseudo-terminals, for both modem dialects.
//!
//! Timing is real (the task reads the wall clock): each uplink closes the
//! g1 sub-band for 100× its airtime (~5.7 s at SF7), so these tests take
//! seconds, not milliseconds. The budget itself is proven on a virtual clock
//! in `lorawan_budget.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use carebridge::config::Dur;
use carebridge::model::{AlertState, Class, Kind, Severity};
use carebridge::uplink::lorawan::codec::{self, AlertMsg, Downlink, Uplink};
use carebridge::uplink::lorawan::policy::RadioEvent;
use carebridge::uplink::lorawan::sim::{ModemSim, SimConfig, SimDialect};
use carebridge::uplink::lorawan::{
    Delivery, LoraEvent, LoraUplink, LorawanConfig, Message, channel, run,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

struct Rig {
    sim: ModemSim,
    up: LoraUplink,
    events: mpsc::Receiver<LoraEvent>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

fn start(sim_cfg: SimConfig, confirmed_retries: u8) -> Rig {
    let dialect = sim_cfg.dialect;
    let sim = ModemSim::start(sim_cfg).expect("pty simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("appkey");
    std::fs::write(&key, "2B7E151628AED2A6ABF7158809CF4F3C\n").expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let cfg = LorawanConfig {
        port: sim.path().to_string(),
        modem: if dialect == SimDialect::WioE5 {
            "wio-e5"
        } else {
            "rak3172"
        }
        .into(),
        dev_eui: "AC1F09FFFE000001".into(),
        app_key_file: key.display().to_string(),
        confirmed_retries,
        join_backoff_min: Dur::secs(1),
        command_timeout: Dur(Duration::from_millis(500)),
        ..LorawanConfig::default()
    };
    assert!(cfg.validate().is_empty());
    let (up, queue) = channel(16);
    let (etx, events) = mpsc::channel(64);
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(cfg, queue, etx, stop.clone()));
    Rig {
        sim,
        up,
        events,
        stop,
        task,
        _dir: dir,
    }
}

async fn wait_for(
    rx: &mut mpsc::Receiver<LoraEvent>,
    secs: u64,
    pred: impl Fn(&LoraEvent) -> bool,
) -> LoraEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(_)) => {}
            Ok(None) => panic!("event channel closed"),
            Err(_) => panic!("no matching event within {secs} s"),
        }
    }
}

fn joined(e: &LoraEvent) -> bool {
    matches!(
        e,
        LoraEvent::Radio(RadioEvent::JoinState { joined: true, .. })
    )
}

fn panic_alert(idx: u16) -> Message {
    let mut payload = Vec::new();
    let m = Uplink::Alert(AlertMsg {
        kind: Some(Kind::Panic),
        severity: Severity::Urgent,
        state: AlertState::Raised,
        device_index: idx,
        age_min: 0,
        value: None,
    });
    codec::encode(&m, &mut payload).expect("encode");
    Message {
        class: Class::Alert,
        severity: Severity::Urgent,
        payload,
        confirmed: true,
    }
}

async fn send(up: &LoraUplink, m: Message, secs: u64) -> Delivery {
    tokio::time::timeout(Duration::from_secs(secs), up.send(m))
        .await
        .expect("delivery in time")
        .expect("task alive")
}

async fn finish(r: Rig) {
    r.stop.cancel();
    let res = tokio::time::timeout(Duration::from_secs(5), r.task).await;
    assert!(matches!(res, Ok(Ok(Ok(())))), "task ended cleanly: {res:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rak3172_delivers_a_confirmed_alert_and_measures_idle_budget_latency() {
    let mut r = start(SimConfig::default(), 2);
    wait_for(&mut r.events, 10, joined).await;
    // First alert waits out the join's off time (~6 s at SF7).
    assert_eq!(send(&r.up, panic_alert(3), 15).await, Delivery::Acked);
    let s = r.sim.stats();
    assert_eq!(s.uplinks.len(), 1);
    assert_eq!((s.uplinks[0].port, s.uplinks[0].confirmed), (10, true));
    assert_eq!(s.uplinks[0].data, panic_alert(3).payload);
    // Let the sub-band reopen, then time an alert on an idle budget.
    tokio::time::sleep(Duration::from_millis(6000)).await;
    let t0 = Instant::now();
    let d = send(&r.up, panic_alert(4), 15).await;
    let acked_after = t0.elapsed();
    let s = r.sim.stats();
    let on_modem = s.uplinks[1].at.duration_since(t0);
    println!(
        "FIGURE alert->modem send on idle budget: {on_modem:?}; ->ack (sim RX window 100 ms): {acked_after:?}"
    );
    assert_eq!(d, Delivery::Acked);
    assert!(on_modem < Duration::from_millis(200), "{on_modem:?}");
    let air = wait_for(&mut r.events, 2, |e| matches!(e, LoraEvent::Airtime { .. })).await;
    println!("FIGURE airtime reported after join + first alert: {air:?}");
    assert_eq!(
        s.refusals, 0,
        "the gateway never made the modem refuse for duty cycle"
    );
    finish(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_dialects_join_after_a_failed_join_and_send_unconfirmed_telemetry() {
    for dialect in [SimDialect::WioE5, SimDialect::Rak3172] {
        let cfg = SimConfig {
            dialect,
            join_failures: 1,
            ..SimConfig::default()
        };
        let mut r = start(cfg, 2);
        wait_for(&mut r.events, 10, |e| {
            matches!(e, LoraEvent::Radio(RadioEvent::JoinState { joined: false, detail }) if detail.contains("join failed"))
        })
        .await;
        wait_for(&mut r.events, 10, joined).await;
        let m = Message {
            class: Class::Telemetry,
            severity: Severity::Info,
            payload: vec![0x25, 0],
            confirmed: false,
        };
        assert_eq!(
            send(&r.up, m, 20).await,
            Delivery::SentUnconfirmed,
            "{dialect:?}"
        );
        let s = r.sim.stats();
        assert_eq!(s.joins, 1);
        assert_eq!((s.uplinks[0].port, s.uplinks[0].confirmed), (12, false));
        finish(r).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_dialects_retry_a_lost_confirmed_alert_until_acked() {
    for dialect in [SimDialect::WioE5, SimDialect::Rak3172] {
        let cfg = SimConfig {
            dialect,
            loss_percent: 100,
            ..SimConfig::default()
        };
        let mut r = start(cfg, 2);
        wait_for(&mut r.events, 10, joined).await;
        let up = r.up.clone();
        let pending = tokio::spawn(async move { send(&up, panic_alert(9), 40).await });
        let t0 = Instant::now();
        while r.sim.stats().uplinks.is_empty() {
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "first attempt never reached the modem"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        r.sim.set_loss(0);
        assert_eq!(pending.await.expect("join"), Delivery::Acked, "{dialect:?}");
        let s = r.sim.stats();
        assert_eq!(s.uplinks.len(), 2);
        assert!(s.uplinks[0].lost && !s.uplinks[1].lost);
        assert_eq!(s.uplinks[0].data, s.uplinks[1].data);
        finish(r).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_modem_is_reset_rejoined_and_the_alert_still_goes_out() {
    for dialect in [SimDialect::Rak3172, SimDialect::WioE5] {
        let mut r = start(
            SimConfig {
                dialect,
                ..SimConfig::default()
            },
            2,
        );
        wait_for(&mut r.events, 10, joined).await;
        r.sim.set_silent(true);
        let up = r.up.clone();
        let pending = tokio::spawn(async move { send(&up, panic_alert(1), 30).await });
        wait_for(
            &mut r.events,
            15,
            |e| matches!(e, LoraEvent::Radio(RadioEvent::ModemReset(w)) if w.contains("no answer")),
        )
        .await;
        wait_for(&mut r.events, 10, joined).await;
        assert_eq!(pending.await.expect("join"), Delivery::Acked, "{dialect:?}");
        let s = r.sim.stats();
        assert!(
            s.resets >= 1,
            "no start-up reset (a probe), one for the silence: {}",
            s.resets
        );
        assert_eq!(s.joins, 2);
        finish(r).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downlink_commands_arrive_decoded_for_both_dialects() {
    for dialect in [SimDialect::Rak3172, SimDialect::WioE5] {
        let mut r = start(
            SimConfig {
                dialect,
                ..SimConfig::default()
            },
            2,
        );
        wait_for(&mut r.events, 10, joined).await;
        let mut b = Vec::new();
        codec::encode_downlink(&Downlink::PermitJoin { secs: 120 }, &mut b);
        r.sim.queue_downlink(20, b);
        r.sim.queue_downlink(21, vec![0xff, 0x00]);
        assert_eq!(send(&r.up, panic_alert(2), 15).await, Delivery::Acked);
        let e = wait_for(&mut r.events, 2, |e| {
            matches!(e, LoraEvent::Radio(RadioEvent::Downlink(_)))
        })
        .await;
        assert_eq!(
            e,
            LoraEvent::Radio(RadioEvent::Downlink(Downlink::PermitJoin { secs: 120 })),
            "{dialect:?}"
        );
        let m = Message {
            class: Class::Status,
            severity: Severity::Info,
            payload: vec![0x26, 24],
            confirmed: false,
        };
        assert_eq!(send(&r.up, m, 15).await, Delivery::SentUnconfirmed);
        let e = wait_for(&mut r.events, 2, |e| {
            matches!(e, LoraEvent::Radio(RadioEvent::DownlinkInvalid { .. }))
        })
        .await;
        assert!(
            matches!(
                e,
                LoraEvent::Radio(RadioEvent::DownlinkInvalid { port: 21, .. })
            ),
            "{e:?}"
        );
        finish(r).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_modem_port_is_reported_and_pending_sends_fail() {
    let mut r = start(SimConfig::default(), 2);
    wait_for(&mut r.events, 10, joined).await;
    let up = r.up.clone();
    // Queued behind the join's off time, then the modem disappears.
    let pending = tokio::spawn(async move { send(&up, panic_alert(1), 20).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let Rig {
        sim,
        events: mut ev,
        stop,
        task,
        _dir,
        up: _,
    } = r;
    drop(sim);
    wait_for(&mut ev, 5, |e| {
        matches!(e, LoraEvent::Port { up: false, .. })
    })
    .await;
    assert!(matches!(pending.await.expect("join"), Delivery::Failed(_)));
    stop.cancel();
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(5), task).await,
        Ok(Ok(Ok(())))
    ));
}

/// Talks to the simulator directly over its pty, like a terminal would.
fn converse(
    sim: &ModemSim,
) -> (
    Box<dyn serialport::SerialPort>,
    carebridge::uplink::lorawan::at::LineFramer,
) {
    let port = serialport::new(sim.path(), 115_200)
        .timeout(Duration::from_millis(50))
        .open()
        .expect("open pty");
    (port, carebridge::uplink::lorawan::at::LineFramer::new())
}

fn say_and_wait(
    p: &mut Box<dyn serialport::SerialPort>,
    f: &mut carebridge::uplink::lorawan::at::LineFramer,
    cmd: &str,
    want: &str,
) -> Vec<String> {
    use carebridge::uplink::lorawan::at::Framed;
    p.write_all(format!("{cmd}\r\n").as_bytes()).expect("write");
    let t0 = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while t0.elapsed() < Duration::from_secs(3) {
        if let Ok(n) = std::io::Read::read(p, &mut buf) {
            for Framed::Line(l) | Framed::Overlong(l) in f.push(&buf[..n]) {
                let done = l.contains(want);
                seen.push(l);
                if done {
                    return seen;
                }
            }
        }
    }
    panic!("no {want:?} after {cmd:?}; saw {seen:?}");
}

#[test]
fn simulator_refuses_a_send_inside_the_duty_cycle_off_time_in_both_dialects() {
    use std::io::Write;
    let rak = ModemSim::start(SimConfig::default()).expect("sim");
    let (mut p, mut f) = converse(&rak);
    say_and_wait(&mut p, &mut f, "AT+SEND=2:01", "AT_NO_NETWORK_JOINED");
    say_and_wait(&mut p, &mut f, "AT+JOIN=1:0:8:1", "+EVT:JOINED");
    // The join itself closed g1 for 100× its airtime.
    say_and_wait(&mut p, &mut f, "AT+SEND=2:01", "AT_BUSY_ERROR");
    assert_eq!(rak.stats().refusals, 1);

    let wio = ModemSim::start(SimConfig {
        dialect: SimDialect::WioE5,
        ..SimConfig::default()
    })
    .expect("sim");
    let (mut p, mut f) = converse(&wio);
    say_and_wait(
        &mut p,
        &mut f,
        "AT+MSGHEX=\"01\"",
        "Please join network first",
    );
    say_and_wait(&mut p, &mut f, "AT+JOIN", "+JOIN: Done");
    let seen = say_and_wait(&mut p, &mut f, "AT+MSGHEX=\"01\"", "No band in");
    assert!(
        seen.iter().any(|l| l.starts_with("+MSGHEX: No band in ")),
        "{seen:?}"
    );
    let _ = p.flush();
}
