//! Unit tests per rule type, on a virtual clock.

use super::*;
use crate::model::{AlertState, DeviceId, Severity};

pub(super) fn t(s: &str) -> Time {
    Time::parse_rfc3339(s).unwrap()
}

pub(super) fn id(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

pub(super) fn rd(dev: &str, kind: Kind, value: f64, at: &str) -> Reading {
    Reading::new(id(dev), kind, value, t(at)).unwrap()
}

pub(super) fn engine(rules: &str) -> Engine {
    let set = RuleSet::parse(rules, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    Engine::new(&set, TimeZone::get("Europe/London").unwrap()).unwrap()
}

pub(super) fn place(e: &mut Engine, dev: &str, room: &str, role: Option<&str>) {
    e.set_device(&DeviceInfo {
        id: Some(id(dev)),
        room: Some(room.into()),
        role: role.map(str::to_string),
        ..Default::default()
    });
}

/// Feeds a reading at its own time; returns the alerts it caused.
pub(super) fn feed(e: &mut Engine, r: Reading) -> Vec<Alert> {
    let mut out = Vec::new();
    e.on_reading(r.at, &r, &mut out);
    out
}

pub(super) fn tick(e: &mut Engine, at: &str) -> Vec<Alert> {
    let mut out = Vec::new();
    e.on_tick(t(at), &mut out);
    out
}

pub(super) fn states(a: &[Alert]) -> Vec<(&str, AlertState, String)> {
    a.iter()
        .map(|a| (&*a.rule, a.state, a.at.to_string()))
        .collect()
}

#[test]
fn panic_press_raises_an_urgent_alert_naming_the_room() {
    let mut e = Engine::minimal();
    place(&mut e, "d1", "hall", None);
    let out = feed(&mut e, rd("d1", Kind::Panic, 1.0, "2026-11-22T10:00:00Z"));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].severity, Severity::Urgent);
    assert_eq!(out[0].room.as_deref(), Some("hall"));
    assert!(out[0].message.contains("hall"), "{}", out[0].message);
}

#[test]
fn release_and_ordinary_readings_raise_nothing() {
    let mut e = Engine::minimal();
    assert!(feed(&mut e, rd("d1", Kind::Panic, 0.0, "2026-11-22T10:00:00Z")).is_empty());
    assert!(
        feed(
            &mut e,
            rd("d1", Kind::Temperature, 12.0, "2026-11-22T10:00:00Z")
        )
        .is_empty()
    );
}

#[test]
fn repeated_presses_within_cooldown_give_one_alert_until_acknowledged() {
    let mut e = Engine::minimal();
    assert_eq!(
        feed(&mut e, rd("b", Kind::Panic, 1.0, "2026-11-22T10:00:00Z")).len(),
        1
    );
    assert!(feed(&mut e, rd("b", Kind::Panic, 1.0, "2026-11-22T10:00:30Z")).is_empty());
    assert!(e.ack("panic", Some(&id("b")), t("2026-11-22T10:00:40Z")));
    assert!(
        !e.ack("panic", Some(&id("b")), t("2026-11-22T10:00:41Z")),
        "nothing left to ack"
    );
    assert_eq!(
        feed(&mut e, rd("b", Kind::Panic, 1.0, "2026-11-22T10:00:50Z")).len(),
        1
    );
    // After the cooldown a new press is a new situation.
    assert_eq!(
        feed(&mut e, rd("b", Kind::Panic, 1.0, "2026-11-22T10:05:00Z")).len(),
        1
    );
}

#[test]
fn smoke_alarm_clears_when_the_detector_goes_idle_and_alerts_once_meanwhile() {
    let mut e = Engine::minimal();
    assert_eq!(
        feed(&mut e, rd("s", Kind::Smoke, 1.0, "2026-11-22T10:00:00Z")).len(),
        1
    );
    assert!(feed(&mut e, rd("s", Kind::Smoke, 1.0, "2026-11-22T10:10:00Z")).is_empty());
    let out = feed(&mut e, rd("s", Kind::Smoke, 0.0, "2026-11-22T10:15:00Z"));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].state, AlertState::Cleared);
}

#[test]
fn duplicate_and_out_of_order_readings_are_dropped() {
    let mut e = Engine::minimal();
    let r = rd("b", Kind::Panic, 1.0, "2026-11-22T10:00:00Z");
    assert_eq!(feed(&mut e, r.clone()).len(), 1);
    let mut out = Vec::new();
    e.on_reading(t("2026-11-22T10:10:00Z"), &r, &mut out);
    assert!(out.is_empty(), "a redelivered press is not a new press");
    e.on_reading(
        t("2026-11-22T10:10:00Z"),
        &rd("b", Kind::Panic, 1.0, "2026-11-22T09:00:00Z"),
        &mut out,
    );
    assert!(
        out.is_empty(),
        "an older press arriving late is covered by the newer one"
    );
    assert_eq!(e.dropped(), 2);
}

pub(super) const COLD: &str = r#"
[[rule]]
id = "cold-home"
type = "threshold"
kind = "temperature"
room = "living_room"
below = 16.0
hysteresis = 1.0
for = "30m"

[[rule]]
id = "heat"
type = "threshold"
kind = "temperature"
above = 30.0
for = "2h"
"#;

#[test]
fn cold_home_raises_after_thirty_minutes_below_and_clears_with_hysteresis() {
    let mut e = engine(COLD);
    place(&mut e, "t1", "living_room", None);
    assert!(
        feed(
            &mut e,
            rd("t1", Kind::Temperature, 15.5, "2026-11-22T10:00:00Z")
        )
        .is_empty()
    );
    assert!(
        feed(
            &mut e,
            rd("t1", Kind::Temperature, 16.3, "2026-11-22T10:10:00Z")
        )
        .is_empty()
    );
    assert_eq!(e.next_deadline(), Some(t("2026-11-22T10:30:00Z")));
    let out = tick(&mut e, "2026-11-22T10:30:00Z");
    assert_eq!(
        states(&out),
        vec![(
            "cold-home",
            AlertState::Raised,
            "2026-11-22T10:30:00Z".into()
        )]
    );
    assert_eq!(out[0].room.as_deref(), Some("living_room"));
    assert!(
        out[0].message.contains("below 16 °C for 30 min"),
        "{}",
        out[0].message
    );
    assert!(
        feed(
            &mut e,
            rd("t1", Kind::Temperature, 16.5, "2026-11-22T10:40:00Z")
        )
        .is_empty(),
        "inside hysteresis"
    );
    let out = feed(
        &mut e,
        rd("t1", Kind::Temperature, 17.0, "2026-11-22T10:50:00Z"),
    );
    assert_eq!(out[0].state, AlertState::Cleared);
}

#[test]
fn brief_cold_dip_that_recovers_raises_nothing() {
    let mut e = engine(COLD);
    place(&mut e, "t1", "living_room", None);
    feed(
        &mut e,
        rd("t1", Kind::Temperature, 15.0, "2026-11-22T10:00:00Z"),
    );
    feed(
        &mut e,
        rd("t1", Kind::Temperature, 17.5, "2026-11-22T10:20:00Z"),
    );
    assert!(tick(&mut e, "2026-11-22T12:00:00Z").is_empty());
}

#[test]
fn heat_needs_two_hours_above_thirty_anywhere() {
    let mut e = engine(COLD);
    feed(
        &mut e,
        rd("t9", Kind::Temperature, 31.0, "2026-07-01T12:00:00Z"),
    );
    assert!(tick(&mut e, "2026-07-01T13:59:00Z").is_empty());
    let out = tick(&mut e, "2026-07-01T14:00:00Z");
    assert_eq!(
        states(&out),
        vec![("heat", AlertState::Raised, "2026-07-01T14:00:00Z".into())]
    );
}

const DOOR: &str = r#"
[[rule]]
id = "night-door"
type = "window"
kind = "contact"
role = "front_door"
window = "23:00-06:00"
resolve = "reverse"

[[rule]]
id = "night-door-5m"
type = "window"
kind = "contact"
role = "back_door"
window = "23:00-06:00"
for = "5m"
resolve = "reverse"

[[rule]]
id = "out-of-bed"
type = "window"
kind = "bed"
state = "idle"
window = "22:00-07:00"
for = "20m"
"#;

fn door_engine() -> Engine {
    let mut e = engine(DOOR);
    place(&mut e, "front", "hall", Some("front_door"));
    place(&mut e, "back", "kitchen", Some("back_door"));
    place(&mut e, "bed", "bedroom", Some("bed"));
    e
}

#[test]
fn front_door_opened_at_night_raises_and_closing_clears() {
    let mut e = door_engine();
    assert!(
        feed(
            &mut e,
            rd("front", Kind::Contact, 1.0, "2026-11-22T22:00:00Z")
        )
        .is_empty()
    );
    feed(
        &mut e,
        rd("front", Kind::Contact, 0.0, "2026-11-22T22:01:00Z"),
    );
    let out = feed(
        &mut e,
        rd("front", Kind::Contact, 1.0, "2026-11-23T01:00:00Z"),
    );
    assert_eq!(
        states(&out),
        vec![(
            "night-door",
            AlertState::Raised,
            "2026-11-23T01:00:00Z".into()
        )]
    );
    assert_eq!(out[0].room.as_deref(), Some("hall"));
    let out = feed(
        &mut e,
        rd("front", Kind::Contact, 0.0, "2026-11-23T01:02:00Z"),
    );
    assert_eq!(out[0].state, AlertState::Cleared);
}

#[test]
fn door_closed_within_five_minutes_raises_nothing_but_left_open_does() {
    let mut e = door_engine();
    feed(
        &mut e,
        rd("back", Kind::Contact, 1.0, "2026-11-22T23:30:00Z"),
    );
    feed(
        &mut e,
        rd("back", Kind::Contact, 0.0, "2026-11-22T23:33:00Z"),
    );
    assert!(tick(&mut e, "2026-11-22T23:40:00Z").is_empty());
    feed(
        &mut e,
        rd("back", Kind::Contact, 1.0, "2026-11-23T00:10:00Z"),
    );
    let out = tick(&mut e, "2026-11-23T00:20:00Z");
    assert_eq!(
        states(&out),
        vec![(
            "night-door-5m",
            AlertState::Raised,
            "2026-11-23T00:15:00Z".into()
        )]
    );
}

#[test]
fn out_of_bed_at_night_for_twenty_minutes_raises() {
    let mut e = door_engine();
    feed(&mut e, rd("bed", Kind::Bed, 1.0, "2026-11-22T23:00:00Z"));
    feed(&mut e, rd("bed", Kind::Bed, 0.0, "2026-11-23T03:00:00Z"));
    let out = tick(&mut e, "2026-11-23T03:30:00Z");
    assert_eq!(
        states(&out),
        vec![(
            "out-of-bed",
            AlertState::Raised,
            "2026-11-23T03:20:00Z".into()
        )]
    );
    assert!(out[0].message.contains("Out of bed"), "{}", out[0].message);
}

#[test]
fn night_window_follows_local_time_on_the_spring_forward_night() {
    // 2026-03-29 01:00 GMT -> 02:00 BST: 05:30 BST is 04:30Z.
    let mut e = door_engine();
    assert_eq!(
        feed(
            &mut e,
            rd("front", Kind::Contact, 1.0, "2026-03-29T04:30:00Z")
        )
        .len(),
        1
    );
    feed(
        &mut e,
        rd("front", Kind::Contact, 0.0, "2026-03-29T04:31:00Z"),
    );
    // 06:30 BST (05:30Z) is morning already, though it would be 05:30 in GMT.
    assert!(
        feed(
            &mut e,
            rd("front", Kind::Contact, 1.0, "2026-03-29T05:30:00Z")
        )
        .is_empty()
    );
    // 00:30Z is 00:30 GMT, at night.
    let mut e = door_engine();
    assert_eq!(
        feed(
            &mut e,
            rd("front", Kind::Contact, 1.0, "2026-03-29T00:30:00Z")
        )
        .len(),
        1
    );
}

#[test]
fn night_window_follows_local_time_on_the_fall_back_night() {
    // 2026-10-25 02:00 BST -> 01:00 GMT: the night is 8 h long.
    let mut e = door_engine();
    // 22:30Z on the 24th is 23:30 BST: inside.
    assert_eq!(
        feed(
            &mut e,
            rd("front", Kind::Contact, 1.0, "2026-10-24T22:30:00Z")
        )
        .len(),
        1
    );
    feed(
        &mut e,
        rd("front", Kind::Contact, 0.0, "2026-10-24T22:31:00Z"),
    );
    // Both 01:30s (00:30Z BST and 01:30Z GMT) are inside.
    assert_eq!(
        feed(
            &mut e,
            rd("front", Kind::Contact, 1.0, "2026-10-25T00:30:00Z")
        )
        .len(),
        1
    );
    feed(
        &mut e,
        rd("front", Kind::Contact, 0.0, "2026-10-25T00:31:00Z"),
    );
    assert_eq!(
        feed(
            &mut e,
            rd("front", Kind::Contact, 1.0, "2026-10-25T01:30:00Z")
        )
        .len(),
        1
    );
    feed(
        &mut e,
        rd("front", Kind::Contact, 0.0, "2026-10-25T01:31:00Z"),
    );
    // 05:30Z is 05:30 GMT (inside); 06:10Z is 06:10 GMT (outside).
    assert_eq!(
        feed(
            &mut e,
            rd("front", Kind::Contact, 1.0, "2026-10-25T05:30:00Z")
        )
        .len(),
        1
    );
    feed(
        &mut e,
        rd("front", Kind::Contact, 0.0, "2026-10-25T05:31:00Z"),
    );
    assert!(
        feed(
            &mut e,
            rd("front", Kind::Contact, 1.0, "2026-10-25T06:10:00Z")
        )
        .is_empty()
    );
}
