//! The coordinator-outage alert: while the Zigbee link is down no panic
//! button, smoke or fall sensor can be heard, so an outage longer than
//! `[zigbee] outage_alert` raises a `warning` alert (rule
//! [`OUTAGE_RULE`], device [`OUTAGE_DEVICE`]) and the link coming back
//! clears it. Short blips (a re-initialisation after a stick reset takes
//! seconds) raise nothing.
//!
//! Pure and clock-free: the caller feeds link changes with
//! [`OutageWatch::handle_link`], calls [`OutageWatch::handle_timeout`] at
//! [`OutageWatch::next_deadline`], and drains [`OutageWatch::poll_alert`].
//! It decides only about the link, never about sensors (that is the rules'
//! job), which is why it lives beside the coordinator and not in `rules`.
//!
//! Invariants: at most one raised alert per outage; a clear is emitted only
//! for an outage that raised; the outage is timed from the first `down`
//! report (later `down` reports with new reasons do not restart it); before
//! the link was ever up, "down" counts from the first report too (a stick
//! missing at boot is an outage).

use std::collections::VecDeque;
use std::time::Duration;

use crate::model::{Alert, AlertState, Time};

/// The rule id of the outage alert (what an `ack` names).
pub const OUTAGE_RULE: &str = "coordinator-outage";
/// The device the outage alert is about.
pub const OUTAGE_DEVICE: &str = "zigbee-coordinator";

#[derive(Debug)]
pub struct OutageWatch {
    after: Duration,
    /// When the current outage began (None while up).
    down_since: Option<Time>,
    reason: String,
    raised: bool,
    out: VecDeque<Alert>,
}

impl OutageWatch {
    /// `after` of zero turns the alert off.
    pub fn new(after: Duration) -> Self {
        OutageWatch {
            after,
            down_since: None,
            reason: String::new(),
            raised: false,
            out: VecDeque::new(),
        }
    }

    /// The link went up or down (repeats are fine).
    pub fn handle_link(&mut self, up: bool, detail: &str, now: Time) {
        if up {
            if self.raised {
                let gone = self.down_since.map_or(0, |d| now.since(d).as_secs());
                self.push(
                    AlertState::Cleared,
                    format!(
                        "Resolved: the Zigbee coordinator is back after {}",
                        human(gone)
                    ),
                    now,
                );
            }
            self.down_since = None;
            self.raised = false;
        } else {
            self.reason = detail.to_string();
            if self.down_since.is_none() {
                self.down_since = Some(now);
            }
        }
        self.handle_timeout(now);
    }

    pub fn handle_timeout(&mut self, now: Time) {
        if let Some(d) = self.next_deadline()
            && now >= d
        {
            self.raised = true;
            let msg = format!(
                "Zigbee coordinator down for {}: Zigbee sensors (panic buttons, smoke, falls) \
                 are not heard ({})",
                human(self.after.as_secs()),
                self.reason
            );
            let at = self.down_since.unwrap_or(now);
            self.push(AlertState::Raised, msg, at);
        }
    }

    /// When the alert would be raised, if an outage is running and has not raised yet.
    pub fn next_deadline(&self) -> Option<Time> {
        if self.after.is_zero() || self.raised {
            return None;
        }
        self.down_since.map(|d| d.saturating_add(self.after))
    }

    pub fn poll_alert(&mut self) -> Option<Alert> {
        self.out.pop_front()
    }

    fn push(&mut self, state: AlertState, message: String, at: Time) {
        if let Some(a) = Alert::gateway(OUTAGE_RULE, OUTAGE_DEVICE, state, message, at) {
            self.out.push_back(a);
        }
    }
}

fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn drain(w: &mut OutageWatch) -> Vec<(AlertState, Time, String)> {
        std::iter::from_fn(|| w.poll_alert())
            .map(|a| (a.state, a.at, a.message))
            .collect()
    }

    #[test]
    fn raises_once_after_the_outage_lasts_and_clears_when_the_link_is_back() {
        let mut w = OutageWatch::new(Duration::from_secs(300));
        w.handle_link(true, "up", Time(0));
        w.handle_link(false, "port vanished", Time(MIN));
        assert_eq!(w.next_deadline(), Some(Time(6 * MIN)));
        // A new reason while still down does not restart the outage.
        w.handle_link(false, "cannot open /dev/x", Time(2 * MIN));
        w.handle_timeout(Time(6 * MIN - 1));
        assert!(drain(&mut w).is_empty());
        w.handle_timeout(Time(6 * MIN));
        let a = drain(&mut w);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].0, a[0].1), (AlertState::Raised, Time(MIN)));
        assert!(a[0].2.contains("5 min") && a[0].2.contains("cannot open /dev/x"));
        w.handle_timeout(Time(60 * MIN));
        assert!(drain(&mut w).is_empty(), "one alert per outage");
        assert_eq!(w.next_deadline(), None);
        w.handle_link(true, "up", Time(10 * MIN));
        let c = drain(&mut w);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, AlertState::Cleared);
        assert!(c[0].2.starts_with("Resolved:") && c[0].2.contains("9 min"));
    }

    #[test]
    fn a_short_blip_raises_and_clears_nothing() {
        let mut w = OutageWatch::new(Duration::from_secs(300));
        w.handle_link(false, "stick reset", Time(0));
        w.handle_link(true, "up", Time(4 * MIN));
        w.handle_timeout(Time(100 * MIN));
        assert!(drain(&mut w).is_empty());
        // The next outage is timed afresh.
        w.handle_link(false, "port closed", Time(200 * MIN));
        assert_eq!(w.next_deadline(), Some(Time(205 * MIN)));
    }

    #[test]
    fn a_stick_missing_at_boot_is_an_outage_and_zero_turns_the_alert_off() {
        let mut w = OutageWatch::new(Duration::from_secs(60));
        w.handle_link(false, "cannot open", Time(0));
        w.handle_timeout(Time(MIN));
        assert_eq!(drain(&mut w).len(), 1);

        let mut off = OutageWatch::new(Duration::ZERO);
        off.handle_link(false, "cannot open", Time(0));
        off.handle_timeout(Time(1000 * MIN));
        assert_eq!(off.next_deadline(), None);
        assert!(drain(&mut off).is_empty());
    }
}
