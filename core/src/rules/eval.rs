//! What a rule does with a reading and with a fired timer: the one trait
//! every rule kind implements ([`RuleKind`]; one module per kind under
//! `kind/`) and the one place that picks a rule's kind (`with_kind!`,
//! static dispatch: a `match` on the rule type calling the kind's
//! functions, no trait objects).
//!
//! Invariants: handlers only touch their own rule's slots, the timer queue
//! (through [`Ctx::arm`]) and the output; alerts are made only by
//! [`Ctx::emit`], so one *situation* gives one raised alert — a slot in
//! `Raised` never raises again until it is cleared (or, for immediate rules
//! without a clear, until its cooldown or an ack); time comes in as `now`
//! (ms), never from a clock.

use super::ctx::Ctx;
use super::devices::Devices;
use super::kind;
use super::routine::Routine;
use super::rule::{Compiled, Rule, Slot};
use super::spec::RuleType;
use crate::model::Reading;

/// Where a handler runs: the rule's index (timers name it), the subject
/// whose slot it concerns, and the engine clock (ms).
#[derive(Clone, Copy, Debug)]
pub struct At {
    pub ri: u32,
    pub subject: u32,
    pub now: i64,
}

/// One rule kind (`type = "…"` in the rules file).
pub trait RuleKind {
    /// The subject whose slot a reading from device `dev` updates (default:
    /// the device itself); `None` ignores the reading.
    fn subject(_rule: &Compiled, _devs: &Devices, dev: u32) -> Option<u32> {
        Some(dev)
    }

    /// The first event after build or reload: start rule-wide clocks.
    fn start(_rule: &mut Rule, _ri: u32, _ctx: &mut Ctx<'_>, _now: i64) {}

    /// A reading from device `dev` reached the rule (its selectors matched).
    fn on_reading(rule: &mut Rule, at: At, dev: u32, ctx: &mut Ctx<'_>, r: &Reading);

    /// The slot's timer came due at `due` (already disarmed: `deadline` is
    /// `None`); `routine` is the rule's learnt routine, if it has one.
    fn on_timer(
        _rule: &Compiled,
        _slot: &mut Slot,
        _routine: Option<&mut Routine>,
        _at: At,
        _due: i64,
        _ctx: &mut Ctx<'_>,
    ) {
    }

    /// The wall clock stepped by `delta` ms and now reads `at.now` (see
    /// `Engine::shift`). Durations keep their true elapsed time: by default
    /// every stamp and the deadline move with the step. Kinds whose timers
    /// are local-time instants recompute them from `at.now`. Sets
    /// `deadline` only (the engine rebuilds the timer queue after).
    fn shift(
        _rule: &Compiled,
        slot: &mut Slot,
        _routine: Option<&mut Routine>,
        _at: At,
        delta: i64,
        _ctx: &Ctx<'_>,
    ) {
        shift_stamps(slot, delta);
    }
}

/// Moves a slot's stamps and deadline by a wall-clock step.
pub fn shift_stamps(slot: &mut Slot, delta: i64) {
    slot.since = slot.since.saturating_add(delta);
    slot.last = slot.last.saturating_add(delta);
    slot.deadline = slot.deadline.map(|d| d.saturating_add(delta));
}

/// Runs `$body` with `$k` naming the kind of rule type `$t`: the one map
/// from [`RuleType`] to its [`RuleKind`].
macro_rules! with_kind {
    ($t:expr, $k:ident => $body:expr) => {
        match $t {
            RuleType::Immediate | RuleType::Tamper => {
                type $k = kind::Immediate;
                $body
            }
            RuleType::Threshold => {
                type $k = kind::Threshold;
                $body
            }
            RuleType::Window => {
                type $k = kind::Window;
                $body
            }
            RuleType::Inactivity => {
                type $k = kind::Inactivity;
                $body
            }
            RuleType::Absence => {
                type $k = kind::Absence;
                $body
            }
            RuleType::Sequence => {
                type $k = kind::Sequence;
                $body
            }
            RuleType::Silent => {
                type $k = kind::Silent;
                $body
            }
            RuleType::LowBattery => {
                type $k = kind::LowBattery;
                $body
            }
            RuleType::Routine => {
                type $k = kind::Routine;
                $body
            }
        }
    };
}

/// Starts rule-wide clocks on the first event the rule sees.
pub fn start(rule: &mut Rule, ri: u32, ctx: &mut Ctx<'_>, now: i64) {
    rule.started = true;
    with_kind!(rule.spec.kind, K => K::start(rule, ri, ctx, now));
}

/// A reading reached this rule (its selectors matched).
pub fn on_reading(rule: &mut Rule, ri: u32, ctx: &mut Ctx<'_>, dev: u32, r: &Reading, now: i64) {
    with_kind!(rule.spec.kind, K => {
        if let Some(subject) = K::subject(rule, ctx.devs, dev) {
            K::on_reading(rule, At { ri, subject, now }, dev, ctx, r);
        }
    });
}

/// A timer of this rule is due: the caller found its live slot, whose
/// deadline is `≤ now` (hot path: 100k inactivity timers firing together
/// each come through here, with no further lookup).
pub fn on_timer(
    rule: &Compiled,
    routine: Option<&mut Routine>,
    slot: &mut Slot,
    at: At,
    ctx: &mut Ctx<'_>,
) {
    let due = slot.deadline.unwrap_or(at.now);
    slot.deadline = None;
    with_kind!(rule.spec.kind, K => K::on_timer(rule, slot, routine, at, due, ctx));
}

/// The wall clock stepped: every slot of this rule follows (see
/// [`RuleKind::shift`]).
pub fn shift(rule: &mut Rule, ri: u32, ctx: &Ctx<'_>, delta: i64, now: i64) {
    let Rule {
        compiled,
        slots,
        routine,
        ..
    } = rule;
    for (&subject, slot) in slots.iter_mut() {
        let at = At { ri, subject, now };
        with_kind!(compiled.spec.kind, K => {
            K::shift(compiled, slot, routine.as_deref_mut(), at, delta, ctx)
        });
    }
}
