//! The C allocator's tuning for a small, long-running daemon (glibc only).
//!
//! Why: glibc gives every thread that allocates concurrently an arena of
//! its own (up to 8 per core), and memory freed in one arena is reused only
//! by allocations from that arena. carebridge's work moves between threads
//! (a front-door reading is allocated on a tokio worker, freed on the store
//! writer; rule state grows on whichever worker runs the hub), so under a
//! burst each arena keeps its own high-water mark: 1,000 clients sending
//! 50,000 panic presses from new pendants peaked at 57 MB RSS with the
//! defaults against a heap of 32 MB at its highest (heaptrack). One arena,
//! and large blocks (≥ 64 KiB: the rules' tables, SQLite's big buffers)
//! served by `mmap` so freeing them gives the pages back at once, keep the
//! peak near the heap itself (`cargo bench --bench frontdoor`, see the
//! README's figures). The CPU cost of one arena was measured with
//! `benches/tools/ab.sh` (also in the README): the daemon runs at most
//! three busy threads, so the arena lock is rarely contended.
//!
//! An operator's `MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_` or
//! `MALLOC_TRIM_THRESHOLD_` (glibc's own variables) wins over these.
//! Set by the thread that starts everything, before any other thread.

/// glibc's parameter, its environment variable, and carebridge's value.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TUNING: [(libc::c_int, &str, libc::c_int); 3] = [
    (libc::M_ARENA_MAX, "MALLOC_ARENA_MAX", 1),
    (libc::M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", 64 * 1024),
    (libc::M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", 128 * 1024),
];

/// Applies the tuning (see the module doc); returns the parameters glibc
/// refused, by their variable's name.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn tune() -> Vec<&'static str> {
    let mut refused = Vec::new();
    for (param, var, value) in TUNING {
        if std::env::var_os(var).is_some() {
            continue;
        }
        // SAFETY: `mallopt` takes two integers and touches only the
        // allocator's own state, under the allocator's lock (glibc's
        // `mallopt` locks the main arena), so calling it while other
        // threads allocate would also be sound; the parameters are glibc's
        // documented ones with values in their ranges.
        if unsafe { libc::mallopt(param, value) } != 1 {
            refused.push(var);
        }
    }
    refused
}

/// Other C libraries keep their own defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() -> Vec<&'static str> {
    Vec::new()
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// glibc takes every setting (a refused one would be logged and the
    /// daemon run on glibc's default). What the settings do to the peak
    /// RSS is measured by `benches/frontdoor.rs` and `versus`, on a whole
    /// daemon: in a test binary, arenas and free chunks made by the other
    /// tests decide where a block comes from.
    #[test]
    fn glibc_accepts_every_setting() {
        assert!(super::tune().is_empty());
    }
}
