//! `routine` rules: alert when today has no activity inside the window by
//! the learnt usual time (what is learnt, and when the rule is armed:
//! `rules/routine.rs`). One rule-wide slot: its timer is the next check,
//! its `since` the window instance that check is for.

use crate::model::{AlertState, Reading, Time};
use crate::rules::ctx::{Cause, Ctx};
use crate::rules::devices::Devices;
use crate::rules::eval::{self, At, RuleKind};
use crate::rules::routine::{self as learnt, margin, threshold_of};
use crate::rules::rule::{Compiled, Phase, RULE_SUBJECT, Rule, Slot};
use crate::rules::window::{at_secs, fmt_hhmm, local_date};

pub struct Routine;

impl RuleKind for Routine {
    fn subject(_: &Compiled, _: &Devices, _: u32) -> Option<u32> {
        Some(RULE_SUBJECT)
    }

    fn start(rule: &mut Rule, ri: u32, ctx: &mut Ctx<'_>, now: i64) {
        let Rule {
            compiled: c,
            slots,
            routine,
            ..
        } = rule;
        let slot = slots.entry(RULE_SUBJECT).or_default();
        rearm(c, routine.as_deref(), slot, ri, ctx, now);
    }

    /// Activity: learnt if it is the first of its window instance, which
    /// also clears an open alert and moves the check on.
    fn on_reading(rule: &mut Rule, at: At, dev: u32, ctx: &mut Ctx<'_>, r: &Reading) {
        // A day the rule alerted on is not learnt (see `rules/routine.rs`).
        let alerted = rule
            .slots
            .get(&RULE_SUBJECT)
            .is_some_and(|s| s.phase == Phase::Raised);
        if r.value < rule.min_value
            || !at.changed
            || !learnt::learn(rule, ctx.tz, Time(at.now), !alerted)
        {
            return;
        }
        let Rule {
            compiled: c,
            slots,
            routine,
            ..
        } = rule;
        let slot = slots.entry(RULE_SUBJECT).or_default();
        let raised_on = slot.dev;
        slot.dev = dev;
        slot.last = at.now;
        if slot.phase == Phase::Raised {
            let cause = Cause {
                value: None,
                kind: None,
                ..Cause::reading(c, raised_on, r)
            };
            let how = format!(
                "first activity at {}: {} {}",
                local_hhmm(ctx, at.now),
                r.kind,
                ctx.where_is(dev)
            );
            ctx.resolve(slot, &cause, "No activity by the usual time", &how);
        }
        rearm(c, routine.as_deref(), slot, at.ri, ctx, at.now);
    }

    /// The check time came: raise if the instance being checked had no
    /// activity; arm the next check.
    fn on_timer(
        rule: &Compiled,
        slot: &mut Slot,
        routine: Option<&mut learnt::Routine>,
        at: At,
        due: i64,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(r) = routine else {
            return;
        };
        let inst = slot.since;
        let thr = threshold_of(rule, r);
        let seen = r.seen;
        r.done = Some(inst);
        if let (Some(thr), Some(w)) = (thr, rule.spec.window)
            && seen != Some(inst)
            && slot.phase == Phase::Idle
        {
            let what = format!(
                "No activity by {} (usually by {})",
                fmt_hhmm((w.start + thr) % 86_400),
                fmt_hhmm((w.start + thr.saturating_sub(margin(rule))) % 86_400)
            );
            let cause = Cause::timer(rule, slot.dev, due);
            ctx.emit(slot, AlertState::Raised, &cause, &what);
        }
        rearm(rule, Some(r), slot, at.ri, ctx, at.now.max(due));
    }

    /// The instances seen and checked move with the step (snapped to the
    /// instance they truly were), and the next check is recomputed from
    /// the true local time.
    fn shift(
        rule: &Compiled,
        slot: &mut Slot,
        routine: Option<&mut learnt::Routine>,
        at: At,
        delta: i64,
        ctx: &Ctx<'_>,
    ) {
        eval::shift_stamps(slot, delta);
        let Some(r) = routine else {
            return;
        };
        let moved = |t: Option<i64>| t.and_then(|t| snap(rule, ctx, t.saturating_add(delta)));
        r.seen = moved(r.seen);
        r.done = moved(r.done);
        let next = next_check(rule, r, ctx, at.now);
        if let Some((_, s)) = next {
            slot.since = s;
        }
        slot.deadline = next.map(|(c, _)| c).into();
    }
}

impl Routine {
    /// Standing up after away or visitor mode at `now`: a window instance
    /// already begun is not checked (she was away for part of it); the
    /// next check is armed.
    pub fn restart(
        rule: &Compiled,
        routine: Option<&mut learnt::Routine>,
        slot: &mut Slot,
        ri: u32,
        ctx: &mut Ctx<'_>,
        now: i64,
    ) {
        let Some(r) = routine else { return };
        if let Some(w) = rule.spec.window
            && let Some((s, _)) = w.instance_at_or_after(ctx.tz, Time(now))
            && s.0 <= now
        {
            r.done = Some(r.done.map_or(s.0, |d| d.max(s.0)));
        }
        rearm(rule, Some(r), slot, ri, ctx, now);
    }
}

/// The start of the window instance nearest to `t` (after a step, the
/// instance a stamp made by the wrong clock truly belongs to).
fn snap(rule: &Compiled, ctx: &Ctx<'_>, t: i64) -> Option<i64> {
    const HALF_DAY: i64 = 43_200_000;
    let w = rule.spec.window?;
    let (a, e) = w.instance_at_or_after(ctx.tz, Time(t.saturating_sub(HALF_DAY)))?;
    let b = w.instance_at_or_after(ctx.tz, e).map(|(s, _)| s.0);
    Some(match b {
        Some(b) if (b - t).abs() < (a.0 - t).abs() => b,
        _ => a.0,
    })
}

/// "10:40": local wall-clock time of `ms`.
fn local_hhmm(ctx: &Ctx<'_>, ms: i64) -> String {
    crate::rules::window::local_secs(ctx.tz, Time(ms)).map_or_else(String::new, fmt_hhmm)
}

/// Re-arms the rule's check timer from what it knows now.
fn rearm(
    rule: &Compiled,
    routine: Option<&learnt::Routine>,
    slot: &mut Slot,
    ri: u32,
    ctx: &mut Ctx<'_>,
    now: i64,
) {
    let next = routine.and_then(|r| next_check(rule, r, ctx, now));
    if let Some((_, s)) = next {
        slot.since = s;
    }
    ctx.arm(slot, ri, RULE_SUBJECT, next.map(|(c, _)| c));
}

/// The next time this rule must check, and the window instance (start)
/// that check is for, given what it has learnt.
fn next_check(rule: &Compiled, r: &learnt::Routine, ctx: &Ctx<'_>, now: i64) -> Option<(i64, i64)> {
    let w = rule.spec.window?;
    let thr = threshold_of(rule, r)?;
    let mut t = Time(now);
    for _ in 0..3 {
        let (s, e) = w.instance_at_or_after(ctx.tz, t)?;
        if r.seen == Some(s.0) || r.done == Some(s.0) {
            t = e;
            continue;
        }
        let date = local_date(ctx.tz, s)?;
        let check = at_secs(ctx.tz, date, w.start.saturating_add(thr))?;
        let check = check.0.min(e.0).max(s.0);
        return Some((check.max(now), s.0));
    }
    None
}
