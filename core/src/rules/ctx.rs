//! The handlers' view of the engine ([`Ctx`]): arming timers and building
//! alerts with human messages.
//!
//! Invariants: a slot has at most one live heap entry (`queued`); moving a
//! deadline later never touches the heap; every alert names its rule,
//! device, room (when known) and a sentence.

use jiff::tz::TimeZone;

use super::devices::Devices;
use super::rule::{Rule, Slot};
use super::spec::{RuleSpec, Want};
use super::timers::{Entry, Timers};
use super::window::{Window, fmt_hhmm};
use crate::model::{Alert, AlertState, DeviceId, Kind, Severity, Time};

/// What the handlers may touch besides their rule.
pub struct Ctx<'a> {
    pub devs: &'a Devices,
    pub tz: &'a TimeZone,
    pub timers: &'a mut Timers,
    pub out: &'a mut Vec<Alert>,
}

impl Ctx<'_> {
    /// Sets a slot's logical deadline, queueing a heap entry only if the
    /// new time is earlier than the live one (see timers.rs).
    pub fn arm(&mut self, slot: &mut Slot, rule: u32, subject: u32, d: Option<i64>) {
        slot.deadline = d;
        let Some(d) = d else { return };
        match slot.queued {
            Some(q) if q <= d => {}
            q => {
                if q.is_none() {
                    self.timers.live += 1;
                }
                slot.queued = Some(d);
                self.timers.push(Entry {
                    at: Time(d),
                    rule,
                    subject,
                });
            }
        }
    }

    /// Builds and emits an alert.
    #[allow(clippy::too_many_arguments)]
    pub fn emit(
        &mut self,
        rule: &Rule,
        dev: u32,
        state: AlertState,
        at: i64,
        value: Option<f64>,
        kind: Option<Kind>,
        what: &str,
    ) {
        self.emit_for(&rule.spec, rule.severity, dev, state, at, value, kind, what);
    }

    /// [`Ctx::emit`] from the rule's parts, for callers holding its slots.
    #[allow(clippy::too_many_arguments)]
    pub fn emit_for(
        &mut self,
        spec: &RuleSpec,
        severity: Severity,
        dev: u32,
        state: AlertState,
        at: i64,
        value: Option<f64>,
        kind: Option<Kind>,
        what: &str,
    ) {
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
                .replace("{value}", &value.map_or_else(String::new, fmt_value)),
            None => sentence(state, what, room.as_deref(), name),
        };
        let message = match (state, &spec.message) {
            (AlertState::Cleared, Some(_)) => format!("Resolved: {base}"),
            _ => base,
        };
        self.out.push(Alert {
            uid: None,
            rule: spec.id.clone(),
            severity,
            state,
            device,
            room,
            at: Time(at),
            message,
            value,
            kind,
        });
    }
}

/// "[Resolved: ]{what}[ in the {room}][ ({name})]", built with one
/// allocation of the exact size (this runs once per alert: 100k timers
/// firing together build 100k of them).
fn sentence(state: AlertState, what: &str, room: Option<&str>, name: Option<&str>) -> String {
    const RESOLVED: &str = "Resolved: ";
    let resolved = state == AlertState::Cleared;
    let len = if resolved { RESOLVED.len() } else { 0 }
        + what.len()
        + room.map_or(0, |r| " in the ".len() + r.len())
        + name.map_or(0, |n| " ()".len() + n.len());
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

pub(super) fn immediate_what(kind: Kind) -> String {
    match kind {
        Kind::Panic => "Panic button pressed".into(),
        Kind::Fall => "Fall detected".into(),
        Kind::Smoke => "Smoke alarm".into(),
        Kind::CarbonMonoxide => "Carbon monoxide alarm".into(),
        Kind::WaterLeak => "Water leak detected".into(),
        Kind::Tamper => "Device tampered with".into(),
        k => format!("{k} alert"),
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

/// "Temperature below 16 °C": the sentence of a threshold alert.
pub(super) fn threshold_what(spec: &RuleSpec, kind: Kind) -> String {
    let what = match (spec.below, spec.above) {
        (Some(b), _) => format!("{} below {}", kind, fmt_value(b)),
        (None, a) => format!("{} above {}", kind, fmt_value(a.unwrap_or(0.0))),
    };
    format!("{}{}", capital(&what), unit(kind))
}

pub(super) fn window_what(rule: &Rule, kind: Kind) -> String {
    window_what_of(rule.want, rule.window(), kind)
}

/// [`window_what`] from the rule's parts, for callers holding its slots.
pub(super) fn window_what_of(want: Want, window: Option<&Window>, kind: Kind) -> String {
    let active = want != Want::Idle;
    let what = match (kind, active) {
        (Kind::Contact, true) => "Door open",
        (Kind::Contact, false) => "Door closed",
        (Kind::Bed, true) => "In bed",
        (Kind::Bed, false) => "Out of bed",
        (Kind::Chair, false) => "Out of the chair",
        (Kind::Motion, true) => "Movement",
        _ => "State",
    };
    match window {
        Some(w) => format!(
            "{what} between {} and {}",
            fmt_hhmm(w.start),
            fmt_hhmm(w.end % 86_400)
        ),
        None => what.to_string(),
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
                    let got = sentence(state, "Door open", room, name);
                    assert_eq!(got, want);
                    assert_eq!(got.capacity(), got.len());
                }
            }
        }
    }
}
