//! `[simulator]`: the simulated home of `carebridge demo`.
//!
//! Keys, defaults and validation; the part that uses it lives in the
//! shell crate.

use super::Problem;
use serde::{Deserialize, Serialize};

/// `[simulator]`: a simulated home feeding the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Simulated seconds per real second (`carebridge demo --speed`).
    pub speed: f64,
    /// PRNG seed: the same seed gives the same day.
    pub seed: u64,
    /// Expected panic-button presses per simulated day.
    pub panic_per_day: f64,
    /// Seconds between temperature reports.
    pub temperature_every_s: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            speed: 1.0,
            seed: 1,
            panic_per_day: 2.0,
            temperature_every_s: 300,
        }
    }
}

impl SimConfig {
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if !(self.speed.is_finite() && self.speed > 0.0 && self.speed <= 100_000.0) {
            out.push(Problem::new("speed", "must be above 0 and at most 100000"));
        }
        if !(self.panic_per_day.is_finite() && (0.0..=1000.0).contains(&self.panic_per_day)) {
            out.push(Problem::new("panic_per_day", "must be between 0 and 1000"));
        }
        if self.temperature_every_s < 10 {
            out.push(Problem::new("temperature_every_s", "must be at least 10"));
        }
        out
    }
}
