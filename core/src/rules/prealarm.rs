//! Pre-alarms of automatic detections: a rule with `prealarm = "60s"`
//! (`inactivity`, `dwell`, `sequence` only — never a panic press) does not
//! send its alert at once. The engine holds it back and asks the shell to
//! warn locally ([`Warning`]: a Zigbee siren's IAS WD Start Warning, see
//! `zigbee::ias_wd`, sent by the hub to every device with role
//! [`SIREN_ROLE`], [`Engine::sirens`]); a button press within that time (a `panic` press,
//! or any active reading of a device with role [`CANCEL_ROLE`]) cancels it, and so does the situation resolving by
//! itself (motion seen). A cancelled pre-alarm is recorded and sent
//! upstream as information: an `info` alert of the same instance,
//! "Pre-alarm cancelled: … — button press (Pendant)", closed at once by its
//! clear. Otherwise the alert goes out when the time is up, stamped with
//! the time its condition happened.
//!
//! Invariants: a held alert is never lost — it is part of the persisted
//! state, and goes out or is recorded as cancelled; the rule's slot stays
//! `Raised` while held, so nothing raises twice; a cancel by button press
//! starts the rule's clock again from the press (she answered, and is
//! still watched).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Engine;
use super::ctx::Ctx;
use super::kind;
use super::rule::Phase;
use super::spec::RuleType;
use crate::model::{Alert, AlertState, DeviceId, Kind, Reading, Severity};

/// A device whose press cancels a pre-alarm (besides panic and switch presses).
pub const CANCEL_ROLE: &str = "cancel_button";

/// A device that sounds the local warning: every registered device with
/// this role (a Zigbee siren, IAS WD) is sent each [`Warning`].
pub const SIREN_ROLE: &str = "siren";

/// An alert held back while its local warning sounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pre {
    pub alert: Alert,
    /// When it goes out unless cancelled (ms).
    pub due: i64,
}

/// What the local warning device must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningAct {
    /// Start warning (siren, strobe) for this many seconds.
    Start { secs: u32 },
    /// Cancelled by a press: stop, and squawk to confirm.
    Cancelled,
    /// The alert went out: stop warning.
    Sent,
}

/// A local warning for the shell to carry out (`Engine::take_warnings`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    pub act: WarningAct,
    pub instance: Arc<str>,
    pub rule: Arc<str>,
    pub device: DeviceId,
    pub room: Option<String>,
    /// The held alert's sentence (what a speaker would say).
    pub message: String,
}

/// Whether a reading is a button press that cancels pre-alarms: a panic
/// press (which still raises its own alert), or any active reading of a
/// [`CANCEL_ROLE`] device. Not any `switch`: a plug re-reporting "on" must
/// never cancel an alert.
pub fn is_cancel_press(r: &Reading, role: Option<&str>) -> bool {
    r.is_active() && (r.kind == Kind::Panic || role == Some(CANCEL_ROLE))
}

fn warning(a: &Alert, act: WarningAct) -> Warning {
    Warning {
        act,
        instance: a
            .instance
            .as_ref()
            .map_or_else(|| Arc::from(""), |i| i.instance.clone()),
        rule: a.rule.clone(),
        device: a.device.clone(),
        room: a.room.clone(),
        message: a.message.clone(),
    }
}

fn same(a: &Alert, b: &Alert) -> bool {
    match (&a.instance, &b.instance) {
        (Some(x), Some(y)) => x.instance == y.instance,
        _ => false,
    }
}

/// The information record of a cancelled pre-alarm: an `info` raise and
/// its clear, same instance, stamped `at`.
fn records(held: &Alert, reason: &str, at: i64) -> [Alert; 2] {
    let raised = Alert {
        severity: Severity::Info,
        state: AlertState::Raised,
        at: crate::model::Time(at),
        message: format!("Pre-alarm cancelled: {} — {reason}", held.message),
        value: None,
        kind: None,
        ..held.clone()
    };
    let cleared = Alert {
        state: AlertState::Cleared,
        message: format!("Resolved: pre-alarm cancelled — {reason}"),
        ..raised.clone()
    };
    [raised, cleared]
}

impl Engine {
    /// Local warnings to carry out since the last call, in order.
    pub fn take_warnings(&mut self) -> Vec<Warning> {
        std::mem::take(&mut self.warnings)
    }

    /// The registered devices with role [`SIREN_ROLE`]: where the shell
    /// sends each warning.
    pub fn sirens(&self) -> Vec<DeviceId> {
        self.devs
            .iter()
            .filter(|(_, d)| d.role.as_deref() == Some(SIREN_ROLE))
            .map(|(_, d)| d.id.clone())
            .collect()
    }

    /// Alerts held back by pre-alarms now.
    pub fn prealarms(&self) -> &[Pre] {
        &self.prealarms
    }

    /// New alerts from `from` on: raises of rules with a pre-alarm are
    /// held back (a warning starts); a clear of a held alert cancels it.
    pub(super) fn hold_prealarms(&mut self, out: &mut Vec<Alert>, from: usize) {
        if !self.any_prealarm && self.prealarms.is_empty() {
            return;
        }
        let tail: Vec<Alert> = out.drain(from..).collect();
        for a in tail {
            let pre = self
                .rules
                .iter()
                .find(|r| r.spec.id == a.rule)
                .map_or(0, |r| r.prealarm_ms);
            let first = a.instance.as_ref().is_some_and(|i| i.attempt == 1);
            match a.state {
                AlertState::Raised if pre > 0 && first => {
                    let secs = u32::try_from(pre / 1000).unwrap_or(u32::MAX);
                    self.warnings.push(warning(&a, WarningAct::Start { secs }));
                    self.prealarms.push(Pre {
                        due: a.at.0.saturating_add(pre),
                        alert: a,
                    });
                }
                AlertState::Cleared => {
                    match self.prealarms.iter().position(|p| same(&p.alert, &a)) {
                        Some(i) => {
                            let held = self.prealarms.remove(i).alert;
                            let reason = a
                                .message
                                .rsplit_once(" — ")
                                .map_or("resolved", |(_, how)| how)
                                .to_string();
                            self.warnings.push(warning(&held, WarningAct::Cancelled));
                            out.extend(records(&held, &reason, a.at.0));
                        }
                        None => out.push(a),
                    }
                }
                _ => out.push(a),
            }
        }
        self.bump_all();
    }

    /// Held alerts whose time is up by `now` go out (due order).
    pub(super) fn send_due_prealarms(&mut self, now: i64, out: &mut Vec<Alert>) {
        if self.prealarms.iter().all(|p| p.due > now) {
            return;
        }
        self.prealarms.sort_by_key(|p| p.due);
        let from = out.len();
        while self.prealarms.first().is_some_and(|p| p.due <= now) {
            let p = self.prealarms.remove(0);
            self.warnings.push(warning(&p.alert, WarningAct::Sent));
            out.push(p.alert);
        }
        self.observe(out, from);
        self.bump_all();
    }

    /// A button press (`reason`) cancels every held alert: each is
    /// recorded, and its rule's clock starts again at `now`.
    pub(super) fn cancel_prealarms(&mut self, reason: &str, now: i64, out: &mut Vec<Alert>) {
        let held = std::mem::take(&mut self.prealarms);
        for p in held {
            self.warnings.push(warning(&p.alert, WarningAct::Cancelled));
            self.reset_held(&p.alert, now);
            out.extend(records(&p.alert, reason, now));
        }
        self.bump_all();
    }

    /// The slot whose alert was held goes back to watching from `now`.
    fn reset_held(&mut self, a: &Alert, now: i64) {
        let Some(inst) = &a.instance else { return };
        let Some((_, opened)) = inst.instance.rsplit_once('/') else {
            return;
        };
        let opened: i64 = opened.parse().unwrap_or(i64::MIN);
        let Some(ri) = self.rules.iter().position(|r| r.spec.id == a.rule) else {
            return;
        };
        let ri32 = u32::try_from(ri).unwrap_or(u32::MAX);
        let Some(rule) = self.rules.get_mut(ri) else {
            return;
        };
        let c = &rule.compiled;
        for (&subject, slot) in rule.slots.iter_mut() {
            if slot.phase != Phase::Raised || slot.opened != opened {
                continue;
            }
            slot.phase = Phase::Idle;
            slot.acked = false;
            let mut none = Vec::new();
            let mut ctx = Ctx::new(&self.devs, &self.tz, &mut self.timers, &mut none, subject);
            match c.spec.kind {
                RuleType::Inactivity => {
                    kind::Inactivity::restart(c, slot, ri32, subject, &mut ctx, now);
                }
                RuleType::Dwell => kind::Dwell::restart(c, slot, ri32, &mut ctx, now),
                _ => ctx.arm(slot, ri32, subject, None),
            }
        }
    }
}
