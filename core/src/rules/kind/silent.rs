//! `silent` rules: a device stopped reporting. Per device, armed by its
//! first message (of a kind the rule routes).
//!
//! The device is alive while some message comes within the interval of
//! the last one's kind (`slot.since` holds this deadline while the slot is
//! idle). Silence per reading kind (a thermometer whose temperatures stop
//! while its battery check-ins go on) is not done yet: a per-kind clock
//! was tried and broke the deterministic simulation's timer checks around
//! wall-clock steps (issue 16 item 6, left open). `slot.value` is the
//! silent kind's code when one is named, −1 for "any message".

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
        ctx.arm(slot, at.ri, at.subject, Some(any));
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
        if any > due {
            // A message moved the clock on: re-arm.
            ctx.arm(slot, at.ri, at.subject, Some(any));
            return;
        }
        let (silent, from) = (ANY, slot.last);
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
