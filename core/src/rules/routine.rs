//! Routine rules: learn when the first activity of the day usually happens
//! inside a daily window, and alert when today has none by the learnt time.
//!
//! Learning: for each window instance (one per local day) the first
//! activity's wall-clock offset from the window start is recorded; the last
//! `days` instances are kept. With at least `min_days` of them the rule arms:
//! the check time is the `percentile` (nearest rank) of the offsets plus
//! `margin`, as local wall-clock time of that day (so DST nights do not
//! shift it), clamped to the window end. Days without any activity are not
//! learnt (they are the anomaly).
//!
//! Invariants: `seen` is the start of the latest instance with recorded
//! activity; `done` the start of the latest instance already checked; an
//! instance is never learnt or checked twice.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::ctx::Ctx;
use super::rule::{Phase, RULE_SUBJECT, Rule};
use super::spec::{DEFAULT_DAYS, DEFAULT_MIN_DAYS};
use super::window::{at_secs, fmt_hhmm, local_date, local_secs};
use crate::model::{AlertState, Reading, Time};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Routine {
    /// `(instance start ms, seconds after the window start)`, oldest first.
    pub history: VecDeque<(i64, u32)>,
    pub seen: Option<i64>,
    pub done: Option<i64>,
}

fn days(rule: &Rule) -> usize {
    usize::from(rule.spec.days.unwrap_or(DEFAULT_DAYS))
}

pub fn min_days(rule: &Rule) -> usize {
    usize::from(rule.spec.min_days.unwrap_or(DEFAULT_MIN_DAYS))
}

/// Seconds after the window start by which activity is expected, once armed.
pub fn threshold(rule: &Rule) -> Option<u32> {
    let r = rule.routine.as_ref()?;
    if r.history.len() < min_days(rule) {
        return None;
    }
    let mut v: Vec<u32> = r.history.iter().map(|&(_, o)| o).collect();
    v.sort_unstable();
    let p = rule.spec.percentile.unwrap_or(95.0);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    let base = v.get(rank.saturating_sub(1).min(v.len() - 1)).copied()?;
    let margin = rule
        .spec
        .margin
        .map_or(1800, |d| u32::try_from(d.0.as_secs()).unwrap_or(u32::MAX));
    Some(base.saturating_add(margin))
}

/// Records `t` as activity; true if it was the first of its window instance.
pub fn learn(rule: &mut Rule, tz: &jiff::tz::TimeZone, t: Time) -> bool {
    let Some(w) = rule.spec.window else {
        return false;
    };
    let keep = days(rule);
    let Some(r) = rule.routine.as_mut() else {
        return false;
    };
    if !w.contains(tz, t) {
        return false;
    }
    let (Some((s, _)), Some(secs)) = (w.instance_at_or_after(tz, t), local_secs(tz, t)) else {
        return false;
    };
    if r.seen.is_some_and(|seen| seen >= s.0) {
        return false;
    }
    r.seen = Some(s.0);
    let off = (secs + 86_400 - w.start) % 86_400;
    r.history.push_back((s.0, off));
    while r.history.len() > keep {
        r.history.pop_front();
    }
    true
}

/// Activity reached a routine rule.
pub fn on_activity(rule: &mut Rule, ri: u32, ctx: &mut Ctx<'_>, dev: u32, r: &Reading, now: i64) {
    if !learn(rule, ctx.tz, Time(now)) {
        return;
    }
    let mut slot = rule.slots.remove(&RULE_SUBJECT).unwrap_or_default();
    slot.dev = dev;
    slot.last = now;
    if slot.phase == Phase::Raised {
        slot.phase = Phase::Idle;
        slot.acked = false;
        let what = "Routine activity seen".to_string();
        rule.slots.insert(RULE_SUBJECT, slot);
        emit(rule, ctx, AlertState::Cleared, r.at.0, &what);
    } else {
        rule.slots.insert(RULE_SUBJECT, slot);
    }
    rearm(rule, ri, ctx, now);
}

fn emit(rule: &Rule, ctx: &mut Ctx<'_>, state: AlertState, at: i64, what: &str) {
    let dev = rule
        .slots
        .get(&RULE_SUBJECT)
        .map_or(super::rule::NO_DEV, |s| s.dev);
    ctx.emit(rule, dev, state, at, None, None, what);
}

/// The next time this rule must check, given what it has learnt.
fn next_check(rule: &Rule, ctx: &Ctx<'_>, now: i64) -> Option<(i64, i64)> {
    let w = rule.spec.window?;
    let r = rule.routine.as_ref()?;
    let thr = threshold(rule)?;
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

/// Re-arms the rule's check timer from what it knows now.
pub fn rearm(rule: &mut Rule, ri: u32, ctx: &mut Ctx<'_>, now: i64) {
    let next = next_check(rule, ctx, now);
    let mut slot = rule.slots.remove(&RULE_SUBJECT).unwrap_or_default();
    if let Some((_, s)) = next {
        slot.since = s;
    }
    ctx.arm(&mut slot, ri, RULE_SUBJECT, next.map(|(c, _)| c));
    rule.slots.insert(RULE_SUBJECT, slot);
}

/// The check time came: raise if the instance being checked had no activity.
pub fn on_timer(rule: &mut Rule, ri: u32, ctx: &mut Ctx<'_>, due: i64, now: i64) {
    let Some(inst) = rule.slots.get(&RULE_SUBJECT).map(|s| s.since) else {
        return;
    };
    let thr = threshold(rule);
    let seen = rule.routine.as_ref().and_then(|r| r.seen);
    if let Some(r) = rule.routine.as_mut() {
        r.done = Some(inst);
    }
    let idle = rule
        .slots
        .get(&RULE_SUBJECT)
        .is_some_and(|s| s.phase == Phase::Idle);
    if let (Some(thr), Some(w)) = (thr, rule.spec.window)
        && seen != Some(inst)
        && idle
    {
        if let Some(s) = rule.slots.get_mut(&RULE_SUBJECT) {
            s.phase = Phase::Raised;
            s.acked = false;
        }
        let margin = rule
            .spec
            .margin
            .map_or(1800, |d| u32::try_from(d.0.as_secs()).unwrap_or(u32::MAX));
        let what = format!(
            "No activity by {} (usually by {})",
            fmt_hhmm((w.start + thr) % 86_400),
            fmt_hhmm((w.start + thr.saturating_sub(margin)) % 86_400)
        );
        emit(rule, ctx, AlertState::Raised, due, &what);
    }
    rearm(rule, ri, ctx, now.max(due));
}

/// Human status: `learning: 5 of 7 days` or when the rule will check.
pub fn status(rule: &Rule) -> (bool, String) {
    let n = rule.routine.as_ref().map_or(0, |r| r.history.len());
    let need = min_days(rule);
    match (threshold(rule), rule.spec.window) {
        (Some(thr), Some(w)) => (
            false,
            format!(
                "armed: alerts if no activity by {} ({n} days learnt)",
                fmt_hhmm((w.start + thr) % 86_400)
            ),
        ),
        _ => (true, format!("learning: {n} of {need} days")),
    }
}
