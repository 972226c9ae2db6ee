//! `low_battery` rules: a battery below a level (or a `battery_low` flag)
//! raises; back above the level plus the hysteresis (or the flag off) clears.
//! The flag counts only when it changes (a re-report is not news); the
//! level is a level.

use crate::model::{AlertState, Kind, Reading};
use crate::rules::ctx::{Cause, Ctx, now_value};
use crate::rules::eval::{At, RuleKind};
use crate::rules::rule::{Phase, Rule, Slot};

pub struct LowBattery;

impl RuleKind for LowBattery {
    fn on_reading(rule: &mut Rule, at: At, dev: u32, ctx: &mut Ctx<'_>, r: &Reading) {
        let Rule {
            compiled: c, slots, ..
        } = rule;
        let (v, below) = (r.value, c.below().unwrap_or(20.0));
        let (low, ok) = match r.kind {
            Kind::Battery => (v < below, v >= below + c.hysteresis),
            _ => (r.is_active() && at.changed, !r.is_active()),
        };
        let slot = slots.entry(at.subject).or_default();
        if low && slot.phase != Phase::Raised {
            *slot = Slot {
                since: at.now,
                value: v,
                dev,
                ..Slot::default()
            };
            ctx.emit(
                slot,
                AlertState::Raised,
                &Cause::reading(c, dev, r),
                "Battery low",
            );
        } else if ok && slot.phase == Phase::Raised {
            let how = match r.kind {
                Kind::Battery => now_value(r.kind, v),
                _ => "low-battery flag off".to_string(),
            };
            let cause = Cause {
                shown: Some(slot.value),
                ..Cause::reading(c, dev, r)
            };
            ctx.resolve(slot, &cause, "Battery low", &how);
        }
    }
}
