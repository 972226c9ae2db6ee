//! The engine under wall-clock steps ([`Engine::shift`]): +3 days, −2 h and
//! across both DST changes (Europe/London). A step is "the clock read `a`
//! when the true time was `b`": `shift(b - a, b)`, as the hub does.

use super::tests::{COLD, engine, feed, place, rd, states, t, tick};
use super::*;
use crate::model::AlertState;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

fn step(e: &mut Engine, delta: i64, now: &str) -> Vec<Alert> {
    e.shift(delta, t(now));
    tick(e, now)
}

#[test]
fn a_pending_cold_alert_keeps_its_true_thirty_minutes_across_a_three_day_step() {
    let mut e = engine(COLD);
    place(&mut e, "k-temp", "living_room", None);
    // A stale clock (3 days behind): cold at 10:00 by it.
    feed(
        &mut e,
        rd("k-temp", Kind::Temperature, 14.0, "2026-11-20T10:00:00Z"),
    );
    // Ten true minutes later NTP steps the clock forwards by 3 days.
    assert!(step(&mut e, 3 * DAY, "2026-11-23T10:10:00Z").is_empty());
    assert_eq!(e.next_deadline(), Some(t("2026-11-23T10:30:00Z")));
    assert!(tick(&mut e, "2026-11-23T10:29:59Z").is_empty(), "not early");
    let out = tick(&mut e, "2026-11-23T10:30:00Z");
    assert_eq!(
        states(&out),
        vec![(
            "cold-home",
            AlertState::Raised,
            "2026-11-23T10:30:00Z".into()
        )]
    );
    assert!(tick(&mut e, "2026-11-24T10:30:00Z").is_empty(), "not twice");
}

#[test]
fn after_a_two_hour_step_back_readings_count_timers_fire_once_and_not_early() {
    let mut e = engine(COLD);
    place(&mut e, "k-temp", "living_room", None);
    feed(
        &mut e,
        rd("k-temp", Kind::Temperature, 14.0, "2026-11-23T12:00:00Z"),
    );
    // Ten minutes later the clock steps back 2 h (it was running fast).
    assert!(step(&mut e, -2 * HOUR, "2026-11-23T10:10:00Z").is_empty());
    // A reading at the new, earlier time is not taken for stale.
    let dropped = e.dropped();
    feed(
        &mut e,
        rd("k-temp", Kind::Temperature, 13.5, "2026-11-23T10:15:00Z"),
    );
    assert_eq!(e.dropped(), dropped, "a reading after the step was dropped");
    assert!(tick(&mut e, "2026-11-23T10:29:59Z").is_empty(), "not early");
    let out = tick(&mut e, "2026-11-23T10:30:00Z");
    assert_eq!(out.len(), 1, "{out:?}");
    // The old frame's deadline (12:30) passes: nothing fires again.
    assert!(tick(&mut e, "2026-11-23T12:31:00Z").is_empty(), "not twice");
}

const PANIC: &str = r#"
[[rule]]
id = "panic"
type = "immediate"
kind = "panic"
cooldown = "2m"
"#;

#[test]
fn a_panic_after_a_step_back_is_held_back_only_by_the_true_cooldown() {
    let mut e = engine(PANIC);
    place(&mut e, "pendant", "hall", None);
    assert_eq!(
        feed(
            &mut e,
            rd("pendant", Kind::Panic, 1.0, "2026-11-23T12:00:00Z")
        )
        .len(),
        1
    );
    step(&mut e, -2 * HOUR, "2026-11-23T10:00:30Z");
    // Three true minutes after the first press: past the cooldown.
    let out = feed(
        &mut e,
        rd("pendant", Kind::Panic, 1.0, "2026-11-23T10:03:00Z"),
    );
    assert_eq!(out.len(), 1, "the cooldown counted two hours too many");
}

const BACK_DOOR: &str = r#"
[[rule]]
id = "night-door-5m"
type = "window"
kind = "contact"
role = "back_door"
window = "23:00-06:00"
for = "5m"
"#;

#[test]
fn a_door_left_open_at_a_wrong_night_time_is_dropped_when_the_true_time_is_day() {
    let mut e = engine(BACK_DOOR);
    place(&mut e, "back", "kitchen", Some("back_door"));
    // The clock says 23:10 (in the window) but it is truly 09:10.
    feed(
        &mut e,
        rd("back", Kind::Contact, 1.0, "2026-11-22T23:10:00Z"),
    );
    assert!(e.next_deadline().is_some(), "pending by the wrong clock");
    assert!(step(&mut e, 10 * HOUR, "2026-11-23T09:11:00Z").is_empty());
    assert!(tick(&mut e, "2026-11-23T09:20:00Z").is_empty());
    assert_eq!(e.next_deadline(), None);
    // The next night, by the true clock, it works as ever.
    feed(
        &mut e,
        rd("back", Kind::Contact, 0.0, "2026-11-23T22:00:00Z"),
    );
    feed(
        &mut e,
        rd("back", Kind::Contact, 1.0, "2026-11-23T23:30:00Z"),
    );
    let out = tick(&mut e, "2026-11-23T23:35:00Z");
    assert_eq!(
        states(&out),
        vec![(
            "night-door-5m",
            AlertState::Raised,
            "2026-11-23T23:35:00Z".into()
        )]
    );
}

const KITCHEN: &str = r#"
[[rule]]
id = "no-breakfast"
type = "absence"
room = "kitchen"
window = "08:00-12:00"
"#;

/// The absence check is due at local noon: after a step from the clock's
/// `wrong` time to the `truth`, the check is the true day's local noon,
/// where it raises (`raises`) unless the wrong clock's check already did.
/// The engine started 20 h before `wrong` (no activity since).
fn absence_check_after_step(wrong: &str, truth: &str, noon: &str, raises: bool) {
    let mut e = engine(KITCHEN);
    place(&mut e, "k-pir", "kitchen", None);
    tick(&mut e, &Time(t(wrong).as_millis() - 20 * HOUR).to_string());
    let before_step = tick(&mut e, wrong);
    assert_eq!(before_step.len(), usize::from(!raises), "{before_step:?}");
    let delta = t(truth).as_millis() - t(wrong).as_millis();
    assert!(step(&mut e, delta, truth).is_empty());
    assert_eq!(e.next_deadline(), Some(t(noon)), "{wrong} → {truth}");
    let before = Time(t(noon).as_millis() - 1);
    let mut out = Vec::new();
    e.on_tick(before, &mut out);
    assert!(out.is_empty(), "early: {out:?}");
    let out = tick(&mut e, noon);
    if raises {
        assert_eq!(
            states(&out),
            vec![("no-breakfast", AlertState::Raised, t(noon).to_string())]
        );
    } else {
        assert!(out.is_empty(), "raised twice: {out:?}");
    }
}

#[test]
fn a_step_back_re_evaluates_the_window_end_of_the_true_day() {
    // By the clock 13:00 (today's check done: raised); truly 11:00: the
    // check is today's noon again, which does not raise a second time.
    absence_check_after_step(
        "2026-11-23T13:00:00Z",
        "2026-11-23T11:00:00Z",
        "2026-11-23T12:00:00Z",
        false,
    );
}

#[test]
fn a_step_into_summer_time_checks_at_local_noon_not_an_hour_late() {
    // GMT Saturday 09:00 by the clock; truly Sunday 10:00 BST (09:00 UTC).
    absence_check_after_step(
        "2026-03-28T09:00:00Z",
        "2026-03-29T09:00:00Z",
        "2026-03-29T11:00:00Z",
        true,
    );
}

#[test]
fn a_step_into_winter_time_checks_at_local_noon_not_an_hour_early() {
    // BST Saturday 10:00 (09:00 UTC) by the clock; truly Sunday 09:00 GMT.
    absence_check_after_step(
        "2026-10-24T09:00:00Z",
        "2026-10-25T09:00:00Z",
        "2026-10-25T12:00:00Z",
        true,
    );
}

const QUIET: &str = r#"
[[rule]]
id = "quiet-home"
type = "inactivity"
kind = "motion"
for = "4h"
window = "07:00-22:00"
"#;

#[test]
fn waking_hours_inactivity_counts_true_elapsed_time_across_a_three_day_step() {
    let mut e = engine(QUIET);
    place(&mut e, "pir", "hall", None);
    feed(&mut e, rd("pir", Kind::Motion, 1.0, "2026-11-20T09:00:00Z"));
    assert!(step(&mut e, 3 * DAY, "2026-11-23T10:00:00Z").is_empty());
    assert_eq!(e.next_deadline(), Some(t("2026-11-23T13:00:00Z")));
    assert!(tick(&mut e, "2026-11-23T12:59:00Z").is_empty());
    assert_eq!(tick(&mut e, "2026-11-23T13:00:00Z").len(), 1);
}
