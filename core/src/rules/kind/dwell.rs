//! `dwell` rules: in one room longer than a limit ("in the bathroom for
//! 45 min" — a classic fall signal). One rule-wide slot follows where she
//! is: activity (news, [`At::changed`]: a motion detection, occupancy or a
//! door opening) in a watched room (`rooms`) while she was elsewhere or
//! nowhere known starts the clock there; activity in any other room means
//! she left: the clock stops, and an open alert clears ("— motion in the
//! hall"). Activity in the same room does not restart the clock (she is
//! still there). With a `window`, only time inside the window counts.
//!
//! Slot use: `value` is the watched room's index + 1 while she is in it
//! (0: elsewhere), `since` when she entered, `dev` the device that saw her
//! enter (the alert is named after it).

use crate::model::{AlertState, Kind, Reading, Time};
use crate::rules::ctx::{Cause, Ctx, dur_text};
use crate::rules::devices::Devices;
use crate::rules::eval::{self, At, RuleKind};
use crate::rules::routine;
use crate::rules::rule::{Compiled, Phase, RULE_SUBJECT, Rule, Slot};

pub struct Dwell;

impl RuleKind for Dwell {
    fn subject(_: &Compiled, _: &Devices, _: u32) -> Option<u32> {
        Some(RULE_SUBJECT)
    }

    fn on_reading(rule: &mut Rule, at: At, dev: u32, ctx: &mut Ctx<'_>, r: &Reading) {
        let Rule {
            compiled: c, slots, ..
        } = rule;
        if r.value < c.min_value || !at.changed {
            return;
        }
        let Some(room) = ctx.devs.get(dev).and_then(|d| d.room) else {
            return; // a device in no known room says nothing about where she is
        };
        let watched = ctx
            .devs
            .room_name(dev)
            .is_some_and(|n| c.spec.rooms.0.iter().any(|w| w == n));
        let slot = slots.entry(at.subject).or_default();
        let here = f64::from(room) + 1.0;
        if watched && slot.value == here {
            return; // still there
        }
        // She left the room she was in (if any).
        if slot.value != 0.0 {
            slot.value = 0.0;
            ctx.arm(slot, at.ri, at.subject, None);
            if slot.phase == Phase::Raised {
                let cause = Cause {
                    value: None,
                    kind: None,
                    ..Cause::reading(c, slot.dev, r)
                };
                let seen = match r.kind {
                    Kind::Contact => "door opened",
                    Kind::Bed => "in bed",
                    Kind::Chair => "seated",
                    k => k.as_str(),
                };
                let how = format!("left: {seen} {}", ctx.where_is(dev));
                ctx.resolve(slot, &cause, &what(c), &how);
            }
        }
        if watched {
            slot.value = here;
            slot.since = at.now;
            slot.last = at.now;
            slot.dev = dev;
            if slot.phase == Phase::Raised {
                // An alert still open from an earlier stay (she was never
                // seen leaving): it stays open; the clock waits.
                return;
            }
            ctx.arm(slot, at.ri, at.subject, deadline(c, ctx, at.now));
        }
    }

    fn on_timer(
        rule: &Compiled,
        slot: &mut Slot,
        _: Option<&mut routine::Routine>,
        _: At,
        due: i64,
        ctx: &mut Ctx<'_>,
    ) {
        if slot.phase != Phase::Idle || slot.value == 0.0 {
            return;
        }
        let cause = Cause::timer(rule, slot.dev, due);
        ctx.emit(slot, AlertState::Raised, &cause, &what(rule));
    }

    fn shift(
        rule: &Compiled,
        slot: &mut Slot,
        _: Option<&mut routine::Routine>,
        _: At,
        delta: i64,
        ctx: &Ctx<'_>,
    ) {
        eval::shift_stamps(slot, delta);
        if rule.spec.window.is_some() && slot.deadline.is_some() {
            slot.deadline = deadline(rule, ctx, slot.since).into();
        }
    }
}

impl Dwell {
    /// Standing down or up: where she is is not known any more.
    pub fn forget(slot: &mut Slot, ri: u32, ctx: &mut Ctx<'_>) {
        slot.value = 0.0;
        ctx.arm(slot, ri, RULE_SUBJECT, None);
    }

    /// A cancelled pre-alarm: she is still there and answered; the clock
    /// starts again from `now`.
    pub fn restart(rule: &Compiled, slot: &mut Slot, ri: u32, ctx: &mut Ctx<'_>, now: i64) {
        if slot.value != 0.0 {
            slot.since = now;
            ctx.arm(slot, ri, RULE_SUBJECT, deadline(rule, ctx, now));
        }
    }
}

/// When a stay that began at `since` has lasted `for` (in-window time only
/// with a `window`).
fn deadline(rule: &Compiled, ctx: &Ctx<'_>, since: i64) -> Option<i64> {
    match rule.spec.window {
        None => Some(since.saturating_add(rule.for_ms)),
        Some(w) => w
            .after_in_window(ctx.tz, Time(since), rule.for_ms)
            .map(|t| t.0),
    }
}

/// "Stayed over 45 min" (the sentence adds " in the bathroom (…)").
pub fn what(c: &Compiled) -> String {
    format!("Stayed over {}", dur_text(c.for_ms))
}
