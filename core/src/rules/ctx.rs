//! The handlers' view of the engine ([`Ctx`]): arming timers, and raising
//! and clearing alerts ([`Ctx::emit`], the one place every rule kind makes
//! its alerts, from a [`Cause`] and a sentence) with the text helpers the
//! kinds share (their own sentences live with them, in `kind/`).
//!
//! Invariants: a slot has at most one live heap entry (`queued`); moving a
//! deadline later never touches the heap; a raise leaves the slot `Raised`
//! and unacknowledged, a clear leaves it `Idle`; every alert names its
//! rule, device, room (when known) and a sentence.

use jiff::tz::TimeZone;

use std::sync::Arc;

use super::devices::Devices;
use super::rule::{Compiled, Phase, RULE_SUBJECT, Slot};
use super::spec::{Per, RuleType};
use super::timers::{Entry, Timers};
use crate::model::{Alert, AlertState, DeviceId, Instance, Kind, Reading, Time};

/// What the handlers may touch besides their rule.
pub struct Ctx<'a> {
    pub devs: &'a Devices,
    pub tz: &'a TimeZone,
    pub timers: &'a mut Timers,
    pub out: &'a mut Vec<Alert>,
    /// The subject whose slot the handler works on (names the alert
    /// instance); set by the dispatch, changed by a handler that works on
    /// another slot of its rule.
    pub subject: u32,
    /// `(rule, subject)` of other slots a handler changed (besides the one
    /// it was called for): the journal saves them too.
    pub touched: Vec<(u32, u32)>,
}

impl<'a> Ctx<'a> {
    /// A context for handlers working on `subject`'s slot, nothing touched yet.
    pub fn new(
        devs: &'a Devices,
        tz: &'a TimeZone,
        timers: &'a mut Timers,
        out: &'a mut Vec<Alert>,
        subject: u32,
    ) -> Ctx<'a> {
        Ctx {
            devs,
            tz,
            timers,
            out,
            subject,
            touched: Vec::new(),
        }
    }

    /// Sets a slot's logical deadline, queueing a heap entry only if the
    /// new time is earlier than the live one (see timers.rs).
    pub fn arm(&mut self, slot: &mut Slot, rule: u32, subject: u32, d: Option<i64>) {
        slot.deadline = d.into();
        let Some(d) = d else { return };
        match slot.queued.get() {
            Some(q) if q <= d => {}
            q => {
                if q.is_none() {
                    self.timers.live += 1;
                }
                slot.queued = Some(d).into();
                self.timers.push(Entry {
                    at: Time(d),
                    rule,
                    subject,
                });
            }
        }
    }

    /// Raises or clears: the one place a rule makes an alert. `Raised`
    /// makes the slot one open, unacknowledged alert; `Cleared` returns it
    /// to idle (acknowledgement forgotten). Then the alert is pushed, with
    /// `what` as its sentence unless the rule has a message template. When
    /// the phase began (`slot.since`: cooldowns, clocks) is the caller's.
    pub fn emit(&mut self, slot: &mut Slot, state: AlertState, cause: &Cause<'_>, what: &str) {
        slot.phase = match state {
            AlertState::Raised => Phase::Raised,
            AlertState::Cleared => Phase::Idle,
        };
        slot.acked = false;
        if state == AlertState::Raised {
            slot.opened = cause.at;
        }
        let instance = self.instance(cause.rule, slot.opened);
        self.push(state, cause, what, None, instance);
    }

    /// Clears the slot's open alert: "Resolved: {what}[ in the {room}][
    /// ({name})] — {how}", named after the device the alert was raised on
    /// (`cause.dev`) and carrying its instance; `how` says what resolved
    /// it (which device, the value now).
    pub fn resolve(&mut self, slot: &mut Slot, cause: &Cause<'_>, what: &str, how: &str) {
        slot.phase = Phase::Idle;
        slot.acked = false;
        let instance = self.instance(cause.rule, slot.opened);
        self.push(AlertState::Cleared, cause, what, Some(how), instance);
    }

    /// The instance id of the alert a slot of `rule` opened at `opened`:
    /// `RULE/SUBJECT/MS` (subject: device id, room name, or `home`).
    fn instance(&self, rule: &Compiled, opened: i64) -> Instance {
        let per_room = rule.spec.kind == RuleType::Inactivity && rule.per == Per::Room;
        let subject: &str = match self.subject {
            RULE_SUBJECT => "home",
            s if per_room => self.devs.room_by_index(s).unwrap_or("room"),
            s => self.devs.get(s).map_or("device", |d| d.id.as_str()),
        };
        let id = format!("{}/{subject}/{opened}", rule.spec.id);
        Instance {
            instance: Arc::from(id),
            attempt: 1,
        }
    }

    /// "in the hall (Hall PIR)": where a device is, for `how` texts.
    pub fn where_is(&self, dev: u32) -> String {
        let d = self.devs.get(dev);
        let name = d.map_or("a sensor", |d| d.name.as_deref().unwrap_or(d.id.as_str()));
        match self.devs.room_name(dev) {
            Some(r) => format!("in the {r} ({name})"),
            None => format!("({name})"),
        }
    }

    fn push(
        &mut self,
        state: AlertState,
        cause: &Cause<'_>,
        what: &str,
        how: Option<&str>,
        instance: Instance,
    ) {
        let spec = &cause.rule.spec;
        let (dev, value) = (cause.dev, cause.value);
        let d = self.devs.get(dev);
        let own_room = match spec.rooms.0.as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
        };
        let room = self.devs.room_name(dev).or(own_room).map(str::to_string);
        let name: Option<&str> = d.map(|d| d.name.as_deref().unwrap_or(d.id.as_str()));
        let device = d.map_or_else(placeholder, |d| d.id.clone());
        let base = match &spec.message {
            Some(tpl) => tpl
                .replace("{name}", name.unwrap_or("the home"))
                .replace("{room}", room.as_deref().unwrap_or("home"))
                .replace("{device}", device.as_str())
                .replace("{rule}", &spec.id)
                .replace(
                    "{value}",
                    &cause.shown.or(value).map_or_else(String::new, fmt_value),
                ),
            None => sentence(state, what, room.as_deref(), name, how),
        };
        let message = match (state, &spec.message, how) {
            (AlertState::Cleared, Some(_), Some(how)) => format!("Resolved: {base} — {how}"),
            (AlertState::Cleared, Some(_), None) => format!("Resolved: {base}"),
            _ => base,
        };
        self.out.push(Alert {
            uid: None,
            rule: spec.id.clone(),
            severity: cause.rule.severity,
            state,
            device,
            room,
            at: Time(cause.at),
            message,
            value,
            kind: cause.kind,
            time_trusted: true,
            instance: Some(instance),
        });
    }
}

/// What an alert is about besides its sentence: the rule, the device
/// (named in the alert), when, and the reading behind it (none for a timer).
pub struct Cause<'a> {
    pub rule: &'a Compiled,
    pub dev: u32,
    pub at: i64,
    pub value: Option<f64>,
    pub kind: Option<Kind>,
    /// What `{value}` shows in a message template when it is not `value`
    /// (a clear shows the value the alert was raised with).
    pub shown: Option<f64>,
}

impl<'a> Cause<'a> {
    /// A reading of device `dev`: its time, value and kind.
    pub fn reading(rule: &'a Compiled, dev: u32, r: &Reading) -> Cause<'a> {
        Cause {
            rule,
            dev,
            at: r.at.0,
            value: Some(r.value),
            kind: Some(r.kind),
            shown: None,
        }
    }

    /// A timer, due at `at`: no value, no kind.
    pub fn timer(rule: &'a Compiled, dev: u32, at: i64) -> Cause<'a> {
        Cause {
            rule,
            dev,
            at,
            value: None,
            kind: None,
            shown: None,
        }
    }
}

/// "[Resolved: ]{what}[ in the {room}][ ({name})][ — {how}]", built with
/// one allocation of the exact size (this runs once per alert: 100k timers
/// firing together build 100k of them).
fn sentence(
    state: AlertState,
    what: &str,
    room: Option<&str>,
    name: Option<&str>,
    how: Option<&str>,
) -> String {
    const RESOLVED: &str = "Resolved: ";
    const DASH: &str = " — ";
    let resolved = state == AlertState::Cleared;
    let len = if resolved { RESOLVED.len() } else { 0 }
        + what.len()
        + room.map_or(0, |r| " in the ".len() + r.len())
        + name.map_or(0, |n| " ()".len() + n.len())
        + how.map_or(0, |h| DASH.len() + h.len());
    let mut s = String::with_capacity(len);
    if resolved {
        s.push_str(RESOLVED);
    }
    s.push_str(what);
    if let Some(r) = room {
        s.push_str(" in the ");
        s.push_str(r);
    }
    if let Some(n) = name {
        s.push_str(" (");
        s.push_str(n);
        s.push(')');
    }
    if let Some(h) = how {
        s.push_str(DASH);
        s.push_str(h);
    }
    s
}

/// The device id used for rule-wide alerts before any device was seen.
pub fn placeholder() -> DeviceId {
    DeviceId::new("home").unwrap_or_else(|_| unreachable!("\"home\" is a valid device id"))
}

pub(super) fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub(super) fn dur_text(ms: i64) -> String {
    let m = ms / 60_000;
    if m >= 60 && m % 60 == 0 {
        format!("{} h", m / 60)
    } else if m >= 1 {
        format!("{m} min")
    } else {
        format!("{} s", ms / 1000)
    }
}

pub(super) fn capital(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f
            .to_uppercase()
            .chain(c)
            .collect::<String>()
            .replace('_', " "),
        None => String::new(),
    }
}

/// "now 17.6 °C" / "now 85%": the value a clear reports.
pub(super) fn now_value(kind: Kind, v: f64) -> String {
    format!("now {}{}", fmt_value(v), unit(kind))
}

pub(super) fn unit(kind: Kind) -> String {
    match kind.unit() {
        "" => String::new(),
        "%" => "%".into(),
        u => format!(" {u}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentence_matches_the_formatted_text_in_every_case() {
        for state in [AlertState::Raised, AlertState::Cleared] {
            for room in [None, Some("hall")] {
                for name in [None, Some("Front door")] {
                    let base = match (room, name) {
                        (Some(r), Some(n)) => format!("Door open in the {r} ({n})"),
                        (Some(r), None) => format!("Door open in the {r}"),
                        (None, Some(n)) => format!("Door open ({n})"),
                        (None, None) => "Door open".to_string(),
                    };
                    let want = match state {
                        AlertState::Raised => base,
                        AlertState::Cleared => format!("Resolved: {base}"),
                    };
                    let got = sentence(state, "Door open", room, name, None);
                    assert_eq!(got, want);
                    assert_eq!(got.capacity(), got.len());
                    let got = sentence(state, "Door open", room, name, Some("door closed"));
                    assert_eq!(got, format!("{want} — door closed"));
                    assert_eq!(got.capacity(), got.len());
                }
            }
        }
    }
}
