//! Unit tests of the clock-driven rule types (inactivity, absence,
//! sequence, silent, battery, tamper, routine) on a virtual clock.

use super::tests::{COLD, engine, feed, id, place, rd, states, t, tick};
use super::*;
use crate::model::{AlertState, Severity};

const QUIET: &str = r#"
[[rule]]
id = "quiet-home"
type = "inactivity"
kind = "motion"
for = "4h"
window = "07:00-22:00"

[[rule]]
id = "fridge"
type = "inactivity"
kind = "contact"
role = "fridge_door"
per = "device"
for = "24h"
"#;

#[test]
fn no_motion_for_four_waking_hours_raises_once_and_motion_clears() {
    let mut e = engine(QUIET);
    feed(
        &mut e,
        rd("pir1", Kind::Motion, 1.0, "2026-11-23T08:00:00Z"),
    );
    assert_eq!(e.next_deadline(), Some(t("2026-11-23T12:00:00Z")));
    feed(
        &mut e,
        rd("pir2", Kind::Motion, 1.0, "2026-11-23T09:00:00Z"),
    );
    feed(
        &mut e,
        rd("pir2", Kind::Motion, 0.0, "2026-11-23T09:01:00Z"),
    );
    assert!(tick(&mut e, "2026-11-23T12:59:00Z").is_empty());
    let out = tick(&mut e, "2026-11-23T13:00:00Z");
    assert_eq!(
        states(&out),
        vec![(
            "quiet-home",
            AlertState::Raised,
            "2026-11-23T13:00:00Z".into()
        )]
    );
    assert!(
        tick(&mut e, "2026-11-24T13:00:00Z").is_empty(),
        "one alert per situation"
    );
    assert_eq!(e.status()[0].state, "raised");
    let out = feed(
        &mut e,
        rd("pir1", Kind::Motion, 1.0, "2026-11-24T13:05:00Z"),
    );
    assert_eq!(out[0].state, AlertState::Cleared);
    // The clear names the alert it closes (raised on pir2, the last
    // activity) and says where the activity was.
    assert_eq!(out[0].device, id("pir2"));
    assert!(out[0].message.contains("(pir1)"), "{}", out[0].message);
    assert_eq!(e.next_deadline(), Some(t("2026-11-24T17:05:00Z")));
}

#[test]
fn quiet_night_hours_do_not_count_as_inactivity() {
    let mut e = engine(QUIET);
    feed(
        &mut e,
        rd("pir1", Kind::Motion, 1.0, "2026-11-23T21:00:00Z"),
    );
    assert!(tick(&mut e, "2026-11-24T09:59:00Z").is_empty());
    let out = tick(&mut e, "2026-11-24T10:00:00Z");
    assert_eq!(out.len(), 1, "1 h before 22:00 plus 3 h after 07:00");
}

#[test]
fn fridge_door_unopened_for_a_day_raises_per_device() {
    let mut e = engine(QUIET);
    place(&mut e, "fridge", "kitchen", Some("fridge_door"));
    feed(
        &mut e,
        rd("fridge", Kind::Contact, 1.0, "2026-11-23T08:00:00Z"),
    );
    feed(
        &mut e,
        rd("fridge", Kind::Contact, 0.0, "2026-11-23T08:01:00Z"),
    );
    let out: Vec<_> = tick(&mut e, "2026-11-24T08:00:00Z")
        .into_iter()
        .filter(|a| &*a.rule == "fridge")
        .collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].device, id("fridge"));
    assert_eq!(out[0].room.as_deref(), Some("kitchen"));
}

const KITCHEN: &str = r#"
[[rule]]
id = "no-breakfast"
type = "absence"
room = "kitchen"
window = "07:00-11:00"
"#;

#[test]
fn no_kitchen_activity_all_morning_raises_at_eleven_and_activity_clears() {
    let mut e = engine(KITCHEN);
    place(&mut e, "k1", "kitchen", None);
    place(&mut e, "h1", "hall", None);
    feed(&mut e, rd("k1", Kind::Motion, 1.0, "2026-11-22T20:00:00Z"));
    feed(&mut e, rd("k1", Kind::Motion, 1.0, "2026-11-23T08:00:00Z"));
    assert!(
        tick(&mut e, "2026-11-23T11:00:00Z").is_empty(),
        "breakfast was made"
    );
    feed(&mut e, rd("h1", Kind::Motion, 1.0, "2026-11-24T09:00:00Z"));
    let out = tick(&mut e, "2026-11-24T11:00:00Z");
    assert_eq!(
        states(&out),
        vec![(
            "no-breakfast",
            AlertState::Raised,
            "2026-11-24T11:00:00Z".into()
        )]
    );
    assert_eq!(out[0].room.as_deref(), Some("kitchen"));
    assert!(
        tick(&mut e, "2026-11-25T11:00:00Z").is_empty(),
        "still the same situation"
    );
    let out = feed(&mut e, rd("k1", Kind::Motion, 1.0, "2026-11-25T12:00:00Z"));
    assert_eq!(out[0].state, AlertState::Cleared);
}

const NIGHT_FALL: &str = r#"
[[rule]]
id = "night-fall"
type = "sequence"
window = "22:00-07:00"
within = "30m"
[rule.start]
kind = "bed"
state = "idle"
[[rule.cancel]]
kind = "bed"
state = "active"
[[rule.cancel]]
kind = "motion"
room = "kitchen"
"#;

#[test]
fn bed_exit_without_return_within_thirty_minutes_is_a_possible_fall() {
    let mut e = engine(NIGHT_FALL);
    place(&mut e, "k1", "kitchen", None);
    feed(&mut e, rd("bed", Kind::Bed, 0.0, "2026-11-23T02:00:00Z"));
    let out = tick(&mut e, "2026-11-23T02:30:00Z");
    assert_eq!(
        states(&out),
        vec![(
            "night-fall",
            AlertState::Raised,
            "2026-11-23T02:30:00Z".into()
        )]
    );
    assert_eq!(out[0].severity, Severity::Urgent);
    let out = feed(&mut e, rd("bed", Kind::Bed, 1.0, "2026-11-23T02:45:00Z"));
    assert_eq!(out[0].state, AlertState::Cleared);
}

#[test]
fn returning_to_bed_or_moving_in_the_kitchen_cancels_the_sequence() {
    let mut e = engine(NIGHT_FALL);
    place(&mut e, "k1", "kitchen", None);
    feed(&mut e, rd("bed", Kind::Bed, 0.0, "2026-11-23T02:00:00Z"));
    feed(&mut e, rd("bed", Kind::Bed, 1.0, "2026-11-23T02:10:00Z"));
    feed(&mut e, rd("bed", Kind::Bed, 0.0, "2026-11-23T03:00:00Z"));
    feed(&mut e, rd("k1", Kind::Motion, 1.0, "2026-11-23T03:05:00Z"));
    assert!(tick(&mut e, "2026-11-23T05:00:00Z").is_empty());
    // Getting up in the day is not a night-time sequence.
    feed(&mut e, rd("bed", Kind::Bed, 1.0, "2026-11-23T05:10:00Z"));
    feed(&mut e, rd("bed", Kind::Bed, 0.0, "2026-11-23T09:00:00Z"));
    assert!(tick(&mut e, "2026-11-23T12:00:00Z").is_empty());
}

const HEALTH: &str = r#"
[[rule]]
id = "silent"
type = "silent"
interval = "2h"
intervals = { temperature = "30m" }

[[rule]]
id = "battery"
type = "low_battery"
below = 20

[[rule]]
id = "tamper"
type = "tamper"
"#;

#[test]
fn silent_device_raises_after_its_interval_and_clears_when_it_speaks() {
    let mut e = engine(HEALTH);
    feed(
        &mut e,
        rd("t1", Kind::Temperature, 20.0, "2026-11-22T10:00:00Z"),
    );
    feed(&mut e, rd("m1", Kind::Motion, 1.0, "2026-11-22T10:00:00Z"));
    let out = tick(&mut e, "2026-11-22T10:30:00Z");
    assert_eq!(
        states(&out),
        vec![("silent", AlertState::Raised, "2026-11-22T10:30:00Z".into())]
    );
    assert_eq!(out[0].device, id("t1"));
    let out = tick(&mut e, "2026-11-22T12:00:00Z");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].device, id("m1"));
    let out = feed(
        &mut e,
        rd("t1", Kind::Temperature, 20.0, "2026-11-22T12:10:00Z"),
    );
    assert_eq!(out[0].state, AlertState::Cleared);
}

#[test]
fn a_device_that_checks_in_rarely_is_not_called_silent_before_twice_its_check_in() {
    let mut e = engine(HEALTH);
    // The device library says this motion sensor reports every 3 h when
    // nothing happens (the rule expects a message every 2 h).
    e.set_device(&crate::model::DeviceInfo {
        id: Some(id("m1")),
        checkin_s: Some(3 * 3600),
        ..Default::default()
    });
    feed(&mut e, rd("m1", Kind::Motion, 1.0, "2026-11-22T10:00:00Z"));
    feed(&mut e, rd("m2", Kind::Motion, 1.0, "2026-11-22T10:00:00Z"));
    let out = tick(&mut e, "2026-11-22T12:00:00Z");
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        out[0].device,
        id("m2"),
        "m2 has no check-in: the rule's 2 h"
    );
    assert!(tick(&mut e, "2026-11-22T15:59:00Z").is_empty());
    let out = tick(&mut e, "2026-11-22T16:00:00Z");
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].device, id("m1"), "m1 after twice its 3 h check-in");
}

#[test]
fn low_battery_raises_once_and_clears_above_the_hysteresis() {
    let mut e = engine(HEALTH);
    assert_eq!(
        feed(
            &mut e,
            rd("m1", Kind::Battery, 15.0, "2026-11-22T10:00:00Z")
        )
        .len(),
        1
    );
    assert!(
        feed(
            &mut e,
            rd("m1", Kind::Battery, 14.0, "2026-11-22T11:00:00Z")
        )
        .is_empty()
    );
    assert!(
        feed(
            &mut e,
            rd("m1", Kind::Battery, 22.0, "2026-11-22T11:10:00Z")
        )
        .is_empty()
    );
    let out = feed(
        &mut e,
        rd("m1", Kind::Battery, 100.0, "2026-11-22T11:20:00Z"),
    );
    assert_eq!(out[0].state, AlertState::Cleared);
    assert_eq!(
        feed(
            &mut e,
            rd("m2", Kind::BatteryLow, 1.0, "2026-11-22T11:20:00Z")
        )
        .len(),
        1
    );
}

#[test]
fn tamper_raises_and_clears_when_the_cover_is_closed() {
    let mut e = engine(HEALTH);
    assert_eq!(
        feed(&mut e, rd("m1", Kind::Tamper, 1.0, "2026-11-22T10:00:00Z"))[0].state,
        AlertState::Raised
    );
    assert!(feed(&mut e, rd("m1", Kind::Tamper, 1.0, "2026-11-22T10:05:00Z")).is_empty());
    assert_eq!(
        feed(&mut e, rd("m1", Kind::Tamper, 0.0, "2026-11-22T10:06:00Z"))[0].state,
        AlertState::Cleared
    );
}

pub(super) const ROUTINE: &str = r#"
[[rule]]
id = "late-start"
type = "routine"
room = "kitchen"
window = "05:00-12:00"
min_days = 7
days = 14
margin = "30m"
percentile = 95
"#;

#[test]
fn routine_learns_for_min_days_then_alerts_when_today_is_late() {
    let mut e = engine(ROUTINE);
    place(&mut e, "k1", "kitchen", None);
    for day in 10..17 {
        assert_eq!(e.status()[0].state, "learning");
        feed(
            &mut e,
            rd(
                "k1",
                Kind::Motion,
                1.0,
                &format!("2026-11-{day}T07:{:02}:00Z", day),
            ),
        );
    }
    let st = &e.status()[0];
    assert_eq!(st.state, "armed", "{st:?}");
    assert!(st.detail.contains("07:46"), "{st:?}");
    assert!(tick(&mut e, "2026-11-17T07:45:00Z").is_empty());
    let out = tick(&mut e, "2026-11-17T08:00:00Z");
    assert_eq!(
        states(&out),
        vec![(
            "late-start",
            AlertState::Raised,
            "2026-11-17T07:46:00Z".into()
        )]
    );
    assert_eq!(out[0].room.as_deref(), Some("kitchen"));
    let out = feed(&mut e, rd("k1", Kind::Motion, 1.0, "2026-11-17T09:00:00Z"));
    assert_eq!(out[0].state, AlertState::Cleared);
    // An on-time day raises nothing.
    feed(&mut e, rd("k1", Kind::Motion, 1.0, "2026-11-18T07:00:00Z"));
    assert!(tick(&mut e, "2026-11-18T13:00:00Z").is_empty());
}

#[test]
fn routine_status_says_how_many_days_are_learnt() {
    let mut e = engine(ROUTINE);
    place(&mut e, "k1", "kitchen", None);
    let hist: Vec<Reading> = (1..6)
        .map(|d| rd("k1", Kind::Motion, 1.0, &format!("2026-11-0{d}T07:00:00Z")))
        .collect();
    e.learn_from_history(hist.iter());
    assert_eq!(e.status()[0].detail, "learning: 5 of 7 days");
}

#[test]
fn routine_check_time_stays_on_local_clock_across_the_spring_change() {
    let mut e = engine(ROUTINE);
    place(&mut e, "k1", "kitchen", None);
    // Learnt in GMT: first activity at 07:00 local every day.
    let hist: Vec<Reading> = (21..28)
        .map(|d| rd("k1", Kind::Motion, 1.0, &format!("2026-03-{d}T07:00:00Z")))
        .collect();
    e.learn_from_history(hist.iter());
    // The clocks went forward on the 29th; on the 30th 07:30 BST is 06:30Z.
    feed(&mut e, rd("k1", Kind::Motion, 1.0, "2026-03-29T06:00:00Z"));
    let out = tick(&mut e, "2026-03-30T07:00:00Z");
    assert_eq!(
        states(&out),
        vec![(
            "late-start",
            AlertState::Raised,
            "2026-03-30T06:30:00Z".into()
        )]
    );
}

#[test]
fn selectors_follow_devices_that_move_rooms() {
    let mut e = engine(COLD);
    feed(
        &mut e,
        rd("t1", Kind::Temperature, 15.0, "2026-11-22T10:00:00Z"),
    );
    assert!(
        tick(&mut e, "2026-11-22T11:00:00Z").is_empty(),
        "not in the living room yet"
    );
    place(&mut e, "t1", "living_room", None);
    feed(
        &mut e,
        rd("t1", Kind::Temperature, 15.0, "2026-11-22T11:01:00Z"),
    );
    assert_eq!(tick(&mut e, "2026-11-22T11:31:00Z").len(), 1);
}
