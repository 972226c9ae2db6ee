//! The "someone is guessing" alert: `threshold` authentication failures on
//! the local broker within `window` raise one `warning` alert (rule
//! [`AUTH_RULE`], device [`AUTH_DEVICE`]) naming the address most of them
//! came from; `quiet` without any failure clears it.
//!
//! Pure and clock-free like the coordinator's outage watch: feed
//! [`FailureAlarm::handle_failure`], call [`FailureAlarm::handle_timeout`]
//! at [`FailureAlarm::next_deadline`], drain [`FailureAlarm::poll_alert`].
//! Invariants: at most one raised alert until it clears; a clear only
//! follows a raise; memory is bounded by `threshold`.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use crate::model::{Alert, AlertState, Time};

/// The rule id of the alert (what an `ack` names).
pub const AUTH_RULE: &str = "local-broker-auth-failures";
/// The device the alert is about.
pub const AUTH_DEVICE: &str = "local-broker";

#[derive(Debug)]
pub struct FailureAlarm {
    threshold: usize,
    window: Duration,
    quiet: Duration,
    /// The latest failures (at most `threshold`), oldest first.
    recent: VecDeque<(Time, IpAddr)>,
    last: Option<Time>,
    raised: bool,
    out: VecDeque<Alert>,
}

impl FailureAlarm {
    /// `threshold` of zero turns the alert off.
    pub fn new(threshold: u32, window: Duration, quiet: Duration) -> FailureAlarm {
        FailureAlarm {
            threshold: usize::try_from(threshold).unwrap_or(usize::MAX),
            window,
            quiet,
            recent: VecDeque::new(),
            last: None,
            raised: false,
            out: VecDeque::new(),
        }
    }

    /// An authentication failure from `peer` at `now`.
    pub fn handle_failure(&mut self, peer: IpAddr, now: Time) {
        if self.threshold == 0 {
            return;
        }
        self.last = Some(now);
        self.recent.push_back((now, peer));
        while self.recent.len() > self.threshold {
            self.recent.pop_front();
        }
        let in_window = self
            .recent
            .front()
            .is_some_and(|(first, _)| now.since(*first) <= self.window);
        if !self.raised && self.recent.len() >= self.threshold && in_window {
            self.raised = true;
            let mut by: BTreeMap<IpAddr, usize> = BTreeMap::new();
            for (_, ip) in &self.recent {
                *by.entry(*ip).or_default() += 1;
            }
            let (top, n) = by
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(ip, n)| (*ip, *n))
                .unwrap_or((peer, 0));
            let msg = format!(
                "Repeated log-in failures on the local MQTT broker: {} within {} ({} from {}). \
                 Someone on the home network may be guessing device passwords.",
                self.recent.len(),
                human(now.since(self.recent.front().map_or(now, |r| r.0))),
                n,
                top
            );
            self.push(AlertState::Raised, msg, now);
        }
    }

    pub fn handle_timeout(&mut self, now: Time) {
        if let Some(d) = self.next_deadline()
            && now >= d
        {
            self.raised = false;
            self.recent.clear();
            let msg = format!(
                "Resolved: no log-in failures on the local MQTT broker for {}",
                human(self.quiet)
            );
            self.push(AlertState::Cleared, msg, now);
        }
    }

    /// When a raised alert clears, if no failure comes first.
    pub fn next_deadline(&self) -> Option<Time> {
        if !self.raised {
            return None;
        }
        self.last.map(|l| l.saturating_add(self.quiet))
    }

    pub fn poll_alert(&mut self) -> Option<Alert> {
        self.out.pop_front()
    }

    fn push(&mut self, state: AlertState, message: String, at: Time) {
        if let Some(a) = Alert::gateway(AUTH_RULE, AUTH_DEVICE, state, message, at) {
            self.out.push_back(a);
        }
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s < 120 {
        format!("{s} s")
    } else {
        format!("{} min", s / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 66));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 67));

    fn at(s: i64) -> Time {
        Time::from_secs(s)
    }

    #[test]
    fn ten_failures_in_ten_minutes_raise_one_warning_naming_the_address() {
        let mut a = FailureAlarm::new(10, Duration::from_secs(600), Duration::from_secs(1800));
        for i in 0..9 {
            a.handle_failure(A, at(i));
        }
        a.handle_failure(B, at(9));
        let mut raised: Vec<Alert> = Vec::new();
        while let Some(x) = a.poll_alert() {
            raised.push(x);
        }
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].severity, crate::model::Severity::Warning);
        assert_eq!(raised[0].state, AlertState::Raised);
        assert_eq!(&*raised[0].rule, AUTH_RULE);
        assert!(
            raised[0].message.contains("9 from 192.168.1.66"),
            "{}",
            raised[0].message
        );
        // More failures while raised: no second alert.
        for i in 10..40 {
            a.handle_failure(A, at(i));
        }
        assert!(a.poll_alert().is_none());
        // Half an hour of quiet clears it.
        assert_eq!(a.next_deadline(), Some(at(39 + 1800)));
        a.handle_timeout(at(39 + 1799));
        assert!(a.poll_alert().is_none());
        a.handle_timeout(at(39 + 1800));
        let c = a.poll_alert().unwrap();
        assert_eq!(c.state, AlertState::Cleared);
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn slow_failures_spread_over_hours_raise_nothing() {
        let mut a = FailureAlarm::new(10, Duration::from_secs(600), Duration::from_secs(1800));
        for i in 0..100 {
            a.handle_failure(A, at(i * 120));
        }
        assert!(a.poll_alert().is_none());
    }

    #[test]
    fn a_threshold_of_zero_turns_the_alert_off() {
        let mut a = FailureAlarm::new(0, Duration::from_secs(600), Duration::from_secs(1800));
        for i in 0..100 {
            a.handle_failure(A, at(i));
        }
        assert!(a.poll_alert().is_none());
        assert_eq!(a.next_deadline(), None);
    }
}
