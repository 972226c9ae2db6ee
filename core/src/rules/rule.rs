//! Compiled rules and their per-subject state: what a rule is after the
//! spec is compiled ([`Compiled`]: durations in ms, defaults applied, the
//! kinds it can be routed), how its selectors match a device, and the
//! [`Slot`] each subject (device, room or the whole rule) keeps.
//!
//! Invariants: a `Rule` keeps the exact spec it was compiled from (reload
//! and restore compare specs to decide whether state carries over); the
//! compiled part never changes after `compile`, so handlers may read it
//! while they hold a slot; a slot in `Raised` is one open alert.

use std::collections::HashMap;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use super::devices::Devices;
use super::devices::IdentBuild;
use super::routine::Routine;
use super::spec::{Per, Resolve, RuleSpec, RuleType, Step, Want};
use super::window::Window;
use crate::model::{Kind, Severity};

/// The subject of rule-wide state (one clock for the whole rule).
pub const RULE_SUBJECT: u32 = u32::MAX;
/// "No device" in [`Slot::dev`].
pub const NO_DEV: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    #[default]
    Idle,
    Pending,
    Raised,
}

/// An optional time (ms) in 8 bytes instead of `Option<i64>`'s 16:
/// `i64::MIN` stands for none (no instant is that far back; `Some(i64::MIN)`
/// is kept as one millisecond later). It keeps a [`Slot`] at 56 bytes, and
/// a slot table entry (with its `u32` key) at 64: a care site's panic rule
/// holds one slot per pendant (at 50,000 pendants, 1 MB less).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct OptMs(i64);

impl OptMs {
    pub const NONE: OptMs = OptMs(i64::MIN);

    pub fn get(self) -> Option<i64> {
        (self.0 != i64::MIN).then_some(self.0)
    }

    pub fn is_some(self) -> bool {
        self.0 != i64::MIN
    }

    pub fn is_none(self) -> bool {
        self.0 == i64::MIN
    }
}

impl From<Option<i64>> for OptMs {
    fn from(v: Option<i64>) -> OptMs {
        v.map_or(OptMs::NONE, |ms| OptMs(ms.max(i64::MIN + 1)))
    }
}

impl std::fmt::Debug for OptMs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

/// The state of one rule for one subject (device, room or the whole rule).
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    pub phase: Phase,
    pub acked: bool,
    /// When the current phase began (for routine rules: the window instance checked).
    pub since: i64,
    /// Last activity / message (inactivity, absence, silent).
    pub last: i64,
    /// The logical timer; none = not armed.
    pub deadline: OptMs,
    /// The time of this slot's live heap entry, if any.
    pub queued: OptMs,
    pub value: f64,
    pub dev: u32,
    /// When the open alert was raised (ms): part of its instance id, so
    /// an identifier, never shifted with the clock.
    pub opened: i64,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            phase: Phase::Idle,
            acked: false,
            since: 0,
            last: 0,
            deadline: OptMs::NONE,
            queued: OptMs::NONE,
            value: 0.0,
            dev: NO_DEV,
            opened: 0,
        }
    }
}

/// What a spec compiles to: durations in ms, defaults applied, the kinds
/// that can reach the rule. Never changes once compiled.
#[derive(Debug)]
pub struct Compiled {
    pub spec: RuleSpec,
    pub severity: Severity,
    pub for_ms: i64,
    pub within_ms: i64,
    pub cooldown_ms: i64,
    pub hysteresis: f64,
    pub min_value: f64,
    pub clear: bool,
    pub per: Per,
    pub want: Want,
    /// Kinds that can reach the rule; `None` = any kind.
    pub route_kinds: Option<Vec<Kind>>,
    /// The alert sentence of clock-driven types, built once.
    pub what: String,
    /// Window rules: a state holding at the window start counts (`at_start`).
    pub at_start: bool,
    /// Window rules: the situation ends only with motion indoors after the
    /// state reversed (`resolve = "inside"`).
    pub inside: bool,
    /// Re-send interval of unacknowledged alerts (ms; 0 = no escalation)
    /// and how many re-sends at most.
    pub escalate_ms: i64,
    pub escalate_max: u32,
    /// Local warning before the alert goes out (ms; 0 = none: `prealarm`).
    pub prealarm_ms: i64,
}

/// Kinds that are evidence of someone moving indoors (`resolve = "inside"`).
pub const EVIDENCE: [Kind; 2] = [Kind::Motion, Kind::Occupancy];

/// A compiled rule and its state. It reads as its [`Compiled`] part
/// (`rule.spec`, through `Deref`); a handler that holds one of the slots
/// while it reads the rule borrows `compiled` and `slots` apart.
#[derive(Debug)]
pub struct Rule {
    pub compiled: Compiled,
    pub slots: HashMap<u32, Slot, IdentBuild>,
    pub routine: Option<Box<Routine>>,
    /// Whether rule-wide clocks were started (first event after build/reload).
    pub started: bool,
}

impl Deref for Rule {
    type Target = Compiled;

    fn deref(&self) -> &Compiled {
        &self.compiled
    }
}

const ACTIVITY: [Kind; 3] = [Kind::Motion, Kind::Occupancy, Kind::Contact];
/// What says where she is (dwell rules): activity, and being in bed or
/// seated (a bedroom with a bed mat and no motion sensor).
pub const PRESENCE: [Kind; 5] = [
    Kind::Motion,
    Kind::Occupancy,
    Kind::Contact,
    Kind::Bed,
    Kind::Chair,
];

pub(super) fn ms(d: Option<crate::setting::Dur>, default_ms: i64) -> i64 {
    d.map_or(default_ms, |d| {
        i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX)
    })
}

impl Rule {
    pub fn compile(spec: &RuleSpec) -> Rule {
        let t = spec.kind;
        let severity = spec.severity.unwrap_or(match t {
            RuleType::Immediate | RuleType::Sequence => Severity::Urgent,
            RuleType::Silent | RuleType::LowBattery | RuleType::GoneOut => Severity::Info,
            _ => Severity::Warning,
        });
        let kinds = &spec.kinds.0;
        let route_kinds = match t {
            RuleType::LowBattery => Some(vec![Kind::Battery, Kind::BatteryLow]),
            RuleType::Tamper => Some(vec![Kind::Tamper]),
            RuleType::Inactivity | RuleType::Absence | RuleType::Routine if kinds.is_empty() => {
                Some(ACTIVITY.to_vec())
            }
            RuleType::Dwell if kinds.is_empty() => Some(PRESENCE.to_vec()),
            RuleType::GoneOut => {
                let mut k = vec![Kind::Contact];
                k.extend(EVIDENCE);
                Some(k)
            }
            RuleType::Silent if kinds.is_empty() => None,
            RuleType::Sequence => {
                let steps = spec.start.iter().chain(spec.cancel.iter());
                let mut all = Vec::new();
                let mut any = false;
                for s in steps {
                    any |= s.kinds.0.is_empty();
                    all.extend(s.kinds.0.iter().copied());
                }
                all.sort();
                all.dedup();
                (!any).then_some(all)
            }
            RuleType::Window if inside(spec) => {
                let mut k = kinds.clone();
                k.extend(EVIDENCE.iter().filter(|e| !kinds.contains(e)));
                Some(k)
            }
            _ => Some(kinds.clone()),
        };
        let compiled = Compiled {
            severity,
            for_ms: ms(spec.for_, 0),
            within_ms: ms(spec.within, 0),
            cooldown_ms: ms(spec.cooldown, 120_000),
            hysteresis: spec.hysteresis.unwrap_or(if t == RuleType::LowBattery {
                5.0
            } else {
                0.5
            }),
            min_value: spec.min_value.unwrap_or(0.5),
            clear: spec.clear.unwrap_or(t == RuleType::Tamper),
            per: spec.per.unwrap_or_default(),
            want: spec.state.unwrap_or(Want::Active),
            route_kinds,
            what: format!("No activity for {}", super::ctx::dur_text(ms(spec.for_, 0))),
            at_start: spec.at_start.unwrap_or(true),
            inside: t == RuleType::Window && inside(spec),
            escalate_ms: ms(spec.escalate, 0),
            escalate_max: spec.escalate_max.unwrap_or(3),
            prealarm_ms: ms(spec.prealarm, 0),
            spec: spec.clone(),
        };
        Rule {
            compiled,
            slots: HashMap::default(),
            routine: (t == RuleType::Routine).then(Box::default),
            started: false,
        }
    }
}

impl Compiled {
    /// Does a reading of `kind` from device `dev` concern this rule?
    pub fn matches(&self, devs: &Devices, dev: u32, kind: Kind) -> bool {
        if let Some(k) = &self.route_kinds
            && !k.contains(&kind)
        {
            return false;
        }
        let s = &self.spec;
        if self.inside && !s.kinds.0.contains(&kind) {
            // Evidence of being back inside: any motion sensor.
            return devs.get(dev).is_some();
        }
        match s.kind {
            // Where she is comes from every room.
            RuleType::Dwell => return devs.get(dev).is_some(),
            RuleType::GoneOut if kind != Kind::Contact => return devs.get(dev).is_some(),
            _ => {}
        }
        if s.kind == RuleType::Sequence {
            return s
                .start
                .iter()
                .chain(s.cancel.iter())
                .any(|st| step_matches(st, devs, dev, kind, None));
        }
        selects(&s.devices.0, &s.rooms.0, &s.roles.0, devs, dev)
    }

    pub(super) fn window(&self) -> Option<&Window> {
        self.spec.window.as_ref()
    }

    pub(super) fn below(&self) -> Option<f64> {
        match self.spec.kind {
            RuleType::LowBattery => Some(self.spec.below.unwrap_or(20.0)),
            _ => self.spec.below,
        }
    }
}

/// Whether a window rule needs motion indoors to resolve (`resolve`; by
/// default a contact opening does: a door that shuts behind her is not
/// her coming back).
fn inside(spec: &RuleSpec) -> bool {
    match spec.resolve {
        Some(r) => r == Resolve::Inside,
        None => {
            spec.kinds.0.contains(&Kind::Contact)
                && spec.state.unwrap_or(Want::Active) == Want::Active
                && !spec.kinds.0.iter().any(|k| EVIDENCE.contains(k))
        }
    }
}

fn selects(
    devices: &[String],
    rooms: &[String],
    roles: &[String],
    devs: &Devices,
    dev: u32,
) -> bool {
    let Some(d) = devs.get(dev) else { return false };
    (devices.is_empty() || devices.iter().any(|x| x.as_str() == d.id.as_str()))
        && (rooms.is_empty()
            || devs
                .room_name(dev)
                .is_some_and(|r| rooms.iter().any(|x| x == r)))
        && (roles.is_empty()
            || d.role
                .as_deref()
                .is_some_and(|r| roles.iter().any(|x| x == r)))
}

/// Does a reading match a sequence step? `value: None` ignores the state.
pub fn step_matches(st: &Step, devs: &Devices, dev: u32, kind: Kind, value: Option<f64>) -> bool {
    (st.kinds.0.is_empty() || st.kinds.0.contains(&kind))
        && selects(&st.devices.0, &st.rooms.0, &st.roles.0, devs, dev)
        && value.is_none_or(|v| st.state.unwrap_or(Want::Active).matches(v))
}

#[cfg(test)]
mod tests {
    use super::{OptMs, Slot};

    #[test]
    fn a_slot_table_entry_is_64_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 56);
        assert_eq!(std::mem::size_of::<(u32, Slot)>(), 64);
    }

    #[test]
    fn an_optional_time_reads_back_what_was_put() {
        for v in [
            None,
            Some(0),
            Some(-1),
            Some(1_733_400_000_000),
            Some(i64::MAX),
        ] {
            assert_eq!(OptMs::from(v).get(), v);
            assert_eq!(OptMs::from(v).is_some(), v.is_some());
        }
        assert_eq!(OptMs::from(Some(i64::MIN)).get(), Some(i64::MIN + 1));
        assert_eq!(OptMs::NONE.get(), None);
    }
}
