//! The durable store (SQLite): device registry, reading history, outbox,
//! other modules' small state (`kv`), persisted counters.
//!
//! Shape: one **writer thread** owns the only read-write connection and
//! applies [`Write`]s with **group commit** (block for the first request,
//! drain up to `batch_max` more without blocking, one transaction, one fsync,
//! then notify). One **reader thread** owns a read-only connection (WAL lets
//! it read while the writer writes). The cheap, cloneable [`Store`] handle
//! talks to both over channels, so async callers never block the runtime.
//!
//! Invariants:
//! - `submit` returning `Ok` means *queued*, not durable; `flush` resolving
//!   means every earlier submit (from any clone) is committed; an
//!   [`AckTo`] queued with `submit_ack` fires after the commit holding the
//!   same producer's earlier submits (cheaper than a flush: no oneshot, no
//!   forced registry write);
//! - a batch that fails to commit (disk full, I/O error) is never dropped:
//!   the writer evicts telemetry to make room and retries the same batch, so
//!   alerts wait in memory (and the bounded queue pushes back) until they
//!   commit; the error state shows in [`StoreStats::error`];
//! - a full disk is survivable: a ballast file (`<db>.reserve`,
//!   `disk_reserve_kb`, at most an eighth of the disk) is released so the WAL
//!   can be checkpointed and history, then telemetry evicted; alerts are never
//!   evicted; an alert that still cannot be written is held in memory and
//!   served by [`Store::outbox_fetch`] to every uplink until it is written
//!   (`held`; the cause of the old stall is written down in `writer::relief`);
//! - while the writer is open it holds the lock that keeps SQLite builds
//!   other than ours (the `sqlite3` shell) off the database: ours keeps the
//!   WAL index in `/dev/shm`, theirs beside the file (`shm`);
//! - dropping the last handle behaves like `close` (queued writes are
//!   committed, threads joined; this blocks the dropping thread for one
//!   commit), so a store is never left with a writer nobody waits for; at
//!   shutdown a commit that keeps failing is given up after 5 tries;
//! - [`Store::close_within`] bounds the stop: a failing batch is abandoned
//!   at once (rolled back whole), and a writer stuck in a commit is left
//!   behind (detached; SQLite's journal makes the file whole at next open);
//! - the outbox rules live in [`outbox`] (read its header).
//!
//! Use (sketch):
//!
//! ```text
//! hub:    store.submit(Write::Reading(r)).await?;  store.submit(Write::Alert(Box::new(a))).await?;
//! uplink: let mut changed = store.outbox_changed();
//!         loop {
//!             for class in Class::ALL {            // alert, status, telemetry: priority order
//!                 let rows = store.outbox_fetch(class, cursor[class], 500).await?;
//!                 publish each row.payload; on broker ack: store.submit(Write::Ack(vec![(class, row.seq)]))
//!                 cursor[class] = last fetched seq (reset to 0 after a reconnect: redeliver unacked)
//!             }
//!             changed.changed().await?;
//!         }
//! shutdown: store.close().await?
//! ```

pub mod ack;
mod alert_body;
mod apply;
pub mod delivery;
mod held;
mod history;
pub mod outbox;
mod payload;
mod reader;
mod reserve;
pub(crate) mod schema;
mod shm;
mod state;
mod stmts;
mod touches;
mod writer;

#[cfg(test)]
mod crash_test;
#[cfg(test)]
mod disk_full_test;
#[cfg(test)]
mod model_test;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_outbox_seq;
#[cfg(test)]
mod tests_wear;
#[cfg(test)]
mod tests_write_path;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::model::{Alert, Class, DeviceId, DeviceInfo, Reading, Time};

pub use ack::{AckSink, AckTo};
pub use delivery::{AlertDelivery, DeliveredStats, Via};
pub use schema::quarantine as quarantine_at;
pub use state::StateWrite;
pub use writer::{DISK_FULL_RULE, Evicted};

pub use crate::config::{StartupCheck, StoreConfig};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file is damaged: refuse to run on it, or [`Store::quarantine`] it.
    #[error("database is corrupt: {detail}")]
    Corrupt { detail: String },
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    TooNew { found: i64, supported: usize },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store setup failed: {0}")]
    Setup(String),
    /// A program with its own SQLite (the `sqlite3` shell…) has the
    /// database open; the two would not share the WAL index (see `shm`).
    #[error(
        "{} is open in another program (the sqlite3 shell?); close it and start carebridge again — \
         carebridge's WAL index is in /dev/shm and another SQLite writing meanwhile would corrupt the database",
        path.display()
    )]
    InUse { path: PathBuf },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The writer or reader thread is gone (closed, or it died).
    #[error("the store is closed")]
    Closed,
    /// Closing gave up on writes that could not be committed in time (a
    /// full disk, a stuck commit); none of them is half-written.
    #[error("the store closed with {pending} uncommitted writes abandoned")]
    Abandoned { pending: usize },
}

/// A change to the database, applied by the writer thread in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// History row + telemetry outbox row + device `last_seen` (and `battery`
    /// when the kind is `Battery`); an unknown device gets a registry row.
    /// The registry part is written at most once a second per device (and
    /// by every flush or close), see `touches`.
    Reading(Reading),
    /// History + registry only (uplink telemetry turned off).
    ReadingNoTelemetry(Reading),
    /// One alert outbox row (boxed, like `Device`: every queued message
    /// is as large as the largest variant, and readings are most of them).
    Alert(Box<Alert>),
    /// Alert outbox rows and, in the same transaction, the rule state that
    /// made them (a crash cannot keep one without the other).
    AlertsWithState {
        alerts: Vec<Alert>,
        state: StateWrite,
    },
    /// A status document; supersedes older unpublished status rows.
    Status(serde_json::Map<String, serde_json::Value>),
    /// Delete acknowledged outbox rows; idempotent.
    Ack(Vec<(Class, u64)>),
    /// As `Ack`, naming the path that delivered them: an alert row still
    /// present is recorded in [`delivery`] as delivered `via` that path
    /// (the first acknowledgement wins; later ones are no-ops).
    Delivered {
        via: Via,
        rows: Vec<(Class, u64)>,
    },
    /// Registry upsert: merges only the `Some` fields (`id` is required).
    Device(Box<DeviceInfo>),
    RemoveDevice(DeviceId),
    /// Put (`Some`) or delete (`None`) a small value for another module.
    Kv(String, Option<Vec<u8>>),
    /// The rule engine's state without alerts; with `lazy` (the periodic
    /// save, whose loss in a power cut costs only progress) it may wait for
    /// `commit_delay` and goes with the next commit, like a reading.
    State(StateWrite),
    /// Factory reset: delete the whole reading history (personal data).
    /// Outbox rows still waiting for the uplink are kept: nothing accepted
    /// for delivery is dropped.
    WipeHistory,
}

/// One outbox row as the uplink sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    pub class: Class,
    pub seq: u64,
    pub id: String,
    /// Enqueue time.
    pub at: Time,
    /// The exact JSON document to publish.
    pub payload: Vec<u8>,
}

/// One class's backlog, as of the last commit.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ClassStats {
    pub rows: u64,
    pub bytes: u64,
    /// Enqueue time of the oldest row still queued.
    pub oldest_at: Option<Time>,
    /// Rows evicted (cap or disk-full relief) since the database was created.
    pub evicted: u64,
    /// The seq the next row will get.
    pub next_seq: u64,
}

/// A snapshot of the store's state, cheap to take.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StoreStats {
    pub alert: ClassStats,
    pub status: ClassStats,
    pub telemetry: ClassStats,
    /// Status rows replaced by a newer status before being acknowledged.
    pub superseded: u64,
    /// Transactions committed since open.
    pub commits: u64,
    /// Writes in the last committed batch.
    pub last_batch: usize,
    /// Microseconds from `BEGIN` to the end of `COMMIT` of the last batch.
    pub last_commit_us: u64,
    /// Expired history rows deleted since open.
    pub history_expired: u64,
    /// History rows deleted early to free space on a full disk.
    pub history_evicted: u64,
    /// Writes refused by SQLite itself (not storage trouble) and dropped.
    pub rejected: u64,
    /// Commits that failed (and were retried) since open.
    pub failed_commits: u64,
    /// Writes waiting in memory for a commit that keeps failing.
    pub pending: usize,
    /// `Some(reason)` while commits fail (disk full, I/O error).
    pub error: Option<String>,
    /// `Some(what was freed so far)` during a disk-full episode (from the
    /// first failed commit on a full disk until commits have succeeded
    /// for a minute).
    pub disk_full: Option<Evicted>,
    /// Alerts held in memory (and served to the uplinks) because the disk
    /// refused them.
    pub held_alerts: usize,
    /// Readings not stored because the disk was full and nothing more
    /// could be freed (since open).
    pub readings_shed: u64,
    /// Commit latency since open (for `/metrics`).
    pub commit_latency: CommitLatency,
    /// Alerts delivered per uplink path (since the database was created).
    pub delivered: DeliveredStats,
}

/// A cumulative histogram of commit latencies (Prometheus buckets).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CommitLatency {
    /// Commits at or under each of [`CommitLatency::BOUNDS_US`].
    pub buckets: [u64; 10],
    pub count: u64,
    pub sum_us: u64,
}

impl CommitLatency {
    /// Upper bounds, in microseconds (0.5 ms … 2 s).
    pub const BOUNDS_US: [u64; 10] = [
        500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 500_000, 2_000_000,
    ];
    pub fn observe(&mut self, us: u64) {
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        for (b, bound) in self.buckets.iter_mut().zip(Self::BOUNDS_US) {
            if us <= bound {
                *b += 1;
            }
        }
    }
}

impl StoreStats {
    pub fn class(&self, c: Class) -> &ClassStats {
        match c {
            Class::Alert => &self.alert,
            Class::Status => &self.status,
            Class::Telemetry => &self.telemetry,
        }
    }
    pub(crate) fn class_mut(&mut self, c: Class) -> &mut ClassStats {
        match c {
            Class::Alert => &mut self.alert,
            Class::Status => &mut self.status,
            Class::Telemetry => &mut self.telemetry,
        }
    }
}

/// Messages to the writer thread.
pub(crate) enum Msg {
    Write(Write),
    /// The clock's trust changed (see [`Store::set_clock_trusted`]).
    Clock(bool),
    Flush(oneshot::Sender<()>),
    /// Fire after the commit holding every earlier write (see [`ack`]).
    Ack(AckTo),
    Close(oneshot::Sender<Result<(), StoreError>>),
}

struct Inner {
    // `Option` only so that `Drop` can close the channel before joining.
    tx: Option<mpsc::Sender<Msg>>,
    reader: Option<reader::ReaderHandle>,
    stats: Arc<Mutex<StoreStats>>,
    changed: watch::Receiver<u64>,
    writer: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
    held: held::Held,
    /// Tells the writer to abandon a failing batch (see `close_within`).
    closing: Arc<AtomicBool>,
    /// What the writer was last told (see [`Store::set_clock_trusted`]).
    clock_untrusted: AtomicBool,
    /// The writer was left behind by `close_within`: never join it.
    detached: AtomicBool,
    /// `[store] commit_delay`.
    commit_delay: Duration,
}

impl Drop for Inner {
    /// The last handle going away behaves like `close` (without the error
    /// report): queued writes are committed, then the threads are joined, so
    /// the file is never left to a writer nobody waits for.
    fn drop(&mut self) {
        self.tx = None;
        self.reader = None;
        if self.detached.load(Ordering::Relaxed) {
            return;
        }
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle
            && h.join().is_err()
        {
            tracing::error!("store writer thread panicked");
        }
    }
}

/// A cheap, cloneable, `Send + Sync` handle on the database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`, checks and migrates
    /// it, and starts the writer and reader threads.
    pub fn open(path: &Path, cfg: &StoreConfig) -> Result<Store, StoreError> {
        Self::open_with_cap(path, cfg, cfg.outbox_max_mb.saturating_mul(1 << 20))
    }

    /// As [`Store::open`] with the outbox cap in bytes (tests, benchmarks).
    pub fn open_with_cap(
        path: &Path,
        cfg: &StoreConfig,
        cap_bytes: u64,
    ) -> Result<Store, StoreError> {
        let opened = writer::Writer::open(path, cfg, cap_bytes)?;
        let (w, stats, changed_rx) = (opened.writer, opened.stats, opened.changed);
        let reader = reader::ReaderHandle::spawn(path, cfg.busy_timeout.0)?;
        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || w.run(rx))
            .map_err(|source| StoreError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Store {
            inner: Arc::new(Inner {
                tx: Some(tx),
                reader: Some(reader),
                stats,
                changed: changed_rx,
                writer: Mutex::new(Some(handle)),
                path: path.to_path_buf(),
                held: opened.held,
                closing: opened.closing,
                clock_untrusted: AtomicBool::new(false),
                detached: AtomicBool::new(false),
                commit_delay: cfg.commit_delay.0,
            }),
        })
    }

    /// Moves a corrupt database (and its `-wal`/`-shm`) aside to
    /// `<name>.corrupt-<millis>`; returns the new path of the main file.
    pub fn quarantine(path: &Path) -> Result<PathBuf, StoreError> {
        schema::quarantine(path, crate::wall::now().as_millis())
    }

    fn sender(&self) -> Result<&mpsc::Sender<Msg>, StoreError> {
        self.inner.tx.as_ref().ok_or(StoreError::Closed)
    }

    /// Queues a write (waits while the queue is full). Not yet durable.
    pub async fn submit(&self, w: Write) -> Result<(), StoreError> {
        self.sender()?
            .send(Msg::Write(w))
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// As [`Store::submit`], for plain threads (panics inside a tokio runtime,
    /// like every `blocking_*` tokio call).
    pub fn submit_blocking(&self, w: Write) -> Result<(), StoreError> {
        self.sender()?
            .blocking_send(Msg::Write(w))
            .map_err(|_| StoreError::Closed)
    }

    /// Queues an acknowledgement, fired on the writer thread once every
    /// write this producer submitted before it is committed (see [`ack`]).
    pub async fn submit_ack(&self, ack: AckTo) -> Result<(), StoreError> {
        self.sender()?
            .send(Msg::Ack(ack))
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Resolves when every write submitted before it is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.sender()?
            .send(Msg::Flush(tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// As [`Store::flush`], for plain threads.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.sender()?
            .blocking_send(Msg::Flush(tx))
            .map_err(|_| StoreError::Closed)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)
    }

    /// Bumped after each commit that added outbox rows.
    /// How long writes nobody waits for may wait for their commit
    /// (`[store] commit_delay`): a periodic save more frequent than this
    /// only adds rows to the same commit.
    pub fn commit_delay(&self) -> Duration {
        self.inner.commit_delay
    }

    pub fn outbox_changed(&self) -> watch::Receiver<u64> {
        self.inner.changed.clone()
    }

    /// A snapshot of backlog, counters and error state.
    pub fn stats(&self) -> StoreStats {
        match self.inner.stats.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Rows queued in one class (as of the last commit).
    pub fn outbox_len(&self, class: Class) -> u64 {
        self.stats().class(class).rows
    }

    /// The highest committed seq of each class, indexed by the class code
    /// (0: none yet). Cheap (no clone of the stats): the uplinks ask it
    /// before each fetch to skip classes with nothing new.
    pub fn outbox_heads(&self) -> [u64; 3] {
        let head = |s: &StoreStats| Class::ALL.map(|c| s.class(c).next_seq.saturating_sub(1));
        match self.inner.stats.lock() {
            Ok(s) => head(&s),
            Err(p) => head(&p.into_inner()),
        }
    }

    /// Whether the gateway's clock is trusted now (the hub says so after
    /// each clock check): telemetry of readings submitted while it is not,
    /// and the gateway's own warnings, carry `"time_trusted": false`.
    ///
    /// The writer is told in queue order, so the change applies exactly to
    /// the writes this producer submits after it (only a change is sent).
    pub async fn set_clock_trusted(&self, trusted: bool) -> Result<(), StoreError> {
        let was_untrusted = self.inner.clock_untrusted.swap(!trusted, Ordering::Relaxed);
        if was_untrusted != trusted {
            return Ok(()); // unchanged
        }
        self.sender()?
            .send(Msg::Clock(trusted))
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Flushes, stops the writer and reader threads and joins them.
    pub async fn close(self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.sender()?
            .send(Msg::Close(tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        let result = rx.await.map_err(|_| StoreError::Closed)?;
        let handle = self.inner.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            tokio::task::spawn_blocking(move || h.join())
                .await
                .map_err(|_| StoreError::Closed)?
                .map_err(|_| StoreError::Setup("store writer thread panicked".into()))?;
        }
        result
    }

    /// As [`Store::close`], but returns within about `limit` whatever the
    /// writer is doing: queued writes are committed if they can be; a batch
    /// the disk refuses is abandoned at once (rolled back whole: devices
    /// re-send what was not acknowledged); a writer stuck inside a commit is
    /// left behind, and the file is made whole by SQLite at the next open.
    pub async fn close_within(self, limit: Duration) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + limit;
        let inner = self.inner.clone();
        let left_behind = |what: &str| {
            inner.closing.store(true, Ordering::Relaxed);
            inner.detached.store(true, Ordering::Relaxed);
            tracing::error!(
                "the store writer did not stop within {limit:?} ({what}); its uncommitted batch is abandoned"
            );
            StoreError::Abandoned {
                pending: inner.stats.lock().map_or(0, |s| s.pending),
            }
        };
        // A writer retrying a failing batch gives up at once from here on;
        // one that commits does so normally until the deadline.
        if self.stats().error.is_some() {
            self.inner.closing.store(true, Ordering::Relaxed);
        }
        // The writer may abandon (and exit) between our raising `closing`
        // and its taking the close message: the reply is then lost, but
        // what happened is known, and it is not "already closed".
        let gone = || {
            if inner.closing.load(Ordering::Relaxed) {
                StoreError::Abandoned {
                    pending: inner.stats.lock().map_or(0, |s| s.pending),
                }
            } else {
                StoreError::Closed
            }
        };
        let (tx, rx) = oneshot::channel();
        let sender = self.sender()?.clone();
        let sent = tokio::time::timeout_at(deadline, sender.send(Msg::Close(tx))).await;
        drop(sender);
        match sent {
            Err(_) => return Err(left_behind("queue full")),
            Ok(Err(_)) => return Err(gone()),
            Ok(Ok(())) => {}
        }
        // Half the time left for a normal finish, then ask for abandon.
        let half = deadline - (deadline - tokio::time::Instant::now()) / 2;
        let mut rx = rx;
        let result = match tokio::time::timeout_at(half, &mut rx).await {
            Ok(r) => r,
            Err(_) => {
                self.inner.closing.store(true, Ordering::Relaxed);
                match tokio::time::timeout_at(deadline, rx).await {
                    Ok(r) => r,
                    Err(_) => return Err(left_behind("commit in progress")),
                }
            }
        };
        let result = result.map_err(|_| gone())?;
        // Polled, not `spawn_blocking`: a blocking join left running would
        // hold up the runtime's own shutdown.
        let handle = self.inner.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            while !h.is_finished() {
                if tokio::time::Instant::now() >= deadline {
                    return Err(left_behind("thread join"));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if h.join().is_err() {
                return Err(StoreError::Setup("store writer thread panicked".into()));
            }
        }
        result
    }

    fn reader(&self) -> Result<&reader::ReaderHandle, StoreError> {
        self.inner.reader.as_ref().ok_or(StoreError::Closed)
    }
}
