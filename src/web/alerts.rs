//! The recent-alerts list the Alerts and Overview pages show, fed from the
//! live stream (the store keeps the durable copy; this is only the view).
//!
//! Invariants: at most [`RECENT_MAX`] alerts are kept; an alert is *open*
//! while it is raised and no later `cleared` alert of the same instance
//! (`Alert::instance`) has arrived — alerts without an instance (from
//! before instance ids) are closed by rule and device; an escalated
//! re-send of an open instance updates its entry (severity, attempt,
//! sentence) instead of adding one; an acknowledgement marks it but does
//! not close it in this list; the acknowledgement itself goes to the rule
//! engine (the hub), by instance.
//! The list is persisted as [`super::roles::Record::RecentAlerts`] so it survives a restart.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::model::{Alert, AlertState, Time};

pub const RECENT_MAX: usize = 200;

/// An alert as the UI sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shown {
    /// Local id (this process), for acknowledging.
    pub id: u64,
    #[serde(flatten)]
    pub alert: Alert,
    pub open: bool,
    pub acked_by: Option<String>,
    pub acked_at: Option<Time>,
}

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AckError {
    #[error("no alert with id {0} (it may have aged out of the recent list)")]
    Unknown(u64),
    #[error("alert {0} was already acknowledged by {1}")]
    Already(u64, String),
}

#[derive(Debug, Default)]
pub struct Alerts {
    recent: VecDeque<Shown>,
    next_id: u64,
}

impl Alerts {
    /// The persisted list (garbage gives an empty list, never an error).
    pub fn from_json(bytes: &[u8]) -> Alerts {
        let recent: VecDeque<Shown> = serde_json::from_slice(bytes).unwrap_or_default();
        let next_id = recent.iter().map(|s| s.id).max().unwrap_or(0);
        Alerts { recent, next_id }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.recent).unwrap_or_default()
    }

    /// One kept alert by id.
    pub fn get(&self, id: u64) -> Option<&Shown> {
        self.recent.iter().find(|s| s.id == id)
    }

    /// Records an alert from the live stream.
    pub fn on_alert(&mut self, a: Alert) -> u64 {
        let inst = a.instance.as_ref().map(|i| i.instance.clone());
        let same = |s: &Shown| match (&inst, &s.alert.instance) {
            (Some(a), Some(b)) => *a == b.instance,
            (None, None) => s.alert.rule == a.rule && s.alert.device == a.device,
            _ => false,
        };
        if a.state == AlertState::Raised
            && a.instance.as_ref().is_some_and(|i| i.attempt > 1)
            && let Some(s) = self.recent.iter_mut().find(|s| s.open && same(s))
        {
            s.alert = a;
            return s.id;
        }
        if a.state == AlertState::Cleared {
            for s in self.recent.iter_mut() {
                if s.open && same(s) {
                    s.open = false;
                }
            }
        }
        self.next_id += 1;
        let open = a.state == AlertState::Raised;
        self.recent.push_back(Shown {
            id: self.next_id,
            alert: a,
            open,
            acked_by: None,
            acked_at: None,
        });
        while self.recent.len() > RECENT_MAX {
            self.recent.pop_front();
        }
        self.next_id
    }

    pub fn ack(&mut self, id: u64, user: &str, now: Time) -> Result<Shown, AckError> {
        let s = self
            .recent
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or(AckError::Unknown(id))?;
        if let Some(by) = &s.acked_by {
            return Err(AckError::Already(id, by.clone()));
        }
        s.acked_by = Some(user.to_string());
        s.acked_at = Some(now);
        Ok(s.clone())
    }

    /// Open (raised, not cleared) alerts, newest first.
    pub fn open(&self) -> Vec<Shown> {
        self.recent
            .iter()
            .rev()
            .filter(|s| s.open)
            .cloned()
            .collect()
    }

    /// Everything kept, newest first.
    pub fn recent(&self) -> Vec<Shown> {
        self.recent.iter().rev().cloned().collect()
    }

    /// Puts right the alerts stamped while the clock was untrusted that
    /// `c` covers (they say `time_trusted` from then on); how many.
    pub fn correct(&mut self, c: &crate::clock::Correction) -> usize {
        let mut n = 0;
        for s in self.recent.iter_mut() {
            let a = &mut s.alert;
            let listed = a.uid.as_ref().is_some_and(|u| c.alerts.contains(u));
            if !a.time_trusted && (listed || (c.alerts_more > 0 && c.covers(a.at))) {
                a.at = c.fix(a.at);
                a.time_trusted = true;
                n += 1;
            }
        }
        n
    }

    pub fn clear(&mut self) {
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeviceId, Severity};

    fn alert(rule: &str, state: AlertState, at: i64) -> Alert {
        Alert {
            uid: None,
            rule: rule.into(),
            severity: Severity::Urgent,
            state,
            device: DeviceId::new("pendant").unwrap(),
            room: Some("hall".into()),
            at: Time(at),
            message: "Panic button pressed".into(),
            value: Some(1.0),
            kind: None,
            time_trusted: true,
            instance: None,
        }
    }

    #[test]
    fn a_clock_correction_puts_right_only_the_untrusted_alerts_it_lists() {
        let mut a = Alerts::default();
        let mut stale = alert("panic", AlertState::Raised, 5_000);
        stale.uid = Some("u-1".into());
        stale.time_trusted = false;
        let mut other = stale.clone();
        other.uid = Some("u-2".into());
        let mut fine = alert("fall", AlertState::Raised, 6_000);
        fine.uid = Some("u-1".into());
        a.on_alert(stale);
        a.on_alert(other);
        a.on_alert(fine);
        let c = crate::clock::Correction {
            from: Time(0),
            until: Time(10_000),
            delta_ms: 86_400_000,
            at: Time(86_410_000),
            alerts: vec!["u-1".into()],
            alerts_more: 0,
        };
        assert_eq!(a.correct(&c), 1);
        let r = a.recent();
        assert_eq!(
            (r[2].alert.at, r[2].alert.time_trusted),
            (Time(86_405_000), true)
        );
        assert_eq!(
            (r[1].alert.at, r[1].alert.time_trusted),
            (Time(5_000), false)
        );
        assert_eq!(r[0].alert.at, Time(6_000), "a trusted stamp is never moved");
        assert_eq!(a.correct(&c), 0, "a correction applies once");
    }

    #[test]
    fn cleared_alert_closes_the_open_one_for_the_same_rule_and_device() {
        let mut a = Alerts::default();
        a.on_alert(alert("panic", AlertState::Raised, 1));
        a.on_alert(alert("fall", AlertState::Raised, 2));
        assert_eq!(a.open().len(), 2);
        a.on_alert(alert("panic", AlertState::Cleared, 3));
        let open = a.open();
        assert_eq!(open.len(), 1);
        assert_eq!(&*open[0].alert.rule, "fall");
        assert_eq!(a.recent().len(), 3);
    }

    fn with_instance(mut a: Alert, inst: &str, attempt: u32) -> Alert {
        a.instance = Some(crate::model::Instance {
            instance: inst.into(),
            attempt,
        });
        a
    }

    #[test]
    fn a_clear_closes_only_the_alert_of_its_instance() {
        let mut a = Alerts::default();
        // Whole-home inactivity raised on one PIR; the clear may come from
        // another room's PIR and still closes it, by instance.
        let mut raised = with_instance(alert("quiet", AlertState::Raised, 1), "quiet/home/1", 1);
        raised.device = crate::model::DeviceId::new("bathroom-pir").unwrap();
        a.on_alert(raised);
        a.on_alert(with_instance(
            alert("quiet-2", AlertState::Raised, 2),
            "quiet-2/home/2",
            1,
        ));
        let mut clear = with_instance(alert("quiet", AlertState::Cleared, 3), "quiet/home/1", 1);
        clear.device = crate::model::DeviceId::new("hall-pir").unwrap();
        a.on_alert(clear);
        let open = a.open();
        assert_eq!(open.len(), 1);
        assert_eq!(&*open[0].alert.rule, "quiet-2");
        // A clear of another instance of the same rule and device closes nothing.
        a.on_alert(with_instance(
            alert("quiet-2", AlertState::Cleared, 4),
            "quiet-2/home/0",
            1,
        ));
        assert_eq!(a.open().len(), 1);
    }

    #[test]
    fn an_escalated_resend_updates_its_open_entry() {
        let mut a = Alerts::default();
        let id = a.on_alert(with_instance(
            alert("panic", AlertState::Raised, 1),
            "panic/p/1",
            1,
        ));
        let mut again = with_instance(alert("panic", AlertState::Raised, 2), "panic/p/1", 2);
        again.message = "Not acknowledged (attempt 2): Panic button pressed".into();
        assert_eq!(a.on_alert(again), id);
        let open = a.open();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].alert.instance.as_ref().unwrap().attempt, 2);
        assert_eq!(a.recent().len(), 1);
    }

    #[test]
    fn ack_marks_once_and_unknown_ids_are_refused() {
        let mut a = Alerts::default();
        let id = a.on_alert(alert("panic", AlertState::Raised, 1));
        let s = a.ack(id, "carer1", Time(5)).unwrap();
        assert_eq!(s.acked_by.as_deref(), Some("carer1"));
        assert!(s.open, "ack does not close the situation");
        assert_eq!(
            a.ack(id, "x", Time(6)),
            Err(AckError::Already(id, "carer1".into()))
        );
        assert_eq!(a.ack(99, "x", Time(6)), Err(AckError::Unknown(99)));
    }

    #[test]
    fn list_round_trips_through_json_and_ids_keep_increasing() {
        let mut a = Alerts::default();
        a.on_alert(alert("panic", AlertState::Raised, 1));
        let id = a.on_alert(alert("fall", AlertState::Raised, 2));
        a.ack(id, "ann", Time(3)).unwrap();
        let mut back = Alerts::from_json(&a.to_json());
        assert_eq!(back.recent(), a.recent());
        assert_eq!(back.on_alert(alert("panic", AlertState::Raised, 4)), id + 1);
        assert!(Alerts::from_json(b"[{").recent().is_empty());
    }

    #[test]
    fn recent_list_is_bounded() {
        let mut a = Alerts::default();
        for i in 0..RECENT_MAX + 10 {
            a.on_alert(alert("panic", AlertState::Raised, i as i64));
        }
        assert_eq!(a.recent().len(), RECENT_MAX);
        assert_eq!(a.recent()[0].id, (RECENT_MAX + 10) as u64);
    }
}
