//! The daemon's CPU scheduling policy: `SCHED_BATCH` for all its threads.
//!
//! Why: carebridge's work is a pipeline of threads handing batches on
//! (front door → hub → store writer → uplink, and acknowledgements back).
//! Under the default policy every hand-off wakes the next thread and the
//! kernel lets the woken thread preempt the waker at once (wakeup
//! preemption): on a busy CPU that is a context switch per hand-off, most
//! of them in the middle of the waker's batch, which then runs in pieces.
//! `SCHED_BATCH` threads get the same share of the CPU (same nice weight)
//! but never preempt on wakeup: a woken thread runs when the running one
//! blocks or its time slice ends (a few milliseconds at most), so a batch
//! is finished before the next stage takes it. Measured with the daemon on
//! one CPU (`cargo bench --bench versus`, 50,000 panic presses): 28.6–31.2
//! → 23.8–25.8 µs of CPU per alert, 27 → 30 k alerts/s. Other programs
//! (sshd, a shell) still preempt carebridge when they wake.
//!
//! Set by the thread that starts everything, before any other thread
//! exists: threads inherit their creator's policy (Linux).

/// Puts the calling thread (and every thread it creates from now on) under
/// `SCHED_BATCH`. Needs no privilege.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn batch() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is an initialised `sched_param` that lives across the
    // call and is only read by the kernel; pid 0 names the calling thread;
    // SCHED_BATCH requires priority 0, which it has.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
pub fn batch() -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// The calling thread's policy (field 41 of `/proc/thread-self/stat`;
    /// 0 normal, 3 batch).
    fn policy() -> u32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // The command name (field 2) may hold spaces: count after its `)`.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(41 - 3).unwrap().parse().unwrap()
    }

    #[test]
    fn the_thread_and_the_threads_it_starts_run_batch() {
        std::thread::spawn(|| {
            assert_eq!(
                policy(),
                0,
                "a new test thread starts under the normal policy"
            );
            super::batch().unwrap();
            assert_eq!(policy(), 3);
            let child = std::thread::spawn(policy).join().unwrap();
            assert_eq!(child, 3, "threads started afterwards inherit it");
        })
        .join()
        .unwrap();
    }
}
