//! `silent` rules: a device stopped reporting. Per device, armed by its
//! first message (of a kind the rule routes); any message clears.

use crate::model::{AlertState, Kind, Reading};
use crate::rules::ctx::{Cause, Ctx, dur_text};
use crate::rules::eval::{At, RuleKind};
use crate::rules::routine;
use crate::rules::rule::{Compiled, Phase, Rule, Slot, ms};

pub struct Silent;

impl RuleKind for Silent {
    fn on_reading(rule: &mut Rule, at: At, dev: u32, ctx: &mut Ctx<'_>, r: &Reading) {
        let Rule {
            compiled: c, slots, ..
        } = rule;
        let iv = interval(c, r.kind);
        let slot = slots.entry(at.subject).or_default();
        slot.last = at.now;
        slot.dev = dev;
        let d = slot
            .deadline
            .unwrap_or(i64::MIN)
            .max(at.now.saturating_add(iv));
        ctx.arm(slot, at.ri, at.subject, Some(d));
        if slot.phase == Phase::Raised {
            let cause = Cause {
                value: None,
                ..Cause::reading(c, dev, r)
            };
            ctx.emit(slot, AlertState::Cleared, &cause, "Device reporting again");
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
        if slot.phase != Phase::Idle {
            return;
        }
        slot.since = due;
        let what = format!("No message for {}", dur_text(due - slot.last));
        let cause = Cause::timer(rule, slot.dev, due);
        ctx.emit(slot, AlertState::Raised, &cause, &what);
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
