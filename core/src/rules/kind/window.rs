//! `window` rules: a state inside a local-time window ("door open between
//! 23:00 and 06:00"), optionally held for `for`. Per device (the slot's
//! subject); evidence of being back inside may come from any device.
//!
//! - Only a change enters or leaves the state: a door re-reporting "open"
//!   at 23:50 after opening at 22:50 did not open at night.
//! - `at_start` (default on): a state that already holds when the window
//!   begins is entered at the window start (an Idle slot holding the state
//!   outside the window is armed for the next window start).
//! - `resolve = "inside"` (default for a contact opening): once raised,
//!   the state reversing is not enough — the door shutting behind her is
//!   not her coming back; the alert clears with motion indoors after it
//!   (`slot.last` = when the state reversed, 0 = it still holds). Before
//!   the alert (pending, `for`), reversing still stands it down: the door
//!   was not left open.

use crate::model::{AlertState, Kind, Reading, Time};
use crate::rules::ctx::{Cause, Ctx, dur_text};
use crate::rules::eval::{self, At, RuleKind};
use crate::rules::held;
use crate::rules::routine;
use crate::rules::rule::{Compiled, Phase, Rule, Slot};
use crate::rules::spec::Want;
use crate::rules::window::fmt_hhmm;

pub struct Window;

impl RuleKind for Window {
    fn on_reading(rule: &mut Rule, at: At, dev: u32, ctx: &mut Ctx<'_>, r: &Reading) {
        if !rule.spec.kinds.0.contains(&r.kind) {
            if r.is_active() && at.changed {
                evidence(rule, at, dev, ctx, r);
            }
            return;
        }
        if !at.changed {
            return;
        }
        let Rule {
            compiled: c, slots, ..
        } = rule;
        let m = c.want.matches(r.value);
        let slot = if m {
            slots.entry(at.subject).or_default()
        } else {
            match slots.get_mut(&at.subject) {
                Some(s) => s,
                None => return,
            }
        };
        match (slot.phase, m) {
            (Phase::Idle, true) => {
                slot.value = r.value;
                slot.dev = dev;
                slot.last = 0;
                let Some(w) = c.window() else { return };
                if w.contains(ctx.tz, Time(at.now)) {
                    enter(c, slot, at, ctx, Cause::reading(c, dev, r), r.kind);
                } else if c.at_start {
                    let start = w
                        .instance_at_or_after(ctx.tz, Time(at.now))
                        .map(|(s, _)| s.0);
                    ctx.arm(slot, at.ri, at.subject, start);
                }
            }
            (Phase::Idle, false) => ctx.arm(slot, at.ri, at.subject, None),
            (_, true) => slot.last = 0,
            (Phase::Pending, false) => {
                slot.phase = Phase::Idle;
                ctx.arm(slot, at.ri, at.subject, None);
            }
            (Phase::Raised, false) if c.inside => slot.last = at.now,
            (Phase::Raised, false) => {
                let cause = Cause {
                    shown: Some(slot.value),
                    ..Cause::reading(c, slot.dev, r)
                };
                let how = reversed(c, r.kind);
                ctx.resolve(slot, &cause, &what(c, r.kind), &how);
            }
        }
    }

    /// A pending time ran out (raise), or the window began with the state
    /// already holding (enter it now).
    fn on_timer(
        rule: &Compiled,
        slot: &mut Slot,
        _: Option<&mut routine::Routine>,
        at: At,
        due: i64,
        ctx: &mut Ctx<'_>,
    ) {
        let kind = rule.spec.kinds.0.first().copied().unwrap_or(Kind::Contact);
        match slot.phase {
            Phase::Idle => {
                let holds = rule.spec.kinds.0.iter().any(|&k| {
                    ctx.devs
                        .last_value(slot.dev, k)
                        .is_some_and(|v| rule.want.matches(v))
                });
                if !holds {
                    return;
                }
                let cause = Cause {
                    value: Some(slot.value),
                    kind: Some(kind),
                    ..Cause::timer(rule, slot.dev, due)
                };
                let at = At { now: due, ..at };
                enter(rule, slot, at, ctx, cause, kind);
            }
            _ => held::fire_pending(rule, slot, due, ctx, |c| {
                format!("{} for {}", what(c, kind), dur_text(c.for_ms))
            }),
        }
    }

    /// A pending state entered "inside the window" by a clock that was
    /// wrong is dropped when its true time is outside it.
    fn shift(
        rule: &Compiled,
        slot: &mut Slot,
        _: Option<&mut routine::Routine>,
        _: At,
        delta: i64,
        ctx: &Ctx<'_>,
    ) {
        eval::shift_stamps(slot, delta);
        held::recheck_window(rule, slot, ctx);
    }
}

/// The state was entered inside the window (or held at its start): pending
/// for `for`, or raised at once.
fn enter(c: &Compiled, slot: &mut Slot, at: At, ctx: &mut Ctx<'_>, cause: Cause<'_>, kind: Kind) {
    slot.since = at.now;
    slot.last = 0;
    if c.for_ms != 0 {
        slot.phase = Phase::Pending;
        ctx.arm(slot, at.ri, at.subject, Some(at.now + c.for_ms));
        return;
    }
    ctx.arm(slot, at.ri, at.subject, None);
    ctx.emit(slot, AlertState::Raised, &cause, &what(c, kind));
}

/// Motion indoors: every raised slot whose state reversed before it
/// clears, named after its own device and saying where the movement was.
fn evidence(rule: &mut Rule, at: At, dev: u32, ctx: &mut Ctx<'_>, r: &Reading) {
    let Rule {
        compiled: c, slots, ..
    } = rule;
    let kind = c.spec.kinds.0.first().copied().unwrap_or(Kind::Contact);
    let mut back: Vec<u32> = slots
        .iter()
        .filter(|(_, s)| s.phase == Phase::Raised && s.last > 0 && at.now > s.last)
        .map(|(&k, _)| k)
        .collect();
    back.sort_unstable();
    for k in back {
        let Some(slot) = slots.get_mut(&k) else {
            continue;
        };
        ctx.subject = k;
        ctx.touched.push((at.ri, k));
        let cause = Cause {
            shown: Some(slot.value),
            value: None,
            kind: Some(kind),
            ..Cause::reading(c, slot.dev, r)
        };
        let how = format!("back inside: movement {}", ctx.where_is(dev));
        ctx.resolve(slot, &cause, &what(c, kind), &how);
        slot.last = 0;
    }
}

/// "door closed": what the state reversing means (the `how` of a clear).
fn reversed(rule: &Compiled, kind: Kind) -> String {
    let active = rule.want != Want::Idle;
    match (kind, active) {
        (Kind::Contact, true) => "door closed",
        (Kind::Contact, false) => "door opened",
        (Kind::Bed, true) => "out of bed",
        (Kind::Bed, false) => "back in bed",
        _ => "state changed back",
    }
    .to_string()
}

/// "Door open between 23:00 and 06:00": the sentence of a window alert.
fn what(rule: &Compiled, kind: Kind) -> String {
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
