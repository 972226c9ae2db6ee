//! `threshold` rules: a value beyond a limit for a duration, cleared (or
//! the pending time cancelled) only past the limit plus the hysteresis.
//! Per device; the machine is [`Held`]. A level, not an event: a reading
//! re-reporting the same value is judged like any other (it cannot start
//! anything a first report of that value did not).

use crate::model::{Kind, Reading};
use crate::rules::ctx::{Ctx, capital, dur_text, fmt_value, now_value, unit};
use crate::rules::eval::{At, RuleKind};
use crate::rules::held::{self, Held};
use crate::rules::routine;
use crate::rules::rule::{Compiled, Rule, Slot};
use crate::rules::spec::RuleSpec;

pub struct Threshold;

impl RuleKind for Threshold {
    fn on_reading(rule: &mut Rule, at: At, dev: u32, ctx: &mut Ctx<'_>, r: &Reading) {
        let (v, h) = (r.value, rule.hysteresis);
        let (cond, recovered) = match (rule.spec.below, rule.spec.above) {
            (Some(b), _) => (v < b, v >= b + h),
            (None, Some(a)) => (v > a, v <= a - h),
            (None, None) => return,
        };
        let what = |c: &Compiled| reading_what(&c.spec, r.kind);
        let how = || now_value(r.kind, v);
        Held { at, dev }.step(rule, ctx, r, cond, |_| cond, recovered, true, what, how);
    }

    fn on_timer(
        rule: &Compiled,
        slot: &mut Slot,
        _: Option<&mut routine::Routine>,
        _: At,
        due: i64,
        ctx: &mut Ctx<'_>,
    ) {
        held::fire_pending(rule, slot, due, ctx, timer_what);
    }
}

/// "Temperature below 16 °C": the sentence of a reading's alert.
fn reading_what(spec: &RuleSpec, kind: Kind) -> String {
    let what = match (spec.below, spec.above) {
        (Some(b), _) => format!("{} below {}", kind, fmt_value(b)),
        (None, a) => format!("{} above {}", kind, fmt_value(a.unwrap_or(0.0))),
    };
    format!("{}{}", capital(&what), unit(kind))
}

/// "Temperature below 16 °C for 30 min": the sentence when `for` ran out.
fn timer_what(rule: &Compiled) -> String {
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
