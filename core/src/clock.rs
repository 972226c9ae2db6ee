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
    /// The newest [`CORRECTIONS_MAX`] corrections of untrusted stamps
    /// (oldest first): the status document carries them upstream, so a
    /// status superseded before it was sent loses none.
    pub corrections: Vec<Correction>,
    /// Corrections made since start (including those no longer listed).
    pub corrections_total: u64,
}

/// How many corrections [`ClockState`] keeps.
pub const CORRECTIONS_MAX: usize = 8;
/// How many alert ids one [`Correction`] lists.
pub const CORRECTION_ALERTS_MAX: usize = 64;

/// Stamps made while the clock was not trusted, put right by the step that
/// followed (typically NTP's first synchronisation after a boot without an
/// RTC): everything this gateway stamped with `"time_trusted": false`
/// between `from` and `until` (the old clock) happened `delta_ms` later than
/// it says. The gateway's own views (the alerts page, the rule engine) are
/// corrected; upstream, the status document lists the correction so the
/// cloud can correct what it already received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Correction {
    pub from: Time,
    pub until: Time,
    pub delta_ms: i64,
    /// When the step was followed (the new clock).
    pub at: Time,
    /// Ids of the alerts raised in the span (the first
    /// [`CORRECTION_ALERTS_MAX`]; `alerts_more` counts the rest).
    pub alerts: Vec<String>,
    pub alerts_more: u64,
}

impl Correction {
    /// Whether an untrusted stamp `t` falls in the corrected span.
    pub fn covers(&self, t: Time) -> bool {
        self.from <= t && t <= self.until
    }
    /// `t` put right.
    pub fn fix(&self, t: Time) -> Time {
        Time(t.as_millis().saturating_add(self.delta_ms))
    }
}

/// The span since the last step (the current clock "frame"): whether
/// anything in it was stamped untrusted, and which alerts were. The hub
/// keeps one; [`TrustFrame::on_step`] turns it into a [`Correction`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustFrame {
    start: Time,
    untrusted: bool,
    alerts: Vec<String>,
    alerts_more: u64,
}

impl TrustFrame {
    /// A frame starting at `start`, stamped as `trusted` says.
    pub fn new(start: Time, trusted: bool) -> TrustFrame {
        TrustFrame {
            start,
            untrusted: !trusted,
            alerts: Vec::new(),
            alerts_more: 0,
        }
    }
    /// The clock's trust as last seen (stamps are being made meanwhile).
    pub fn note_trust(&mut self, trusted: bool) {
        self.untrusted |= !trusted;
    }
    /// An alert stamped now.
    pub fn note_alert(&mut self, id: &str, trusted: bool) {
        if trusted {
            return;
        }
        self.untrusted = true;
        if self.alerts.len() < CORRECTION_ALERTS_MAX {
            self.alerts.push(id.to_string());
        } else {
            self.alerts_more += 1;
        }
    }
    /// The clock stepped: the frame ends just before the step (old clock);
    /// a correction if anything in it was stamped untrusted. A new frame
    /// starts at the step, stamped as `trusted_now` says.
    pub fn on_step(&mut self, step: Step, trusted_now: bool) -> Option<Correction> {
        let old = std::mem::replace(self, TrustFrame::new(step.at, trusted_now));
        old.untrusted.then(|| Correction {
            from: old.start,
            until: Time(step.at.as_millis().saturating_sub(step.delta_ms)),
            delta_ms: step.delta_ms,
            at: step.at,
            alerts: old.alerts,
            alerts_more: old.alerts_more,
        })
    }
}

impl ClockState {
    /// Keeps `c` (the newest [`CORRECTIONS_MAX`]).
    pub fn record(&mut self, c: Correction) {
        self.corrections.push(c);
        let over = self.corrections.len().saturating_sub(CORRECTIONS_MAX);
        self.corrections.drain(..over);
        self.corrections_total += 1;
    }
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
    /// Keeps a correction of untrusted stamps for [`Clock::state`] (the
    /// hub makes them, see [`TrustFrame`]). A clock that never steps keeps
    /// none.
    fn record(&self, _c: Correction) {}
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
    fn record(&self, c: Correction) {
        if let Ok(mut p) = self.pending.lock() {
            p.1.record(c);
        }
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

    #[test]
    fn a_frame_stamped_untrusted_becomes_a_correction_at_the_next_step() {
        let mut f = TrustFrame::new(Time(1_000), false);
        f.note_alert("a-1", false);
        f.note_alert("a-2", true);
        let c = f
            .on_step(
                Step {
                    delta_ms: 3_600_000,
                    at: Time(3_605_000),
                },
                true,
            )
            .unwrap();
        assert_eq!(
            (c.from, c.until, c.delta_ms),
            (Time(1_000), Time(5_000), 3_600_000)
        );
        assert_eq!(c.alerts, vec!["a-1".to_string()]);
        assert!(c.covers(Time(4_000)) && !c.covers(Time(6_000)));
        assert_eq!(c.fix(Time(4_000)), Time(3_604_000));
        // The new frame is trusted: the next step corrects nothing.
        let step = Step {
            delta_ms: -500,
            at: Time(3_700_000),
        };
        assert_eq!(f.on_step(step, true), None);
        // Trust lost in the middle of a frame counts.
        f.note_trust(false);
        assert!(f.on_step(step, true).is_some());
    }

    #[test]
    fn a_frame_lists_a_bounded_number_of_alerts_and_counts_the_rest() {
        let mut f = TrustFrame::new(Time(0), false);
        for i in 0..(CORRECTION_ALERTS_MAX + 5) {
            f.note_alert(&format!("a-{i}"), false);
        }
        let c = f
            .on_step(
                Step {
                    delta_ms: 1_000,
                    at: Time(10_000),
                },
                true,
            )
            .unwrap();
        assert_eq!((c.alerts.len(), c.alerts_more), (CORRECTION_ALERTS_MAX, 5));
        let mut st = ClockState::default();
        for _ in 0..(CORRECTIONS_MAX + 2) {
            st.record(c.clone());
        }
        assert_eq!(
            (st.corrections.len(), st.corrections_total),
            (CORRECTIONS_MAX, CORRECTIONS_MAX as u64 + 2)
        );
    }
}
