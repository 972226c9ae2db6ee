//! Escalation of raised alerts nobody acknowledges: a rule with
//! `escalate = "10m"` re-sends its open alert every 10 minutes — same
//! instance, the attempt number counting up, the severity one step higher
//! (info → warning → urgent) — at most `escalate_max` times, until it is
//! acknowledged or cleared. The re-send goes out like any alert (outbox,
//! every uplink path, UI, Home Assistant).
//!
//! Invariants: at most one escalation per instance, and per rule and
//! device (a new raise of the same rule and device supersedes the old
//! one); the list is part of the persisted state; re-sends come in due
//! order, each stamped with its due time.

use serde::{Deserialize, Serialize};

use super::rule::Rule;
use crate::model::{Alert, AlertState, DeviceId, Severity, Time};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Esc {
    /// The alert as last sent (its instance carries the attempt).
    pub alert: Alert,
    pub due: i64,
    pub every: i64,
    /// Re-sends left.
    pub left: u32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Escalations {
    pub open: Vec<Esc>,
}

impl Escalations {
    /// The wall clock stepped by `delta` ms: re-sends keep their true
    /// elapsed time (none fires early or twice because of the step).
    pub fn shift(&mut self, delta: i64) {
        for e in &mut self.open {
            e.due = e.due.saturating_add(delta);
        }
    }

    /// Looks at alerts just emitted (`new`): raises of escalating rules
    /// start an escalation, clears end theirs.
    pub fn observe(&mut self, rules: &[Rule], new: &[Alert]) {
        for a in new {
            let Some(inst) = &a.instance else { continue };
            match a.state {
                AlertState::Cleared => self.open.retain(|e| !same(&e.alert, &inst.instance)),
                AlertState::Raised if inst.attempt == 1 => {
                    let Some(rule) = rules.iter().find(|r| r.spec.id == a.rule) else {
                        continue;
                    };
                    if rule.escalate_ms <= 0 {
                        continue;
                    }
                    self.open
                        .retain(|e| !(e.alert.rule == a.rule && e.alert.device == a.device));
                    self.open.push(Esc {
                        alert: a.clone(),
                        due: a.at.0.saturating_add(rule.escalate_ms),
                        every: rule.escalate_ms,
                        left: rule.escalate_max,
                    });
                }
                AlertState::Raised => {}
            }
        }
    }

    /// The earliest re-send due, if any.
    pub fn next(&self) -> Option<i64> {
        self.open.iter().map(|e| e.due).min()
    }

    /// Re-sends everything due by `now`, in due order.
    pub fn fire(&mut self, now: i64, out: &mut Vec<Alert>) -> bool {
        let mut any = false;
        while let Some(i) = self
            .open
            .iter()
            .enumerate()
            .filter(|(_, e)| e.due <= now)
            .min_by_key(|(_, e)| e.due)
            .map(|(i, _)| i)
        {
            let Some(e) = self.open.get_mut(i) else { break };
            let mut a = e.alert.clone();
            if let Some(inst) = a.instance.as_mut() {
                inst.attempt += 1;
                a.message = format!(
                    "Not acknowledged (attempt {}): {}",
                    inst.attempt,
                    strip(&e.alert.message)
                );
            }
            a.severity = raise(a.severity);
            a.at = Time(e.due);
            a.uid = None;
            out.push(a.clone());
            any = true;
            e.left = e.left.saturating_sub(1);
            e.due = e.due.saturating_add(e.every.max(1));
            e.alert = a;
            if e.left == 0 {
                self.open.swap_remove(i);
            }
        }
        any
    }

    /// Stops escalating what was acknowledged: an instance, or every open
    /// alert of a rule (for one device or all).
    pub fn ack(&mut self, instance: Option<&str>, rule: &str, device: Option<&DeviceId>) -> bool {
        let n = self.open.len();
        self.open.retain(|e| match instance {
            Some(i) => !same(&e.alert, i),
            None => !(&*e.alert.rule == rule && device.is_none_or(|d| *d == e.alert.device)),
        });
        n != self.open.len()
    }
}

fn same(a: &Alert, instance: &str) -> bool {
    a.instance
        .as_ref()
        .is_some_and(|i| &*i.instance == instance)
}

/// The original sentence of an already escalated message.
fn strip(m: &str) -> &str {
    match m.strip_prefix("Not acknowledged (attempt ") {
        Some(rest) => rest.split_once("): ").map_or(m, |(_, s)| s),
        None => m,
    }
}

fn raise(s: Severity) -> Severity {
    match s {
        Severity::Info => Severity::Warning,
        _ => Severity::Urgent,
    }
}
