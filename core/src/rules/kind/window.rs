//! `window` rules: a state entered inside a local-time window ("door open
//! between 23:00 and 06:00"), optionally held for `for`; cleared when the
//! state reverses. Per device; the machine is [`Held`].

use crate::model::{Kind, Reading, Time};
use crate::rules::ctx::{Ctx, dur_text};
use crate::rules::eval::{self, At, RuleKind};
use crate::rules::held::{self, Held};
use crate::rules::routine;
use crate::rules::rule::{Compiled, Rule, Slot};
use crate::rules::spec::Want;
use crate::rules::window::fmt_hhmm;

pub struct Window;

impl RuleKind for Window {
    fn on_reading(rule: &mut Rule, at: At, dev: u32, ctx: &mut Ctx<'_>, r: &Reading) {
        let (window, now) = (rule.spec.window, at.now);
        let m = rule.want.matches(r.value);
        // The local-time lookup only when it can matter.
        let enter = |ctx: &Ctx<'_>| m && window.is_some_and(|w| w.contains(ctx.tz, Time(now)));
        let what = |c: &Compiled| what(c, r.kind);
        Held { at, dev }.step(rule, ctx, r, m, enter, !m, false, what);
    }

    fn on_timer(
        rule: &Compiled,
        slot: &mut Slot,
        _: Option<&mut routine::Routine>,
        _: At,
        due: i64,
        ctx: &mut Ctx<'_>,
    ) {
        held::fire_pending(rule, slot, due, ctx, |c| {
            let kind = c.spec.kinds.0.first().copied().unwrap_or(Kind::Contact);
            format!("{} for {}", what(c, kind), dur_text(c.for_ms))
        });
    }

    /// A pending state entered "inside the window" by a clock that was
    /// wrong is dropped when its true time is outside it.
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

/// "Door open between 23:00 and 06:00": the sentence of a window alert.
fn what(rule: &Compiled, kind: Kind) -> String {
    let active = rule.want != Want::Idle;
    let what = match (kind, active) {
        (Kind::Contact, true) => "Door open",
        (Kind::Contact, false) => "Door closed",
        (Kind::Bed, true) => "In bed",
        (Kind::Bed, false) => "Out of bed",
        (Kind::Chair, false) => "Out of the chair",
        (Kind::Motion, true) => "Movement",
        _ => "State",
    };
    match rule.window() {
        Some(w) => format!(
            "{what} between {} and {}",
            fmt_hhmm(w.start),
            fmt_hhmm(w.end % 86_400)
        ),
        None => what.to_string(),
    }
}
