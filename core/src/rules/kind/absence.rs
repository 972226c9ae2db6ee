//! `absence` rules: no activity at all inside a daily window. Checked at
//! each window end (one rule-wide clock); raised once, until activity
//! (news: [`At::changed`]) clears it.

use crate::model::{AlertState, Reading, Time};
use crate::rules::ctx::{Cause, Ctx};
use crate::rules::devices::Devices;
use crate::rules::eval::{self, At, RuleKind};
use crate::rules::routine;
use crate::rules::rule::{Compiled, Phase, RULE_SUBJECT, Rule, Slot};

pub struct Absence;

impl RuleKind for Absence {
    fn subject(_: &Compiled, _: &Devices, _: u32) -> Option<u32> {
        Some(RULE_SUBJECT)
    }

    /// Arms the check at the end of the current (or next) window.
    fn start(rule: &mut Rule, ri: u32, ctx: &mut Ctx<'_>, now: i64) {
        if rule.slots.contains_key(&RULE_SUBJECT) {
            return;
        }
        let Some(w) = rule.window().copied() else {
            return;
        };
        let mut slot = Slot {
            last: now,
            since: now,
            ..Slot::default()
        };
        let d = w.instance_at_or_after(ctx.tz, Time(now)).map(|(_, e)| e.0);
        ctx.arm(&mut slot, ri, RULE_SUBJECT, d);
        rule.slots.insert(RULE_SUBJECT, slot);
    }

    fn on_reading(rule: &mut Rule, at: At, dev: u32, ctx: &mut Ctx<'_>, r: &Reading) {
        let Rule {
            compiled: c, slots, ..
        } = rule;
        if r.value < c.min_value || !at.changed {
            return;
        }
        if let Some(slot) = slots.get_mut(&at.subject) {
            let raised_on = slot.dev;
            slot.last = at.now;
            slot.dev = dev;
            if slot.phase == Phase::Raised {
                let cause = Cause {
                    value: None,
                    ..Cause::reading(c, raised_on, r)
                };
                let what = c.window().map_or_else(String::new, |w| absent(*w));
                let how = format!("{} {}", r.kind, ctx.where_is(dev));
                ctx.resolve(slot, &cause, &what, &how);
            }
        }
    }

    /// A window ended: raise if it saw no activity; arm the next end.
    fn on_timer(
        rule: &Compiled,
        slot: &mut Slot,
        _: Option<&mut routine::Routine>,
        at: At,
        due: i64,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(w) = rule.window().copied() else {
            return;
        };
        if let Some((s, e)) = w.instance_at_or_after(ctx.tz, Time(due - 1))
            && slot.last < s.0
            && slot.phase == Phase::Idle
        {
            slot.since = e.0;
            let what = absent(w);
            let cause = Cause::timer(rule, slot.dev, e.0);
            ctx.emit(slot, AlertState::Raised, &cause, &what);
        }
        let next = w.instance_at_or_after(ctx.tz, Time(due)).map(|(_, e)| e.0);
        ctx.arm(slot, at.ri, at.subject, next);
    }

    /// The next check is the end of the window instance the true local
    /// time is in (or the next one): window ends are local-time instants.
    fn shift(
        rule: &Compiled,
        slot: &mut Slot,
        _: Option<&mut routine::Routine>,
        at: At,
        delta: i64,
        ctx: &Ctx<'_>,
    ) {
        eval::shift_stamps(slot, delta);
        if let (Some(w), true) = (rule.window(), slot.deadline.is_some()) {
            slot.deadline = w
                .instance_at_or_after(ctx.tz, Time(at.now))
                .map(|(_, e)| e.0)
                .into();
        }
    }
}

impl Absence {
    /// Standing up after away or visitor mode at `now`: the window she was
    /// away in is not held against her (it counts as having activity);
    /// the check moves to the end of the window at or after `now`.
    pub fn restart(rule: &Compiled, slot: &mut Slot, ri: u32, ctx: &mut Ctx<'_>, now: i64) {
        slot.last = now;
        let next = rule
            .window()
            .and_then(|w| w.instance_at_or_after(ctx.tz, Time(now)))
            .map(|(_, e)| e.0);
        ctx.arm(slot, ri, RULE_SUBJECT, next);
    }
}

/// "No activity between 07:00 and 11:00".
pub fn absent(w: crate::rules::window::Window) -> String {
    format!(
        "No activity between {}",
        w.to_string().replace('-', " and ")
    )
}
