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

/// Batches at least this large are ordered by [`radix_sort`].
pub const RADIX_MIN: usize = 4096;

/// Sorts entries by `(rule, subject)`: LSD radix sort, one stable pass
/// per byte of that 8-byte key, skipping bytes every entry shares (usually
/// all of `rule` and the top of `subject`). `scratch` is a reused buffer.
pub fn radix_sort(v: &mut Vec<Entry>, scratch: &mut Vec<Entry>) {
    let key = |e: &Entry, byte: usize| -> usize {
        let k = (u64::from(e.rule) << 32) | u64::from(e.subject);
        ((k >> (8 * byte)) & 0xff) as usize
    };
    let Some(&first) = v.first() else { return };
    for byte in 0..8 {
        let mut count = [0usize; 256];
        for x in v.iter() {
            count[key(x, byte)] += 1;
        }
        if count.contains(&v.len()) {
            continue; // every entry has the same byte here
        }
        let mut start = [0usize; 256];
        let mut sum = 0;
        for (s, c) in start.iter_mut().zip(count.iter()) {
            *s = sum;
            sum += c;
        }
        if scratch.len() != v.len() {
            scratch.clear();
            scratch.resize(v.len(), first);
        }
        for x in v.iter() {
            let b = key(x, byte);
            if let Some(slot) = scratch.get_mut(start[b]) {
                *slot = *x;
            }
            start[b] += 1;
        }
        std::mem::swap(v, scratch);
    }
}

/// Entries popped one by one before the rest due at the same instant are
/// taken in one pass (see [`Timers::take_due_at`]).
const BULK_AFTER: usize = 256;

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
    #[cfg(test)]
    pub fn pop_due(&mut self, now: Time) -> Option<Entry> {
        match self.heap.peek() {
            Some(Reverse(e)) if e.at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Appends `make(entry)` for every entry due at exactly `at` (the
    /// earliest time queued) to `batch`, in no particular order. Pops one by one while few are due;
    /// past [`BULK_AFTER`] it takes the rest in one O(n) pass instead of
    /// O(log n) per pop (100k timers due together: ~17 sift levels each).
    pub fn take_due_at<T>(&mut self, at: Time, batch: &mut Vec<T>, make: impl Fn(Entry) -> T) {
        let mut popped = 0;
        while self.peek() == Some(at) {
            if popped == BULK_AFTER {
                // One allocation for the rest, not a doubling series.
                batch.reserve(self.heap.len());
                self.heap.retain(|Reverse(e)| {
                    if e.at == at {
                        batch.push(make(*e));
                        false
                    } else {
                        true
                    }
                });
                return;
            }
            match self.heap.pop() {
                Some(Reverse(e)) => batch.push(make(e)),
                None => return,
            }
            popped += 1;
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

    #[test]
    fn takes_every_entry_due_at_an_instant_whether_few_or_many() {
        for n in [3u32, 256, 257, 5000] {
            let mut t = Timers::default();
            for i in 0..n {
                t.push(Entry {
                    at: Time(10),
                    rule: 0,
                    subject: i,
                });
                t.push(Entry {
                    at: Time(20 + i64::from(i % 3)),
                    rule: 1,
                    subject: i,
                });
            }
            let mut batch = Vec::new();
            t.take_due_at(Time(10), &mut batch, |e| e);
            batch.sort();
            assert_eq!(batch.len(), n as usize);
            assert!(
                batch
                    .iter()
                    .enumerate()
                    .all(|(i, e)| e.at == Time(10) && e.rule == 0 && e.subject == i as u32)
            );
            assert_eq!(t.len(), n as usize);
            assert_eq!(t.peek(), Some(Time(20)));
        }
    }

    #[test]
    fn radix_sort_orders_by_rule_then_subject() {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut v: Vec<Entry> = (0..10_000u32)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                Entry {
                    at: Time(5),
                    rule: (x >> 60) as u32 % 3,
                    // Some equal subjects, some large ones.
                    subject: if i % 100 == 0 { 42 } else { (x >> 8) as u32 },
                }
            })
            .collect();
        let mut want = v.clone();
        radix_sort(&mut v, &mut Vec::new());
        want.sort_by_key(|e| (e.rule, e.subject));
        assert_eq!(v, want);
        let mut one = vec![want[0]];
        radix_sort(&mut one, &mut Vec::new());
        assert_eq!(one.len(), 1);
        radix_sort(&mut Vec::new(), &mut Vec::new());
    }
}
