//! `silent` rules: a device stopped reporting. Per device, armed by its
//! first message (of a kind the rule routes).
//!
//! The device is alive while some message comes within the interval of
//! the last one's kind (`slot.since` holds this deadline while the slot is
//! idle). Silence per reading kind: a kind named in `intervals` is also
//! watched on its own — a thermometer whose temperatures stop while its
//! battery check-ins go on is silent for temperature once its last
//! temperature is older than that interval. The per-kind clocks are the
//! engine's arrival stamps of each kind (`Devices::last_arrival`, engine
//! clock, moved with every wall-clock step like the slots' stamps), so
//! nothing more is stored per slot. `slot.value` is the silent kind's code
//! when one is named, −1 for "any message"; only a reading of that kind
//! (any message, for −1) clears it.

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
        // A device that checks in less often than the rule expects (the
        // device library knows) is given twice its check-in period.
        let iv = interval(c, r.kind).max(ctx.devs.checkin_ms(dev).saturating_mul(2));
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
        let next = watched_due(c, ctx, dev).map_or(any, |(_, d)| d.min(any));
        ctx.arm(slot, at.ri, at.subject, Some(next));
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
        let watched = watched_due(rule, ctx, slot.dev);
        let (silent, from) = match watched {
            // A watched kind's own clock ran out first.
            Some((k, d)) if d <= due && d <= any => (f64::from(k.code()), d - interval(rule, k)),
            _ if any <= due => (ANY, slot.last),
            _ => {
                // Messages moved the clocks on: re-arm at the earliest.
                let next = watched.map_or(any, |(_, d)| d.min(any));
                ctx.arm(slot, at.ri, at.subject, Some(next));
                return;
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

/// The watched kind (named in `intervals`) of device `dev` whose own
/// clock runs out first, and when: its last arrival plus its interval.
fn watched_due(rule: &Compiled, ctx: &Ctx<'_>, dev: u32) -> Option<(Kind, i64)> {
    rule.spec
        .intervals
        .keys()
        .filter_map(|&k| {
            let last = ctx.devs.last_arrival(dev, k)?;
            Some((k, last.saturating_add(interval(rule, k))))
        })
        .min_by_key(|&(_, d)| d)
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
