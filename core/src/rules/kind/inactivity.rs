//! `inactivity` rules: no activity for a duration (optionally counting
//! only in-window time), per rule, room or device. After alerting the
//! clock waits for activity, which clears the alert, before counting again.
//! Activity is news ([`At::changed`]): a motion detection, or a state
//! sensor changing to active — a door re-reporting "open" is not activity.
//! The clear names the device the alert was raised on and says where the
//! activity was.
//!
//! Hot paths: every motion reading (one slot lookup, updated in place) and
//! a storm of clocks running out together (the slot comes from the caller;
//! nothing allocates but the alert).

use std::collections::hash_map::Entry;

use jiff::tz::TimeZone;

use crate::model::{AlertState, Reading, Time};
use crate::rules::ctx::{Cause, Ctx};
use crate::rules::devices::Devices;
use crate::rules::eval::{self, At, RuleKind};
use crate::rules::routine;
use crate::rules::rule::{Compiled, Phase, RULE_SUBJECT, Rule, Slot};
use crate::rules::spec::Per;

pub struct Inactivity;

impl RuleKind for Inactivity {
    fn subject(rule: &Compiled, devs: &Devices, dev: u32) -> Option<u32> {
        match rule.per {
            Per::Rule => Some(RULE_SUBJECT),
            Per::Device => Some(dev),
            Per::Room => devs.get(dev).and_then(|d| d.room),
        }
    }

    /// A rule-wide clock starts at the first event the engine sees.
    fn start(rule: &mut Rule, ri: u32, ctx: &mut Ctx<'_>, now: i64) {
        if rule.per != Per::Rule || rule.slots.contains_key(&RULE_SUBJECT) {
            return;
        }
        let mut slot = Slot {
            last: now,
            since: now,
            ..Slot::default()
        };
        let d = deadline(rule, ctx.tz, now);
        ctx.arm(&mut slot, ri, RULE_SUBJECT, d);
        rule.slots.insert(RULE_SUBJECT, slot);
    }

    fn on_reading(rule: &mut Rule, at: At, dev: u32, ctx: &mut Ctx<'_>, r: &Reading) {
        let Rule {
            compiled: c,
            slots,
            started,
            ..
        } = rule;
        let At {
            ri, subject, now, ..
        } = at;
        // Hot path (every motion event): one map lookup, update in place.
        let slot = match slots.entry(subject) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(e) => {
                if subject == RULE_SUBJECT && !*started {
                    return;
                }
                let mut slot = Slot {
                    last: now,
                    since: now,
                    dev,
                    ..Slot::default()
                };
                ctx.arm(&mut slot, ri, subject, deadline(c, ctx.tz, now));
                e.insert(slot)
            }
        };
        if r.value < c.min_value || !at.changed {
            return;
        }
        let raised_on = slot.dev;
        slot.last = now;
        slot.dev = dev;
        // A live entry pops no later than the new deadline and
        // recomputes it then; only an idle clock needs queueing.
        if slot.queued.is_none() {
            ctx.arm(slot, ri, subject, deadline(c, ctx.tz, now));
        } else if slot.deadline.is_none() {
            slot.deadline = slot.queued;
        }
        if slot.phase == Phase::Raised {
            let cause = Cause {
                value: None,
                ..Cause::reading(c, raised_on, r)
            };
            let how = format!("{} {}", r.kind, ctx.where_is(dev));
            ctx.resolve(slot, &cause, &c.what, &how);
        }
    }

    /// The clock ran out, unless activity since moved it later: then it is
    /// re-queued (even if already past, so timers fire in deadline order,
    /// restart-proof).
    fn on_timer(
        rule: &Compiled,
        slot: &mut Slot,
        _: Option<&mut routine::Routine>,
        at: At,
        due: i64,
        ctx: &mut Ctx<'_>,
    ) {
        if slot.phase != Phase::Idle {
            return;
        }
        match deadline(rule, ctx.tz, slot.last) {
            Some(d) if d > due => ctx.arm(slot, at.ri, at.subject, Some(d)),
            Some(d) => {
                slot.since = d;
                let cause = Cause::timer(rule, slot.dev, d);
                ctx.emit(slot, AlertState::Raised, &cause, &rule.what);
            }
            None => {}
        }
    }

    fn shift(
        rule: &Compiled,
        slot: &mut Slot,
        _: Option<&mut routine::Routine>,
        _: At,
        delta: i64,
        ctx: &Ctx<'_>,
    ) {
        Inactivity::shifted(rule, slot, delta, ctx.tz);
    }
}

impl Inactivity {
    /// The clock starts again at `now` (standing up after away or visitor
    /// mode, or after a cancelled pre-alarm: she answered).
    pub fn restart(
        rule: &Compiled,
        slot: &mut Slot,
        ri: u32,
        subject: u32,
        ctx: &mut Ctx<'_>,
        now: i64,
    ) {
        slot.last = now;
        slot.since = now;
        if slot.phase == Phase::Idle {
            ctx.arm(slot, ri, subject, deadline(rule, ctx.tz, now));
        }
    }

    /// Used by `RuleKind::shift` (below the trait impl for readability).
    fn shifted(rule: &Compiled, slot: &mut Slot, delta: i64, tz: &TimeZone) {
        eval::shift_stamps(slot, delta);
        // In-window time is counted again from the true local time.
        if rule.spec.window.is_some() && slot.deadline.is_some() {
            slot.deadline = deadline(rule, tz, slot.last).into();
        }
    }
}

/// When a clock that last saw activity at `last` runs out.
fn deadline(rule: &Compiled, tz: &TimeZone, last: i64) -> Option<i64> {
    match rule.spec.window {
        None => Some(last.saturating_add(rule.for_ms)),
        Some(w) => w.after_in_window(tz, Time(last), rule.for_ms).map(|t| t.0),
    }
}
