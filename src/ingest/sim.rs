//! The simulated home. (being built)

use serde::{Deserialize, Serialize};

use crate::config::Problem;

/// `[simulator]`: a simulated home feeding the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Simulated seconds per real second.
    pub speed: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig { speed: 1.0 }
    }
}

impl SimConfig {
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if !(self.speed.is_finite() && self.speed > 0.0 && self.speed <= 100_000.0) {
            out.push(Problem::new("speed", "must be above 0 and at most 100000"));
        }
        out
    }
}
