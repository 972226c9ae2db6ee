//! The timer queue: a min-heap of `(deadline, rule, subject)` with lazy
//! deletion.
//!
//! Invariants: the heap may hold stale entries; the truth is the owning
//! slot's `deadline`/`queued` pair. A slot has at most one *live* entry — the
//! one whose time equals its `queued` field. Moving a deadline later does not
//! touch the heap (the old entry pops early and is re-queued at the new
//! time), so a motion sensor re-arming an inactivity timer on every reading
//! costs nothing here; moving it earlier pushes a new entry. When stale
//! entries outnumber live ones the caller rebuilds the heap
//! ([`Timers::needs_compaction`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::model::Time;

/// One queued timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub at: Time,
    pub rule: u32,
    pub subject: u32,
}

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Number of slots with a live entry (maintained by the engine).
    pub live: usize,
}

impl Timers {
    pub fn push(&mut self, e: Entry) {
        self.heap.push(Reverse(e));
    }

    /// The earliest queued time (may belong to a stale entry: waking early
    /// is harmless, waking late is not).
    pub fn peek(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Pops the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Time) -> Option<Entry> {
        match self.heap.peek() {
            Some(Reverse(e)) if e.at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn needs_compaction(&self) -> bool {
        self.heap.len() > 1024 && self.heap.len() > 4 * self.live
    }

    /// Replaces the content with exactly `entries` (one per live slot).
    pub fn rebuild(&mut self, entries: Vec<Entry>) {
        self.live = entries.len();
        self.heap = entries.into_iter().map(Reverse).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let mut t = Timers::default();
        for (at, rule) in [(30, 1), (10, 2), (20, 3)] {
            t.push(Entry {
                at: Time(at),
                rule,
                subject: 0,
            });
        }
        assert_eq!(t.peek(), Some(Time(10)));
        assert!(t.pop_due(Time(5)).is_none());
        let got: Vec<u32> = std::iter::from_fn(|| t.pop_due(Time(25)))
            .map(|e| e.rule)
            .collect();
        assert_eq!(got, vec![2, 3]);
        assert_eq!(t.len(), 1);
    }
}
