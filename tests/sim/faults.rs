//! The fault schedule: drawn up front from the seed for the incident days
//! (none in the calm days at the end, so everything can drain).

use super::home::{HOUR, MIN};
use super::rng::Rng;

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The broker becomes unreachable (`false`) or reachable again.
    MqttLink(bool),
    /// The LoRaWAN network (its gateway) is down / back.
    LoraNetwork(bool),
    ModemHang,
    ModemReboot,
    /// The Zigbee stick loses power for a moment (it says so on reboot).
    StickReset,
    /// The gateway stops: cleanly (rule state saved) or by a crash (rule
    /// state as of the last periodic save); it is back after `down_ms`.
    Restart {
        crash: bool,
        down_ms: i64,
    },
    /// The wall clock is stepped by this many ms (NTP, a fake-hwclock boot).
    ClockStep(i64),
}

fn every(rng: &mut Rng, mean_ms: i64) -> i64 {
    // Exponential gaps: -ln(u) · mean.
    (-(1.0 - rng.unit()).ln() * mean_ms as f64) as i64 + 1
}

pub fn schedule(rng: &mut Rng, start: i64, calm_from: i64) -> Vec<(i64, Fault)> {
    let mut out = Vec::new();
    let day = 24 * HOUR;
    let mut t = start + every(rng, day);
    while t < calm_from {
        let len = match rng.range(0, 3) {
            0 => rng.range(1, 10) * MIN,
            1 => rng.range(10, 90) * MIN,
            _ => rng.range(1, 8) * HOUR,
        };
        out.push((t, Fault::MqttLink(false)));
        out.push(((t + len).min(calm_from), Fault::MqttLink(true)));
        t += len + every(rng, 2 * day);
    }
    let mut t = start + every(rng, 5 * day);
    while t < calm_from {
        let len = rng.range(10, 180) * MIN;
        out.push((t, Fault::LoraNetwork(false)));
        out.push(((t + len).min(calm_from), Fault::LoraNetwork(true)));
        t += len + every(rng, 5 * day);
    }
    for (mean, f) in [
        (4 * day, Fault::ModemHang),
        (4 * day, Fault::ModemReboot),
        (4 * day, Fault::StickReset),
    ] {
        let mut t = start + every(rng, mean);
        while t < calm_from {
            out.push((t, f.clone()));
            t += every(rng, mean);
        }
    }
    let mut t = start + every(rng, 3 * day);
    while t < calm_from {
        let crash = rng.chance(0.6);
        out.push((
            t,
            Fault::Restart {
                crash,
                down_ms: rng.range(2_000, 120_000),
            },
        ));
        t += every(rng, 3 * day);
    }
    let mut t = start + every(rng, 8 * day);
    while t < calm_from {
        let size = if rng.chance(0.5) {
            rng.range(1_000, 60_000)
        } else {
            rng.range(1, 120) * MIN
        };
        let step = if rng.chance(0.5) { size } else { -size };
        // NTP puts it right again after a while.
        let fixed = t + rng.range(1, 180) * MIN;
        out.push((t, Fault::ClockStep(step)));
        out.push((fixed.min(calm_from), Fault::ClockStep(-step)));
        t = fixed + every(rng, 8 * day);
    }
    out.sort_by_key(|f| f.0);
    out
}
