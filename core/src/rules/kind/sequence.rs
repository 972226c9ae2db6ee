//! `sequence` rules: a start step not followed by a cancel step within a
//! time ("out of bed at night, no return within 30 min"). One rule-wide
//! slot: pending from the start step, raised when the time runs out
//! (`held::fire_pending`); a cancel disarms it, or clears the alert. Both
//! steps need news ([`At::changed`]): a bed mat re-reporting "empty" while
//! she dozes in her armchair starts nothing. The alert carries the start
//! step's kind; its clear names the device it was raised on and says which
//! device cancelled it.

use crate::model::{Reading, Time};
use crate::rules::ctx::{Cause, Ctx, dur_text};
use crate::rules::devices::Devices;
use crate::rules::eval::{self, At, RuleKind};
use crate::rules::held;
use crate::rules::routine;
use crate::rules::rule::{Compiled, Phase, RULE_SUBJECT, Rule, Slot, step_matches};

pub struct Sequence;

impl RuleKind for Sequence {
    fn subject(_: &Compiled, _: &Devices, _: u32) -> Option<u32> {
        Some(RULE_SUBJECT)
    }

    fn on_reading(rule: &mut Rule, at: At, dev: u32, ctx: &mut Ctx<'_>, r: &Reading) {
        let Rule {
            compiled: c, slots, ..
        } = rule;
        let (spec, v) = (&c.spec, r.value);
        if !at.changed {
            return;
        }
        let cancels = spec
            .cancel
            .iter()
            .any(|s| step_matches(s, ctx.devs, dev, r.kind, Some(v)));
        // The rule-wide slot always exists once a reading reached the
        // rule (it is part of the persisted state).
        let slot = slots.entry(at.subject).or_default();
        if cancels {
            match slot.phase {
                Phase::Pending => {
                    slot.phase = Phase::Idle;
                    ctx.arm(slot, at.ri, at.subject, None);
                }
                Phase::Raised => {
                    let cause = Cause {
                        shown: Some(slot.value),
                        ..Cause::reading(c, slot.dev, r)
                    };
                    let how = format!("{} {}", step_text(r), ctx.where_is(dev));
                    ctx.resolve(slot, &cause, &what(c), &how);
                }
                Phase::Idle => {}
            }
        } else if slot.phase == Phase::Idle
            && spec
                .start
                .as_ref()
                .is_some_and(|s| step_matches(s, ctx.devs, dev, r.kind, Some(v)))
            && spec.window.is_none_or(|w| w.contains(ctx.tz, Time(at.now)))
        {
            slot.phase = Phase::Pending;
            slot.since = at.now;
            slot.dev = dev;
            slot.value = v;
            ctx.arm(slot, at.ri, at.subject, Some(at.now + c.within_ms));
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
        held::fire_pending(rule, slot, due, ctx, what);
    }

    /// As `window`: a start step taken "inside the window" by a wrong clock
    /// is dropped when its true time is outside it.
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

/// "No return within 30 min — possible fall".
fn what(c: &Compiled) -> String {
    format!("No return within {} — possible fall", dur_text(c.within_ms))
}

/// "back in bed" / "motion": what a cancelling reading was.
fn step_text(r: &Reading) -> String {
    match (r.kind, r.is_active()) {
        (crate::model::Kind::Bed, true) => "back in bed".into(),
        (crate::model::Kind::Chair, true) => "sat down".into(),
        (k, true) => format!("{k}"),
        (k, false) => format!("{k} idle"),
    }
}
