//! The journal: a full snapshot plus its deltas restores exactly the state
//! the engine had at the last save, whatever happened in between.

use proptest::prelude::*;

use super::super::RuleSet;
use super::super::tests::{engine, id, rd, t};
use super::super::{Event, replay_events};
use super::*;
use crate::model::{Alert, DeviceInfo, Time};

const RULES: &str = r#"
[[rule]]
id = "panic"
type = "immediate"
kind = "panic"

[[rule]]
id = "quiet"
type = "inactivity"
kind = "motion"
for = "3h"

[[rule]]
id = "quiet-room"
type = "inactivity"
kind = "motion"
per = "room"
for = "2h"

[[rule]]
id = "cold"
type = "threshold"
kind = "temperature"
below = 16.0
for = "30m"

[[rule]]
id = "door"
type = "window"
kind = "contact"
window = "23:00-06:00"
for = "5m"

[[rule]]
id = "silent"
type = "silent"
interval = "90m"

[[rule]]
id = "late"
type = "routine"
kind = "motion"
window = "05:00-12:00"
min_days = 2

[[rule]]
id = "fall"
type = "sequence"
within = "30m"
[rule.start]
kind = "bed"
state = "idle"
[[rule.cancel]]
kind = "bed"
state = "active"

[[rule]]
id = "breakfast"
type = "absence"
kind = "motion"
window = "07:00-11:00"

[[rule]]
id = "lounging"
type = "dwell"
kind = "motion"
rooms = ["room1"]
for = "2h"

[[rule]]
id = "leak"
type = "immediate"
kind = "water_leak"
clear = true
"#;

/// What the test does between saves.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
enum Step {
    Event(Event),
    Save,
}

fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
    let dev = 0u8..12;
    let kind = prop::sample::select(vec![
        Kind::Motion,
        Kind::Temperature,
        Kind::Contact,
        Kind::Panic,
        Kind::WaterLeak,
        Kind::Bed,
    ]);
    // 0..8: a reading; 8: ack; 9: a device with a room; 10: save; 11: tick.
    let step = (0i64..2 * 3_600_000, dev, kind, 0u8..30, 0u8..12);
    prop::collection::vec(step, 1..80).prop_map(|steps| {
        let mut at = t("2026-03-28T20:00:00Z").0;
        let mut v = Vec::new();
        for (dt, d, k, val, what) in steps {
            at += dt / 4;
            let name = format!("d{d}");
            v.push(match what {
                0..8 => {
                    let value = if k == Kind::Temperature {
                        f64::from(val)
                    } else {
                        f64::from(val % 2)
                    };
                    Step::Event(Event::Reading(rd(&name, k, value, &Time(at).to_string())))
                }
                8 => Step::Event(Event::Ack {
                    rule: "panic".into(),
                    device: Some(id(&name)),
                    at: Time(at),
                }),
                9 => Step::Event(Event::Device(DeviceInfo {
                    id: Some(id(&name)),
                    room: Some(format!("room{}", val % 4)),
                    ..Default::default()
                })),
                10 => Step::Save,
                _ => Step::Event(Event::Tick(Time(at))),
            });
        }
        v
    })
}

/// Runs `steps`, storing saves like the hub does (a full one replaces the
/// snapshot and ends the journal); returns the engine and what is stored.
fn run(steps: &[Step]) -> (Engine, Vec<u8>, Vec<Vec<u8>>, Vec<Alert>) {
    let mut e = engine(RULES);
    let mut out = Vec::new();
    let mut full = e.snapshot();
    let mut journal = Vec::new();
    for s in steps {
        match s {
            Step::Event(ev) => replay_events(&mut e, std::slice::from_ref(ev), &mut out),
            Step::Save => store(&mut e, &mut full, &mut journal),
        }
    }
    store(&mut e, &mut full, &mut journal);
    (e, full, journal, out)
}

fn store(e: &mut Engine, full: &mut Vec<u8>, journal: &mut Vec<Vec<u8>>) {
    match e.save() {
        Saved::Full(b) => {
            *full = b;
            journal.clear();
        }
        Saved::Delta { seq, bytes } => {
            assert_eq!(seq, e.journal.seq);
            journal.push(bytes);
        }
    }
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap()
}

/// Saved bytes (format 2: by number) in the named form merging yields.
fn named(b: &[u8]) -> serde_json::Value {
    json(&serde_json::to_vec(&Snap::parse(b).unwrap()).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn the_snapshot_plus_its_deltas_is_the_state_at_the_last_save(steps in arb_steps()) {
        let (e, full, journal, _) = run(&steps);
        let (merged, applied) = merge(&full, &journal).unwrap();
        prop_assert_eq!(applied, journal.len());
        let merged = serde_json::to_vec(&merged).unwrap();
        prop_assert_eq!(json(&merged), named(&e.snapshot()));
    }

    #[test]
    fn restored_from_the_journal_it_goes_on_like_never_stopping(steps in arb_steps(), more in arb_steps()) {
        let (mut a, full, journal, _) = run(&steps);
        let mut b = engine(RULES);
        for s in &steps {
            if let Step::Event(Event::Device(d)) = s {
                b.set_device(d);
            }
        }
        let now = a.now();
        b.restore_journal(&full, &journal, now).unwrap();
        b.on_tick(now, &mut Vec::new());
        a.on_tick(now, &mut Vec::new());
        let events: Vec<Event> = more
            .into_iter()
            .filter_map(|s| match s {
                Step::Event(Event::Reading(mut r)) => {
                    r.at = Time(r.at.0.max(now.0) + 1_000);
                    Some(Event::Reading(r))
                }
                _ => None,
            })
            .collect();
        let (mut oa, mut ob) = (Vec::new(), Vec::new());
        replay_events(&mut a, &events, &mut oa);
        replay_events(&mut b, &events, &mut ob);
        prop_assert_eq!(oa, ob);
    }
}

fn many_devices(n: usize) -> Engine {
    let mut e = engine(RULES);
    let mut out = Vec::new();
    let at = t("2026-03-28T20:00:00Z");
    for i in 0..n {
        e.on_reading(
            at,
            &rd(&format!("p{i}"), Kind::Motion, 1.0, &at.to_string()),
            &mut out,
        );
    }
    e
}

#[test]
fn after_the_first_full_save_one_alert_costs_a_small_delta_however_many_devices() {
    let mut e = many_devices(5_000);
    let Saved::Full(full) = e.save() else {
        panic!("the first save is full")
    };
    assert!(full.len() > 500_000, "full {}", full.len());
    let at = Time(e.now().0 + 1_000);
    let mut out = Vec::new();
    e.on_reading(at, &rd("p17", Kind::Panic, 1.0, &at.to_string()), &mut out);
    assert_eq!(out.len(), 1);
    let Saved::Delta { seq, bytes } = e.save() else {
        panic!("a reading makes a delta")
    };
    assert_eq!(seq, 2);
    assert!(bytes.len() < 2_000, "delta {} bytes", bytes.len());
    let (merged, n) = merge(&full, &[bytes]).unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        json(&serde_json::to_vec(&merged).unwrap()),
        named(&e.snapshot())
    );
}

#[test]
fn deltas_that_outweigh_the_snapshot_make_the_next_save_full() {
    let mut e = many_devices(3);
    assert!(matches!(e.save(), Saved::Full(_)));
    let mut fulls = 0;
    let mut at = e.now();
    for i in 0..2_000 {
        at = Time(at.0 + 1_000);
        let mut out = Vec::new();
        e.on_reading(
            at,
            &rd(&format!("n{i}"), Kind::Motion, 1.0, &at.to_string()),
            &mut out,
        );
        if matches!(e.save(), Saved::Full(_)) {
            fulls += 1;
        }
    }
    // Each delta names its new device: the journal reaches four times the
    // snapshot's size (at least 64 KiB) now and then, and a full save ends it.
    assert!((1..200).contains(&fulls), "{fulls} full saves");
}

#[test]
fn untracked_changes_an_ack_a_reload_a_clock_step_save_in_full() {
    let mut e = many_devices(3);
    assert!(matches!(e.save(), Saved::Full(_)));
    let at = Time(e.now().0 + 1_000);
    let mut out = Vec::new();
    e.on_reading(at, &rd("p1", Kind::Panic, 1.0, &at.to_string()), &mut out);
    assert!(matches!(e.save(), Saved::Delta { .. }));
    assert!(e.ack("panic", None, at));
    assert!(matches!(e.save(), Saved::Full(_)));
    e.shift(60_000, Time(at.0 + 60_000));
    assert!(matches!(e.save(), Saved::Full(_)));
    let set = RuleSet::parse(RULES, "t").unwrap();
    e.reload(&set);
    assert!(matches!(e.save(), Saved::Full(_)));
    // The reloaded rules start on the next event (a full save), then the
    // journal goes on; a clean stop ends it with a full save.
    e.on_reading(at, &rd("p2", Kind::Panic, 1.0, &at.to_string()), &mut out);
    assert!(matches!(e.save(), Saved::Full(_)));
    e.on_reading(at, &rd("p3", Kind::Panic, 1.0, &at.to_string()), &mut out);
    assert!(matches!(e.save(), Saved::Delta { .. }));
    assert!(e.journal_open());
    assert!(matches!(e.save_full(), Saved::Full(_)));
    assert!(!e.journal_open());
}

#[test]
fn a_gap_or_a_torn_delta_ends_the_journal_at_the_last_good_state() {
    let mut e = many_devices(3);
    let Saved::Full(full) = e.save() else {
        panic!()
    };
    let mut deltas = Vec::new();
    let mut states = vec![e.snapshot()];
    let mut at = e.now();
    for i in 0..3 {
        at = Time(at.0 + 1_000);
        let mut out = Vec::new();
        e.on_reading(
            at,
            &rd(&format!("p{i}"), Kind::Panic, 1.0, &at.to_string()),
            &mut out,
        );
        let Saved::Delta { bytes, .. } = e.save() else {
            panic!()
        };
        deltas.push(bytes);
        states.push(e.snapshot());
    }
    let state = |deltas: &[Vec<u8>]| {
        let (m, n) = merge(&full, deltas).unwrap();
        (json(&serde_json::to_vec(&m).unwrap()), n)
    };
    assert_eq!(state(&deltas), (named(&states[3]), 3));
    // The second delta is missing: only the first applies.
    let gap = vec![deltas[0].clone(), deltas[2].clone()];
    assert_eq!(state(&gap), (named(&states[1]), 1));
    // The last one is torn (a half-written value never commits in SQLite,
    // but a hand-edited file may hold anything).
    let mut torn = deltas.clone();
    let half = torn[2].len() / 2;
    torn[2].truncate(half);
    assert_eq!(state(&torn), (named(&states[2]), 2));
    // Restored, the next save is full and numbered after the journal.
    let mut b = engine(RULES);
    assert_eq!(b.restore_journal(&full, &deltas, at).unwrap().1, 3);
    assert!(matches!(b.save(), Saved::Full(_)));
    assert_eq!(b.journal.seq, 5);
}
