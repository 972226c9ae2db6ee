//! The hub on a real store: wall-clock steps under an injected clock (a
//! wall clock the test steps, followed by `ScaledClock`), and the rule
//! state committed with the alerts a crash must not forget.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::app::{ScaledClock, TrustProbe};
use crate::model::{AlertState, DeviceId, Kind};
use crate::rules::{Engine, RuleSet};

const T0: i64 = 1_795_435_200_000; // 2026-11-23T09:20:00Z

struct Running {
    input: mpsc::Sender<Ingest>,
    cmd: mpsc::Sender<HubCommand>,
    live: broadcast::Receiver<Live>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    store: Store,
    _dir: tempfile::TempDir,
}

fn start(rules: &str, clock: Arc<dyn Clock>) -> Running {
    start_with(rules, clock, false)
}

fn start_with(rules: &str, clock: Arc<dyn Clock>, telemetry: bool) -> Running {
    start_full(rules, clock, telemetry, None)
}

fn start_full(
    rules: &str,
    clock: Arc<dyn Clock>,
    telemetry: bool,
    zigbee: Option<mpsc::Sender<crate::zigbee::ZigbeeCommand>>,
) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("cb.db"), &Default::default()).unwrap();
    let set = RuleSet::parse(rules, "test").unwrap();
    let mut engine = Engine::new(&set, TimeZone::get("Europe/London").unwrap()).unwrap();
    engine.set_device(&crate::model::DeviceInfo {
        id: Some(DeviceId::new("s1").unwrap()),
        room: Some("hall".into()),
        ..Default::default()
    });
    let (live, live_rx) = broadcast::channel(64);
    let (input, input_rx) = mpsc::channel(16);
    let (cmd, cmd_rx) = mpsc::channel(4);
    let hub = Hub {
        engine,
        store: store.clone(),
        frame: crate::clock::TrustFrame::new(clock.now(), clock.state().trusted),
        clock,
        watchdog: None,
        telemetry,
        live,
        links: watch::channel(Default::default()).0,
        stats: Arc::default(),
        ids: Default::default(),
        acked: None,
        zigbee,
    };
    let task = tokio::spawn(hub.run(input_rx, cmd_rx, CancellationToken::new()));
    Running {
        input,
        cmd,
        live: live_rx,
        task,
        store,
        _dir: dir,
    }
}

fn reading(kind: Kind, value: f64, at: Time) -> Ingest {
    Ingest::Reading(Reading::new(DeviceId::new("s1").unwrap(), kind, value, at).unwrap())
}

/// The next alert on the live view, and how long after `since` it came.
async fn next_alert(
    r: &mut Running,
    since: Instant,
    within: Duration,
) -> Option<(Alert, Duration)> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, r.live.recv()).await {
            Ok(Ok(Live::Alert(a))) => return Some((a, since.elapsed())),
            Ok(Ok(_)) => {}
            _ => return None,
        }
    }
}

const HELD: &str = r#"
[[rule]]
id = "held"
type = "threshold"
kind = "temperature"
below = 16.0
for = "3s"
"#;

/// A wall clock at `T0` plus real time plus an offset the test steps.
fn stepped() -> (Arc<AtomicI64>, Arc<ScaledClock>) {
    let off = Arc::new(AtomicI64::new(0));
    let o = off.clone();
    let start = Instant::now();
    let wall = Box::new(move || {
        Time(T0 + i64::try_from(start.elapsed().as_millis()).unwrap() + o.load(Ordering::Relaxed))
    });
    let no_trust = TrustProbe {
        adjtimex: false,
        sync_flag: "/nonexistent/synchronized".into(),
        rtc: vec![],
    };
    (off, Arc::new(ScaledClock::following(wall, no_trust)))
}

async fn pending_alert_across_a_step(delta: i64) {
    let (off, clock) = stepped();
    let mut r = start(HELD, clock.clone());
    let began = Instant::now();
    r.input
        .send(reading(Kind::Temperature, 14.0, clock.now()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    off.store(delta, Ordering::Relaxed);
    let (a, after) = next_alert(&mut r, began, Duration::from_secs(6))
        .await
        .expect("the pending alert fired");
    assert!(after >= Duration::from_millis(2_950), "early: {after:?}");
    assert!(after < Duration::from_millis(4_500), "late: {after:?}");
    let want = T0 + delta + 3_000;
    assert!(
        (a.at.as_millis() - want).abs() < 700,
        "alert at {} not {} (step {delta})",
        a.at,
        Time(want)
    );
    assert!(!a.time_trusted, "taken while the clock was not trusted");
    assert!(
        next_alert(&mut r, began, Duration::from_secs(2))
            .await
            .is_none(),
        "a timer fired twice"
    );
    let st = clock.state();
    assert_eq!(st.steps, 1);
    assert!((st.last_step.unwrap().delta_ms - delta).abs() < 100);
    r.task.abort();
}

#[tokio::test]
async fn a_pending_alert_keeps_its_true_delay_across_a_three_day_step_forwards() {
    pending_alert_across_a_step(3 * 86_400_000).await;
}

#[tokio::test]
async fn a_pending_alert_keeps_its_true_delay_across_a_two_hour_step_back() {
    pending_alert_across_a_step(-2 * 3_600_000).await;
}

#[tokio::test]
async fn a_crash_right_after_a_leak_clears_keeps_the_clear_in_the_saved_rule_state() {
    let clock = Arc::new(crate::clock::ManualClock::new(Time(T0)));
    let mut r = start(crate::rules::MINIMAL_RULES, clock.clone());
    let began = Instant::now();
    r.input
        .send(reading(Kind::WaterLeak, 1.0, Time(T0)))
        .await
        .unwrap();
    clock.set(Time(T0 + 60_000));
    r.input
        .send(reading(Kind::WaterLeak, 0.0, Time(T0 + 60_000)))
        .await
        .unwrap();
    for want in [AlertState::Raised, AlertState::Cleared] {
        let (a, _) = next_alert(&mut r, began, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(a.state, want);
    }
    // The crash: the hub stops without its shutdown save.
    r.task.abort();
    let _ = r.task.await;
    r.store.flush().await.unwrap();
    let (full, deltas) = crate::hub::load_rule_state(&r.store)
        .await
        .unwrap()
        .expect("the rule state was committed with the alerts");
    let set = RuleSet::parse(crate::rules::MINIMAL_RULES, "test").unwrap();
    let mut e = Engine::new(&set, TimeZone::UTC).unwrap();
    let (_, applied) = e
        .restore_journal(&full, &deltas, Time(T0 + 61_000))
        .unwrap();
    assert_eq!(applied, deltas.len());
    let later = T0 + 5 * 86_400_000;
    let mut out = Vec::new();
    let Ingest::Reading(leak) = reading(Kind::WaterLeak, 1.0, Time(later)) else {
        unreachable!()
    };
    e.on_reading(Time(later), &leak, &mut out);
    assert!(
        out.iter().any(|a| a.state == AlertState::Raised),
        "the next leak raised nothing: {out:?}"
    );
}

/// The next clock correction on the live view.
async fn next_correction(r: &mut Running, within: Duration) -> Option<crate::clock::Correction> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, r.live.recv()).await {
            Ok(Ok(Live::Clock(c))) => return Some(c),
            Ok(Ok(_)) => {}
            _ => return None,
        }
    }
}

#[tokio::test]
async fn stamps_made_before_the_clock_was_trusted_say_so_and_are_corrected_by_the_sync_step() {
    let clock = Arc::new(crate::clock::ManualClock::new(Time(T0)));
    clock.set_trusted(false);
    let mut r = start_with(crate::rules::MINIMAL_RULES, clock.clone(), true);
    let began = Instant::now();
    // The hub learns the clock's trust at its next clock check.
    tokio::time::sleep(CLOCK_CHECK + Duration::from_millis(200)).await;
    r.input
        .send(reading(Kind::Panic, 1.0, Time(T0)))
        .await
        .unwrap();
    r.input
        .send(reading(Kind::Temperature, 20.5, Time(T0)))
        .await
        .unwrap();
    let (panic, _) = next_alert(&mut r, began, Duration::from_secs(5))
        .await
        .expect("the panic alert");
    assert!(!panic.time_trusted);
    // NTP synchronises: the wall clock steps a day forwards, now trusted.
    clock.set_trusted(true);
    clock.step(86_400_000);
    let c = next_correction(&mut r, Duration::from_secs(3))
        .await
        .expect("a correction for the untrusted stamps");
    assert_eq!(c.delta_ms, 86_400_000);
    assert_eq!(c.alerts, vec![panic.uid.clone().unwrap()]);
    assert!(c.covers(panic.at) && c.from <= Time(T0));
    assert_eq!(clock.state().corrections, vec![c.clone()]);
    tokio::time::sleep(CLOCK_CHECK + Duration::from_millis(200)).await;
    r.input
        .send(reading(Kind::Temperature, 20.0, clock.now()))
        .await
        .unwrap();
    // The hub submits it in its own time: wait for the third row.
    let mut texts: Vec<String> = Vec::new();
    for _ in 0..50 {
        r.store.flush().await.unwrap();
        let rows = r
            .store
            .outbox_fetch(crate::model::Class::Telemetry, 0, 10)
            .await
            .unwrap();
        texts = rows
            .iter()
            .map(|row| String::from_utf8_lossy(&row.payload).into_owned())
            .collect();
        if texts.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(texts[0].contains(r#""time_trusted":false"#), "{texts:?}");
    assert!(texts[1].contains(r#""time_trusted":false"#), "{texts:?}");
    assert!(!texts[2].contains("time_trusted"), "{texts:?}");
    // A later step while trusted corrects nothing.
    clock.step(-5_000);
    assert!(
        next_correction(&mut r, Duration::from_secs(2))
            .await
            .is_none()
    );
    r.task.abort();
}

const STILL: &str = r#"
[[rule]]
id = "still"
type = "inactivity"
kinds = ["motion"]
for = "1h"
"#;

#[tokio::test]
async fn away_mode_set_by_command_is_saved_before_the_reply_and_survives_a_crash() {
    let clock = Arc::new(crate::clock::ManualClock::new(Time(T0)));
    let r = start(STILL, clock.clone());
    r.input
        .send(reading(Kind::Motion, 1.0, Time(T0)))
        .await
        .unwrap();
    let until = Time(T0 + 6 * 3_600_000);
    let (reply, rx) = tokio::sync::oneshot::channel();
    r.cmd
        .send(HubCommand::Mode {
            mode: crate::rules::mode::Mode::Away,
            until: Some(until),
            source: "cmd/mode".into(),
            reply,
        })
        .await
        .unwrap();
    let state = rx.await.unwrap().unwrap();
    assert_eq!(state.mode, crate::rules::mode::Mode::Away);
    // A refused one names the field.
    let (reply, rx) = tokio::sync::oneshot::channel();
    r.cmd
        .send(HubCommand::Mode {
            mode: crate::rules::mode::Mode::Away,
            until: Some(Time(T0 - 1)),
            source: "cmd/mode".into(),
            reply,
        })
        .await
        .unwrap();
    assert_eq!(rx.await.unwrap().unwrap_err(), "until: must be after now");
    // The crash, right after the reply: no shutdown save.
    r.task.abort();
    let _ = r.task.await;
    r.store.flush().await.unwrap();
    let (full, deltas) = crate::hub::load_rule_state(&r.store)
        .await
        .unwrap()
        .unwrap();
    let set = RuleSet::parse(STILL, "test").unwrap();
    let mut e = Engine::new(&set, TimeZone::UTC).unwrap();
    e.restore_journal(&full, &deltas, Time(T0 + 1000)).unwrap();
    assert_eq!(e.mode().mode, crate::rules::mode::Mode::Away);
    assert_eq!(e.mode().until, Some(until));
    assert_eq!(e.mode().source, "cmd/mode");
    // Still away: no inactivity alert two hours on.
    let mut out = Vec::new();
    e.on_tick(Time(T0 + 2 * 3_600_000), &mut out);
    assert!(out.is_empty(), "{out:?}");
}

const PRE: &str = r#"
[[rule]]
id = "still"
type = "inactivity"
kinds = ["motion"]
for = "1s"
prealarm = "5s"
"#;

/// The next command to the Zigbee task, within `within`.
async fn next_zigbee(
    rx: &mut mpsc::Receiver<crate::zigbee::ZigbeeCommand>,
    within: Duration,
) -> Option<crate::zigbee::ZigbeeCommand> {
    tokio::time::timeout(within, rx.recv()).await.ok().flatten()
}

#[tokio::test]
async fn a_prealarm_sounds_the_siren_a_press_stops_it_and_an_unanswered_one_stops_when_sent() {
    use crate::zigbee::ZigbeeCommand::Warn;
    use crate::zigbee::ias_wd::{Command, Squawk, SquawkMode, StartWarning};
    // Ten times real time: the 1 s rule fires after 100 ms, the 5 s
    // pre-alarm lasts 500 ms.
    let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(Time(T0), 10.0));
    let (ztx, mut zrx) = mpsc::channel(16);
    let mut r = start_full(PRE, clock.clone(), false, Some(ztx));
    let siren_ieee = 0x0015_8d00_0000_00a1_u64;
    let dev = |id: &str, role: &str| crate::model::DeviceInfo {
        id: Some(DeviceId::new(id).unwrap()),
        room: Some("hall".into()),
        role: Some(role.into()),
        ..Default::default()
    };
    for d in [
        dev(&format!("zb-{siren_ieee:016x}"), "siren"),
        dev("btn", "cancel_button"),
        // Not a Zigbee device: cannot be sent IAS WD, left out.
        dev("wired-siren", "siren"),
    ] {
        r.cmd.send(HubCommand::Device(d)).await.unwrap();
    }
    r.input
        .send(reading(Kind::Motion, 1.0, clock.now()))
        .await
        .unwrap();
    let start = Command::StartWarning(StartWarning::prealarm(5));
    let stop = Command::StartWarning(StartWarning::stop());
    let got = next_zigbee(&mut zrx, Duration::from_secs(3)).await;
    assert_eq!(
        got,
        Some(Warn {
            ieee: siren_ieee,
            command: start
        })
    );
    // Held: nothing went out yet.
    assert!(
        next_alert(&mut r, Instant::now(), Duration::from_millis(50))
            .await
            .is_none()
    );
    // The cancel button: stop, then the "disarmed" squawk; the cancel is
    // recorded as information.
    r.input
        .send(Ingest::Reading(
            Reading::new(
                DeviceId::new("btn").unwrap(),
                Kind::Switch,
                1.0,
                clock.now(),
            )
            .unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(
        next_zigbee(&mut zrx, Duration::from_secs(1)).await,
        Some(Warn {
            ieee: siren_ieee,
            command: stop
        })
    );
    assert!(matches!(
        next_zigbee(&mut zrx, Duration::from_secs(1)).await,
        Some(Warn {
            command: Command::Squawk(Squawk {
                mode: SquawkMode::Disarmed,
                ..
            }),
            ..
        })
    ));
    let (a, _) = next_alert(&mut r, Instant::now(), Duration::from_secs(1))
        .await
        .expect("the cancel record");
    assert!(
        a.message.starts_with("Pre-alarm cancelled"),
        "{}",
        a.message
    );
    assert_eq!(a.severity, crate::model::Severity::Info);
    // Still watched from the press: held again, and this time nobody
    // answers — the alert goes out and the siren stops.
    assert_eq!(
        next_zigbee(&mut zrx, Duration::from_secs(3)).await,
        Some(Warn {
            ieee: siren_ieee,
            command: start
        })
    );
    assert_eq!(
        next_zigbee(&mut zrx, Duration::from_secs(3)).await,
        Some(Warn {
            ieee: siren_ieee,
            command: stop
        })
    );
    let sent = loop {
        let (a, _) = next_alert(&mut r, Instant::now(), Duration::from_secs(2))
            .await
            .expect("the held alert went out");
        if a.state == AlertState::Raised && a.severity != crate::model::Severity::Info {
            break a;
        }
    };
    assert_eq!(sent.rule.as_ref(), "still");
    assert!(
        next_zigbee(&mut zrx, Duration::from_millis(100))
            .await
            .is_none()
    );
    r.task.abort();
}
