//! The shedding alert: while the front door sheds QoS 0 readings (the hub's
//! queue is full), a `warning` alert (rule [`SHED_RULE`], device
//! [`SHED_DEVICE`]) tells the care organisation that readings are being
//! lost; it clears once none was shed for [`QUIET`].
//!
//! [`ShedWatch`] is pure and clock-free (fed samples of the shed counter
//! with the time); [`run`] samples it every second and raises its alerts
//! the way the daemon raises its own (`app::zigbee`'s outage alert): a
//! UUID, the live view, the store's alert outbox.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::ingest::mqtt::IngestStats;
use crate::model::{Alert, AlertState, Time};
use crate::store::{Store, Write};

/// The rule id of the shedding alert (what an `ack` names).
pub const SHED_RULE: &str = "ingest-shed";
/// The device the shedding alert is about.
pub const SHED_DEVICE: &str = "mqtt-frontdoor";
/// No reading shed for this long clears the alert.
pub const QUIET: Duration = Duration::from_secs(60);

/// Raises once while readings are shed; clears after [`QUIET`] without.
#[derive(Debug)]
pub struct ShedWatch {
    quiet: Duration,
    seen: u64,
    /// First and last time shedding was seen, in the current episode.
    since: Option<Time>,
    last: Option<Time>,
    /// Shed in the current episode.
    count: u64,
    out: VecDeque<Alert>,
}

impl ShedWatch {
    /// `start` is the counter's value now (nothing before it is news).
    pub fn new(quiet: Duration, start: u64) -> ShedWatch {
        ShedWatch {
            quiet,
            seen: start,
            since: None,
            last: None,
            count: 0,
            out: VecDeque::new(),
        }
    }

    /// The shed counter read at `now` (it only grows).
    pub fn handle_sample(&mut self, total: u64, now: Time) {
        if total > self.seen {
            let n = total - self.seen;
            self.seen = total;
            self.count += n;
            self.last = Some(now);
            if self.since.is_none() {
                self.since = Some(now);
                self.push(
                    AlertState::Raised,
                    format!(
                        "Readings are being dropped at the gateway's MQTT listener: it is \
                         overloaded and sheds QoS 0 readings ({n} so far)"
                    ),
                    now,
                );
            }
        } else if let Some(last) = self.last
            && now.since(last) >= self.quiet
        {
            let count = self.count;
            self.since = None;
            self.last = None;
            self.count = 0;
            self.push(
                AlertState::Cleared,
                format!("Resolved: the gateway's MQTT listener keeps up again ({count} readings were dropped)"),
                now,
            );
        }
    }

    pub fn poll_alert(&mut self) -> Option<Alert> {
        self.out.pop_front()
    }

    fn push(&mut self, state: AlertState, message: String, at: Time) {
        if let Some(a) = Alert::gateway(SHED_RULE, SHED_DEVICE, state, message, at) {
            self.out.push_back(a);
        }
    }
}

/// Samples the shed counter every second and raises the alerts.
pub async fn run(
    stats: Arc<IngestStats>,
    store: Store,
    live: broadcast::Sender<crate::hub::Live>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut watch = ShedWatch::new(QUIET, stats.shed_qos0.load(Ordering::Relaxed));
    let mut ids = crate::ids::IdGen::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        watch.handle_sample(stats.shed_qos0.load(Ordering::Relaxed), crate::wall::now());
        while let Some(mut a) = watch.poll_alert() {
            a.uid = Some(ids.next_id());
            tracing::warn!(rule = %a.rule, state = a.state.as_str(), "{}", a.message);
            let _ = live.send(crate::hub::Live::Alert(a.clone()));
            store.submit(Write::Alert(Box::new(a))).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Time = Time(1_795_348_800_000);

    fn at(s: i64) -> Time {
        Time(T0.0 + s * 1000)
    }

    #[test]
    fn shedding_raises_one_warning_and_a_quiet_minute_clears_it() {
        let mut w = ShedWatch::new(QUIET, 5);
        w.handle_sample(5, at(0));
        assert!(
            w.poll_alert().is_none(),
            "what was shed before start is not news"
        );
        w.handle_sample(9, at(1));
        let a = w.poll_alert().unwrap();
        assert_eq!(
            (a.state, a.severity),
            (AlertState::Raised, crate::model::Severity::Warning)
        );
        assert_eq!((&*a.rule, a.device.as_str()), (SHED_RULE, SHED_DEVICE));
        w.handle_sample(20, at(2));
        w.handle_sample(20, at(40));
        assert!(w.poll_alert().is_none(), "one alert per episode");
        w.handle_sample(20, at(62));
        let c = w.poll_alert().unwrap();
        assert_eq!(c.state, AlertState::Cleared);
        assert!(c.message.contains("15 readings"), "{}", c.message);
        w.handle_sample(21, at(63));
        assert_eq!(w.poll_alert().unwrap().state, AlertState::Raised);
    }
}
