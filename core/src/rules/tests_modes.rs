//! Dwell, household modes and pre-alarms (issue 16 items 9, 11, 12): what
//! `rules check` says about them, what survives a restart, and the local
//! warnings the shell is asked to carry out.

use super::mode::{Mode, ModeError};
use super::prealarm::WarningAct;
use super::tests::{engine, feed, place, rd, tick};
use super::*;
use crate::model::{AlertState, Severity};

fn t(s: &str) -> Time {
    Time::parse_rfc3339(s).unwrap()
}

fn problems(rules: &str) -> String {
    RuleSet::parse(rules, "r.toml").unwrap_err().to_string()
}

#[test]
fn rules_check_names_the_line_and_key_of_bad_dwell_gone_out_and_prealarm_rules() {
    let msg = problems("[[rule]]\nid = \"d\"\ntype = \"dwell\"\nfor = \"45m\"\n");
    assert!(
        msg.contains("rule[0].rooms") && msg.contains("the room(s) to watch"),
        "{msg}"
    );
    let msg = problems(
        "[[rule]]\nid = \"o\"\ntype = \"gone_out\"\nfor = \"20m\"\nseverity = \"urgent\"\n",
    );
    assert!(
        msg.contains("r.toml:5:") && msg.contains("rule[0].severity"),
        "{msg}"
    );
    assert!(msg.contains("never urgent"), "{msg}");
    let msg = problems(
        "[[rule]]\nid = \"p\"\ntype = \"immediate\"\nkinds = [\"panic\"]\nprealarm = \"60s\"\n",
    );
    assert!(
        msg.contains("r.toml:5:")
            && msg.contains("rule[0].prealarm")
            && msg.contains("not used by rules of type \"immediate\""),
        "{msg}"
    );
    let msg =
        problems("[[rule]]\nid = \"i\"\ntype = \"inactivity\"\nfor = \"4h\"\nprealarm = \"1s\"\n");
    assert!(
        msg.contains("rule[0].prealarm") && msg.contains("between 5s and 10m"),
        "{msg}"
    );
    let msg = problems(
        "[[rule]]\nid = \"d\"\ntype = \"dwell\"\nroom = \"bathroom\"\nfor = \"45m\"\nkinds = [\"temperature\"]\n",
    );
    assert!(
        msg.contains("rule[0].kinds") && msg.contains("say where she is"),
        "{msg}"
    );
}

const MODES: &str = r#"
[[rule]]
id = "still"
type = "inactivity"
kinds = ["motion"]
for = "1h"

[[rule]]
id = "smoke"
type = "immediate"
kinds = ["smoke"]
clear = true
"#;

#[test]
fn away_mode_survives_a_restart_and_stands_up_at_its_expiry() {
    let mut e = engine(MODES);
    place(&mut e, "pir", "lounge", None);
    place(&mut e, "smoke", "kitchen", None);
    feed(&mut e, rd("pir", Kind::Motion, 1.0, "2026-12-08T09:00:00Z"));
    let mut out = Vec::new();
    let until = t("2026-12-08T15:00:00Z");
    e.set_mode(
        Mode::Away,
        Some(until),
        "test",
        t("2026-12-08T09:30:00Z"),
        &mut out,
    )
    .unwrap();
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(e.mode().mode, Mode::Away);
    // Restart: the mode is persisted state.
    let bytes = e.snapshot();
    let mut back = engine(MODES);
    place(&mut back, "pir", "lounge", None);
    place(&mut back, "smoke", "kitchen", None);
    back.restore(&bytes, t("2026-12-08T10:00:00Z")).unwrap();
    assert_eq!(back.mode().mode, Mode::Away);
    assert_eq!(back.mode().until, Some(until));
    assert_eq!(back.next_deadline(), Some(until));
    assert!(
        tick(&mut back, "2026-12-08T14:00:00Z").is_empty(),
        "stood down"
    );
    // Smoke never stands down.
    let out = feed(
        &mut back,
        rd("smoke", Kind::Smoke, 1.0, "2026-12-08T14:10:00Z"),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].severity, Severity::Urgent);
    // Expiry at 15:00: the clock starts there, so the alert is at 16:00.
    assert!(tick(&mut back, "2026-12-08T15:59:00Z").is_empty());
    assert_eq!(back.mode().mode, Mode::Home);
    assert_eq!(back.mode().source, "expired");
    let out = tick(&mut back, "2026-12-08T16:00:00Z");
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].at, t("2026-12-08T16:00:00Z"));
}

#[test]
fn a_mode_in_the_past_or_too_far_or_home_with_until_is_refused() {
    let mut e = engine(MODES);
    let mut out = Vec::new();
    let now = t("2026-12-08T09:00:00Z");
    assert_eq!(
        e.set_mode(
            Mode::Away,
            Some(t("2026-12-08T08:00:00Z")),
            "x",
            now,
            &mut out
        ),
        Err(ModeError::Past)
    );
    assert_eq!(
        e.set_mode(
            Mode::Away,
            Some(t("2027-02-08T08:00:00Z")),
            "x",
            now,
            &mut out
        ),
        Err(ModeError::TooFar)
    );
    assert_eq!(
        e.set_mode(
            Mode::Home,
            Some(t("2026-12-08T10:00:00Z")),
            "x",
            now,
            &mut out
        ),
        Err(ModeError::UntilHome)
    );
    assert!(
        "out".parse::<Mode>().is_err(),
        "the inferred mode cannot be set"
    );
    e.set_mode(Mode::Visitor, None, "x", now, &mut out).unwrap();
    assert_eq!(
        e.mode().until,
        Some(t("2026-12-08T13:00:00Z")),
        "4 h by default"
    );
}

const PRE: &str = r#"
[[rule]]
id = "still"
type = "inactivity"
kinds = ["motion"]
for = "1h"
prealarm = "60s"
"#;

#[test]
fn a_prealarm_warns_then_sends_and_a_press_cancels_with_an_info_record() {
    let mut e = engine(PRE);
    place(&mut e, "pir", "lounge", None);
    place(&mut e, "btn", "lounge", Some("cancel_button"));
    feed(&mut e, rd("pir", Kind::Motion, 1.0, "2026-12-08T09:00:00Z"));
    // 10:00: held back, the siren starts for 60 s.
    assert!(tick(&mut e, "2026-12-08T10:00:00Z").is_empty());
    let w = e.take_warnings();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].act, WarningAct::Start { secs: 60 });
    assert_eq!(e.next_deadline(), Some(t("2026-12-08T10:01:00Z")));
    // A press at 10:00:30 cancels: an info record, raised and closed.
    let out = feed(&mut e, rd("btn", Kind::Switch, 1.0, "2026-12-08T10:00:30Z"));
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].severity, Severity::Info);
    assert!(
        out[0]
            .message
            .starts_with("Pre-alarm cancelled: No activity for 1 h"),
        "{}",
        out[0].message
    );
    assert_eq!(out[1].state, AlertState::Cleared);
    assert_eq!(out[0].instance, out[1].instance);
    assert_eq!(e.take_warnings()[0].act, WarningAct::Cancelled);
    // The clock restarted at the press: held again at 11:00:30, sent at 11:01:30.
    assert!(tick(&mut e, "2026-12-08T11:00:30Z").is_empty());
    assert_eq!(e.take_warnings()[0].act, WarningAct::Start { secs: 60 });
    // Held alerts survive a restart.
    let bytes = e.snapshot();
    let mut back = engine(PRE);
    place(&mut back, "pir", "lounge", None);
    back.restore(&bytes, t("2026-12-08T11:01:00Z")).unwrap();
    assert_eq!(back.prealarms().len(), 1);
    let out = tick(&mut back, "2026-12-08T11:01:30Z");
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].severity, Severity::Warning);
    assert_eq!(
        out[0].at,
        t("2026-12-08T11:00:30Z"),
        "stamped when the condition happened"
    );
    assert_eq!(back.take_warnings()[0].act, WarningAct::Sent);
    // A plug re-reporting "on" is not a press.
    place(&mut back, "plug", "lounge", None);
    assert!(!prealarm::is_cancel_press(
        &rd("plug", Kind::Switch, 1.0, "2026-12-08T12:00:00Z"),
        None
    ));
}
