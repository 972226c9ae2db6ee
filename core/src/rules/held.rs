//! Threshold and window rules: one state machine ([`Held`]) — a condition
//! that must hold for the rule's `for` before it raises, and clears the
//! alert when it ends — driven by readings (timers: `eval::on_timer`).

use super::ctx::{Ctx, threshold_what, window_what_of};
use super::rule::{Phase, Rule};
use super::spec::RuleSpec;
use crate::model::{AlertState, Reading, Time};

/// One reading's step through the state machine threshold and window
/// rules share: a condition that must hold for `for_ms` before it raises.
pub struct Held {
    pub ri: u32,
    pub subject: u32,
    pub dev: u32,
    pub now: i64,
    pub for_ms: i64,
}

impl Held {
    /// Idle and `enter` → pending (armed for `for_ms`) or raised at once;
    /// pending or raised and `leave` → idle (disarmed, or the alert
    /// cleared); otherwise only `track_value` records the reading. Hot
    /// path: most readings change nothing, so the slot map is touched only
    /// when a slot exists or the condition `holds`, and the sentence
    /// (`what`) is built only when an alert is emitted.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        rule: &mut Rule,
        ctx: &mut Ctx<'_>,
        r: &Reading,
        holds: bool,
        enter: impl FnOnce(&Ctx<'_>) -> bool,
        leave: bool,
        track_value: bool,
        what: impl Fn(&RuleSpec) -> String,
    ) {
        let Rule {
            slots,
            spec,
            severity,
            ..
        } = rule;
        let Some(slot) = (if holds {
            Some(slots.entry(self.subject).or_default())
        } else {
            slots.get_mut(&self.subject)
        }) else {
            return;
        };
        let v = r.value;
        let emit = |ctx: &mut Ctx<'_>, state| {
            let what = what(spec);
            let (dev, at, kind) = (self.dev, r.at.0, Some(r.kind));
            ctx.emit_for(spec, *severity, dev, state, at, Some(v), kind, &what);
        };
        match slot.phase {
            Phase::Idle if enter(ctx) => {
                slot.value = v;
                slot.dev = self.dev;
                slot.since = self.now;
                if self.for_ms == 0 {
                    slot.phase = Phase::Raised;
                    emit(ctx, AlertState::Raised);
                } else {
                    slot.phase = Phase::Pending;
                    ctx.arm(slot, self.ri, self.subject, Some(self.now + self.for_ms));
                }
            }
            Phase::Pending if leave => {
                slot.phase = Phase::Idle;
                ctx.arm(slot, self.ri, self.subject, None);
            }
            Phase::Raised if leave => {
                slot.phase = Phase::Idle;
                emit(ctx, AlertState::Cleared);
            }
            _ if track_value => slot.value = v,
            _ => {}
        }
    }
}

/// A reading reached a threshold rule ("below 16 °C for 30 min").
pub fn threshold(rule: &mut Rule, ctx: &mut Ctx<'_>, r: &Reading, held: &Held) {
    let (v, h) = (r.value, rule.hysteresis);
    let (cond, recovered) = match (rule.spec.below, rule.spec.above) {
        (Some(b), _) => (v < b, v >= b + h),
        (None, Some(a)) => (v > a, v <= a - h),
        (None, None) => return,
    };
    let what = |spec: &RuleSpec| threshold_what(spec, r.kind);
    held.step(rule, ctx, r, cond, |_| cond, recovered, true, what);
}

/// A reading reached a window rule ("door open between 23:00 and 06:00").
pub fn window(rule: &mut Rule, ctx: &mut Ctx<'_>, r: &Reading, held: &Held) {
    let (want, window, now) = (rule.want, rule.spec.window, held.now);
    let m = want.matches(r.value);
    // The local-time lookup only when it can matter.
    let enter = |ctx: &Ctx<'_>| m && window.is_some_and(|w| w.contains(ctx.tz, Time(now)));
    let what = |spec: &RuleSpec| window_what_of(want, spec.window.as_ref(), r.kind);
    held.step(rule, ctx, r, m, enter, !m, false, what);
}
