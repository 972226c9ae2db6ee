//! Counters of the coordinator link for `/metrics`, the status document and
//! diagnostics: frames decoded and rejected on the serial line, request
//! time-outs and MT RPC errors, and coordinator restarts (every session that
//! failed after the port opened) with unexpected stick resets among them.
//!
//! Invariant: every counter only grows for the life of the process. The
//! pure [`super::coordinator::Coordinator`] keeps per-session counts that
//! start at zero with each session; the serial shell adds the counts of
//! ended sessions (`base`) to the live one when it publishes.

use std::sync::atomic::{AtomicU64, Ordering};

use super::session::SessionStats;

/// Shared between the Zigbee thread (writer) and readers (status, metrics).
#[derive(Debug, Default)]
pub struct ZigbeeCounters {
    frames: AtomicU64,
    bad_frames: AtomicU64,
    skipped_bytes: AtomicU64,
    timeouts: AtomicU64,
    rpc_errors: AtomicU64,
    restarts: AtomicU64,
    resets: AtomicU64,
}

/// Adds `b` into `a` (the counts of an ended session into the base).
pub fn accumulate(a: &mut SessionStats, b: &SessionStats) {
    a.framing.frames += b.framing.frames;
    a.framing.bad_frames += b.framing.bad_frames;
    a.framing.skipped_bytes += b.framing.skipped_bytes;
    a.timeouts += b.timeouts;
    a.rpc_errors += b.rpc_errors;
    a.unmatched_srsp += b.unmatched_srsp;
}

impl ZigbeeCounters {
    /// Publishes the totals: ended sessions (`base`) plus the live one.
    pub fn publish(&self, base: &SessionStats, live: &SessionStats) {
        let mut t = *base;
        accumulate(&mut t, live);
        self.frames.store(t.framing.frames, Ordering::Relaxed);
        self.bad_frames
            .store(t.framing.bad_frames, Ordering::Relaxed);
        self.skipped_bytes
            .store(t.framing.skipped_bytes, Ordering::Relaxed);
        self.timeouts.store(t.timeouts, Ordering::Relaxed);
        self.rpc_errors.store(t.rpc_errors, Ordering::Relaxed);
    }

    /// A session failed after the port opened; `reset` when the stick
    /// announced a reset nobody asked for.
    pub fn restarted(&self, reset: bool) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        if reset {
            self.resets.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
    pub fn bad_frames(&self) -> u64 {
        self.bad_frames.load(Ordering::Relaxed)
    }
    pub fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }
    pub fn rpc_errors(&self) -> u64 {
        self.rpc_errors.load(Ordering::Relaxed)
    }
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::Relaxed)
    }

    /// The `zigbee` part of the status document.
    pub fn snapshot(&self) -> crate::status::ZigbeeStatus {
        crate::status::ZigbeeStatus {
            frames: self.frames(),
            frame_errors: self.bad_frames(),
            skipped_bytes: self.skipped_bytes.load(Ordering::Relaxed),
            timeouts: self.timeouts(),
            rpc_errors: self.rpc_errors(),
            restarts: self.restarts(),
            resets: self.resets(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_ended_sessions_to_the_live_one_and_never_shrink_on_a_new_session() {
        let c = ZigbeeCounters::default();
        let mut base = SessionStats::default();
        let mut s1 = SessionStats::default();
        s1.framing.frames = 10;
        s1.framing.bad_frames = 2;
        s1.timeouts = 1;
        c.publish(&base, &s1);
        assert_eq!((c.frames(), c.bad_frames(), c.timeouts()), (10, 2, 1));
        // The session ends; a new one starts from zero.
        accumulate(&mut base, &s1);
        c.restarted(true);
        c.publish(&base, &SessionStats::default());
        assert_eq!((c.frames(), c.bad_frames()), (10, 2));
        let mut s2 = SessionStats::default();
        s2.framing.frames = 5;
        s2.rpc_errors = 3;
        c.publish(&base, &s2);
        c.restarted(false);
        let j = c.snapshot();
        assert_eq!(j.frames, 15);
        assert_eq!(j.frame_errors, 2);
        assert_eq!(j.rpc_errors, 3);
        assert_eq!(j.restarts, 2);
        assert_eq!(j.resets, 1);
    }
}
