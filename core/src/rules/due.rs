//! Timers due at the same instant: the order they fire in, and the cache
//! warm-up before a large batch fires.
//!
//! Invariant: a batch fires by rule, then subject index — the order devices
//! (and rooms) became known to the engine. A snapshot keeps that numbering
//! and a restore re-creates it (`Devices::renumber`), so a restored engine
//! fires the same batch in the same order; it never depends on the order of
//! the heap.
//!
//! It is also the order the memory lies in: a rule's slot table places
//! subjects by their low bits (`devices::IdentBuild`) and the device table
//! is indexed by them, so a storm (100k inactivity timers due together)
//! walks both forwards instead of taking a cache miss or three per alert
//! at random addresses (bench, same host, interleaved runs: median 87 →
//! 39 ms).
//! (An earlier order by a hash of the subject's name was restart-proof
//! without renumbering, but random in memory.)

use super::devices::Devices;
use super::rule::{NO_DEV, Rule};
use super::timers::{self, Entry};

/// Sorts a batch of entries due together into firing order.
pub fn order(batch: &mut Vec<Entry>, scratch: &mut Vec<Entry>) {
    if batch.len() >= timers::RADIX_MIN {
        // A storm: a few radix passes instead of ~17 comparisons per entry.
        timers::radix_sort(batch, scratch);
    } else {
        batch.sort_unstable_by_key(|e| (e.rule, e.subject));
    }
}

/// Timers whose memory [`touch`] loads at a time, ahead of firing them.
pub const TOUCH_CHUNK: usize = 256;

/// Loads what firing `chunk` (at most [`TOUCH_CHUNK`] entries) will read —
/// each entry's slot, device record, device id and name — so the cache
/// misses overlap instead of queueing one after another behind the firing
/// work. (Memory order makes most of them hits; a rule whose subjects are
/// scattered devices still benefits.) One pass per level of indirection: within a pass the
/// loads are independent, so the processor keeps many in flight; a single
/// pass following slot → device → id per entry waited on each in turn.
/// Only reads; the result is meaningless.
pub fn touch(rules: &[Rule], devs: &Devices, chunk: &[Entry]) {
    let mut dev = [NO_DEV; TOUCH_CHUNK];
    for (d, e) in dev.iter_mut().zip(chunk) {
        if let Some(s) = rules
            .get(e.rule as usize)
            .and_then(|r| r.slots.get(&e.subject))
        {
            *d = s.dev;
        }
    }
    let mut names = [("", ""); TOUCH_CHUNK];
    for (n, &d) in names.iter_mut().zip(&dev) {
        if let Some(d) = devs.get(d) {
            *n = (d.id.as_str(), d.name.as_deref().unwrap_or(""));
        }
    }
    let mut acc = 0u64;
    for (id, name) in names.iter().take(chunk.len()) {
        let first = |s: &str| u64::from(s.as_bytes().first().copied().unwrap_or(0));
        acc = acc.wrapping_add(first(id) + first(name));
    }
    std::hint::black_box(acc);
}
