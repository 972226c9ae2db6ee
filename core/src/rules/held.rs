//! The state machine of rules whose condition must hold for a time before
//! they raise ([`Held`]: threshold rules, driven by readings),
//! and the raise when such a pending time runs out ([`fire_pending`]: also
//! sequence rules, whose pending step waits for a cancel).

use super::ctx::{Cause, Ctx};
use super::eval::At;
use super::rule::{Compiled, OptMs, Phase, Rule, Slot};
use crate::model::{AlertState, Reading, Time};

/// One reading's step through the state machine of threshold rules: a
/// condition that must hold for `for_ms` before it raises.
pub struct Held {
    pub at: At,
    pub dev: u32,
}

impl Held {
    /// Idle and `enter` → pending (armed for `for_ms`) or raised at once;
    /// pending or raised and `leave` → idle (disarmed, or the alert
    /// cleared, `how` saying what resolved it); otherwise, while pending,
    /// only `track_value` records the reading (a raised slot keeps the
    /// value it was raised with, which its clear names). Hot
    /// path: most readings change nothing, so the slot map is touched only
    /// when a slot exists or the condition `holds`, and the sentence
    /// (`what`) is built only when an alert is emitted.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &self,
        rule: &mut Rule,
        ctx: &mut Ctx<'_>,
        r: &Reading,
        holds: bool,
        enter: impl FnOnce(&Ctx<'_>) -> bool,
        leave: bool,
        track_value: bool,
        what: impl FnOnce(&Compiled) -> String,
        how: impl FnOnce() -> String,
    ) {
        let Rule {
            compiled: c, slots, ..
        } = rule;
        let At {
            ri, subject, now, ..
        } = self.at;
        let Some(slot) = (if holds {
            Some(slots.entry(subject).or_default())
        } else {
            slots.get_mut(&subject)
        }) else {
            return;
        };
        let v = r.value;
        let state = match slot.phase {
            Phase::Idle if enter(ctx) => {
                slot.value = v;
                slot.dev = self.dev;
                slot.since = now;
                if c.for_ms != 0 {
                    slot.phase = Phase::Pending;
                    ctx.arm(slot, ri, subject, Some(now + c.for_ms));
                    return;
                }
                AlertState::Raised
            }
            Phase::Pending if leave => {
                slot.phase = Phase::Idle;
                ctx.arm(slot, ri, subject, None);
                return;
            }
            Phase::Raised if leave => {
                let cause = Cause {
                    shown: Some(slot.value),
                    ..Cause::reading(c, slot.dev, r)
                };
                ctx.resolve(slot, &cause, &what(c), &how());
                return;
            }
            phase => {
                if track_value && phase != Phase::Raised {
                    slot.value = v;
                }
                return;
            }
        };
        ctx.emit(slot, state, &Cause::reading(c, self.dev, r), &what(c));
    }
}

/// A pending slot's time ran out (`due`): raise, with the value and device
/// recorded when it became pending. Other phases ignore the timer.
pub fn fire_pending(
    rule: &Compiled,
    slot: &mut Slot,
    due: i64,
    ctx: &mut Ctx<'_>,
    what: impl FnOnce(&Compiled) -> String,
) {
    if slot.phase != Phase::Pending {
        return;
    }
    let cause = Cause {
        value: Some(slot.value),
        kind: rule.spec.kinds.0.first().copied().or_else(|| {
            let start = rule.spec.start.as_ref()?;
            start.kinds.0.first().copied()
        }),
        ..Cause::timer(rule, slot.dev, due)
    };
    ctx.emit(slot, AlertState::Raised, &cause, &what(rule));
}

/// After a wall-clock step: a pending slot whose (shifted) start is not
/// inside the rule's window was entered by a wrong clock: back to idle.
pub fn recheck_window(rule: &Compiled, slot: &mut Slot, ctx: &Ctx<'_>) {
    if slot.phase == Phase::Pending
        && rule
            .window()
            .is_some_and(|w| !w.contains(ctx.tz, Time(slot.since)))
    {
        slot.phase = Phase::Idle;
        slot.deadline = OptMs::NONE;
    }
}
