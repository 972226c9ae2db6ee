//! Where time comes from: the [`Clock`] trait the hub, the status builder
//! and the simulator read `now` through.
//!
//! Pure: the trait reads nothing itself. The real clock (the wall clock at
//! start-up plus monotonic time, optionally sped up for the demo) lives in
//! the shell, `app::ScaledClock`; tests use [`ManualClock`].

use std::sync::atomic::{AtomicI64, Ordering};

use crate::model::Time;

/// A source of the gateway's time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The gateway's time now.
    fn now(&self) -> Time;
    /// Clock milliseconds per real millisecond: 1 in a real gateway, more
    /// in a fast demo (a timer `d` ahead on this clock fires `d / speed`
    /// of real time from now).
    fn speed(&self) -> f64 {
        1.0
    }
}

/// A clock that moves only when told to (tests, deterministic simulation).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(at: Time) -> ManualClock {
        ManualClock(AtomicI64::new(at.as_millis()))
    }
    pub fn set(&self, at: Time) {
        self.0.store(at.as_millis(), Ordering::Relaxed);
    }
    pub fn advance(&self, d: std::time::Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(ms))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Time {
        Time(self.0.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_runs_at_real_speed() {
        let c = ManualClock::new(Time(1_000));
        assert_eq!(c.now(), Time(1_000));
        c.advance(std::time::Duration::from_secs(2));
        assert_eq!(c.now(), Time(3_000));
        c.set(Time(10));
        assert_eq!(c.now(), Time(10));
        assert_eq!(c.speed(), 1.0);
    }
}
