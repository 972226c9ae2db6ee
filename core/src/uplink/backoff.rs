//! Reconnect delays: exponential backoff with jitter (pure).
//!
//! The delay doubles from `min` to `max` after each failed attempt; each
//! actual wait is drawn uniformly from the upper half of the current delay
//! ("equal jitter"), so a fleet of gateways that lost the broker at the same
//! moment does not come back at the same moment. A connection that stayed
//! up for at least `max` resets the delay to `min`.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let min = min.max(Duration::from_millis(1));
        Backoff {
            min,
            max: max.max(min),
            current: min,
        }
    }

    /// The wait before the next attempt; `unit` is a uniform random number
    /// in [0, 1). Advances the delay for the attempt after.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = d / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// A connection was up for `lasted`: a long enough one resets the delay.
    pub fn connected_for(&mut self, lasted: Duration) {
        if lasted >= self.max {
            self.current = self.min;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let waits: Vec<_> = (0..6).map(|_| b.next_delay(0.999).as_millis()).collect();
        assert!(waits[0] >= 999 && waits[0] <= 1000);
        assert!(waits[1] >= 1998 && waits[1] <= 2000);
        assert!(waits[5] >= 7990 && waits[5] <= 8000, "{waits:?}");
        let mut b = Backoff::new(Duration::from_secs(4), Duration::from_secs(4));
        assert_eq!(b.next_delay(0.0), Duration::from_secs(2));
    }

    #[test]
    fn a_long_connection_resets_the_delay() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..10 {
            b.next_delay(0.5);
        }
        b.connected_for(Duration::from_secs(5));
        assert!(b.next_delay(0.0) >= Duration::from_secs(30));
        b.connected_for(Duration::from_secs(61));
        assert_eq!(b.next_delay(0.0), Duration::from_millis(500));
    }
}
