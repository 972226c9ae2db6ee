//! What the writer does when the file system is full.
//!
//! Why a full disk used to stall every alert (issue 22, reproduced on an
//! 8 MiB tmpfs): the WAL limit was half the configured reserve (4 MiB of
//! the 8 MiB default) and the reserve itself could never be created on so
//! small a disk. The disk filled while the WAL held ~600 pages beyond the end
//! of the main file. A checkpoint must grow the main file to take them, so it
//! failed with `SQLITE_FULL`; a WAL that cannot be checkpointed cannot
//! restart, so every DELETE meant to evict rows needed new WAL space and
//! failed too. Nothing could be evicted, ever, and the held batch (readings
//! in front of the panic) kept the queue full, so the panic never reached
//! the rules. Releasing a reserve only postpones this: the first relief
//! (with `incremental_vacuum`) gave the freed pages to the file system, the
//! stream grew the main file into them through the WAL, and the next full
//! disk deadlocked the same way with no reserve left.
//!
//! The fix: the database never fills the disk itself. `max_page_count` (a
//! page budget, [`Writer::set_page_budget`]) stops the main file while the
//! free space still holds a full WAL and the reserve, so our own writes
//! end in `SQLITE_FULL` before the file system is full: every checkpoint
//! and every evicting DELETE still fits, and evicted pages are reused in
//! place (no vacuum: handing them back to the file system is what let the
//! file regrow into a full disk). The reserve fits the disk (at most an
//! eighth) and the WAL limit follows it, for a disk that something else
//! fills. When nothing more can be freed the writer sheds readings and holds
//! alerts in memory ([`super::super::held`]) for the uplinks instead of
//! blocking everything behind them.
//!
//! Relief, one step per failed commit, until the batch fits: give back the
//! reserve (a real ENOSPC only); checkpoint; evict the oldest history, then
//! telemetry, then status (never alerts) in small chunks; checkpoint again
//! (old WAL content; the WAL file shrinks to nothing); then
//! our own leftovers (quarantined `<db>.corrupt-*` databases: carebridge
//! logs to the journal, so these are the only files of ours to drop). Each
//! disk-full episode raises one `disk-full` warning saying what was evicted
//! and clears it with the totals when commits have succeeded for a minute.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rusqlite::ffi::ErrorCode;

use super::retention::RETENTION_CHUNK;
use super::{Op, RELIEF_CHUNK, Writer};
use crate::model::{Alert, AlertState, Class};

/// The rule id of the gateway's own disk-full alert.
pub const DISK_FULL_RULE: &str = "disk-full";
/// Free pages below which an episode evicts ahead of the next batch.
const EVICT_AHEAD_PAGES: i64 = 256;
/// A disk-full episode ends after this long without a failed commit.
const CALM: Duration = Duration::from_secs(60);

/// What one disk-full episode freed, for the alert and the status.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Evicted {
    pub history: u64,
    pub telemetry: u64,
    pub status: u64,
    /// Bytes the WAL file shrank by.
    pub wal_bytes: u64,
    /// Our own leftover files removed.
    pub files: u64,
    /// Readings dropped because nothing more could be freed.
    pub readings_shed: u64,
}

impl Evicted {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (n, what) in [
            (self.history, "history rows"),
            (self.telemetry, "telemetry rows"),
            (self.status, "status rows"),
            (self.files, "quarantined database files"),
            (self.readings_shed, "new readings not stored"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if self.wal_bytes > 0 {
            parts.push(format!("{} KiB of write-ahead log", self.wal_bytes / 1024));
        }
        if parts.is_empty() {
            "nothing left to evict".into()
        } else {
            format!("evicted {}", parts.join(", "))
        }
    }
}

/// One disk-full episode.
#[derive(Debug)]
pub(super) struct Episode {
    pub evicted: Evicted,
    pub raised: bool,
    pub last_failure: Instant,
}

pub(super) fn is_disk_full(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure)
    )
}

impl Writer {
    /// One relief step after a failed commit. Returns whether anything was
    /// freed (false: the disk is full beyond what we may free).
    pub(super) fn relieve(&mut self, e: &rusqlite::Error) -> bool {
        if !is_disk_full(e) {
            return true; // busy or locked: retrying is the relief
        }
        let ep = self.episode.get_or_insert_with(|| Episode {
            evicted: Evicted::default(),
            raised: false,
            last_failure: Instant::now(),
        });
        ep.last_failure = Instant::now();
        // The page budget ends our own growth with room to spare; the
        // reserve is for a file system that something else filled.
        let fs_full = crate::store::reserve::fs_space(&self.path)
            .is_none_or(|(_, free)| free < self.wal_limit);
        let mut freed = fs_full && self.reserve.release();
        let wal_before = self.wal_len();
        self.checkpoint();
        match self.evict_round() {
            Ok(n) => freed |= n > 0,
            Err(e2) => tracing::warn!(error = %e2, "could not evict yet"),
        }
        self.checkpoint();
        let shrunk = wal_before.saturating_sub(self.wal_len());
        if shrunk > 0 {
            freed = true;
            if let Some(ep) = &mut self.episode {
                ep.evicted.wal_bytes += shrunk;
            }
        }
        if !freed && self.remove_leftover() {
            freed = true;
        }
        self.set_page_budget();
        self.s.disk_full = self.episode.as_ref().map(|e| e.evicted.clone());
        self.publish();
        freed
    }

    /// Lets the main file grow only while the file system keeps room for a
    /// full WAL (and the reserve, when it is not there): past that, our
    /// writes fail with `SQLITE_FULL` before the disk is full, and relief
    /// runs while every checkpoint and DELETE still fits.
    pub(super) fn set_page_budget(&mut self) {
        let Some((_, free)) = crate::store::reserve::fs_space(&self.path) else {
            return;
        };
        let pages = |sql: &str| {
            self.conn
                .query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|v| u64::try_from(v).unwrap_or(0))
        };
        let (Ok(page_size), Ok(count)) = (pages("PRAGMA page_size"), pages("PRAGMA page_count"))
        else {
            return;
        };
        let mut headroom = self.wal_limit + 128 * 1024;
        if !self.reserve.present() {
            headroom += self.reserve.bytes();
        }
        let budget = count + free.saturating_sub(headroom) / page_size.max(512);
        let budget = i64::try_from(budget).unwrap_or(i64::MAX);
        match self
            .conn
            .query_row(&format!("PRAGMA max_page_count = {budget}"), [], |r| {
                r.get::<_, i64>(0)
            }) {
            Ok(set) => tracing::debug!(pages = set, "database page budget"),
            Err(e) => tracing::warn!(error = %e, "cannot set the database page budget"),
        }
    }

    /// During an episode, after a commit: evicts one chunk ahead when the
    /// file has few free pages left, so the next batch does not have to fail
    /// first (a failed commit is a whole batch of work thrown away).
    pub(super) fn evict_ahead(&mut self) {
        if self.episode.is_none() {
            return;
        }
        let free: i64 = self
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap_or(0);
        if free < EVICT_AHEAD_PAGES {
            if let Err(e) = self.evict_round() {
                tracing::debug!(error = %e, "evicting ahead failed");
            }
            self.s.disk_full = self.episode.as_ref().map(|e| e.evicted.clone());
        }
    }

    /// `wal_checkpoint(TRUNCATE)` without waiting: a reader holding an old
    /// snapshot would otherwise hold the writer for the busy timeout (5 s,
    /// twice per relief step) while alerts wait.
    pub(super) fn checkpoint(&self) {
        let _ = self.conn.busy_timeout(Duration::ZERO);
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::debug!(error = %e, "checkpoint failed");
        }
        let _ = self.conn.busy_timeout(self.cfg.busy_timeout.0);
    }

    fn wal_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push("-wal");
        self.path.with_file_name(name)
    }

    fn wal_len(&self) -> u64 {
        std::fs::metadata(self.wal_path()).map_or(0, |m| m.len())
    }

    /// Deletes one chunk, oldest first: history, else telemetry, else
    /// status; frees the pages to the file system. Returns rows deleted.
    fn evict_round(&mut self) -> rusqlite::Result<u64> {
        let mut ob = self.outbox.clone();
        let tx = self.conn.unchecked_transaction()?;
        let history = tx.execute(
            "DELETE FROM history WHERE t IN (SELECT t FROM history ORDER BY t LIMIT ?1)",
            [RETENTION_CHUNK * 4],
        )? as u64;
        let mut outbox = (Class::Telemetry, 0);
        if history == 0 {
            for class in [Class::Telemetry, Class::Status] {
                if outbox.1 == 0 && ob.class(class).rows > 0 {
                    let n = RELIEF_CHUNK.max(ob.class(class).rows / 10);
                    outbox = (class, ob.evict_oldest(&tx, class, n)?);
                }
            }
        }
        ob.save(&tx)?;
        tx.commit()?;
        self.outbox = ob;
        self.s.history_evicted += history;
        if let Some(ep) = &mut self.episode {
            ep.evicted.history += history;
            match outbox.0 {
                Class::Status => ep.evicted.status += outbox.1,
                _ => ep.evicted.telemetry += outbox.1,
            }
        }
        if history + outbox.1 > 0 {
            tracing::warn!(
                history_evicted = history,
                outbox_evicted = outbox.1,
                class = outbox.0.as_str(),
                "disk full: evicted to make room"
            );
        }
        Ok(history + outbox.1)
    }

    /// Removes the oldest quarantined database (`<db>.corrupt-*`).
    fn remove_leftover(&mut self) -> bool {
        let Some(dir) = self.path.parent() else {
            return false;
        };
        let mut prefix = self.path.file_name().unwrap_or_default().to_os_string();
        prefix.push(".corrupt-");
        let prefix = prefix.to_string_lossy().into_owned();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
            })
            .collect();
        found.sort();
        let Some(oldest) = found.first() else {
            return false;
        };
        match std::fs::remove_file(oldest) {
            Ok(()) => {
                tracing::warn!(file = %oldest.display(), "disk full: removed a quarantined database");
                if let Some(ep) = &mut self.episode {
                    ep.evicted.files += 1;
                }
                true
            }
            Err(e) => {
                tracing::warn!(file = %oldest.display(), error = %e, "cannot remove");
                false
            }
        }
    }

    /// The `disk-full` warning of this episode, once, after its first
    /// relief step.
    pub(super) fn raise_disk_alert(&mut self, ops: &mut Vec<Op>) {
        let Some(ep) = &mut self.episode else {
            return;
        };
        if ep.raised {
            return;
        }
        ep.raised = true;
        let message = format!(
            "Gateway disk full: {}; alerts are kept and sent first",
            ep.evicted.describe()
        );
        tracing::warn!(%message, "disk-full alert");
        if let Some(op) = self.disk_alert(AlertState::Raised, message) {
            ops.push(op);
        }
    }

    /// After a successful commit: ends the episode after [`CALM`] without a
    /// failure, clearing the alert with the totals.
    pub(super) fn end_episode_if_calm(&mut self) -> Option<Op> {
        let ep = self.episode.as_ref()?;
        if ep.last_failure.elapsed() < CALM {
            return None;
        }
        let ep = self.episode.take()?;
        self.s.disk_full = None;
        let _ = self.reserve.ensure();
        self.set_page_budget();
        tracing::info!(evicted = ?ep.evicted, "disk-full episode over");
        if !ep.raised {
            return None;
        }
        let message = format!(
            "Gateway disk space recovered; in all {}",
            ep.evicted.describe()
        );
        self.disk_alert(AlertState::Cleared, message)
    }

    fn disk_alert(&mut self, state: AlertState, message: String) -> Option<Op> {
        let now = crate::wall::now();
        let a = Alert::gateway(DISK_FULL_RULE, "gateway", state, message, now)?;
        let id = self.new_id();
        Some(Op::Alert(a, id, now))
    }
}
