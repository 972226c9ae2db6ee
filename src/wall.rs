//! The wall clock and the system's randomness, read only here, at the edge;
//! everything in the core crate takes `now` and random numbers as arguments.

use crate::model::Time;

/// The wall clock, as [`Time`].
pub fn now() -> Time {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Time(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A uniform random number in [0, 1) from the system's secure generator
/// (falls back to the clock's nanoseconds if it is unavailable).
pub fn jitter_unit() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        return f64::from(n % 1000) / 1000.0;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..100 {
            let u = jitter_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
