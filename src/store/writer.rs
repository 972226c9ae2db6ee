//! The writer thread: the only read-write connection, group commit, history
//! retention, and what to do when a commit fails.
//!
//! Loop: block for the first message (or until retention, or writing the
//! gathered `last_seen` facts, is due); if it found only writes nobody
//! waits for (`is_deferrable`: readings without an ack waiter, telemetry
//! acknowledgements, lazy kv), wait for more up to `commit_delay` (commit
//! grouping, on by default: SD-card wear), anything else ending the wait at
//! once; else, if it found only a few readings (and their acks, or the
//! uplinks' acknowledgements of delivered rows) while busy (last commit
//! < 2 ms ago), poll for more for at most 1 ms (`gather`; anything else
//! ends the wait; both in `grouping`; expired
//! history is deleted between commits by `retention`); a later write of the same kv key
//! replaces an earlier one in the batch (`supersede_kv`); drain up to
//! `batch_max` more without blocking, apply them all in ONE transaction
//! (SQL in `apply`), commit (one fsync with `synchronous=FULL`), then answer
//! flushes, fire the batch's acks ([`super::ack`]) and bump
//! `outbox_changed`. Registry `last_seen`/`battery` from
//! readings are written at most once a second per device (`touches`).
//!
//! Invariants:
//! - the in-memory outbox mirror is replaced only after `COMMIT` succeeded, so
//!   a rolled-back batch leaves no trace (seqs included);
//! - a batch that fails for storage reasons (disk full, I/O error, lock
//!   timeout) is kept and retried after relieving pressure (`relief`: the
//!   reserve, history, telemetry, status, the WAL, quarantined files; never
//!   alerts); no new messages are taken meanwhile, so the bounded queue
//!   pushes back on producers — until nothing more can be freed: then
//!   readings are shed (counted) and everything else is taken and kept, so
//!   a panic behind a stream of readings still reaches the rules;
//! - while a batch fails, its alerts and newest status are handed to the
//!   uplinks in memory (`held`) as the rows they will become;
//! - shutdown: once [`super::Store::close_within`] raised the `closing`
//!   flag, a failing batch is abandoned at once (rolled back whole, never
//!   half-written) and the backoff between retries ends early;
//! - a batch that SQLite refuses for any other reason is retried one write at
//!   a time and only the refused writes are dropped (counted in `rejected`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ffi::ErrorCode};
use tokio::sync::{mpsc, oneshot, watch};

mod failing;
mod grouping;
mod relief;
mod retention;

pub use relief::{DISK_FULL_RULE, Evicted};

use super::apply;
use super::held::Held;
use super::outbox::{self, Outbox};
use super::reserve::Reserve;
use super::touches::Touches;
use super::{Msg, StoreConfig, StoreError, StoreStats, Write, delivery, schema};
use crate::model::{Alert, Class, DeviceId, DeviceInfo, Reading, Time};

/// A write with the identity it got when the writer first took it; retries
/// reuse it so an outbox id never changes once assigned.
#[derive(Debug)]
pub(super) enum Op {
    /// The reading, and its telemetry row's id, time and whether the
    /// clock was trusted when it arrived (`None`: no telemetry).
    Reading(Reading, Option<(String, Time, bool)>),
    Alert(Alert, String, Time),
    Status(serde_json::Map<String, serde_json::Value>, String, Time),
    Ack(Vec<(Class, u64)>),
    Delivered(delivery::Via, Vec<(Class, u64)>, Time),
    Device(DeviceInfo),
    RemoveDevice(DeviceId),
    Kv(String, Option<Vec<u8>>),
    State(super::state::StateWrite),
    WipeHistory,
}

const RELIEF_CHUNK: u64 = 1000;
/// Most writes kept in memory while readings are shed on a full disk.
const HOLD_MAX: usize = 100_000;

pub(crate) struct Writer {
    conn: Connection,
    path: PathBuf,
    cfg: StoreConfig,
    outbox: Outbox,
    ids: crate::ids::IdGen,
    stats: Arc<Mutex<StoreStats>>,
    changed: watch::Sender<u64>,
    s: StoreStats,
    next_retention: Instant,
    retention_more: bool,
    reserve: Reserve,
    /// `last_seen`/`battery` gathered from committed (or being committed)
    /// readings, not yet written (see `touches`).
    touches: Touches,
    /// When the last commit ended: gathering only pays while busy.
    last_commit: Instant,
    /// The current disk-full episode (see `relief`).
    episode: Option<relief::Episode>,
    /// Nothing more can be freed: readings are dropped, not queued.
    shedding: bool,
    /// A reading was shed since the last ack was taken (that ack must
    /// not fire).
    shed_since_ack: bool,
    /// Alerts and status of a failing batch, for the uplinks.
    held: Held,
    /// Set by `close_within`: abandon a failing batch, stop retrying.
    closing: Arc<AtomicBool>,
    /// The gateway's clock is not trusted (the hub's `Msg::Clock`, in queue
    /// order with its writes): telemetry of readings submitted meanwhile,
    /// and the gateway's own warnings, say `"time_trusted": false`.
    clock_untrusted: bool,
    /// Last WAL checkpoint forced while the reserve is missing.
    last_checkpoint: Instant,
    /// The WAL size limit (`journal_size_limit`), bytes.
    wal_limit: u64,
    /// Writing the gathered registry facts failed: not before this.
    touches_retry: Instant,
    /// At least the largest `history.t` (None: not known); lets the live
    /// stream's readings take their key without a b-tree seek (see
    /// `history`). Only the writer inserts into `history`.
    newest_history: Option<i64>,
    /// Keeps other SQLite builds off the database (see `shm`); declared
    /// last, so it is released after `conn` is closed.
    _shm_guard: Option<super::shm::Guard>,
}

pub(super) struct Opened {
    pub writer: Writer,
    pub stats: Arc<Mutex<StoreStats>>,
    pub changed: watch::Receiver<u64>,
    pub held: Held,
    pub closing: Arc<AtomicBool>,
}

impl Writer {
    pub fn open(path: &Path, cfg: &StoreConfig, cap_bytes: u64) -> Result<Opened, StoreError> {
        // Before SQLite opens the file: refuses if another SQLite has it.
        let shm_guard = super::shm::Guard::take(path)?;
        let conn = schema::open_writer(path, cfg.busy_timeout.0, cfg.startup_check)?;
        // The reserve fits the disk (see `reserve`); keep the WAL within
        // half of it, so a checkpoint always fits in the space it gives back
        // (in pages of this file's size, see `schema::PAGE_SIZE`).
        let reserve = Reserve::new(path, cfg.disk_reserve_kb.saturating_mul(1024));
        let page: i64 = conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .map_err(|e| schema::classify(path, e))?;
        let page = u64::try_from(page).unwrap_or(4096).max(512);
        let wal_pages = i64::try_from((reserve.bytes() / 2 / page).max(16)).unwrap_or(1000);
        conn.pragma_update(None, "wal_autocheckpoint", wal_pages)
            .and_then(|()| conn.pragma_update(None, "journal_size_limit", wal_pages * page as i64))
            // The same page cache in bytes whatever the page size (4 MiB:
            // a burst's b-tree pages stay in memory instead of being read
            // back from the OS cache).
            .and_then(|()| conn.pragma_update(None, "cache_size", -4096))
            .map_err(|e| schema::classify(path, e))?;
        let outbox = Outbox::load(&conn, cap_bytes).map_err(|e| schema::classify(path, e))?;
        let stats = Arc::new(Mutex::new(StoreStats::default()));
        let (changed, changed_rx) = watch::channel(0u64);
        let newest_history = super::history::newest_key(&conn);
        let mut w = Writer {
            conn,
            path: path.to_path_buf(),
            cfg: cfg.clone(),
            outbox,
            ids: crate::ids::IdGen::default(),
            stats: stats.clone(),
            changed,
            s: StoreStats::default(),
            // First retention pass soon after start, not at once: start-up
            // should serve quickly.
            next_retention: Instant::now() + cfg.retention_interval.0.min(Duration::from_secs(5)),
            retention_more: false,
            reserve,
            touches: Touches::every(Touches::interval(cfg.commit_delay.0)),
            last_commit: Instant::now(),
            episode: None,
            shedding: false,
            shed_since_ack: false,
            held: Held::default(),
            closing: Arc::default(),
            clock_untrusted: false,
            last_checkpoint: Instant::now(),
            wal_limit: u64::try_from(wal_pages).unwrap_or(0) * page,
            touches_retry: Instant::now(),
            newest_history,
            _shm_guard: shm_guard,
        };
        let _ = w.reserve.ensure();
        w.set_page_budget();
        w.s.rejected = outbox::get_counter(&w.conn, "rejected").unwrap_or(0);
        w.refresh_delivered();
        w.publish();
        Ok(Opened {
            held: w.held.clone(),
            closing: w.closing.clone(),
            writer: w,
            stats,
            changed: changed_rx,
        })
    }

    /// A fresh UUID v4 (see [`crate::ids`]).
    fn new_id(&mut self) -> String {
        self.ids.next_id()
    }

    fn prepare_alert(&mut self, mut a: Alert, now: Time) -> Op {
        // The gateway's own warnings (disk full, coordinator down,
        // readings shed…) come straight here, not through the hub:
        // they are as trusted as the clock when they arrive.
        if self.clock_untrusted {
            a.time_trusted = false;
        }
        // The hub stamps the UUID (the UI follows it to its delivery).
        let id = a.uid.clone().unwrap_or_else(|| self.new_id());
        Op::Alert(a, id, now)
    }

    fn prepare(&mut self, w: Write) -> Op {
        let now = crate::wall::now();
        match w {
            Write::Reading(r) => {
                let id = self.new_id();
                let trusted = !self.clock_untrusted;
                Op::Reading(r, Some((id, now, trusted)))
            }
            Write::ReadingNoTelemetry(r) => Op::Reading(r, None),
            Write::Alert(a) => self.prepare_alert(*a, now),
            Write::Status(m) => Op::Status(m, self.new_id(), now),
            Write::Ack(v) => Op::Ack(v),
            Write::Delivered { via, rows } => Op::Delivered(via, rows, now),
            Write::Device(d) => Op::Device(*d),
            Write::RemoveDevice(d) => Op::RemoveDevice(d),
            Write::Kv(k, v) => Op::Kv(k, v),
            Write::State(st) => Op::State(st),
            // Split in `take` (its ops must share a batch); kept whole here.
            Write::AlertsWithState { state, .. } => Op::State(state),
            Write::WipeHistory => Op::WipeHistory,
        }
    }

    /// The thread body. Returns when closed or when every handle is gone.
    pub fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "store writer cannot build its timer runtime");
                return;
            }
        };
        let batch_max = self.cfg.batch_max.max(1);
        let mut msgs: Vec<Msg> = Vec::with_capacity(batch_max);
        let mut ops: Vec<Op> = Vec::with_capacity(batch_max);
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        let mut acks: Vec<super::AckTo> = Vec::new();
        let mut close: Option<oneshot::Sender<Result<(), StoreError>>> = None;
        let mut disconnected = false;
        let mut failures: u32 = 0;
        loop {
            if ops.is_empty() && flushes.is_empty() && acks.is_empty() && close.is_none() {
                if disconnected {
                    self.outbox.exact = true;
                    self.write_touches();
                    return;
                }
                // Group commit: block for the first message (or until
                // retention is due); `recv_many` also takes whatever else is
                // already queued, releasing the queue slots in bulk (one
                // wake-up of blocked producers, not one per message).
                let wait = self.retention_wait().min(self.touches_wait());
                let got = rt.block_on(async {
                    tokio::time::timeout(wait, rx.recv_many(&mut msgs, batch_max)).await
                });
                match got {
                    Ok(0) => disconnected = true,
                    Ok(_) => {}
                    Err(_) => {
                        if self.touches.is_due(Instant::now())
                            && Instant::now() >= self.touches_retry
                        {
                            self.write_touches();
                        }
                        if self.retention_wait().is_zero() {
                            self.retention();
                        }
                        continue;
                    }
                }
                self.gather(&rt, &mut rx, &mut msgs, batch_max);
            }
            // Drain more without blocking (`is_empty` is false, so
            // `recv_many` returns at once); while a batch is failing, take
            // nothing new so the bounded queue pushes back on producers,
            // unless readings are being shed (then take everything).
            let cap = match (failures, self.shedding) {
                (0, _) => batch_max,
                (_, true) => HOLD_MAX,
                _ => 0,
            };
            while ops.len() + msgs.len() < cap && !rx.is_empty() {
                let room = cap - ops.len() - msgs.len();
                rt.block_on(rx.recv_many(&mut msgs, room));
            }
            for m in msgs.drain(..) {
                if let Msg::Ack(a) = m {
                    // The hub submits a reading, its alerts, then its ack:
                    // an ack right after a shed reading must never fire
                    // (acknowledged means durable); the device re-sends.
                    if std::mem::take(&mut self.shed_since_ack) {
                        drop(a);
                    } else {
                        acks.push(a);
                    }
                } else {
                    self.take(m, &mut ops, &mut flushes, &mut close, failures > 0);
                }
            }
            if self.closing.load(Ordering::Relaxed) && failures > 0 {
                self.abandon(&ops, close.take());
                return;
            }
            // Whoever waits for a flush or close must see `last_seen` too.
            // A batch that waited out `commit_delay` writes them only when
            // they are due (`Touches::interval`): not one more page a commit.
            let force = !flushes.is_empty() || close.is_some() || disconnected;
            // The last commit writes the outbox's exact sizes (a restart
            // after a crash recounts them instead: `Outbox::save`).
            self.outbox.exact = close.is_some() || disconnected;
            match self.commit(&ops, force) {
                Ok(()) => {
                    failures = 0;
                    self.recovered();
                    ops.clear();
                    // Acks first: whoever waited for a flush submitted after
                    // them may rely on them having fired.
                    for a in acks.drain(..) {
                        a.fire();
                    }
                    for f in flushes.drain(..) {
                        let _ = f.send(());
                    }
                    if let Some(c) = close.take() {
                        let _ = c.send(Ok(()));
                        return;
                    }
                    ops.extend(self.end_episode_if_calm());
                    self.evict_ahead();
                    if Instant::now() >= self.next_retention {
                        self.retention();
                    }
                    self.keep_wal_small();
                }
                Err(e) => {
                    failures += 1;
                    if !is_storage_error(&e) {
                        self.commit_one_by_one(&mut ops);
                        continue;
                    }
                    self.note_failure(&e, ops.len());
                    let freed = self.relieve(&e);
                    if relief::is_disk_full(&e) {
                        self.raise_disk_alert(&mut ops);
                        if !freed && !self.shedding {
                            self.shedding = true;
                            tracing::error!(
                                "disk full and nothing left to free: new readings are not stored; \
                                 alerts are held in memory and sent upstream"
                            );
                        }
                        if self.shedding {
                            self.shed(&mut ops);
                            // Some of the batch's readings are gone: none of
                            // its acks may fire (devices re-send; a duplicate
                            // beats an acknowledged loss).
                            acks.clear();
                        }
                    }
                    self.hold(&ops);
                    let stopping = close.is_some() || disconnected;
                    if self.closing.load(Ordering::Relaxed) || (stopping && failures >= 5) {
                        self.abandon(&ops, close.take());
                        return;
                    }
                    if freed && relief::is_disk_full(&e) {
                        continue; // room was made: retry at once
                    }
                    let backoff = Duration::from_millis(25u64 << failures.min(5));
                    self.wait(&rt, backoff, &mut rx, &mut ops, &mut flushes, &mut close);
                }
            }
        }
    }

    fn take(
        &mut self,
        m: Msg,
        ops: &mut Vec<Op>,
        flushes: &mut Vec<oneshot::Sender<()>>,
        close: &mut Option<oneshot::Sender<Result<(), StoreError>>>,
        failing: bool,
    ) {
        match m {
            Msg::Write(Write::Reading(_) | Write::ReadingNoTelemetry(_)) if self.shedding => {
                self.count_shed(1);
                self.shed_since_ack = true;
            }
            // All its ops land in this batch: one transaction.
            Msg::Write(Write::AlertsWithState { alerts, state }) => {
                let now = crate::wall::now();
                for a in alerts {
                    let op = self.prepare_alert(a, now);
                    ops.push(op);
                }
                super::state::push_state(ops, state);
            }
            Msg::Write(Write::Kv(key, value)) => {
                supersede_kv(ops, &key);
                ops.push(Op::Kv(key, value));
            }
            Msg::Write(Write::State(state)) => super::state::push_state(ops, state),
            Msg::Write(w) => {
                let op = self.prepare(w);
                // Only the newest status matters (the outbox supersedes the
                // rest anyway): a failing batch keeps one.
                if failing && matches!(op, Op::Status(..)) {
                    ops.retain(|o| !matches!(o, Op::Status(..)));
                }
                ops.push(op);
            }
            Msg::Flush(f) => flushes.push(f),
            Msg::Clock(trusted) => self.clock_untrusted = !trusted,
            Msg::Close(c) => *close = Some(c),
            // Taken by `run` before it calls here.
            Msg::Ack(a) => drop(a),
        }
    }

    /// Applies `ops` in one transaction, with the gathered registry facts
    /// when they are due or `force`d; on success adopts the new outbox
    /// mirror, publishes stats and bumps `outbox_changed` if rows were added.
    fn commit(&mut self, ops: &[Op], force: bool) -> rusqlite::Result<()> {
        let touches = force && !self.touches.is_empty();
        if ops.is_empty() && !touches && !self.outbox.needs_save() {
            return Ok(());
        }
        let start = Instant::now();
        let mut ob = self.outbox.clone();
        // A registry write in the batch writes (and forgets) the gathered
        // facts first; if the batch then rolls back they must come back.
        let backup = ops
            .iter()
            .any(|o| matches!(o, Op::Device(_) | Op::RemoveDevice(_)))
            .then(|| self.touches.clone());
        let tx = self.conn.unchecked_transaction()?;
        let mut newest = self.newest_history;
        let done = apply::apply(&tx, &mut ob, ops, &mut self.touches, &mut newest, start).and_then(
            |added| {
                let write = force || self.touches.is_due(start);
                if write {
                    self.touches.write(&tx)?;
                }
                ob.save(&tx)?;
                tx.commit()?;
                Ok((added, write))
            },
        );
        let added = match done {
            Ok((added, wrote)) => {
                if wrote {
                    self.touches.clear();
                }
                added
            }
            Err(e) => {
                if let Some(b) = backup {
                    self.touches = b;
                }
                return Err(e);
            }
        };
        self.outbox = ob;
        self.newest_history = newest;
        self.s.commits += 1;
        self.s.last_batch = ops.len();
        self.s.last_commit_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_commit = Instant::now();
        self.s.commit_latency.observe(self.s.last_commit_us);
        if self.s.error.take().is_some() {
            tracing::info!("store commits succeed again");
        }
        self.s.pending = 0;
        if ops.iter().any(|o| matches!(o, Op::Delivered(..))) {
            self.refresh_delivered();
        }
        self.publish();
        if added {
            self.changed.send_modify(|v| *v += 1);
        }
        Ok(())
    }

    /// After a non-storage failure: isolate and drop only the refused writes.
    fn commit_one_by_one(&mut self, ops: &mut Vec<Op>) {
        let mut rest = std::mem::take(ops).into_iter();
        while let Some(op) = rest.next() {
            let one = [op];
            match self.commit(&one, false) {
                Ok(()) => {}
                Err(e) if is_storage_error(&e) => {
                    // Storage trouble after all: keep this and the rest.
                    let [op] = one;
                    ops.push(op);
                    ops.extend(rest);
                    return;
                }
                Err(e) => {
                    self.s.rejected += 1;
                    tracing::error!(error = %e, op = ?one[0], "store refused a write; dropped");
                    let _ = outbox::set_counter(&self.conn, "rejected", self.s.rejected);
                    self.publish();
                }
            }
        }
    }

    fn note_failure(&mut self, e: &rusqlite::Error, pending: usize) {
        let msg = format!("commit failed: {e}");
        if self.s.error.as_deref() != Some(msg.as_str()) {
            tracing::error!(db = %self.path.display(), error = %e, pending, "store commit failed; retrying");
        }
        self.s.error = Some(msg);
        self.s.failed_commits += 1;
        self.s.pending = pending;
        self.publish();
    }

    /// Writes the gathered registry facts now (idle writer, or shutting
    /// down); a failure keeps them for the next commit.
    fn write_touches(&mut self) {
        if let Err(e) = self.commit(&[], true) {
            tracing::warn!(error = %e, "writing device last_seen failed; will retry");
            self.touches_retry = Instant::now() + Duration::from_secs(1);
        }
    }

    /// Delivery counters for [`StoreStats::delivered`], from the committed
    /// outbox mirror (no query: see `delivery::Tally`).
    fn refresh_delivered(&mut self) {
        self.s.delivered = self.outbox.delivery.stats.clone();
    }

    fn publish(&mut self) {
        for c in Class::ALL {
            let st = self.outbox.class(c);
            let cs = self.s.class_mut(c);
            cs.rows = st.rows;
            cs.bytes = st.bytes;
            cs.oldest_at = st.oldest.map(|(_, at)| at);
            cs.evicted = st.evicted;
            cs.next_seq = st.next_seq;
        }
        self.s.superseded = self.outbox.superseded;
        match self.stats.lock() {
            Ok(mut g) => *g = self.s.clone(),
            Err(p) => *p.into_inner() = self.s.clone(),
        }
    }
}

/// A later write of `key` in the same transaction makes an earlier one
/// pointless: it is dropped (the rule state, a snapshot that grows with the
/// number of devices, is written once per batch, not once per alert turn).
fn supersede_kv(ops: &mut Vec<Op>, key: &str) {
    if let Some(i) = ops
        .iter()
        .rposition(|o| matches!(o, Op::Kv(k, _) if k == key))
    {
        ops.remove(i);
    }
}

fn is_storage_error(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::CannotOpen
                | ErrorCode::OutOfMemory
        )
    )
}
