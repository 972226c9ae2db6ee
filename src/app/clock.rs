//! The gateway's real clock: the wall clock read once at start-up, then
//! monotonic time, optionally sped up (`carebridge demo --speed`).

use crate::clock::Clock;
use crate::model::Time;

/// A clock that may run faster than real time (the demo's `--speed`).
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    real_start: std::time::Instant,
    sim_start: Time,
    speed: f64,
}

impl ScaledClock {
    pub fn new(sim_start: Time, speed: f64) -> ScaledClock {
        ScaledClock {
            real_start: std::time::Instant::now(),
            sim_start,
            speed,
        }
    }
    /// Real time: speed 1 from the wall clock.
    pub fn system() -> ScaledClock {
        ScaledClock::new(crate::wall::now(), 1.0)
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Time {
        let real = self.real_start.elapsed().as_secs_f64() * 1000.0 * self.speed;
        Time(self.sim_start.as_millis().saturating_add(real as i64))
    }
    fn speed(&self) -> f64 {
        self.speed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_clock_runs_faster() {
        let c = ScaledClock::new(Time(0), 1000.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(c.now().as_millis() >= 20_000);
    }
}
