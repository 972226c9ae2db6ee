//! Care semantics (issue 16): news versus re-reports, alert instances,
//! escalation across a restart, acknowledgement by instance.

use super::eval::is_news;
use super::tests::{engine, feed, place, rd, tick};
use super::*;
use crate::model::{AlertState, Severity};

#[test]
fn only_a_change_or_a_momentary_event_is_news() {
    assert!(is_news(Kind::Contact, None, 1.0), "the first report");
    assert!(!is_news(Kind::Contact, Some(1.0), 1.0), "a re-report");
    assert!(is_news(Kind::Contact, Some(1.0), 0.0));
    assert!(!is_news(Kind::Bed, Some(0.2), 0.0), "same binary state");
    assert!(is_news(Kind::Motion, Some(1.0), 1.0), "every detection");
    assert!(is_news(Kind::Panic, Some(1.0), 1.0), "every press");
    assert!(!is_news(Kind::Temperature, Some(17.5), 17.5));
    assert!(is_news(Kind::Temperature, Some(17.5), 17.4));
}

const PANIC: &str = r#"
[[rule]]
id = "panic"
type = "immediate"
kinds = ["panic"]
escalate = "5m"
escalate_max = 2
"#;

#[test]
fn an_escalation_survives_a_restart_and_stops_at_an_ack_by_instance() {
    let mut e = engine(PANIC);
    place(&mut e, "p1", "lounge", None);
    let out = feed(&mut e, rd("p1", Kind::Panic, 1.0, "2026-11-23T10:00:00Z"));
    let inst = out[0].instance.clone().unwrap();
    assert_eq!(&*inst.instance, "panic/p1/1795428000000");
    assert_eq!(inst.attempt, 1);
    let out = tick(&mut e, "2026-11-23T10:05:00Z");
    assert_eq!(out.len(), 1);
    let again = out[0].instance.clone().unwrap();
    assert_eq!(
        (again.instance.clone(), again.attempt),
        (inst.instance.clone(), 2)
    );
    assert_eq!(out[0].severity, Severity::Urgent);
    assert!(
        out[0]
            .message
            .starts_with("Not acknowledged (attempt 2): Panic"),
        "{}",
        out[0].message
    );
    // Restart: the escalation is part of the persisted state.
    let bytes = e.snapshot();
    let mut back = engine(PANIC);
    place(&mut back, "p1", "lounge", None);
    back.restore(&bytes, t0()).unwrap();
    assert_eq!(
        back.next_deadline(),
        Some(Time::parse_rfc3339("2026-11-23T10:10:00Z").unwrap())
    );
    assert!(!back.ack_instance("panic/p1/1", t0()), "another instance");
    assert!(back.ack_instance(&inst.instance, t0()));
    assert!(
        tick(&mut back, "2026-11-23T11:00:00Z").is_empty(),
        "acknowledged: no re-send"
    );
    // Acknowledged (an immediate rule without a clear): a new press is a new instance.
    let out = feed(
        &mut back,
        rd("p1", Kind::Panic, 1.0, "2026-11-23T11:01:00Z"),
    );
    assert_eq!(out[0].state, AlertState::Raised);
    assert_ne!(out[0].instance.as_ref().unwrap().instance, inst.instance);
}

fn t0() -> Time {
    Time::parse_rfc3339("2026-11-23T10:06:00Z").unwrap_or_default()
}

#[test]
fn escalation_keys_are_checked_naming_the_key() {
    let bad = "[[rule]]\nid = \"p\"\ntype = \"immediate\"\nkinds = [\"panic\"]\nescalate_max = 2\n";
    let e = RuleSet::parse(bad, "r.toml").unwrap_err().to_string();
    assert!(
        e.contains("r.toml:5") && e.contains("rule[0].escalate_max"),
        "{e}"
    );
    let bad =
        "[[rule]]\nid = \"p\"\ntype = \"immediate\"\nkinds = [\"panic\"]\nescalate = \"10s\"\n";
    let e = RuleSet::parse(bad, "r.toml").unwrap_err().to_string();
    assert!(e.contains("rule[0].escalate") && e.contains("1m"), "{e}");
    let bad = "[[rule]]\nid = \"w\"\ntype = \"window\"\nkind = \"motion\"\nwindow = \"23:00-06:00\"\nresolve = \"inside\"\n";
    let e = RuleSet::parse(bad, "r.toml").unwrap_err().to_string();
    assert!(
        e.contains("r.toml:6") && e.contains("rule[0].resolve"),
        "{e}"
    );
}
