//! Per-rule status for the UI and API: armed, learning, raised, suppressed
//! or disabled, with a human line.

use serde::{Deserialize, Serialize};

use super::rule::Phase;
use super::{Engine, RuleType, routine};
use crate::model::Severity;

/// What a rule is doing, for the UI and the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleStatus {
    pub rule: String,
    #[serde(rename = "type")]
    pub kind: RuleType,
    pub severity: Severity,
    /// `armed`, `learning`, `raised`, `suppressed` (raised and acknowledged,
    /// waiting for the situation to resolve) or `disabled`.
    pub state: String,
    /// Open (raised, not cleared) alerts of this rule.
    pub raised: usize,
    /// Timers armed for this rule.
    pub timers: usize,
    /// A human line, e.g. `learning: 5 of 7 days`.
    pub detail: String,
}

impl Engine {
    /// Per-rule state for the UI and API, in rule-file order.
    pub fn status(&self) -> Vec<RuleStatus> {
        let mut v: Vec<RuleStatus> = self
            .rules
            .iter()
            .map(|r| {
                let raised = r
                    .slots
                    .values()
                    .filter(|s| s.phase == Phase::Raised)
                    .count();
                let acked = r
                    .slots
                    .values()
                    .filter(|s| s.phase == Phase::Raised && s.acked)
                    .count();
                let timers = r.slots.values().filter(|s| s.deadline.is_some()).count();
                let (learning, detail) = if r.routine.is_some() {
                    routine::status(r)
                } else {
                    (false, format!("{} subject(s) tracked", r.slots.len()))
                };
                let state = if learning {
                    "learning"
                } else if raised > 0 && acked == raised {
                    "suppressed"
                } else if raised > 0 {
                    "raised"
                } else {
                    "armed"
                };
                let detail = if raised > 0 {
                    format!("{raised} open alert(s), {acked} acknowledged; {detail}")
                } else {
                    detail
                };
                RuleStatus {
                    rule: r.spec.id.to_string(),
                    kind: r.spec.kind,
                    severity: r.severity,
                    state: state.into(),
                    raised,
                    timers,
                    detail,
                }
            })
            .collect();
        v.extend(self.disabled.iter().map(|s| RuleStatus {
            rule: s.id.to_string(),
            kind: s.kind,
            severity: s.severity.unwrap_or(Severity::Warning),
            state: "disabled".into(),
            raised: 0,
            timers: 0,
            detail: "enabled = false".into(),
        }));
        v
    }
}
