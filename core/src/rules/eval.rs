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
use super::rule::{Compiled, OptMs, Rule, Slot};
use super::spec::RuleType;
use crate::model::{Kind, Reading};

/// Where a handler runs: the rule's index (timers name it), the subject
/// whose slot it concerns, and the engine clock (ms).
#[derive(Clone, Copy, Debug)]
pub struct At {
    pub ri: u32,
    pub subject: u32,
    pub now: i64,
    /// The reading is news: a change of its device's state for this kind,
    /// the first of its kind, or a momentary event ([`is_event`]). A
    /// periodic re-report of the same state is not: it only refreshes
    /// liveness (silent rules), never starts, triggers or clears.
    pub changed: bool,
}

/// Kinds whose every active report is a new event (a press, a detection),
/// not a state that devices re-report.
pub fn is_event(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Motion | Kind::Panic | Kind::Fall | Kind::Vibration | Kind::Button
    )
}

/// Whether a reading of `kind` with `value` is news after `prev` (the
/// device's last value of that kind, if any): see [`At::changed`].
pub fn is_news(kind: Kind, prev: Option<f64>, value: f64) -> bool {
    match prev {
        None => true,
        Some(_) if is_event(kind) => true,
        Some(p) if kind.is_binary() => (p >= 0.5) != (value >= 0.5),
        Some(p) => p.to_bits() != value.to_bits(),
    }
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
    // 0 means "never" (e.g. a window slot's `last` while the state still
    // holds): it stays 0. `opened` is the alert instance's id, not a time
    // to move.
    if slot.since != 0 {
        slot.since = slot.since.saturating_add(delta);
    }
    if slot.last != 0 {
        slot.last = slot.last.saturating_add(delta);
    }
    slot.deadline = slot.deadline.get().map(|d| d.saturating_add(delta)).into();
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
            RuleType::Dwell => {
                type $k = kind::Dwell;
                $body
            }
            RuleType::GoneOut => {
                type $k = kind::GoneOut;
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

/// A reading reached this rule (its selectors matched); returns the
/// subject whose slot it may have changed (the journal saves that one).
pub fn on_reading(
    rule: &mut Rule,
    ri: u32,
    ctx: &mut Ctx<'_>,
    dev: u32,
    r: &Reading,
    at: (i64, bool),
) -> Option<u32> {
    let (now, changed) = at;
    with_kind!(rule.spec.kind, K => {
        let subject = K::subject(rule, ctx.devs, dev)?;
        ctx.subject = subject;
        K::on_reading(rule, At { ri, subject, now, changed }, dev, ctx, r);
        Some(subject)
    })
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
    let due = slot.deadline.get().unwrap_or(at.now);
    slot.deadline = OptMs::NONE;
    ctx.subject = at.subject;
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
        let at = At {
            ri,
            subject,
            now,
            changed: false,
        };
        with_kind!(compiled.spec.kind, K => {
            K::shift(compiled, slot, routine.as_deref_mut(), at, delta, ctx)
        });
    }
}
