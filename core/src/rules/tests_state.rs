//! Tests of the engine's state: snapshot/restore, reload, determinism.

use proptest::prelude::*;

use super::tests::{engine, feed, id, place, rd, t, tick};
use super::*;
use super::{Event, replay_events};
use crate::model::AlertState;

const MIXED: &str = r#"
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
id = "breakfast"
type = "absence"
kind = "motion"
window = "07:00-11:00"
"#;

#[test]
fn restart_in_the_middle_of_an_inactivity_timer_gives_the_same_alert() {
    let mut a = engine(MIXED);
    feed(&mut a, rd("m1", Kind::Motion, 1.0, "2026-11-22T09:00:00Z"));
    let bytes = a.snapshot();
    let mut b = engine(MIXED);
    assert_eq!(b.restore(&bytes, t("2026-11-22T10:00:00Z")).unwrap(), 9);
    assert_eq!(b.next_deadline(), a.next_deadline());
    let (x, y) = (
        tick(&mut a, "2026-11-22T12:30:00Z"),
        tick(&mut b, "2026-11-22T12:30:00Z"),
    );
    assert_eq!(x, y);
    assert!(
        x.iter()
            .any(|al| &*al.rule == "quiet" && al.at == t("2026-11-22T12:00:00Z")),
        "{x:?}"
    );
}

#[test]
fn restore_refuses_garbage_and_other_versions() {
    let mut e = engine(MIXED);
    assert!(e.restore(b"not json", Time(0)).is_err());
    assert!(
        e.restore(br#"{"v":99,"now":0,"rules":[],"seen":[]}"#, Time(0))
            .is_err()
    );
}

#[test]
fn reload_keeps_state_of_unchanged_rules_and_resets_changed_ones() {
    let mut e = engine(MIXED);
    feed(&mut e, rd("m1", Kind::Motion, 1.0, "2026-11-22T09:00:00Z"));
    feed(
        &mut e,
        rd("t1", Kind::Temperature, 14.0, "2026-11-22T09:00:00Z"),
    );
    let changed = MIXED.replace("below = 16.0", "below = 15.0");
    let summary = e.reload(&RuleSet::parse(&changed, "r").unwrap());
    assert_eq!(
        summary,
        ReloadSummary {
            kept: 8,
            fresh: 1,
            removed: 1
        }
    );
    let out = tick(&mut e, "2026-11-22T12:00:00Z");
    assert!(
        out.iter().any(|a| &*a.rule == "quiet"),
        "quiet clock survived: {out:?}"
    );
    assert!(
        !out.iter().any(|a| &*a.rule == "cold"),
        "changed rule starts fresh: {out:?}"
    );
}

#[test]
fn status_reports_suppressed_after_ack_and_generation_tracks_changes() {
    let mut e = engine(MIXED);
    let g0 = e.generation();
    feed(&mut e, rd("m1", Kind::Motion, 1.0, "2026-11-22T09:00:00Z"));
    assert!(e.state_dirty() && e.generation() > g0);
    e.mark_saved();
    assert!(!e.state_dirty());
    tick(&mut e, "2026-11-22T12:00:00Z");
    assert!(e.ack("quiet", None, t("2026-11-22T12:01:00Z")));
    let st = e.status().into_iter().find(|s| s.rule == "quiet").unwrap();
    assert_eq!(st.state, "suppressed");
    let late = e.status().into_iter().find(|s| s.rule == "late").unwrap();
    assert_eq!(
        (late.state.as_str(), late.detail.as_str()),
        ("learning", "learning: 1 of 2 days")
    );
}

#[test]
fn an_alert_raised_again_after_an_ack_and_a_clear_is_unacknowledged() {
    // for = 0: the reading raises at once (the pending path always did this).
    let mut e = engine(
        "[[rule]]\nid = \"cold\"\ntype = \"threshold\"\nkind = \"temperature\"\nbelow = 16.0\n",
    );
    let cold = |e: &Engine| e.status().into_iter().find(|s| s.rule == "cold").unwrap();
    feed(
        &mut e,
        rd("t1", Kind::Temperature, 15.0, "2026-11-22T10:00:00Z"),
    );
    assert!(e.ack("cold", None, t("2026-11-22T10:01:00Z")));
    assert_eq!(cold(&e).state, "suppressed");
    let out = feed(
        &mut e,
        rd("t1", Kind::Temperature, 17.0, "2026-11-22T10:10:00Z"),
    );
    assert_eq!(out[0].state, AlertState::Cleared);
    let out = feed(
        &mut e,
        rd("t1", Kind::Temperature, 15.0, "2026-11-22T10:20:00Z"),
    );
    assert_eq!(out[0].state, AlertState::Raised);
    assert_eq!(
        cold(&e).state,
        "raised",
        "a new situation is not acknowledged"
    );
    assert!(e.ack("cold", None, t("2026-11-22T10:21:00Z")));
}

#[test]
fn timers_due_together_fire_in_first_seen_order_and_a_restored_engine_keeps_it() {
    let rules = "[[rule]]\nid = \"q\"\ntype = \"inactivity\"\nper = \"device\"\nfor = \"1h\"\n";
    // 2,000 take the comparison sort; 6,000 the bulk take and radix sort.
    for n in [2000usize, 6000] {
        let name = |i: usize| format!("m{i:05}");
        let mut a = engine(rules);
        let mut out = Vec::new();
        // First seen in reverse name order.
        for i in (0..n).rev() {
            let r = rd(&name(i), Kind::Motion, 1.0, "2026-11-22T09:00:00Z");
            a.on_reading(r.at, &r, &mut out);
        }
        assert_eq!(a.armed_timers(), n);
        let bytes = a.snapshot();
        // The restarted gateway learns of the devices in another order
        // (its registry) before restoring.
        let mut b = engine(rules);
        for i in (0..n).step_by(7) {
            b.set_device(&DeviceInfo {
                id: Some(id(&name(i))),
                ..Default::default()
            });
        }
        b.restore(&bytes, t("2026-11-22T09:30:00Z")).unwrap();
        assert_eq!(b.armed_timers(), n);
        let fire = |e: &mut Engine| {
            let mut out = Vec::new();
            e.on_tick(t("2026-11-22T10:00:00Z"), &mut out);
            assert!(out.iter().all(|a| a.state == AlertState::Raised));
            out
        };
        let (fa, fb) = (fire(&mut a), fire(&mut b));
        assert_eq!(fa.len(), n);
        assert_eq!(fa, fb);
        let order: Vec<String> = fa.iter().map(|x| x.device.to_string()).collect();
        let want: Vec<String> = (0..n).rev().map(name).collect();
        assert_eq!(order, want, "in the order the devices were first seen");
    }
}

#[test]
fn a_snapshot_without_the_numbering_still_restores() {
    let mut a = engine(MIXED);
    let mut out = Vec::new();
    let r = rd("m1", Kind::Motion, 1.0, "2026-11-22T08:00:00Z");
    a.on_reading(r.at, &r, &mut out);
    // Format 1, as saved before 2026-11: names everywhere, no numbering.
    let mut v = serde_json::to_value(a.snap()).unwrap();
    let obj = v.as_object_mut().unwrap();
    obj.insert("v".into(), 1.into());
    assert!(obj.remove("devices").is_some() && obj.remove("rooms").is_some());
    let mut b = engine(MIXED);
    let n = b
        .restore(&serde_json::to_vec(&v).unwrap(), t("2026-11-22T08:01:00Z"))
        .unwrap();
    assert!(n > 0);
    assert_eq!(b.armed_timers(), a.armed_timers());
}

#[test]
fn a_snapshot_naming_an_invalid_device_is_refused_and_changes_nothing() {
    let mut a = engine(MIXED);
    let mut out = Vec::new();
    let r = rd("m1", Kind::Motion, 1.0, "2026-11-22T08:00:00Z");
    a.on_reading(r.at, &r, &mut out);
    let mut v: serde_json::Value = serde_json::from_slice(&a.snapshot()).unwrap();
    v["devices"] = serde_json::json!(["m1", "bad id/with slash"]);
    let mut b = engine(MIXED);
    let err = b
        .restore(&serde_json::to_vec(&v).unwrap(), t("2026-11-22T08:01:00Z"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad id/with slash"), "{err}");
    assert_eq!(b.armed_timers(), 0);
}

fn arb_events() -> impl Strategy<Value = Vec<Event>> {
    let dev = prop::sample::select(vec!["m1", "m2", "k1", "t1", "d1", "b1"]);
    let kind = prop::sample::select(vec![
        Kind::Motion,
        Kind::Temperature,
        Kind::Contact,
        Kind::Bed,
        Kind::Panic,
    ]);
    let step = (0i64..3 * 3_600_000, dev, kind, 0u8..30, any::<bool>());
    prop::collection::vec(step, 1..60).prop_map(|steps| {
        let mut at = t("2026-03-28T20:00:00Z").0;
        let mut v = vec![
            Event::Device(DeviceInfo {
                id: Some(id("k1")),
                room: Some("kitchen".into()),
                ..Default::default()
            }),
            Event::Device(DeviceInfo {
                id: Some(id("m1")),
                room: Some("hall".into()),
                ..Default::default()
            }),
        ];
        for (dt, d, k, val, back) in steps {
            // Mostly forward, sometimes a little back in time (late delivery).
            at = if back { at - dt / 20 } else { at + dt };
            let value = if k == Kind::Temperature {
                f64::from(val)
            } else {
                f64::from(val % 2)
            };
            v.push(Event::Reading(rd(d, k, value, &Time(at).to_string())));
        }
        v
    })
}

fn run(events: &[Event]) -> Vec<Alert> {
    let mut e = engine(MIXED);
    let mut out = Vec::new();
    replay_events(&mut e, events, &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn replaying_the_same_events_twice_gives_the_same_alerts(events in arb_events()) {
        prop_assert_eq!(run(&events), run(&events));
    }

    #[test]
    fn snapshot_and_restore_at_any_point_gives_the_same_alerts(events in arb_events(), cut in 0usize..64) {
        let whole = run(&events);
        let cut = cut.min(events.len());
        let mut a = engine(MIXED);
        let mut out = Vec::new();
        replay_events(&mut a, &events[..cut], &mut out);
        let bytes = a.snapshot();
        let now = Time(a.now.max(0));
        let mut b = engine(MIXED);
        for ev in &events[..cut] {
            if let Event::Device(d) = ev {
                b.set_device(d);
            }
        }
        b.restore(&bytes, now).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if a.now > i64::MIN {
            // The second half starts with the clock where the first ended.
            b.on_tick(now, &mut out);
        }
        replay_events(&mut b, &events[cut..], &mut out);
        prop_assert_eq!(whole, out);
    }

    /// Format 2 (by number) holds exactly the named state, and a format-1
    /// snapshot of the same state restores to the same engine.
    #[test]
    fn the_numbered_snapshot_is_the_named_state_and_format_1_restores_alike(
        events in arb_events(), cut in 0usize..64,
    ) {
        let cut = cut.min(events.len());
        let mut a = engine(MIXED);
        let mut out = Vec::new();
        replay_events(&mut a, &events[..cut], &mut out);
        let bytes = a.snapshot();
        let parsed = super::snapshot::Snap::parse(&bytes).unwrap();
        prop_assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            serde_json::to_value(a.snap()).unwrap()
        );
        let mut v1 = serde_json::to_value(a.snap()).unwrap();
        v1["v"] = 1.into();
        let now = Time(a.now.max(0));
        let mut b1 = engine(MIXED);
        b1.restore(&serde_json::to_vec(&v1).unwrap(), now).unwrap();
        let mut b2 = engine(MIXED);
        b2.restore(&bytes, now).unwrap();
        prop_assert_eq!(b1.snapshot(), b2.snapshot());
        prop_assert_eq!(b1.armed_timers(), b2.armed_timers());
    }
}

#[test]
fn a_snapshot_numbering_a_device_it_does_not_list_is_refused_and_changes_nothing() {
    let mut a = engine(MIXED);
    let mut out = Vec::new();
    for (dev, kind) in [("m1", Kind::Motion), ("p1", Kind::Panic)] {
        let r = rd(dev, kind, 1.0, "2026-11-22T08:00:00Z");
        a.on_reading(r.at, &r, &mut out);
    }
    let good: serde_json::Value = serde_json::from_slice(&a.snapshot()).unwrap();
    for (field, pos) in [("nslots", 1), ("nslots", 8), ("nseen", 0)] {
        let mut v = good.clone();
        let row = v[field]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|r| !r[pos].is_null())
            .unwrap();
        row[pos] = 999.into();
        let mut b = engine(MIXED);
        let err = b
            .restore(&serde_json::to_vec(&v).unwrap(), t("2026-11-22T08:01:00Z"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("number 999"), "{field}[{pos}]: {err}");
        assert_eq!(b.armed_timers(), 0);
    }
}

/// A care site's state grows with every pendant: a full snapshot costs
/// about 130 bytes a pendant (it was 288 with names in every slot).
#[test]
fn a_full_snapshot_costs_about_130_bytes_a_panic_pendant() {
    let mut e =
        engine("[[rule]]\nid = \"panic\"\ntype = \"immediate\"\nkinds = [\"panic\", \"fall\"]\n");
    let mut out = Vec::new();
    let n = 2_000;
    for i in 0..n {
        let r = rd(
            &format!("pendant-{i:05}"),
            Kind::Panic,
            1.0,
            "2026-12-04T10:00:00Z",
        );
        e.on_reading(r.at, &r, &mut out);
    }
    assert_eq!(out.len(), n);
    let per = e.snapshot().len() / n;
    assert!(per <= 140, "{per} bytes a pendant");
}

#[test]
fn place_is_used() {
    let mut e = engine(MIXED);
    place(&mut e, "k1", "kitchen", None);
    assert_eq!(e.rule_count(), 9);
}
