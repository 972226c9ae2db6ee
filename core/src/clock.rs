//! Where time comes from: the [`Clock`] trait the hub, the status builder
//! and the simulator read `now` through, and what the gateway knows about
//! its clock ([`ClockState`]: trusted or not, the last wall-clock [`Step`]).
//!
//! Pure: the trait reads nothing itself. The real clock (the wall clock
//! plus monotonic time, re-based when the wall clock steps; optionally sped
//! up for the demo) lives in the shell, `app::ScaledClock`; tests use
//! [`ManualClock`].
//!
//! Contract: `now()` moves only with monotonic time, except at a step,
//! which only [`Clock::follow`] makes visible (and reports, once). The one
//! caller of `follow` (the hub) shifts the rule engine by the same step
//! before anything reads the new time, so durations keep true elapsed time.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use serde::Serialize;

use crate::model::Time;

/// A wall-clock step the gateway followed: the wall clock moved by
/// `delta_ms` (positive: forwards) against monotonic time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub delta_ms: i64,
    /// The gateway's time just after the step (new frame).
    pub at: Time,
}

/// What the gateway knows about its clock (status document, `/metrics`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClockState {
    /// The wall clock is NTP-synchronised or kept by a hardware RTC.
    /// Readings and alerts taken while it is not carry `time_trusted: false`.
    pub trusted: bool,
    /// Why: `"ntp"`, `"rtc"`, `"none"` (untrusted) or `"manual"` (tests).
    pub source: &'static str,
    /// Wall-clock steps followed since start.
    pub steps: u64,
    pub last_step: Option<Step>,
}

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
    /// Looks for a wall-clock step since the last call: if there was one,
    /// `now()` follows it from here on and it is returned (once). Called by
    /// the hub about twice a second. A clock that never steps: `None`.
    fn follow(&self) -> Option<Step> {
        None
    }
    /// Whether the clock is trusted, and its steps so far.
    fn state(&self) -> ClockState {
        ClockState {
            trusted: true,
            source: "manual",
            ..ClockState::default()
        }
    }
}

/// A clock that moves only when told to (tests, deterministic simulation);
/// [`ManualClock::step`] makes a wall-clock step that `follow` reports.
#[derive(Debug, Default)]
pub struct ManualClock {
    at: AtomicI64,
    untrusted: AtomicBool,
    /// Steps made but not yet followed, and the state `follow` reports.
    pending: Mutex<(Option<i64>, ClockState)>,
}

impl ManualClock {
    pub fn new(at: Time) -> ManualClock {
        ManualClock {
            at: AtomicI64::new(at.as_millis()),
            ..ManualClock::default()
        }
    }
    pub fn set(&self, at: Time) {
        self.at.store(at.as_millis(), Ordering::Relaxed);
    }
    /// The wall clock steps by `delta_ms`: `now()` jumps at the next
    /// [`Clock::follow`], which reports it (steps before it add up).
    pub fn step(&self, delta_ms: i64) {
        if let Ok(mut p) = self.pending.lock() {
            p.0 = Some(p.0.unwrap_or(0).saturating_add(delta_ms));
        }
    }
    /// Marks the clock (un)trusted, as NTP sync or its loss would.
    pub fn set_trusted(&self, trusted: bool) {
        self.untrusted.store(!trusted, Ordering::Relaxed);
    }
    pub fn advance(&self, d: std::time::Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let _ = self
            .at
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(ms))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Time {
        Time(self.at.load(Ordering::Relaxed))
    }
    fn follow(&self) -> Option<Step> {
        let mut p = self.pending.lock().ok()?;
        let delta_ms = p.0.take()?;
        let at = Time(
            self.at
                .fetch_add(delta_ms, Ordering::Relaxed)
                .saturating_add(delta_ms),
        );
        let step = Step { delta_ms, at };
        p.1.steps += 1;
        p.1.last_step = Some(step);
        Some(step)
    }
    fn state(&self) -> ClockState {
        let steps = self.pending.lock().map(|p| p.1.clone()).unwrap_or_default();
        ClockState {
            trusted: !self.untrusted.load(Ordering::Relaxed),
            source: "manual",
            ..steps
        }
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

    #[test]
    fn a_manual_step_shows_only_when_followed_and_is_reported_once() {
        let c = ManualClock::new(Time(1_000));
        c.step(5_000);
        c.step(-1_000);
        assert_eq!(c.now(), Time(1_000), "not followed yet");
        let s = c.follow().unwrap();
        assert_eq!((s.delta_ms, s.at), (4_000, Time(5_000)));
        assert_eq!(c.now(), Time(5_000));
        assert_eq!(c.follow(), None);
        let st = c.state();
        assert_eq!((st.steps, st.last_step, st.trusted), (1, Some(s), true));
        c.set_trusted(false);
        assert!(!c.state().trusted);
    }
}
