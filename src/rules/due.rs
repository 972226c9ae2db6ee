//! Timers due at the same instant: their restart-proof firing order and
//! the cache warm-up before a large batch fires.
//!
//! Invariant: the order depends only on names (rule order, then a stable
//! hash of the subject's name, then the name), never on device or slot
//! indices, so a restored engine fires the same batch in the same order.

use super::devices::{self, Devices};
use super::rule::{NO_DEV, RULE_SUBJECT, Rule};
use super::spec::{self, RuleType};
use super::timers::{self, Entry};

/// Sorts `(subject hash, entry)` pairs into firing order.
pub fn order(
    rules: &[Rule],
    devs: &Devices,
    batch: &mut Vec<(u64, Entry)>,
    scratch: &mut Vec<(u64, Entry)>,
) {
    if batch.len() < 2 {
        return;
    }
    let by_name = |a: &(u64, Entry), b: &(u64, Entry)| {
        subject_name(rules, devs, a.1.rule, a.1.subject).cmp(subject_name(
            rules,
            devs,
            b.1.rule,
            b.1.subject,
        ))
    };
    if batch.len() >= timers::RADIX_MIN {
        // A storm (100k due together): four radix passes instead of ~17
        // comparisons per entry, then the full hash and the name within
        // (rare, short) runs of equal high halves.
        timers::radix_sort(batch, scratch);
        for run in batch.chunk_by_mut(|a, b| (a.1.rule, a.0 >> 32) == (b.1.rule, b.0 >> 32)) {
            if run.len() > 1 {
                run.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| by_name(a, b)));
            }
        }
    } else {
        batch.sort_unstable_by(|a, b| {
            (a.1.rule, a.0)
                .cmp(&(b.1.rule, b.0))
                .then_with(|| by_name(a, b))
        });
    }
}

/// Timers whose memory [`touch`] loads at a time, ahead of firing them.
pub const TOUCH_CHUNK: usize = 256;

/// Loads what firing `chunk` (at most [`TOUCH_CHUNK`] entries) will read —
/// each entry's slot, device record, device id and name — so the cache
/// misses overlap instead of queueing one after another behind the firing
/// work (100k timers due together: three or four misses per alert were
/// most of the time). One pass per level of indirection: within a pass the
/// loads are independent, so the processor keeps many in flight; a single
/// pass following slot → device → id per entry waited on each in turn.
/// Only reads; the result is meaningless.
pub fn touch(rules: &[Rule], devs: &Devices, chunk: &[(u64, Entry)]) {
    let mut dev = [NO_DEV; TOUCH_CHUNK];
    for (d, &(_, e)) in dev.iter_mut().zip(chunk) {
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

/// `name_hash` of [`subject_name`] (precomputed: no string is read).
pub fn subject_hash(rules: &[Rule], devs: &Devices, rule: u32, subject: u32) -> u64 {
    if subject == RULE_SUBJECT {
        return devices::name_hash("");
    }
    if is_per_room(rules, rule) {
        devs.room_hash_of(subject)
    } else {
        devs.hash_of(subject)
    }
}

fn is_per_room(rules: &[Rule], rule: u32) -> bool {
    rules
        .get(rule as usize)
        .is_some_and(|r| r.spec.kind == RuleType::Inactivity && r.per == spec::Per::Room)
}

/// The name that orders timers due at the same instant.
pub fn subject_name<'a>(rules: &'a [Rule], devs: &'a Devices, rule: u32, subject: u32) -> &'a str {
    if subject == RULE_SUBJECT {
        return "";
    }
    if is_per_room(rules, rule) {
        devs.room_by_index(subject).unwrap_or("")
    } else {
        devs.get(subject).map_or("", |d| d.id.as_str())
    }
}
