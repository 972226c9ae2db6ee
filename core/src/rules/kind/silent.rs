//! `silent` rules: a device stopped reporting. Per device, armed by its
//! first message (of a kind the rule routes).
//!
//! Two clocks per device, one timer (the earlier of them):
//! - *any message*: the device is alive while some message comes within
//!   the interval of the last one's kind (`slot.since` holds this
//!   deadline while the slot is idle);
//! - *per reading kind*: each watched kind — the measurement kinds
//!   (temperature, humidity, power, …; not battery or voltage, which
//!   devices send rarely) and every kind named in `intervals` — must come
//!   within its own interval, so a thermometer whose temperatures stop
//!   while its battery check-ins go on is silent for temperature.
//!
//! The alert says which (`slot.value`: the silent kind's code, −1 for any
//! message); only a message of that kind (any, for "any message") clears.

use crate::model::{AlertState, Kind, Reading};
use crate::rules::ctx::{Cause, Ctx, dur_text};
use crate::rules::eval::{At, RuleKind};
use crate::rules::routine;
use crate::rules::rule::{Compiled, Phase, Rule, Slot, ms};

pub struct Silent;

/// `slot.value` of an "any message" silence.
const ANY: f64 = -1.0;

impl RuleKind for Silent {
    fn on_reading(rule: &mut Rule, at: At, dev: u32, ctx: &mut Ctx<'_>, r: &Reading) {
        let Rule {
            compiled: c, slots, ..
        } = rule;
        let iv = interval(c, r.kind);
        let slot = slots.entry(at.subject).or_default();
        let fresh = slot.dev == crate::rules::rule::NO_DEV;
        slot.last = at.now;
        slot.dev = dev;
        let prev_any = if fresh { i64::MIN } else { slot.since };
        let any = prev_any.max(at.now.saturating_add(iv));
        slot.since = any;
        if slot.phase == Phase::Raised {
            let silent = slot.value;
            let clears = silent == ANY || silent == f64::from(r.kind.code());
            if !clears {
                return;
            }
            let what = silent_what(silent);
            let cause = Cause {
                value: None,
                ..Cause::reading(c, dev, r)
            };
            let how = format!("{} received", r.kind);
            ctx.resolve(slot, &cause, &what, &how);
        }
        let d = watched_deadline(c, ctx, dev, r.kind, at.now).map_or(any, |w| w.min(any));
        ctx.arm(slot, at.ri, at.subject, Some(d));
    }

    fn on_timer(
        rule: &Compiled,
        slot: &mut Slot,
        _: Option<&mut routine::Routine>,
        at: At,
        due: i64,
        ctx: &mut Ctx<'_>,
    ) {
        if slot.phase != Phase::Idle {
            return;
        }
        let any = slot.since;
        let (silent, from) = if any <= due {
            (ANY, slot.last)
        } else {
            match overdue(rule, ctx, slot.dev, due) {
                Some((k, last)) => (f64::from(k.code()), last),
                None => {
                    // Nothing overdue (a message moved a clock on): re-arm.
                    let d = watched_deadline(rule, ctx, slot.dev, Kind::Motion, i64::MIN)
                        .map_or(any, |w| w.min(any));
                    ctx.arm(slot, at.ri, at.subject, Some(d.max(due)));
                    return;
                }
            }
        };
        slot.value = silent;
        let what = match Kind::ALL.iter().find(|k| f64::from(k.code()) == silent) {
            Some(k) => format!("No {k} reading for {}", dur_text(due - from)),
            None => format!("No message for {}", dur_text(due - from)),
        };
        let cause = Cause {
            kind: (silent != ANY).then(|| kind_of(silent)).flatten(),
            ..Cause::timer(rule, slot.dev, due)
        };
        ctx.emit(slot, AlertState::Raised, &cause, &what);
    }
}

fn kind_of(code: f64) -> Option<Kind> {
    Kind::ALL
        .iter()
        .copied()
        .find(|k| f64::from(k.code()) == code)
}

/// The raised sentence again, for the clear.
fn silent_what(silent: f64) -> String {
    match kind_of(silent) {
        Some(k) => format!("No {k} reading"),
        None => "No message".to_string(),
    }
}

/// Kinds watched one by one (see the module header).
fn watched(rule: &Compiled, kind: Kind) -> bool {
    rule.spec.intervals.contains_key(&kind)
        || (!kind.is_binary() && !matches!(kind, Kind::Battery | Kind::Voltage))
}

/// The earliest per-kind deadline of a device's watched kinds (`now` for
/// the kind just received).
fn watched_deadline(rule: &Compiled, ctx: &Ctx<'_>, dev: u32, just: Kind, now: i64) -> Option<i64> {
    ctx.devs
        .seen(dev)
        .filter(|(k, _, _)| {
            watched(rule, *k) && rule.route_kinds.as_ref().is_none_or(|r| r.contains(k))
        })
        .map(|(k, at, _)| {
            let at = if k == just { now.max(at) } else { at };
            at.saturating_add(interval(rule, k))
        })
        .min()
}

/// A watched kind whose deadline is at or before `due`, and when it last came.
fn overdue(rule: &Compiled, ctx: &Ctx<'_>, dev: u32, due: i64) -> Option<(Kind, i64)> {
    ctx.devs
        .seen(dev)
        .filter(|(k, _, _)| {
            watched(rule, *k) && rule.route_kinds.as_ref().is_none_or(|r| r.contains(k))
        })
        .filter(|(k, at, _)| at.saturating_add(interval(rule, *k)) <= due)
        .min_by_key(|(k, at, _)| (at.saturating_add(interval(rule, *k)), k.code()))
        .map(|(k, at, _)| (k, at))
}

/// The expected reporting interval of a device's messages of `kind`.
fn interval(rule: &Compiled, kind: Kind) -> i64 {
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
