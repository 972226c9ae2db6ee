//! `immediate` (and `tamper`) rules: a reading kind means alert now.
//!
//! One situation, one alert: a raised slot raises again only after the
//! cooldown (or an ack); a rule with `clear` never re-raises while its
//! sensor is still active, and clears when it goes idle. Only news counts:
//! a press or detection ([`is_event`](crate::rules::eval::is_event) kinds)
//! or a change of a state sensor (smoke, leak, tamper) — a sensor
//! re-reporting "alarm" or "idle" changes nothing.

use crate::model::{AlertState, Kind, Reading};
use crate::rules::ctx::{Cause, Ctx};
use crate::rules::eval::{At, RuleKind};
use crate::rules::rule::{Phase, Rule, Slot};

pub struct Immediate;

impl RuleKind for Immediate {
    fn on_reading(rule: &mut Rule, at: At, dev: u32, ctx: &mut Ctx<'_>, r: &Reading) {
        let Rule {
            compiled: c, slots, ..
        } = rule;
        if !at.changed {
            return;
        }
        if r.is_active() {
            let slot = slots.entry(at.subject).or_default();
            if slot.phase == Phase::Raised && (c.clear || at.now < slot.since + c.cooldown_ms) {
                return;
            }
            *slot = Slot {
                since: at.now,
                value: r.value,
                dev,
                ..Slot::default()
            };
            let cause = Cause::reading(c, dev, r);
            ctx.emit(slot, AlertState::Raised, &cause, &what(r.kind));
        } else if c.clear
            && let Some(slot) = slots.get_mut(&at.subject)
            && slot.phase == Phase::Raised
        {
            let cause = Cause::reading(c, slot.dev, r);
            let how = if dev == slot.dev {
                "sensor idle again".to_string()
            } else {
                format!("sensor idle again {}", ctx.where_is(dev))
            };
            ctx.resolve(slot, &cause, &what(r.kind), &how);
        }
    }
}

/// "Panic button pressed": the sentence of a reading kind.
fn what(kind: Kind) -> String {
    match kind {
        Kind::Panic => "Panic button pressed".into(),
        Kind::Fall => "Fall detected".into(),
        Kind::Smoke => "Smoke alarm".into(),
        Kind::CarbonMonoxide => "Carbon monoxide alarm".into(),
        Kind::WaterLeak => "Water leak detected".into(),
        Kind::Tamper => "Device tampered with".into(),
        k => format!("{k} alert"),
    }
}
