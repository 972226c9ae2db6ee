//! # The outbox: carebridge's durable, prioritised upstream queue
//!
//! Everything the gateway sends upstream (alerts, status heartbeats,
//! telemetry) is first written here, inside the same SQLite transaction as the
//! fact that caused it. The uplinks read from here and delete only what the
//! far end acknowledged. The design is modelled on Vector's `disk_v2` buffer
//! (records with a stable identity, writer/reader split, acknowledgement-driven
//! deletion), specialised to three priority classes.
//!
//! ## Schema
//!
//! ```sql
//! CREATE TABLE outbox (
//!     class INTEGER NOT NULL,   -- model::Class code: 0 alert, 1 status, 2 telemetry
//!     seq INTEGER NOT NULL,     -- per-class sequence number, from 1
//!     id TEXT NOT NULL,         -- UUID v4, the receiver's de-duplication key
//!     at INTEGER NOT NULL,      -- enqueue time, ms since the epoch
//!     payload BLOB NOT NULL,    -- the exact JSON document to publish
//!     PRIMARY KEY (class, seq)
//! ) WITHOUT ROWID;
//! CREATE TABLE seq (class INTEGER PRIMARY KEY, next INTEGER);
//!     -- next seq per class as kept before 2026-12 (read, no longer written)
//! CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER);
//!     -- next.<class> (the next seq), evicted.<class>, rows.<class>,
//!     -- bytes.<class>, superseded, rejected: one small table, so a
//!     -- batch's bookkeeping is one page in the WAL
//! ```
//!
//! ## Invariants
//!
//! 1. **A row is committed before anything is published.** The writer thread
//!    bumps `Store::outbox_changed` only after `COMMIT` returned, and the
//!    uplinks read rows only through `Store::outbox_fetch`.
//! 2. **A row is deleted only after the uplink acknowledged it** (`Write::Ack`,
//!    or `Write::Delivered`, which also records the path that delivered an
//!    alert first: see `store::delivery`),
//!    or by the documented exceptions: cap eviction (3), status superseding
//!    (5), and disk-full relief (which evicts telemetry only). Ack is
//!    idempotent: acknowledging an absent row is a no-op.
//! 3. **Priorities**: alert (0) > status (1) > telemetry (2). The size cap
//!    (`outbox_max_mb`, counted as payload bytes, tracked in memory; the
//!    `rows.*`/`bytes.*` counters are written at a clean close and deleted by
//!    the first commit that changes the sizes, so after a crash they are
//!    absent and recounted at open: exact either way) is
//!    enforced after every single enqueue: the oldest
//!    telemetry goes first, then the oldest status. **An alert is never
//!    evicted**: when only alerts remain the outbox grows past its cap and a
//!    warning is logged. Every eviction is counted per class and the counters
//!    are persisted in the same transaction.
//! 4. **Identity**: `id` is assigned once, when the writer first takes the
//!    write from its queue, and kept across commit retries, restarts and
//!    redelivery. `seq` is assigned inside the committing transaction and
//!    increases by one per row per class, so it never goes back after a
//!    restart: at open the next seq is `max(next.<class>, max(seq) + 1)`,
//!    and `next.<class>` is written when the class's newest row is deleted
//!    (while that row is in the table it proves the next seq itself). Gaps appear only where rows were evicted or
//!    superseded (both counted), never because a commit failed (a failed
//!    transaction rolls back its seq allocation too).
//! 5. **Status supersedes status**: only the newest status document matters, so
//!    enqueueing one deletes every older status row (counted as `superseded`,
//!    not as eviction).
//! 6. Enforcement is per write, not per batch, so the outcome of a sequence of
//!    writes does not depend on how group commit happened to batch them.
//!
//! ## Cost per row
//!
//! A batch's bookkeeping is written once per transaction and only where it
//! changed (`Outbox::save` compares with what it last wrote: an ack-only
//! batch leaves `next.<class>` alone, a registry-only batch writes nothing here);
//! the oldest row of a class is looked up again only after rows of it were
//! deleted; acknowledgements delete contiguous runs of seqs with one
//! statement each (`Outbox::ack_rows`).
//!
//! ## Payloads
//!
//! Built once at enqueue, keys in this order:
//! - alert: `{"id","seq","rule","severity","state","device","room","at","message"[,"kind"][,"value"][,"time_trusted":false][,"instance","attempt"]}`
//!   (`room` may be `null`; `kind`/`value` omitted when absent), stored
//!   as a compact binary body since schema v11 and made into the document
//!   when read (`alert_body`);
//! - telemetry: `{"id","seq","device","kind","value","at"[,"time_trusted":false]}`,
//!   stored without `"id"` and `"seq"` (the row's columns) since schema v8
//!   and made whole again when read (`payload::telemetry_doc`), so a
//!   home's grouped commit fits in one outbox page;
//! - status: `{"id","seq", …the caller's map}` (caller keys `id`/`seq` are dropped).

use rusqlite::{Connection, params};

use super::delivery::{Tally, Via};
use super::stmts::{
    ACKED_SQL, ACKED_SUM_SQL, DELETE_SQL, OLDEST_SQL, Stmts, per_class, update_or_insert,
};
use crate::model::{Class, Time};

// The documents themselves (see "Payloads" above) are built in `payload`.
pub use super::alert_body::{
    Body, BodyError, alert_body, alert_doc, decode as decode_alert_body,
    encode as encode_alert_body,
};
pub use super::payload::{alert_payload, status_payload, telemetry_doc, telemetry_payload};

/// Bookkeeping of one class, mirrored from the table.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ClassState {
    pub next_seq: u64,
    pub rows: u64,
    pub bytes: u64,
    pub evicted: u64,
    /// `(seq, at)` of the oldest row, when the class is not empty.
    pub oldest: Option<(u64, Time)>,
}

/// The in-memory mirror of the outbox that the writer thread owns. A batch
/// works on a clone and replaces the original only after `COMMIT`.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    pub classes: [ClassState; 3],
    pub superseded: u64,
    pub cap_bytes: u64,
    /// Set while only alerts keep the outbox over its cap (warned once).
    pub alerts_over_cap: bool,
    /// Alert deliveries per path and the latest one (see `delivery`).
    pub delivery: Tally,
    /// What the last [`Outbox::save`] wrote (`None`: nothing yet).
    saved: Option<Saved>,
    /// Classes whose rows were deleted since the last save: their oldest
    /// row must be looked up again.
    stale_oldest: [bool; 3],
    /// The next seq a restart computes for each class when it is empty
    /// (`next.<class>` on disk, at least 1; see [`Outbox::save`]).
    disk_next: [u64; 3],
    /// Classes whose newest row (seq `next_seq - 1`) was deleted since the
    /// last save: only then must `next.<class>` be written.
    newest_gone: [bool; 3],
    /// `rows.*`/`bytes.*` on disk, when they are there and exact.
    disk_sizes: Option<[(u64, u64); 3]>,
    /// The next save writes exact `rows.*`/`bytes.*` (a clean close).
    pub exact: bool,
    /// Alerts are copied into the ARC's queue (`kv['arc.capture']` exists;
    /// see `uplink::arc::queue::CAPTURE_SQL`). Part of the clone the writer
    /// commits, so a rolled-back kv write leaves it as it was.
    pub arc_capture: bool,
}

/// The persisted part of the mirror, to write only what changed.
#[derive(Clone, Debug, PartialEq)]
struct Saved {
    evicted: [u64; 3],
    superseded: u64,
}

fn idx(class: Class) -> usize {
    usize::from(class as u8)
}

/// A seq or count as SQLite's integer (saturating; never reached).
pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn counter_name(class: Class) -> &'static str {
    match class {
        Class::Alert => "evicted.alert",
        Class::Status => "evicted.status",
        Class::Telemetry => "evicted.telemetry",
    }
}

/// The persisted next seq of a class.
fn next_name(class: Class) -> &'static str {
    match class {
        Class::Alert => "next.alert",
        Class::Status => "next.status",
        Class::Telemetry => "next.telemetry",
    }
}

/// The persisted `rows.<class>` and `bytes.<class>` counter names.
fn size_names(class: Class) -> (&'static str, &'static str) {
    match class {
        Class::Alert => ("rows.alert", "bytes.alert"),
        Class::Status => ("rows.status", "bytes.status"),
        Class::Telemetry => ("rows.telemetry", "bytes.telemetry"),
    }
}

impl Outbox {
    /// Rebuilds the mirror from the tables (row counts and bytes are recomputed).
    pub fn load(conn: &Connection, cap_bytes: u64) -> rusqlite::Result<Outbox> {
        let mut ob = Outbox {
            classes: Default::default(),
            superseded: 0,
            cap_bytes,
            alerts_over_cap: false,
            delivery: Tally::load(conn)?,
            saved: None,
            stale_oldest: [true; 3],
            disk_next: [0; 3],
            newest_gone: [false; 3],
            disk_sizes: None,
            exact: false,
            arc_capture: crate::uplink::arc::queue::capturing(conn)?,
        };
        let mut sizes = [(0, 0); 3];
        let mut all_sizes = true;
        for c in Class::ALL {
            let st = &mut ob.classes[idx(c)];
            let code = i64::from(c as u8);
            // Row and byte totals are persisted in the same transaction as
            // the rows, so they are exact; scanning 500k payloads at every
            // start would cost about a second. Recount only when absent.
            let (rows, bytes) = match (
                counter_opt(conn, &format!("rows.{c}"))?,
                counter_opt(conn, &format!("bytes.{c}"))?,
            ) {
                (Some(r), Some(b)) => (r, b),
                _ => {
                    all_sizes = false;
                    conn.query_row(
                        "SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox WHERE class = ?1",
                        [code],
                        |r| Ok((to_u64(r.get(0)?), to_u64(r.get(1)?))),
                    )?
                }
            };
            sizes[idx(c)] = (rows, bytes);
            let max: Option<i64> = conn.query_row(
                "SELECT max(seq) FROM outbox WHERE class = ?1",
                [code],
                |r| r.get(0),
            )?;
            // Where databases before 2026-12 kept it.
            let old_next: Option<i64> = conn
                .query_row("SELECT next FROM seq WHERE class = ?1", [code], |r| {
                    r.get(0)
                })
                .map(Some)
                .or_else(none_if_no_rows)?;
            let next = counter(conn, next_name(c))?.max(to_u64(old_next.unwrap_or(1)));
            st.rows = rows;
            st.bytes = bytes;
            // Never reuse a seq, even if the seq counter were lost.
            st.next_seq = next.max(to_u64(max.unwrap_or(0)) + 1);
            st.evicted = counter(conn, counter_name(c))?;
            // What a restart computes for this class once it is empty.
            ob.disk_next[idx(c)] = next;
        }
        ob.disk_sizes = all_sizes.then_some(sizes);
        ob.superseded = counter(conn, "superseded")?;
        ob.refresh_oldest(conn)?;
        Ok(ob)
    }

    pub fn class(&self, c: Class) -> &ClassState {
        &self.classes[idx(c)]
    }

    pub fn total_bytes(&self) -> u64 {
        self.classes.iter().map(|c| c.bytes).sum()
    }

    /// Inserts one row with the next seq of its class, then applies
    /// superseding (status) and the size cap. Returns the seq.
    pub fn enqueue(
        &mut self,
        st: &mut Stmts<'_>,
        class: Class,
        id: &str,
        at: Time,
        build: impl FnOnce(u64) -> Result<Vec<u8>, serde_json::Error>,
    ) -> rusqlite::Result<u64> {
        let conn = st.conn();
        let seq = self.classes[idx(class)].next_seq;
        let payload =
            build(seq).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        st.get(INSERT_SQL)?.execute(params![
            i64::from(class as u8),
            to_i64(seq),
            id,
            at.as_millis(),
            payload
        ])?;
        if class == Class::Alert && self.arc_capture {
            // The ARC's queue keeps the whole document (its task, and
            // older releases after a rollback, read it as stored).
            let doc = super::alert_body::alert_doc(id, seq, at, payload.clone());
            st.get(crate::uplink::arc::queue::CAPTURE_SQL)?
                .execute(params![to_i64(seq), id, at.as_millis(), doc])?;
        }
        let st = &mut self.classes[idx(class)];
        st.next_seq = seq + 1;
        // The newest row exists again: it proves the next seq at open.
        self.newest_gone[idx(class)] = false;
        st.rows += 1;
        st.bytes += payload.len() as u64;
        if st.oldest.is_none() {
            st.oldest = Some((seq, at));
        }
        if class == Class::Status {
            let mut stmt = conn.prepare_cached(
                "DELETE FROM outbox WHERE class = ?1 AND seq < ?2 RETURNING length(payload)",
            )?;
            let gone = stmt
                .query_map(params![i64::from(Class::Status as u8), to_i64(seq)], |r| {
                    r.get::<_, i64>(0)
                })?;
            for len in gone {
                let len = to_u64(len?);
                let st = &mut self.classes[idx(Class::Status)];
                st.rows -= 1;
                st.bytes = st.bytes.saturating_sub(len);
                self.superseded += 1;
                self.stale_oldest[idx(Class::Status)] = true;
            }
        }
        self.enforce_cap(conn)?;
        Ok(seq)
    }

    /// Evicts oldest telemetry, then oldest status, until under the cap.
    fn enforce_cap(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if self.total_bytes() <= self.cap_bytes {
            self.alerts_over_cap = false;
            return Ok(());
        }
        for class in [Class::Telemetry, Class::Status] {
            while self.total_bytes() > self.cap_bytes && self.class(class).rows > 0 {
                if self.evict_oldest(conn, class, 1)? == 0 {
                    break;
                }
            }
        }
        if self.total_bytes() > self.cap_bytes && !self.alerts_over_cap {
            self.alerts_over_cap = true;
            tracing::warn!(
                bytes = self.total_bytes(),
                cap = self.cap_bytes,
                alerts = self.class(Class::Alert).rows,
                "outbox over its cap with only alerts left: keeping every alert"
            );
        }
        Ok(())
    }

    /// Deletes up to `n` oldest rows of `class` (never call with alerts),
    /// counting them as evicted. Returns how many went.
    pub fn evict_oldest(
        &mut self,
        conn: &Connection,
        class: Class,
        n: u64,
    ) -> rusqlite::Result<u64> {
        debug_assert!(class != Class::Alert, "alerts are never evicted");
        if class == Class::Alert {
            return Ok(0);
        }
        let mut stmt = conn.prepare_cached(
            "DELETE FROM outbox WHERE class = ?1 AND seq IN \
             (SELECT seq FROM outbox WHERE class = ?1 ORDER BY seq LIMIT ?2) RETURNING length(payload)",
        )?;
        let gone = stmt.query_map(params![i64::from(class as u8), to_i64(n)], |r| {
            r.get::<_, i64>(0)
        })?;
        let mut count = 0;
        for len in gone {
            let len = to_u64(len?);
            let st = &mut self.classes[idx(class)];
            st.rows = st.rows.saturating_sub(1);
            st.bytes = st.bytes.saturating_sub(len);
            st.evicted += 1;
            count += 1;
        }
        if count > 0 {
            self.stale_oldest[idx(class)] = true;
        }
        Ok(count)
    }

    /// Deletes acknowledged rows (absent ones are ignored), one statement
    /// per contiguous run of seqs. With `via`, each alert row still present
    /// is recorded as delivered over that path at `now` (see `delivery`).
    pub fn ack_rows(
        &mut self,
        st: &mut Stmts<'_>,
        rows: &[(Class, u64)],
        via: Option<(Via, Time)>,
    ) -> rusqlite::Result<()> {
        let mut sorted = rows.to_vec();
        sorted.sort_unstable_by_key(|&(c, seq)| (c as u8, seq));
        sorted.dedup();
        let mut i = 0;
        while i < sorted.len() {
            let (class, first) = sorted[i];
            let mut last = first;
            while let Some(&(c, s)) = sorted.get(i + 1) {
                if c != class || s != last + 1 {
                    break;
                }
                last = s;
                i += 1;
            }
            i += 1;
            self.delete_run(st, class, first, last, via)?;
        }
        Ok(())
    }

    fn delete_run(
        &mut self,
        st: &mut Stmts<'_>,
        class: Class,
        first: u64,
        last: u64,
        via: Option<(Via, Time)>,
    ) -> rusqlite::Result<()> {
        // Read, then delete: `DELETE … RETURNING` gathers its rows in a
        // temporary table first and opens a statement journal (a copy of
        // every page it writes); a plain range delete needs neither.
        let range = params![to_i64(first), to_i64(last)];
        if class != Class::Alert {
            return self.delete_run_summed(st, class, range);
        }
        let gone = st
            .get(per_class(class, ACKED_SQL))?
            .query_map(range, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if gone.is_empty() {
            return Ok(());
        }
        st.get(per_class(class, DELETE_SQL))?.execute(range)?;
        let mut run = Vec::with_capacity(gone.len());
        for (seq, len, id, at) in gone {
            let cs = &mut self.classes[idx(class)];
            if to_u64(seq) + 1 == cs.next_seq {
                self.newest_gone[idx(class)] = true;
            }
            cs.rows = cs.rows.saturating_sub(1);
            cs.bytes = cs.bytes.saturating_sub(to_u64(len));
            self.stale_oldest[idx(class)] = true;
            run.push((to_u64(seq), id, Time::from_millis(at)));
        }
        if let Some((via, now)) = via {
            self.delivery.record_run(st, run, via, now)?;
        }
        Ok(())
    }

    /// [`Outbox::delete_run`] of status or telemetry rows: what it removes
    /// is only counted (one row from SQLite, not one per removed row).
    fn delete_run_summed(
        &mut self,
        st: &mut Stmts<'_>,
        class: Class,
        range: &[&dyn rusqlite::ToSql],
    ) -> rusqlite::Result<()> {
        let (rows, bytes, newest) =
            st.get(per_class(class, ACKED_SUM_SQL))?
                .query_row(range, |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?;
        if rows == 0 {
            return Ok(());
        }
        st.get(per_class(class, DELETE_SQL))?.execute(range)?;
        let cs = &mut self.classes[idx(class)];
        if to_u64(newest) + 1 == cs.next_seq {
            self.newest_gone[idx(class)] = true;
        }
        cs.rows = cs.rows.saturating_sub(to_u64(rows));
        cs.bytes = cs.bytes.saturating_sub(to_u64(bytes));
        self.stale_oldest[idx(class)] = true;
        Ok(())
    }

    /// A clean close must still write exact sizes (see [`Outbox::save`]).
    pub fn needs_save(&self) -> bool {
        self.exact && self.disk_sizes != Some(self.sizes())
    }

    fn sizes(&self) -> [(u64, u64); 3] {
        self.classes.each_ref().map(|c| (c.rows, c.bytes))
    }

    /// Persists the bookkeeping that must survive a crash (inside the
    /// batch's transaction) and refreshes the oldest row of the classes
    /// that lost rows. SD-card wear: at a home's rate the counters' page was
    /// one of the few pages every grouped commit wrote, so only what cannot
    /// be rebuilt at open is written:
    /// - `next.<class>` only when the class's newest row is gone (acked,
    ///   evicted) — while it is in the table, `max(seq) + 1` at open is the
    ///   next seq, so no seq is ever reused;
    /// - `rows.*`/`bytes.*` only at a clean close; the first commit that
    ///   changes them deletes them, so after a crash they are absent and
    ///   [`Outbox::load`] recounts the table (exact either way);
    /// - eviction, superseding and delivery counters when they change.
    pub fn save(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let now = self.snapshot();
        let before = self.saved.clone();
        for c in Class::ALL {
            let i = idx(c);
            let st = &self.classes[i];
            let newest_gone = std::mem::take(&mut self.newest_gone[i]);
            if st.next_seq != self.disk_next[i] && (newest_gone || st.rows == 0 || self.exact) {
                set_counter(conn, next_name(c), st.next_seq)?;
                self.disk_next[i] = st.next_seq;
            }
            if before.as_ref().is_none_or(|b| b.evicted[i] != st.evicted) {
                set_counter(conn, counter_name(c), st.evicted)?;
            }
        }
        let sizes = self.sizes();
        if self.exact {
            if self.disk_sizes != Some(sizes) {
                for (c, (rows, bytes)) in Class::ALL.into_iter().zip(sizes) {
                    let (r, b) = size_names(c);
                    set_counter(conn, r, rows)?;
                    set_counter(conn, b, bytes)?;
                }
                self.disk_sizes = Some(sizes);
            }
        } else if self.disk_sizes.is_some_and(|d| d != sizes) {
            conn.prepare_cached(
                "DELETE FROM counters WHERE name IN \
                 ('rows.alert', 'rows.status', 'rows.telemetry', 'bytes.alert', 'bytes.status', 'bytes.telemetry')",
            )?
            .execute([])?;
            self.disk_sizes = None;
        }
        if before
            .as_ref()
            .is_none_or(|b| b.superseded != self.superseded)
        {
            set_counter(conn, "superseded", self.superseded)?;
        }
        self.delivery.save(conn)?;
        self.saved = Some(now);
        self.refresh_oldest(conn)
    }

    fn snapshot(&self) -> Saved {
        Saved {
            evicted: self.classes.each_ref().map(|c| c.evicted),
            superseded: self.superseded,
        }
    }

    fn refresh_oldest(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        for c in Class::ALL {
            if !std::mem::take(&mut self.stale_oldest[idx(c)]) {
                continue;
            }
            if self.classes[idx(c)].rows == 0 {
                self.classes[idx(c)].oldest = None;
                continue;
            }
            let oldest = conn
                .prepare_cached(per_class(c, OLDEST_SQL))?
                .query_row([], |r| {
                    Ok((to_u64(r.get(0)?), Time::from_millis(r.get(1)?)))
                })
                .map(Some)
                .or_else(none_if_no_rows)?;
            self.classes[idx(c)].oldest = oldest;
        }
        Ok(())
    }
}

/// One outbox row (see [`Outbox::enqueue`]).
const INSERT_SQL: &str =
    "INSERT INTO outbox (class, seq, id, at, payload) VALUES (?1, ?2, ?3, ?4, ?5)";

fn none_if_no_rows<T>(e: rusqlite::Error) -> rusqlite::Result<Option<T>> {
    match e {
        rusqlite::Error::QueryReturnedNoRows => Ok(None),
        e => Err(e),
    }
}

fn counter_opt(conn: &Connection, name: &str) -> rusqlite::Result<Option<u64>> {
    conn.query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| {
        r.get::<_, i64>(0)
    })
    .map(|v| Some(to_u64(v)))
    .or_else(none_if_no_rows)
}

fn counter(conn: &Connection, name: &str) -> rusqlite::Result<u64> {
    Ok(counter_opt(conn, name)?.unwrap_or(0))
}

/// See [`update_or_insert`] for why this is not an upsert.
pub(crate) fn set_counter(conn: &Connection, name: &str, value: u64) -> rusqlite::Result<()> {
    update_or_insert(
        conn,
        "UPDATE counters SET value = ?2 WHERE name = ?1",
        "INSERT INTO counters (name, value) VALUES (?1, ?2)",
        params![name, to_i64(value)],
    )
}

pub(crate) fn get_counter(conn: &Connection, name: &str) -> rusqlite::Result<u64> {
    counter(conn, name)
}
