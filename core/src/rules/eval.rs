//! What each rule type does with a reading and with a fired timer
//! (threshold and window readings: `held`).
//!
//! Invariants: handlers only touch their own rule's slots, the timer queue
//! (through [`Ctx::arm`]) and the output; one *situation* gives one raised
//! alert — a slot in `Raised` never raises again until it is cleared (or,
//! for immediate rules without a clear, until its cooldown or an ack);
//! time comes in as `now` (ms), never from a clock.

use std::collections::hash_map::Entry;

use jiff::tz::TimeZone;

use super::ctx::{Ctx, capital, dur_text, fmt_value, immediate_what, unit, window_what};
use super::devices::Devices;
use super::held::{self, Held};
use super::rule::{Phase, RULE_SUBJECT, Rule, Slot, ms, step_matches};
use super::spec::{Per, RuleSpec, RuleType};
use super::window::Window;
use crate::model::{AlertState, Kind, Reading, Severity, Time};

/// The subject a reading belongs to for this rule.
fn subject_of(rule: &Rule, devs: &Devices, dev: u32) -> Option<u32> {
    match rule.spec.kind {
        RuleType::Inactivity => match rule.per {
            Per::Rule => Some(RULE_SUBJECT),
            Per::Device => Some(dev),
            Per::Room => devs.get(dev).and_then(|d| d.room),
        },
        RuleType::Absence | RuleType::Sequence | RuleType::Routine => Some(RULE_SUBJECT),
        _ => Some(dev),
    }
}

/// When an inactivity clock that last saw activity at `last` runs out.
pub fn inactivity_deadline(rule: &Rule, tz: &TimeZone, last: i64) -> Option<i64> {
    deadline_from(rule.spec.window, rule.for_ms, tz, last)
}

fn deadline_from(window: Option<Window>, for_ms: i64, tz: &TimeZone, last: i64) -> Option<i64> {
    match window {
        None => Some(last.saturating_add(for_ms)),
        Some(w) => w.after_in_window(tz, Time(last), for_ms).map(|t| t.0),
    }
}

/// The hot timer path (100k armed clocks): the caller already holds the
/// slot, so no further lookup and no moves.
#[allow(clippy::too_many_arguments)]
pub fn inactivity_fire(
    slot: &mut Slot,
    spec: &RuleSpec,
    severity: Severity,
    what: &str,
    for_ms: i64,
    ri: u32,
    subject: u32,
    ctx: &mut Ctx<'_>,
    now: i64,
) {
    let due = slot.deadline.unwrap_or(now);
    slot.deadline = None;
    if slot.phase != Phase::Idle {
        return;
    }
    match deadline_from(spec.window, for_ms, ctx.tz, slot.last) {
        // Later than this entry: re-queue even if already past, so timers
        // fire in deadline order (restart-proof).
        Some(d) if d > due => ctx.arm(slot, ri, subject, Some(d)),
        Some(d) => {
            slot.phase = Phase::Raised;
            slot.acked = false;
            slot.since = d;
            let dev = slot.dev;
            ctx.emit_for(spec, severity, dev, AlertState::Raised, d, None, None, what);
        }
        None => {}
    }
}

/// Starts rule-wide clocks on the first event the rule sees.
pub fn start(rule: &mut Rule, ri: u32, ctx: &mut Ctx<'_>, now: i64) {
    rule.started = true;
    match rule.spec.kind {
        RuleType::Inactivity
            if rule.per == Per::Rule && !rule.slots.contains_key(&RULE_SUBJECT) =>
        {
            let mut slot = Slot {
                last: now,
                since: now,
                ..Slot::default()
            };
            let d = inactivity_deadline(rule, ctx.tz, now);
            ctx.arm(&mut slot, ri, RULE_SUBJECT, d);
            rule.slots.insert(RULE_SUBJECT, slot);
        }
        RuleType::Absence => {
            if !rule.slots.contains_key(&RULE_SUBJECT)
                && let Some(w) = rule.window().copied()
            {
                let mut slot = Slot {
                    last: now,
                    since: now,
                    ..Slot::default()
                };
                let d = w.instance_at_or_after(ctx.tz, Time(now)).map(|(_, e)| e.0);
                ctx.arm(&mut slot, ri, RULE_SUBJECT, d);
                rule.slots.insert(RULE_SUBJECT, slot);
            }
        }
        RuleType::Routine => super::routine::rearm(rule, ri, ctx, now),
        _ => {}
    }
}

/// A reading reached this rule (its selectors matched).
pub fn on_reading(rule: &mut Rule, ri: u32, ctx: &mut Ctx<'_>, dev: u32, r: &Reading, now: i64) {
    let Some(subject) = subject_of(rule, ctx.devs, dev) else {
        return;
    };
    let v = r.value;
    let at = r.at.0;
    let held = Held {
        ri,
        subject,
        dev,
        now,
        for_ms: rule.for_ms,
    };
    match rule.spec.kind {
        RuleType::Immediate | RuleType::Tamper => {
            if r.is_active() {
                let slot = rule.slots.entry(subject).or_default();
                if slot.phase == Phase::Raised
                    && (rule.clear || now < slot.since + rule.cooldown_ms)
                {
                    return;
                }
                *slot = Slot {
                    phase: Phase::Raised,
                    since: now,
                    value: v,
                    dev,
                    ..Slot::default()
                };
                ctx.emit(
                    rule,
                    dev,
                    AlertState::Raised,
                    at,
                    Some(v),
                    Some(r.kind),
                    &immediate_what(r.kind),
                );
            } else if rule.clear
                && let Some(slot) = rule.slots.get_mut(&subject)
                && slot.phase == Phase::Raised
            {
                slot.phase = Phase::Idle;
                ctx.emit(
                    rule,
                    dev,
                    AlertState::Cleared,
                    at,
                    Some(v),
                    Some(r.kind),
                    &immediate_what(r.kind),
                );
            }
        }
        RuleType::Threshold => held::threshold(rule, ctx, r, &held),
        RuleType::Window => held::window(rule, ctx, r, &held),
        RuleType::Inactivity => {
            let active = v >= rule.min_value;
            let (window, for_ms) = (rule.spec.window, rule.for_ms);
            // Hot path (every motion event): one map lookup, update in place.
            let slot = match rule.slots.entry(subject) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(e) => {
                    if subject == RULE_SUBJECT && !rule.started {
                        return;
                    }
                    let mut slot = Slot {
                        last: now,
                        since: now,
                        dev,
                        ..Slot::default()
                    };
                    ctx.arm(
                        &mut slot,
                        ri,
                        subject,
                        deadline_from(window, for_ms, ctx.tz, now),
                    );
                    e.insert(slot)
                }
            };
            if !active {
                return;
            }
            slot.last = now;
            slot.dev = dev;
            let was_raised = slot.phase == Phase::Raised;
            if was_raised {
                slot.phase = Phase::Idle;
                slot.acked = false;
            }
            // A live entry pops no later than the new deadline and
            // recomputes it then; only an idle clock needs queueing.
            if slot.queued.is_none() {
                ctx.arm(
                    slot,
                    ri,
                    subject,
                    deadline_from(window, for_ms, ctx.tz, now),
                );
            } else if slot.deadline.is_none() {
                slot.deadline = slot.queued;
            }
            if was_raised {
                ctx.emit(
                    rule,
                    dev,
                    AlertState::Cleared,
                    at,
                    Some(v),
                    Some(r.kind),
                    "Activity resumed",
                );
            }
        }
        RuleType::Absence => {
            if v < rule.min_value {
                return;
            }
            if let Some(slot) = rule.slots.get_mut(&subject) {
                slot.last = now;
                slot.dev = dev;
                if slot.phase == Phase::Raised {
                    slot.phase = Phase::Idle;
                    slot.acked = false;
                    let slot = slot.clone();
                    ctx.emit(
                        rule,
                        dev,
                        AlertState::Cleared,
                        at,
                        Some(v),
                        Some(r.kind),
                        "Activity seen",
                    );
                    rule.slots.insert(subject, slot);
                }
            }
        }
        RuleType::Sequence => {
            let Rule {
                slots,
                spec,
                severity,
                within_ms,
                ..
            } = rule;
            let cancels = spec
                .cancel
                .iter()
                .any(|s| step_matches(s, ctx.devs, dev, r.kind, Some(v)));
            // The rule-wide slot always exists once a reading reached the
            // rule (it is part of the persisted state).
            let slot = slots.entry(subject).or_default();
            if cancels {
                match slot.phase {
                    Phase::Pending => {
                        slot.phase = Phase::Idle;
                        ctx.arm(slot, ri, subject, None);
                    }
                    Phase::Raised => {
                        slot.phase = Phase::Idle;
                        slot.acked = false;
                        ctx.emit_for(
                            spec,
                            *severity,
                            dev,
                            AlertState::Cleared,
                            at,
                            Some(v),
                            Some(r.kind),
                            "Movement resumed",
                        );
                    }
                    Phase::Idle => {}
                }
            } else if slot.phase == Phase::Idle
                && spec
                    .start
                    .as_ref()
                    .is_some_and(|s| step_matches(s, ctx.devs, dev, r.kind, Some(v)))
                && spec.window.is_none_or(|w| w.contains(ctx.tz, Time(now)))
            {
                slot.phase = Phase::Pending;
                slot.since = now;
                slot.dev = dev;
                slot.value = v;
                ctx.arm(slot, ri, subject, Some(now + *within_ms));
            }
        }
        RuleType::Silent => {
            let iv = silent_interval(rule, r.kind);
            let slot = rule.slots.entry(subject).or_default();
            slot.last = now;
            slot.dev = dev;
            let was_raised = slot.phase == Phase::Raised;
            if was_raised {
                slot.phase = Phase::Idle;
                slot.acked = false;
            }
            let d = slot
                .deadline
                .unwrap_or(i64::MIN)
                .max(now.saturating_add(iv));
            ctx.arm(slot, ri, subject, Some(d));
            if was_raised {
                ctx.emit(
                    rule,
                    dev,
                    AlertState::Cleared,
                    at,
                    None,
                    Some(r.kind),
                    "Device reporting again",
                );
            }
        }
        RuleType::LowBattery => {
            let below = rule.below().unwrap_or(20.0);
            let (low, ok) = match r.kind {
                Kind::Battery => (v < below, v >= below + rule.hysteresis),
                _ => (r.is_active(), !r.is_active()),
            };
            let slot = rule.slots.entry(subject).or_default();
            if low && slot.phase != Phase::Raised {
                *slot = Slot {
                    phase: Phase::Raised,
                    since: now,
                    value: v,
                    dev,
                    ..Slot::default()
                };
                ctx.emit(
                    rule,
                    dev,
                    AlertState::Raised,
                    at,
                    Some(v),
                    Some(r.kind),
                    "Battery low",
                );
            } else if ok && slot.phase == Phase::Raised {
                slot.phase = Phase::Idle;
                ctx.emit(
                    rule,
                    dev,
                    AlertState::Cleared,
                    at,
                    Some(v),
                    Some(r.kind),
                    "Battery low",
                );
            }
        }
        RuleType::Routine => {
            if v >= rule.min_value {
                super::routine::on_activity(rule, ri, ctx, dev, r, now);
            }
        }
    }
}

/// A timer of this rule is due (its slot's deadline is `≤ now`).
pub fn on_timer(rule: &mut Rule, ri: u32, ctx: &mut Ctx<'_>, subject: u32, now: i64) {
    if rule.spec.kind == RuleType::Inactivity {
        let Rule {
            slots,
            spec,
            severity,
            what,
            for_ms,
            ..
        } = rule;
        if let Some(slot) = slots.get_mut(&subject) {
            inactivity_fire(slot, spec, *severity, what, *for_ms, ri, subject, ctx, now);
        }
        return;
    }
    let Some(mut slot) = rule.slots.remove(&subject) else {
        return;
    };
    let due = slot.deadline.unwrap_or(now);
    slot.deadline = None;
    match rule.spec.kind {
        RuleType::Threshold | RuleType::Window | RuleType::Sequence
            if slot.phase == Phase::Pending =>
        {
            slot.phase = Phase::Raised;
            slot.acked = false;
            let what = match rule.spec.kind {
                RuleType::Threshold => {
                    let kind = rule
                        .spec
                        .kinds
                        .0
                        .first()
                        .copied()
                        .unwrap_or(Kind::Temperature);
                    let (dir, lim) = match (rule.spec.below, rule.spec.above) {
                        (Some(b), _) => ("below", b),
                        (_, a) => ("above", a.unwrap_or(0.0)),
                    };
                    format!(
                        "{} {dir} {}{} for {}",
                        capital(kind.as_str()),
                        fmt_value(lim),
                        unit(kind),
                        dur_text(rule.for_ms)
                    )
                }
                RuleType::Window => {
                    let kind = rule.spec.kinds.0.first().copied().unwrap_or(Kind::Contact);
                    format!("{} for {}", window_what(rule, kind), dur_text(rule.for_ms))
                }
                _ => format!(
                    "No return within {} — possible fall",
                    dur_text(rule.within_ms)
                ),
            };
            ctx.emit(
                rule,
                slot.dev,
                AlertState::Raised,
                due,
                Some(slot.value),
                None,
                &what,
            );
        }
        RuleType::Absence => {
            if let Some(w) = rule.window().copied() {
                let inst = w.instance_at_or_after(ctx.tz, Time(due - 1));
                if let Some((s, e)) = inst
                    && slot.last < s.0
                    && slot.phase == Phase::Idle
                {
                    slot.phase = Phase::Raised;
                    slot.acked = false;
                    slot.since = e.0;
                    ctx.emit(
                        rule,
                        slot.dev,
                        AlertState::Raised,
                        e.0,
                        None,
                        None,
                        &format!(
                            "No activity between {}",
                            w.to_string().replace('-', " and ")
                        ),
                    );
                }
                let next = w.instance_at_or_after(ctx.tz, Time(due)).map(|(_, e)| e.0);
                ctx.arm(&mut slot, ri, subject, next);
            }
        }
        RuleType::Silent if slot.phase == Phase::Idle => {
            slot.phase = Phase::Raised;
            slot.acked = false;
            slot.since = due;
            let what = format!("No message for {}", dur_text(due - slot.last));
            ctx.emit(rule, slot.dev, AlertState::Raised, due, None, None, &what);
        }
        RuleType::Routine => {
            rule.slots.insert(subject, slot);
            super::routine::on_timer(rule, ri, ctx, due, now);
            return;
        }
        _ => {}
    }
    rule.slots.insert(subject, slot);
}

/// The expected reporting interval of a device for the silent rule.
pub fn silent_interval(rule: &Rule, kind: Kind) -> i64 {
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
