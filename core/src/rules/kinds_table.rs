//! The engine's per-device, per-kind entries (last reading, arrival,
//! route), kept only for the kinds each device has sent: a panic pendant
//! has one entry, a multi-sensor five or six.
//!
//! All entries live in one array (`pool`), each device's side by side in
//! kind-code order; a device holds a bit mask of its kinds and the index of
//! its first entry, so a kind's entry is at that index plus the number of
//! set bits below its own. One array, not a heap block per device: devices
//! created together (a burst of new pendants) sit together, and the small
//! heap blocks around them (device ids, names) stay as dense as before.
//!
//! Measured (50,000 distinct pendants, one panic each, `versus`): a full
//! table of every kind per device (18 × 32 bytes) was 29 MB, and 48 MB at
//! the peak of its growth (the old and the doubled array both alive); this
//! is 8 bytes per device plus 32 per kind sent. A box of entries per device
//! cost as little memory but slowed firing 100,000 timers by 10–20 %
//! (`rules` bench): the boxes sat between the device ids the alerts read.
//!
//! A device that starts sending a new kind while other devices' entries
//! follow its own moves its entries to the end of the pool; the old place
//! becomes garbage, and the pool is compacted once garbage is most of it.
//! Devices send a fixed set of kinds, so this is rare after start-up.

use super::devices::{NK, PerKind};

const _: () = assert!(NK <= 32, "a kind mask is 32 bits");

/// Where one device's entries are.
#[derive(Debug, Default, Clone, Copy)]
struct Span {
    /// Bit `code` set: the kind with that code has an entry.
    mask: u32,
    /// Index of the device's first entry in the pool.
    first: u32,
}

impl Span {
    fn len(self) -> usize {
        self.mask.count_ones() as usize
    }

    fn range(self) -> std::ops::Range<usize> {
        self.first as usize..self.first as usize + self.len()
    }
}

fn bit(code: usize) -> Option<u32> {
    1u32.checked_shl(u32::try_from(code).ok()?)
}

#[derive(Debug, Default)]
pub struct KindTable {
    spans: Vec<Span>,
    pool: Vec<PerKind>,
    /// Entries in `pool` no device points at any more.
    garbage: usize,
}

impl KindTable {
    /// A new device (the next index), without entries.
    pub fn push_device(&mut self) {
        self.spans.push(Span::default());
    }

    pub fn get(&self, dev: u32, code: usize) -> Option<&PerKind> {
        let s = *self.spans.get(dev as usize)?;
        let b = bit(code)?;
        if s.mask & b == 0 {
            return None;
        }
        self.pool
            .get(s.first as usize + (s.mask & (b - 1)).count_ones() as usize)
    }

    /// The entry of a known device's kind `code`, made as `fresh` if the
    /// device has none yet (`None`: unknown device or code).
    pub fn get_or_insert(&mut self, dev: u32, code: usize, fresh: PerKind) -> Option<&mut PerKind> {
        let s = *self.spans.get(dev as usize)?;
        let b = bit(code)?;
        let i = (s.mask & (b - 1)).count_ones() as usize;
        if s.mask & b == 0 {
            // A device without entries starts at the end of the pool.
            let first = if s.len() == 0 {
                self.pool.len()
            } else {
                s.first as usize
            };
            let at = first + i;
            if first + s.len() == self.pool.len() {
                // Last in the pool: grow in place.
                self.pool.insert(at, fresh);
                self.set_span(dev, s.mask | b, first)?;
            } else {
                // Others follow: move to the end with the new entry.
                let moved_to = self.pool.len();
                let old = s.range();
                self.pool.extend_from_within(old.start..at);
                self.pool.push(fresh);
                self.pool.extend_from_within(at..old.end);
                self.garbage += old.len();
                self.set_span(dev, s.mask | b, moved_to)?;
                if self.garbage > self.pool.len() / 2 {
                    self.compact();
                }
            }
        }
        let s = *self.spans.get(dev as usize)?;
        self.pool.get_mut(s.first as usize + i)
    }

    fn set_span(&mut self, dev: u32, mask: u32, first: usize) -> Option<()> {
        let first = u32::try_from(first).ok()?;
        *self.spans.get_mut(dev as usize)? = Span { mask, first };
        Some(())
    }

    /// The pool again without garbage, devices in index order.
    fn compact(&mut self) {
        let mut pool = Vec::with_capacity(self.pool.len() - self.garbage);
        for s in &mut self.spans {
            let r = s.range();
            s.first = u32::try_from(pool.len()).unwrap_or(u32::MAX);
            pool.extend_from_slice(self.pool.get(r).unwrap_or(&[]));
        }
        self.pool = pool;
        self.garbage = 0;
    }

    /// `(code, entry)` of a device, in code order.
    pub fn iter(&self, dev: u32) -> impl Iterator<Item = (usize, &PerKind)> {
        let s = self.spans.get(dev as usize).copied().unwrap_or_default();
        (0..NK)
            .filter(move |&c| s.mask & (1 << c) != 0)
            .zip(self.pool.get(s.range()).unwrap_or(&[]).iter())
    }

    /// A device's entries.
    pub fn entries_mut(&mut self, dev: u32) -> &mut [PerKind] {
        let s = self.spans.get(dev as usize).copied().unwrap_or_default();
        self.pool.get_mut(s.range()).unwrap_or(&mut [])
    }

    /// Every entry (garbage included: changing it changes nothing).
    pub fn all_mut(&mut self) -> &mut [PerKind] {
        &mut self.pool
    }

    /// A device's kind mask and entries, to give to another table.
    pub fn of(&self, dev: u32) -> (u32, &[PerKind]) {
        let s = self.spans.get(dev as usize).copied().unwrap_or_default();
        (s.mask, self.pool.get(s.range()).unwrap_or(&[]))
    }

    /// Replaces a known device's entries with `entries` (one per bit of
    /// `mask`, in code order), appended to the pool.
    pub fn set(&mut self, dev: u32, mask: u32, entries: &[PerKind]) {
        let Some(s) = self.spans.get(dev as usize).copied() else {
            return;
        };
        if mask.count_ones() as usize != entries.len() {
            return;
        }
        self.garbage += s.len();
        let first = self.pool.len();
        self.pool.extend_from_slice(entries);
        let _ = self.set_span(dev, mask, first);
    }

    /// Entries held (garbage included) and bytes of memory used.
    #[cfg(test)]
    pub fn footprint(&self) -> (usize, usize) {
        (
            self.pool.len(),
            self.spans.capacity() * std::mem::size_of::<Span>()
                + self.pool.capacity() * std::mem::size_of::<PerKind>(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::devices::NEVER;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn entry(n: i64) -> PerKind {
        PerKind {
            at: n,
            value: n as f64,
            arrived: n,
            route: u32::try_from(n).unwrap_or(0),
        }
    }

    const FRESH: PerKind = PerKind {
        at: NEVER,
        value: 0.0,
        arrived: NEVER,
        route: u32::MAX,
    };

    #[test]
    fn a_device_followed_by_others_moves_its_entries_and_the_pool_is_compacted() {
        let mut t = KindTable::default();
        for _ in 0..3 {
            t.push_device();
        }
        for d in 0..3 {
            *t.get_or_insert(d, 5, FRESH).unwrap() = entry(i64::from(d) * 10 + 5);
        }
        assert_eq!(t.footprint().0, 3);
        // Device 0 is followed by 1 and 2: it moves to the end.
        *t.get_or_insert(0, 2, FRESH).unwrap() = entry(2);
        assert_eq!(t.garbage, 1);
        assert_eq!(t.footprint().0, 5);
        // Device 0 is last now: it grows in place.
        *t.get_or_insert(0, 9, FRESH).unwrap() = entry(9);
        assert_eq!((t.garbage, t.footprint().0), (1, 6));
        let seen: Vec<(usize, i64)> = t.iter(0).map(|(c, e)| (c, e.at)).collect();
        assert_eq!(seen, [(2, 2), (5, 5), (9, 9)]);
        // Devices 1 and 2 take turns growing, each move leaving garbage,
        // until garbage is most of the pool: then it is compacted.
        let mut compacted = false;
        for code in 0..4 {
            for d in [1, 2] {
                let before = t.garbage;
                *t.get_or_insert(d, code, FRESH).unwrap() = entry(i64::from(d) * 100 + code as i64);
                compacted |= before > 0 && t.garbage == 0;
                assert!(t.garbage <= t.pool.len() / 2);
            }
        }
        assert!(compacted);
        assert_eq!(t.pool.len() - t.garbage, 3 + 2 * 5);
        assert_eq!(t.get(1, 0).map(|e| e.at), Some(100));
        assert_eq!(t.get(1, 3).map(|e| e.at), Some(103));
        assert_eq!(t.get(1, 5).map(|e| e.at), Some(15));
        assert_eq!(t.get(2, 0).map(|e| e.at), Some(200));
        assert_eq!(t.get(2, 5).map(|e| e.at), Some(25));
        assert_eq!(t.get(0, 9).map(|e| e.at), Some(9));
        assert!(t.get(3, 0).is_none());
        assert!(t.get_or_insert(3, 0, FRESH).is_none());
        assert!(t.get_or_insert(0, NK + 40, FRESH).is_none());
    }

    #[test]
    fn set_replaces_a_devices_entries_and_a_wrong_count_is_refused() {
        let mut t = KindTable::default();
        t.push_device();
        *t.get_or_insert(0, 3, FRESH).unwrap() = entry(3);
        t.set(0, 0b1_0001, &[entry(0), entry(4)]);
        let seen: Vec<(usize, i64)> = t.iter(0).map(|(c, e)| (c, e.at)).collect();
        assert_eq!(seen, [(0, 0), (4, 4)]);
        t.set(0, 0b1, &[entry(7), entry(8)]);
        assert_eq!(t.iter(0).count(), 2);
    }

    proptest! {
        /// Any sequence of writes to any devices' kinds reads back as a map
        /// of (device, kind) → last value written.
        #[test]
        fn the_table_reads_back_as_a_map(
            devices in 1u32..6,
            writes in proptest::collection::vec((0u32..6, 0usize..NK, 0i64..1_000), 0..200),
        ) {
            let mut t = KindTable::default();
            for _ in 0..devices {
                t.push_device();
            }
            let mut model: BTreeMap<(u32, usize), i64> = BTreeMap::new();
            for (d, code, v) in writes {
                match t.get_or_insert(d, code, FRESH) {
                    Some(e) => {
                        *e = entry(v);
                        model.insert((d, code), v);
                    }
                    None => prop_assert!(d >= devices),
                }
            }
            for d in 0..devices {
                let got: Vec<(usize, i64)> = t.iter(d).map(|(c, e)| (c, e.at)).collect();
                let want: Vec<(usize, i64)> = model
                    .range((d, 0)..(d + 1, 0))
                    .map(|(&(_, c), &v)| (c, v))
                    .collect();
                prop_assert_eq!(got, want);
                for code in 0..NK {
                    prop_assert_eq!(t.get(d, code).map(|e| e.at), model.get(&(d, code)).copied());
                }
            }
            prop_assert!(t.garbage <= t.pool.len());
        }
    }
}
