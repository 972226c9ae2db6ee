//! `gone_out` rules: a door (the rule's selectors; `contact`) opened and
//! no movement indoors for `for` since — she probably went out. A soft
//! check (default `info`, never `urgent`): the carer can ring her. While
//! it is open the engine is in the inferred `out` mode (`rules/mode.rs`):
//! alerts of the rules that stand down in away mode go out softened to
//! `info`. Motion or occupancy indoors (any room) clears it and ends the
//! mode. Movement within [`GRACE_MS`] of the door's last change does not
//! count (she walking out through the hall).
//!
//! Slot use: `since` when the door opened, `last` the door's last change,
//! `dev` the door.

use crate::model::{AlertState, Kind, Reading};
use crate::rules::ctx::{Cause, Ctx, dur_text};
use crate::rules::devices::Devices;
use crate::rules::eval::{At, RuleKind};
use crate::rules::routine;
use crate::rules::rule::{Compiled, Phase, RULE_SUBJECT, Rule, Slot};
use crate::rules::window::{fmt_hhmm, local_secs};

/// Movement this soon after the door moved is her leaving, not staying.
pub const GRACE_MS: i64 = 120_000;

pub struct GoneOut;

impl RuleKind for GoneOut {
    fn subject(_: &Compiled, _: &Devices, _: u32) -> Option<u32> {
        Some(RULE_SUBJECT)
    }

    fn on_reading(rule: &mut Rule, at: At, dev: u32, ctx: &mut Ctx<'_>, r: &Reading) {
        let Rule {
            compiled: c, slots, ..
        } = rule;
        if !at.changed {
            return;
        }
        let slot = slots.entry(at.subject).or_default();
        // A contact reaches the rule only through its selectors: the door.
        if r.kind == Kind::Contact {
            slot.last = at.now;
            if r.is_active() && slot.phase == Phase::Idle {
                slot.phase = Phase::Pending;
                slot.since = at.now;
                slot.dev = dev;
                ctx.arm(slot, at.ri, at.subject, Some(at.now + c.for_ms));
            }
            return;
        }
        // Movement indoors.
        if r.value < 0.5 || at.now < slot.last.saturating_add(GRACE_MS) {
            return;
        }
        match slot.phase {
            Phase::Pending => {
                slot.phase = Phase::Idle;
                ctx.arm(slot, at.ri, at.subject, None);
            }
            Phase::Raised => {
                let cause = Cause {
                    value: None,
                    kind: None,
                    ..Cause::reading(c, slot.dev, r)
                };
                let how = format!("back: {} {}", r.kind, ctx.where_is(dev));
                ctx.resolve(slot, &cause, &what(c, ctx, slot.since), &how);
            }
            Phase::Idle => {}
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
        if slot.phase != Phase::Pending {
            return;
        }
        let what = what(rule, ctx, slot.since);
        let cause = Cause::timer(rule, slot.dev, due);
        ctx.emit(slot, AlertState::Raised, &cause, &what);
    }
}

/// "Probably out: door opened at 10:02, no movement indoors for 20 min".
pub fn what(c: &Compiled, ctx: &Ctx<'_>, opened: i64) -> String {
    let at = local_secs(ctx.tz, crate::model::Time(opened)).map_or_else(String::new, fmt_hhmm);
    format!(
        "Probably out: door opened at {at}, no movement indoors for {}",
        dur_text(c.for_ms)
    )
}
