//! Routine rules: learn when the first activity of the day usually happens
//! inside a daily window (here), and alert when today has none by the
//! learnt time (the rule kind: `kind/routine.rs`).
//!
//! Learning: for each window instance (one per local day) the first
//! activity's wall-clock offset from the window start is recorded; the last
//! `days` instances are kept. With at least `min_days` of them the rule arms:
//! the check time is the usual time plus `margin`, as local wall-clock time
//! of that day (so DST nights do not shift it), clamped to the window end.
//! The usual time is robust — the median plus three robust standard
//! deviations (1.4826 × the median absolute deviation), which one or two
//! outlying days cannot move much — unless the rule sets `percentile`
//! (then the nearest-rank percentile, as before, which one late day can
//! move). Days without any activity are not learnt, nor days on which the
//! rule raised its alert (their late first activity is the anomaly, not
//! the routine).
//!
//! Invariants: `seen` is the start of the latest instance with recorded
//! activity; `done` the start of the latest instance already checked; an
//! instance is never learnt or checked twice.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::rule::{Compiled, Rule};
use super::spec::{DEFAULT_DAYS, DEFAULT_MIN_DAYS};
use super::window::{fmt_hhmm, local_secs};
use crate::model::Time;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Routine {
    /// `(instance start ms, seconds after the window start)`, oldest first.
    pub history: VecDeque<(i64, u32)>,
    pub seen: Option<i64>,
    pub done: Option<i64>,
}

fn days(rule: &Compiled) -> usize {
    usize::from(rule.spec.days.unwrap_or(DEFAULT_DAYS))
}

pub fn min_days(rule: &Compiled) -> usize {
    usize::from(rule.spec.min_days.unwrap_or(DEFAULT_MIN_DAYS))
}

/// How long after the learnt time the rule waits (`margin`, seconds).
pub fn margin(rule: &Compiled) -> u32 {
    rule.spec
        .margin
        .map_or(1800, |d| u32::try_from(d.0.as_secs()).unwrap_or(u32::MAX))
}

/// Seconds after the window start by which activity is expected, once armed.
pub fn threshold(rule: &Rule) -> Option<u32> {
    threshold_of(rule, rule.routine.as_deref()?)
}

/// [`threshold`] from the rule's parts, for callers holding its slot.
pub fn threshold_of(rule: &Compiled, r: &Routine) -> Option<u32> {
    if r.history.len() < min_days(rule) {
        return None;
    }
    let mut v: Vec<u32> = r.history.iter().map(|&(_, o)| o).collect();
    v.sort_unstable();
    let base = match rule.spec.percentile {
        Some(p) => {
            let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
            v.get(rank.saturating_sub(1).min(v.len() - 1)).copied()?
        }
        None => robust(&v)?,
    };
    Some(base.saturating_add(margin(rule)))
}

/// Median + 3 × 1.4826 × MAD of sorted offsets (seconds), rounded up to
/// the minute.
pub fn robust(sorted: &[u32]) -> Option<u32> {
    let med = median(sorted)?;
    let mut dev: Vec<u32> = sorted.iter().map(|&x| x.abs_diff(med)).collect();
    dev.sort_unstable();
    let mad = median(&dev)?;
    let spread = (3.0 * 1.4826 * f64::from(mad)).ceil() as u32;
    let t = med.saturating_add(spread);
    Some(t.div_ceil(60).saturating_mul(60))
}

fn median(sorted: &[u32]) -> Option<u32> {
    let n = sorted.len();
    let hi = *sorted.get(n / 2)?;
    if n % 2 == 1 {
        return Some(hi);
    }
    let lo = *sorted.get(n / 2 - 1)?;
    Some(lo + (hi - lo) / 2)
}

/// Records `t` as activity; true if it was the first of its window
/// instance. With `keep` false the instance counts as seen but is not
/// learnt (a day the rule alerted on).
pub fn learn(rule: &mut Rule, tz: &jiff::tz::TimeZone, t: Time, learnt: bool) -> bool {
    let Rule {
        compiled: c,
        routine,
        ..
    } = rule;
    let Some(w) = c.spec.window else {
        return false;
    };
    let keep = days(c);
    let Some(r) = routine.as_mut() else {
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
    if !learnt {
        return true;
    }
    let off = (secs + 86_400 - w.start) % 86_400;
    r.history.push_back((s.0, off));
    while r.history.len() > keep {
        r.history.pop_front();
    }
    true
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
