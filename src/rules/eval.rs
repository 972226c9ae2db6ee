//! What each rule type does with a reading and with a fired timer.
//!
//! Invariants: handlers only touch their own rule's slots, the timer queue
//! (through [`Ctx::arm`]) and the output; one *situation* gives one raised
//! alert — a slot in `Raised` never raises again until it is cleared (or,
//! for immediate rules without a clear, until its cooldown or an ack);
//! time comes in as `now` (ms), never from a clock.

use std::collections::HashMap;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::FxBuild;
use super::devices::Devices;
use super::routine::Routine;
use super::spec::{Per, RuleSpec, RuleType, Step, Want};
use super::timers::{Entry, Timers};
use super::window::{Window, fmt_hhmm};
use crate::model::{Alert, AlertState, DeviceId, Kind, Reading, Severity, Time};

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

/// The state of one rule for one subject (device, room or the whole rule).
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    pub phase: Phase,
    pub acked: bool,
    /// When the current phase began (for routine rules: the window instance checked).
    pub since: i64,
    /// Last activity / message (inactivity, absence, silent).
    pub last: i64,
    /// The logical timer; `None` = not armed.
    pub deadline: Option<i64>,
    /// The time of this slot's live heap entry, if any.
    pub queued: Option<i64>,
    pub value: f64,
    pub dev: u32,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            phase: Phase::Idle,
            acked: false,
            since: 0,
            last: 0,
            deadline: None,
            queued: None,
            value: 0.0,
            dev: NO_DEV,
        }
    }
}

/// A compiled rule and its state.
#[derive(Debug)]
pub struct Rule {
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
    pub slots: HashMap<u32, Slot, FxBuild>,
    pub routine: Option<Box<Routine>>,
    /// Whether rule-wide clocks were started (first event after build/reload).
    pub started: bool,
}

const ACTIVITY: [Kind; 3] = [Kind::Motion, Kind::Occupancy, Kind::Contact];

fn ms(d: Option<crate::config::Dur>, default_ms: i64) -> i64 {
    d.map_or(default_ms, |d| {
        i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX)
    })
}

impl Rule {
    pub fn compile(spec: &RuleSpec) -> Rule {
        let t = spec.kind;
        let severity = spec.severity.unwrap_or(match t {
            RuleType::Immediate | RuleType::Sequence => Severity::Urgent,
            RuleType::Silent | RuleType::LowBattery => Severity::Info,
            _ => Severity::Warning,
        });
        let kinds = &spec.kinds.0;
        let route_kinds = match t {
            RuleType::LowBattery => Some(vec![Kind::Battery, Kind::BatteryLow]),
            RuleType::Tamper => Some(vec![Kind::Tamper]),
            RuleType::Inactivity | RuleType::Absence | RuleType::Routine if kinds.is_empty() => {
                Some(ACTIVITY.to_vec())
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
            _ => Some(kinds.clone()),
        };
        Rule {
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
            slots: HashMap::default(),
            routine: (t == RuleType::Routine).then(Box::default),
            started: false,
            spec: spec.clone(),
        }
    }

    /// Does a reading of `kind` from device `dev` concern this rule?
    pub fn matches(&self, devs: &Devices, dev: u32, kind: Kind) -> bool {
        if let Some(k) = &self.route_kinds
            && !k.contains(&kind)
        {
            return false;
        }
        let s = &self.spec;
        if s.kind == RuleType::Sequence {
            return s
                .start
                .iter()
                .chain(s.cancel.iter())
                .any(|st| step_matches(st, devs, dev, kind, None));
        }
        selects(&s.devices.0, &s.rooms.0, &s.roles.0, devs, dev)
    }

    fn window(&self) -> Option<&Window> {
        self.spec.window.as_ref()
    }

    fn below(&self) -> Option<f64> {
        match self.spec.kind {
            RuleType::LowBattery => Some(self.spec.below.unwrap_or(20.0)),
            _ => self.spec.below,
        }
    }

    /// The single room a rule is about, for messages of rule-wide alerts.
    pub fn own_room(&self) -> Option<&str> {
        match self.spec.rooms.0.as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
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
        let d = self.devs.get(dev);
        let room = self
            .devs
            .room_name(dev)
            .or_else(|| rule.own_room())
            .map(str::to_string);
        let name = d.map(|d| d.name.clone().unwrap_or_else(|| d.id.to_string()));
        let device = d.map_or_else(placeholder, |d| d.id.clone());
        let base = match &rule.spec.message {
            Some(tpl) => tpl
                .replace("{name}", name.as_deref().unwrap_or("the home"))
                .replace("{room}", room.as_deref().unwrap_or("home"))
                .replace("{device}", device.as_str())
                .replace("{rule}", &rule.spec.id)
                .replace("{value}", &value.map_or_else(String::new, fmt_value)),
            None => match (&room, &name) {
                (Some(r), Some(n)) => format!("{what} in the {r} ({n})"),
                (Some(r), None) => format!("{what} in the {r}"),
                (None, Some(n)) => format!("{what} ({n})"),
                (None, None) => what.to_string(),
            },
        };
        let message = match state {
            AlertState::Raised => base,
            AlertState::Cleared => format!("Resolved: {base}"),
        };
        self.out.push(Alert {
            rule: rule.spec.id.clone(),
            severity: rule.severity,
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

/// The device id used for rule-wide alerts before any device was seen.
pub fn placeholder() -> DeviceId {
    DeviceId::new("home").unwrap_or_else(|_| unreachable!("\"home\" is a valid device id"))
}

fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn immediate_what(kind: Kind) -> String {
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

fn dur_text(ms: i64) -> String {
    let m = ms / 60_000;
    if m >= 60 && m % 60 == 0 {
        format!("{} h", m / 60)
    } else if m >= 1 {
        format!("{m} min")
    } else {
        format!("{} s", ms / 1000)
    }
}

/// The subject a reading belongs to for this rule.
fn subject_of(rule: &Rule, devs: &Devices, dev: u32) -> Option<u32> {
    match rule.spec.kind {
        RuleType::Inactivity => match rule.per {
            Per::Rule => Some(RULE_SUBJECT),
            Per::Device => Some(dev),
            Per::Room => devs.get(dev).and_then(|d| d.room),
        },
        RuleType::Absence | RuleType::Sequence | RuleType::Routine => Some(RULE_SUBJECT),
        _ => Some(dev),
    }
}

/// When an inactivity clock that last saw activity at `last` runs out.
pub fn inactivity_deadline(rule: &Rule, tz: &TimeZone, last: i64) -> Option<i64> {
    match rule.window() {
        None => Some(last.saturating_add(rule.for_ms)),
        Some(w) => w.after_in_window(tz, Time(last), rule.for_ms).map(|t| t.0),
    }
}

/// Starts rule-wide clocks on the first event the rule sees.
pub fn start(rule: &mut Rule, ri: u32, ctx: &mut Ctx<'_>, now: i64) {
    rule.started = true;
    match rule.spec.kind {
        RuleType::Inactivity
            if rule.per == Per::Rule && !rule.slots.contains_key(&RULE_SUBJECT) =>
        {
            let mut slot = Slot {
                last: now,
                since: now,
                ..Slot::default()
            };
            let d = inactivity_deadline(rule, ctx.tz, now);
            ctx.arm(&mut slot, ri, RULE_SUBJECT, d);
            rule.slots.insert(RULE_SUBJECT, slot);
        }
        RuleType::Absence => {
            if !rule.slots.contains_key(&RULE_SUBJECT)
                && let Some(w) = rule.window().copied()
            {
                let mut slot = Slot {
                    last: now,
                    since: now,
                    ..Slot::default()
                };
                let d = w.instance_at_or_after(ctx.tz, Time(now)).map(|(_, e)| e.0);
                ctx.arm(&mut slot, ri, RULE_SUBJECT, d);
                rule.slots.insert(RULE_SUBJECT, slot);
            }
        }
        RuleType::Routine => super::routine::rearm(rule, ri, ctx, now),
        _ => {}
    }
}

/// A reading reached this rule (its selectors matched).
pub fn on_reading(rule: &mut Rule, ri: u32, ctx: &mut Ctx<'_>, dev: u32, r: &Reading, now: i64) {
    let Some(subject) = subject_of(rule, ctx.devs, dev) else {
        return;
    };
    let v = r.value;
    let at = r.at.0;
    match rule.spec.kind {
        RuleType::Immediate | RuleType::Tamper => {
            if r.is_active() {
                let slot = rule.slots.entry(subject).or_default();
                if slot.phase == Phase::Raised
                    && (rule.clear || now < slot.since + rule.cooldown_ms)
                {
                    return;
                }
                *slot = Slot {
                    phase: Phase::Raised,
                    since: now,
                    value: v,
                    dev,
                    ..Slot::default()
                };
                ctx.emit(
                    rule,
                    dev,
                    AlertState::Raised,
                    at,
                    Some(v),
                    Some(r.kind),
                    &immediate_what(r.kind),
                );
            } else if rule.clear
                && let Some(slot) = rule.slots.get_mut(&subject)
                && slot.phase == Phase::Raised
            {
                slot.phase = Phase::Idle;
                ctx.emit(
                    rule,
                    dev,
                    AlertState::Cleared,
                    at,
                    Some(v),
                    Some(r.kind),
                    &immediate_what(r.kind),
                );
            }
        }
        RuleType::Threshold => {
            let (cond, recovered, what) = match (rule.spec.below, rule.spec.above) {
                (Some(b), _) => (
                    v < b,
                    v >= b + rule.hysteresis,
                    format!("{} below {}", r.kind, fmt_value(b)),
                ),
                (None, Some(a)) => (
                    v > a,
                    v <= a - rule.hysteresis,
                    format!("{} above {}", r.kind, fmt_value(a)),
                ),
                (None, None) => return,
            };
            let what = format!("{}{}", capital(&what), unit(r.kind));
            if !cond && !rule.slots.contains_key(&subject) {
                return;
            }
            let mut slot = rule.slots.remove(&subject).unwrap_or_default();
            match slot.phase {
                Phase::Idle if cond => {
                    slot.value = v;
                    slot.dev = dev;
                    slot.since = now;
                    if rule.for_ms == 0 {
                        slot.phase = Phase::Raised;
                        ctx.emit(
                            rule,
                            dev,
                            AlertState::Raised,
                            at,
                            Some(v),
                            Some(r.kind),
                            &what,
                        );
                    } else {
                        slot.phase = Phase::Pending;
                        ctx.arm(&mut slot, ri, subject, Some(now + rule.for_ms));
                    }
                }
                Phase::Pending if recovered => {
                    slot.phase = Phase::Idle;
                    ctx.arm(&mut slot, ri, subject, None);
                }
                Phase::Raised if recovered => {
                    slot.phase = Phase::Idle;
                    ctx.emit(
                        rule,
                        dev,
                        AlertState::Cleared,
                        at,
                        Some(v),
                        Some(r.kind),
                        &what,
                    );
                }
                _ => slot.value = v,
            }
            rule.slots.insert(subject, slot);
        }
        RuleType::Window => {
            let m = rule.want.matches(v);
            let in_window = rule.window().is_some_and(|w| w.contains(ctx.tz, Time(now)));
            if !m && !rule.slots.contains_key(&subject) {
                return;
            }
            let what = window_what(rule, r.kind);
            let mut slot = rule.slots.remove(&subject).unwrap_or_default();
            match slot.phase {
                Phase::Idle if m && in_window => {
                    slot.value = v;
                    slot.dev = dev;
                    slot.since = now;
                    if rule.for_ms == 0 {
                        slot.phase = Phase::Raised;
                        ctx.emit(
                            rule,
                            dev,
                            AlertState::Raised,
                            at,
                            Some(v),
                            Some(r.kind),
                            &what,
                        );
                    } else {
                        slot.phase = Phase::Pending;
                        ctx.arm(&mut slot, ri, subject, Some(now + rule.for_ms));
                    }
                }
                Phase::Pending if !m => {
                    slot.phase = Phase::Idle;
                    ctx.arm(&mut slot, ri, subject, None);
                }
                Phase::Raised if !m => {
                    slot.phase = Phase::Idle;
                    ctx.emit(
                        rule,
                        dev,
                        AlertState::Cleared,
                        at,
                        Some(v),
                        Some(r.kind),
                        &what,
                    );
                }
                _ => {}
            }
            rule.slots.insert(subject, slot);
        }
        RuleType::Inactivity => {
            let active = v >= rule.min_value;
            let fresh = !rule.slots.contains_key(&subject);
            if fresh && subject == RULE_SUBJECT && !rule.started {
                return;
            }
            let mut slot = rule.slots.remove(&subject).unwrap_or_default();
            if fresh {
                slot.last = now;
                slot.since = now;
                slot.dev = dev;
                let d = inactivity_deadline(rule, ctx.tz, now);
                ctx.arm(&mut slot, ri, subject, d);
            }
            if active {
                slot.last = now;
                slot.dev = dev;
                if slot.phase == Phase::Raised {
                    slot.phase = Phase::Idle;
                    slot.acked = false;
                    ctx.emit(
                        rule,
                        dev,
                        AlertState::Cleared,
                        at,
                        Some(v),
                        Some(r.kind),
                        "Activity resumed",
                    );
                }
                // A live entry pops no later than the new deadline and
                // recomputes it then; only an idle clock needs queueing.
                if slot.queued.is_none() {
                    let d = inactivity_deadline(rule, ctx.tz, now);
                    ctx.arm(&mut slot, ri, subject, d);
                } else if slot.deadline.is_none() {
                    slot.deadline = slot.queued;
                }
            }
            rule.slots.insert(subject, slot);
        }
        RuleType::Absence => {
            if v < rule.min_value {
                return;
            }
            if let Some(slot) = rule.slots.get_mut(&subject) {
                slot.last = now;
                slot.dev = dev;
                if slot.phase == Phase::Raised {
                    slot.phase = Phase::Idle;
                    slot.acked = false;
                    let slot = slot.clone();
                    ctx.emit(
                        rule,
                        dev,
                        AlertState::Cleared,
                        at,
                        Some(v),
                        Some(r.kind),
                        "Activity seen",
                    );
                    rule.slots.insert(subject, slot);
                }
            }
        }
        RuleType::Sequence => {
            let cancels = rule
                .spec
                .cancel
                .iter()
                .any(|s| step_matches(s, ctx.devs, dev, r.kind, Some(v)));
            let starts = rule
                .spec
                .start
                .as_ref()
                .is_some_and(|s| step_matches(s, ctx.devs, dev, r.kind, Some(v)))
                && rule.window().is_none_or(|w| w.contains(ctx.tz, Time(now)));
            let mut slot = rule.slots.remove(&subject).unwrap_or_default();
            if cancels {
                match slot.phase {
                    Phase::Pending => {
                        slot.phase = Phase::Idle;
                        ctx.arm(&mut slot, ri, subject, None);
                    }
                    Phase::Raised => {
                        slot.phase = Phase::Idle;
                        slot.acked = false;
                        ctx.emit(
                            rule,
                            dev,
                            AlertState::Cleared,
                            at,
                            Some(v),
                            Some(r.kind),
                            "Movement resumed",
                        );
                    }
                    Phase::Idle => {}
                }
            } else if starts && slot.phase == Phase::Idle {
                slot.phase = Phase::Pending;
                slot.since = now;
                slot.dev = dev;
                slot.value = v;
                ctx.arm(&mut slot, ri, subject, Some(now + rule.within_ms));
            }
            rule.slots.insert(subject, slot);
        }
        RuleType::Silent => {
            let iv = silent_interval(rule, r.kind);
            let mut slot = rule.slots.remove(&subject).unwrap_or_default();
            slot.last = now;
            slot.dev = dev;
            if slot.phase == Phase::Raised {
                slot.phase = Phase::Idle;
                slot.acked = false;
                ctx.emit(
                    rule,
                    dev,
                    AlertState::Cleared,
                    at,
                    None,
                    Some(r.kind),
                    "Device reporting again",
                );
            }
            let d = slot
                .deadline
                .unwrap_or(i64::MIN)
                .max(now.saturating_add(iv));
            ctx.arm(&mut slot, ri, subject, Some(d));
            rule.slots.insert(subject, slot);
        }
        RuleType::LowBattery => {
            let below = rule.below().unwrap_or(20.0);
            let (low, ok) = match r.kind {
                Kind::Battery => (v < below, v >= below + rule.hysteresis),
                _ => (r.is_active(), !r.is_active()),
            };
            let slot = rule.slots.entry(subject).or_default();
            if low && slot.phase != Phase::Raised {
                *slot = Slot {
                    phase: Phase::Raised,
                    since: now,
                    value: v,
                    dev,
                    ..Slot::default()
                };
                ctx.emit(
                    rule,
                    dev,
                    AlertState::Raised,
                    at,
                    Some(v),
                    Some(r.kind),
                    "Battery low",
                );
            } else if ok && slot.phase == Phase::Raised {
                slot.phase = Phase::Idle;
                ctx.emit(
                    rule,
                    dev,
                    AlertState::Cleared,
                    at,
                    Some(v),
                    Some(r.kind),
                    "Battery low",
                );
            }
        }
        RuleType::Routine => {
            if v >= rule.min_value {
                super::routine::on_activity(rule, ri, ctx, dev, r, now);
            }
        }
    }
}

/// A timer of this rule is due (its slot's deadline is `≤ now`).
pub fn on_timer(rule: &mut Rule, ri: u32, ctx: &mut Ctx<'_>, subject: u32, now: i64) {
    let Some(mut slot) = rule.slots.remove(&subject) else {
        return;
    };
    let due = slot.deadline.unwrap_or(now);
    slot.deadline = None;
    match rule.spec.kind {
        RuleType::Threshold | RuleType::Window | RuleType::Sequence
            if slot.phase == Phase::Pending =>
        {
            slot.phase = Phase::Raised;
            slot.acked = false;
            let what = match rule.spec.kind {
                RuleType::Threshold => {
                    let kind = rule
                        .spec
                        .kinds
                        .0
                        .first()
                        .copied()
                        .unwrap_or(Kind::Temperature);
                    let (dir, lim) = match (rule.spec.below, rule.spec.above) {
                        (Some(b), _) => ("below", b),
                        (_, a) => ("above", a.unwrap_or(0.0)),
                    };
                    format!(
                        "{} {dir} {}{} for {}",
                        capital(kind.as_str()),
                        fmt_value(lim),
                        unit(kind),
                        dur_text(rule.for_ms)
                    )
                }
                RuleType::Window => {
                    let kind = rule.spec.kinds.0.first().copied().unwrap_or(Kind::Contact);
                    format!("{} for {}", window_what(rule, kind), dur_text(rule.for_ms))
                }
                _ => format!(
                    "No return within {} — possible fall",
                    dur_text(rule.within_ms)
                ),
            };
            ctx.emit(
                rule,
                slot.dev,
                AlertState::Raised,
                due,
                Some(slot.value),
                None,
                &what,
            );
        }
        RuleType::Inactivity if slot.phase == Phase::Idle => {
            match inactivity_deadline(rule, ctx.tz, slot.last) {
                // Later than this entry: re-queue even if already past, so
                // timers fire in deadline order (restart-proof).
                Some(d) if d > due => ctx.arm(&mut slot, ri, subject, Some(d)),
                Some(d) => {
                    slot.phase = Phase::Raised;
                    slot.acked = false;
                    slot.since = d;
                    let what = format!("No activity for {}", dur_text(rule.for_ms));
                    ctx.emit(rule, slot.dev, AlertState::Raised, d, None, None, &what);
                }
                None => {}
            }
        }
        RuleType::Absence => {
            if let Some(w) = rule.window().copied() {
                let inst = w.instance_at_or_after(ctx.tz, Time(due - 1));
                if let Some((s, e)) = inst
                    && slot.last < s.0
                    && slot.phase == Phase::Idle
                {
                    slot.phase = Phase::Raised;
                    slot.acked = false;
                    slot.since = e.0;
                    ctx.emit(
                        rule,
                        slot.dev,
                        AlertState::Raised,
                        e.0,
                        None,
                        None,
                        &format!(
                            "No activity between {}",
                            w.to_string().replace('-', " and ")
                        ),
                    );
                }
                let next = w.instance_at_or_after(ctx.tz, Time(due)).map(|(_, e)| e.0);
                ctx.arm(&mut slot, ri, subject, next);
            }
        }
        RuleType::Silent if slot.phase == Phase::Idle => {
            slot.phase = Phase::Raised;
            slot.acked = false;
            slot.since = due;
            let what = format!("No message for {}", dur_text(due - slot.last));
            ctx.emit(rule, slot.dev, AlertState::Raised, due, None, None, &what);
        }
        RuleType::Routine => {
            rule.slots.insert(subject, slot);
            super::routine::on_timer(rule, ri, ctx, due, now);
            return;
        }
        _ => {}
    }
    rule.slots.insert(subject, slot);
}

/// The expected reporting interval of a device for the silent rule.
pub fn silent_interval(rule: &Rule, kind: Kind) -> i64 {
    if let Some(d) = rule.spec.intervals.get(&kind) {
        return ms(Some(*d), 0);
    }
    let default = if kind.is_binary() {
        6 * 3_600_000
    } else {
        3_600_000
    };
    ms(rule.spec.interval, default)
}

fn window_what(rule: &Rule, kind: Kind) -> String {
    let active = rule.want != Want::Idle;
    let what = match (kind, active) {
        (Kind::Contact, true) => "Door open",
        (Kind::Contact, false) => "Door closed",
        (Kind::Bed, true) => "In bed",
        (Kind::Bed, false) => "Out of bed",
        (Kind::Chair, false) => "Out of the chair",
        (Kind::Motion, true) => "Movement",
        _ => "State",
    };
    match rule.window() {
        Some(w) => format!(
            "{what} between {} and {}",
            fmt_hhmm(w.start),
            fmt_hhmm(w.end % 86_400)
        ),
        None => what.to_string(),
    }
}

fn capital(s: &str) -> String {
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

fn unit(kind: Kind) -> String {
    match kind.unit() {
        "" => String::new(),
        "%" => "%".into(),
        u => format!(" {u}"),
    }
}
