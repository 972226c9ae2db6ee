//! Acknowledging alerts in the engine: by rule (and device), or one
//! situation by its instance id. Split from `mod.rs`.

use super::Engine;
use super::rule::{self, Phase};
use super::spec::{self, RuleType};
use crate::model::{DeviceId, Time};

impl Engine {
    /// Acknowledges the open alerts of `rule` (for one device, or all).
    /// Immediate rules without a clear may alert again right away after an
    /// ack; other rules stay raised (now "suppressed") until they clear.
    /// Returns whether anything was acknowledged.
    pub fn ack(&mut self, alert_rule: &str, device: Option<&DeviceId>, now: Time) -> bool {
        self.now = self.now.max(now.0);
        let dev = device.map(|d| self.devs.find(d));
        let Some(rule) = self.rules.iter_mut().find(|r| &*r.spec.id == alert_rule) else {
            return false;
        };
        let mut any = false;
        let forget =
            matches!(rule.spec.kind, RuleType::Immediate | RuleType::Tamper) && !rule.clear;
        for s in rule.slots.values_mut() {
            if s.phase != Phase::Raised || s.acked {
                continue;
            }
            if let Some(d) = dev
                && Some(s.dev) != d
            {
                continue;
            }
            s.acked = true;
            if forget {
                s.phase = Phase::Idle;
            }
            any = true;
        }
        any |= self.escalations.ack(None, alert_rule, device);
        if any {
            self.bump_all();
        }
        any
    }

    /// Acknowledges one alert by its instance id (`Alert::instance`): the
    /// situation stays open until it clears (an immediate rule without a
    /// clear may alert again at once), and its escalation stops. Returns
    /// whether the instance was open.
    pub fn ack_instance(&mut self, instance: &str, now: Time) -> bool {
        self.now = self.now.max(now.0);
        let mut any = self.escalations.ack(Some(instance), "", None);
        let (Some((rule_id, rest)), Some((_, opened))) =
            (instance.split_once('/'), instance.rsplit_once('/'))
        else {
            return any;
        };
        let subject = rest.rsplit_once('/').map_or("", |(s, _)| s);
        let opened: i64 = opened.parse().unwrap_or(i64::MIN);
        let devs = &self.devs;
        if let Some(rule) = self.rules.iter_mut().find(|r| &*r.spec.id == rule_id) {
            let per_room = rule.spec.kind == RuleType::Inactivity && rule.per == spec::Per::Room;
            let forget =
                matches!(rule.spec.kind, RuleType::Immediate | RuleType::Tamper) && !rule.clear;
            for (&k, s) in rule.slots.iter_mut() {
                let name = match k {
                    rule::RULE_SUBJECT => Some("home"),
                    k if per_room => devs.room_by_index(k),
                    k => devs.get(k).map(|d| d.id.as_str()),
                };
                if s.phase == Phase::Raised
                    && !s.acked
                    && s.opened == opened
                    && name == Some(subject)
                {
                    s.acked = true;
                    if forget {
                        s.phase = Phase::Idle;
                    }
                    any = true;
                }
            }
        }
        if any {
            self.bump_all();
        }
        any
    }
}
