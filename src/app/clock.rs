//! The gateway's real clock: the wall clock plus monotonic time, re-based
//! when the wall clock steps (NTP after a boot on a Pi without an RTC,
//! an installer setting the date), optionally sped up (`carebridge demo
//! --speed`), and whether it can be trusted (see [`TrustProbe`]).
//!
//! Step detection: each [`Clock::follow`] (the hub calls it twice a second)
//! compares the wall clock with the base plus monotonic time; a difference
//! of [`STEP_MIN_MS`] or more is a step (the kernel's slewing moves
//! `CLOCK_MONOTONIC` and the wall clock together, so only steps show). The
//! step becomes visible to `now()` only there, so the hub can shift the
//! rule engine by it before anything reads the new time.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use crate::clock::{Clock, ClockState, Correction, Step};
use crate::model::Time;

/// The smallest wall/monotonic difference taken for a step (smaller ones
/// are the two clocks read a moment apart).
pub const STEP_MIN_MS: i64 = 100;

/// Where the clock's trust comes from: NTP synchronisation (the kernel's
/// `adjtimex` status, set by timesyncd, chrony or ntpd; or timesyncd's
/// flag file), else a hardware real-time clock that keeps a plausible time
/// (after 2020, within [`RTC_AGREE_S`] of the system clock: a Pi 5 RTC
/// without its battery, or a DS3231 with a flat one, restarts at 1970 or
/// 2000 after a power cut and is not trusted).
#[derive(Debug, Clone)]
pub struct TrustProbe {
    /// Ask the kernel (`adjtimex`, read only) whether NTP synchronised it.
    pub adjtimex: bool,
    /// systemd-timesyncd creates this once it has synchronised.
    pub sync_flag: PathBuf,
    /// RTCs' `since_epoch` files (sysfs): seconds the RTC reads now.
    pub rtc: Vec<PathBuf>,
}

impl Default for TrustProbe {
    fn default() -> Self {
        TrustProbe {
            adjtimex: true,
            sync_flag: "/run/systemd/timesync/synchronized".into(),
            rtc: vec!["/sys/class/rtc/rtc0/since_epoch".into()],
        }
    }
}

impl TrustProbe {
    /// `(trusted, source)`: `"ntp"`, `"rtc"` or `"none"`.
    pub fn check(&self) -> (bool, &'static str) {
        if (self.adjtimex && adjtimex_synced() == Some(true)) || self.sync_flag.exists() {
            (true, "ntp")
        } else if self.rtc.iter().any(|p| rtc_plausible(p)) {
            (true, "rtc")
        } else {
            (false, "none")
        }
    }
}

/// How far an RTC may be from the system clock and still be trusted (the
/// kernel or `hwclock` set the system clock from it at boot).
pub const RTC_AGREE_S: i64 = 120;

/// An RTC reads a time after 2020 that agrees with the system clock.
fn rtc_plausible(since_epoch: &std::path::Path) -> bool {
    const Y2020: i64 = 1_577_836_800;
    let Some(rtc) = std::fs::read_to_string(since_epoch)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
    else {
        return false;
    };
    let now = crate::wall::now().as_millis() / 1000;
    rtc > Y2020 && (rtc - now).abs() <= RTC_AGREE_S
}

/// Whether the kernel says NTP synchronised the clock (`None`: cannot tell).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn adjtimex_synced() -> Option<bool> {
    const TIME_ERROR: i32 = 5;
    const STA_UNSYNC: i32 = 0x0040;
    // SAFETY: `timex` is a plain C struct of integers (and padding), for
    // which all-zero bytes are a valid value.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, exclusively borrowed `timex` that lives
    // across the call; with `modes == 0` the kernel only writes its state
    // into it and changes nothing (no privilege needed).
    let rc = unsafe { libc::adjtimex(&mut tx) };
    if rc < 0 {
        return None;
    }
    Some(rc != TIME_ERROR && tx.status & STA_UNSYNC == 0)
}

#[cfg(not(target_os = "linux"))]
fn adjtimex_synced() -> Option<bool> {
    None
}

/// The wall clock's source: the system's, or one a test moves.
type Wall = Box<dyn Fn() -> Time + Send + Sync>;

/// A clock that follows the wall clock's steps, or (in a demo) runs faster
/// than real time from a start.
pub struct ScaledClock {
    /// `(monotonic instant, gateway time then)`: now = time + elapsed × speed.
    base: Mutex<(Instant, Time)>,
    speed: f64,
    /// The wall clock to follow (none in a sped-up demo).
    wall: Option<Wall>,
    trust: Option<TrustProbe>,
    state: Mutex<ClockState>,
}

impl std::fmt::Debug for ScaledClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScaledClock")
            .field("speed", &self.speed)
            .field("follows_wall", &self.wall.is_some())
            .finish_non_exhaustive()
    }
}

impl ScaledClock {
    /// A demo clock from `sim_start`, `speed` times real time; it follows
    /// no wall clock and is trusted (the demo's time is its own).
    pub fn new(sim_start: Time, speed: f64) -> ScaledClock {
        ScaledClock {
            base: Mutex::new((Instant::now(), sim_start)),
            speed,
            wall: None,
            trust: None,
            state: Mutex::new(ClockState {
                trusted: true,
                source: "manual",
                ..ClockState::default()
            }),
        }
    }

    /// Real time: the system's wall clock, followed across steps, trusted
    /// as the [`TrustProbe`] finds.
    pub fn system() -> ScaledClock {
        ScaledClock::following(Box::new(crate::wall::now), TrustProbe::default())
    }

    /// Follows `wall` (tests pass a wall clock they step).
    pub fn following(wall: Wall, trust: TrustProbe) -> ScaledClock {
        let (trusted, source) = trust.check();
        ScaledClock {
            base: Mutex::new((Instant::now(), wall())),
            speed: 1.0,
            wall: Some(wall),
            trust: Some(trust),
            state: Mutex::new(ClockState {
                trusted,
                source,
                ..ClockState::default()
            }),
        }
    }

    fn at(&self, base: (Instant, Time), mono: Instant) -> Time {
        let real = mono.saturating_duration_since(base.0).as_secs_f64() * 1000.0 * self.speed;
        Time(base.1.as_millis().saturating_add(real as i64))
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Time {
        let base = match self.base.lock() {
            Ok(b) => *b,
            Err(p) => *p.into_inner(),
        };
        self.at(base, Instant::now())
    }

    fn speed(&self) -> f64 {
        self.speed
    }

    fn follow(&self) -> Option<Step> {
        let wall = self.wall.as_ref()?;
        if let (Some(t), Ok(mut st)) = (&self.trust, self.state.lock()) {
            (st.trusted, st.source) = t.check();
        }
        let mut base = self.base.lock().ok()?;
        let mono = Instant::now();
        let ours = self.at(*base, mono);
        let w = wall();
        let delta_ms = w.as_millis().saturating_sub(ours.as_millis());
        if delta_ms.abs() < STEP_MIN_MS {
            return None;
        }
        *base = (mono, w);
        let step = Step { delta_ms, at: w };
        if let Ok(mut st) = self.state.lock() {
            st.steps += 1;
            st.last_step = Some(step);
        }
        Some(step)
    }

    fn record(&self, c: Correction) {
        if let Ok(mut st) = self.state.lock() {
            st.record(c);
        }
    }

    fn state(&self) -> ClockState {
        match self.state.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    #[test]
    fn scaled_clock_runs_faster() {
        let c = ScaledClock::new(Time(0), 1000.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(c.now().as_millis() >= 20_000);
        assert_eq!(c.follow(), None, "a demo clock follows no wall clock");
    }

    /// A wall clock that runs with monotonic time plus an offset a test steps.
    fn stepped_wall() -> (Arc<AtomicI64>, Wall) {
        let off = Arc::new(AtomicI64::new(0));
        let o = off.clone();
        let start = Instant::now();
        let wall = Box::new(move || {
            Time(
                1_780_000_000_000
                    + i64::try_from(start.elapsed().as_millis()).unwrap_or(0)
                    + o.load(Ordering::Relaxed),
            )
        });
        (off, wall)
    }

    fn no_trust() -> TrustProbe {
        TrustProbe {
            adjtimex: false,
            sync_flag: "/nonexistent/synchronized".into(),
            rtc: vec![],
        }
    }

    #[test]
    fn a_wall_clock_step_forwards_or_back_shows_only_at_follow_and_is_reported_once() {
        let (off, wall) = stepped_wall();
        let c = ScaledClock::following(wall, no_trust());
        assert_eq!(c.follow(), None, "no step yet");
        let before = c.now();
        off.store(3 * 86_400_000, Ordering::Relaxed);
        assert!(c.now().since(before).as_secs() < 5, "not followed yet");
        let s = c.follow().expect("the step is found");
        assert!((s.delta_ms - 3 * 86_400_000).abs() < 50, "{s:?}");
        assert!(c.now().as_millis() - before.as_millis() >= 3 * 86_400_000 - 50);
        assert_eq!(c.follow(), None, "reported once");
        off.store(3 * 86_400_000 - 2 * 3_600_000, Ordering::Relaxed);
        let back = c.follow().expect("the step back is found");
        assert!((back.delta_ms + 2 * 3_600_000).abs() < 50, "{back:?}");
        let st = c.state();
        assert_eq!((st.steps, st.last_step), (2, Some(back)));
        assert_eq!((st.trusted, st.source), (false, "none"));
    }

    #[test]
    fn trust_comes_from_the_timesyncd_flag_or_an_rtc_that_kept_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = no_trust();
        assert_eq!(p.check(), (false, "none"));
        let rtc = dir.path().join("since_epoch");
        p.rtc = vec![rtc.clone()];
        // A battery-less RTC after a power cut: back at 1970 + boot time.
        std::fs::write(&rtc, b"42\n").unwrap();
        assert_eq!(p.check(), (false, "none"));
        let now = crate::wall::now().as_millis() / 1000;
        std::fs::write(&rtc, format!("{}\n", now - 3 * 86_400)).unwrap();
        assert_eq!(p.check(), (false, "none"), "three days off");
        std::fs::write(&rtc, format!("{now}\n")).unwrap();
        assert_eq!(p.check(), (true, "rtc"));
        p.sync_flag = dir.path().join("synchronized");
        std::fs::write(&p.sync_flag, b"").unwrap();
        assert_eq!(p.check(), (true, "ntp"));
    }
}
