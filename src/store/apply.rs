//! Applying one batch of writer ops inside the writer's transaction: the
//! SQL of each write kind (history, outbox, registry, kv).
//!
//! Invariant: nothing here commits or rolls back; the writer owns the
//! transaction, so a failure anywhere leaves no trace of the batch.

use std::time::Instant;

use rusqlite::{Connection, params};

use super::outbox::{self, Outbox};
use super::stmts::Stmts;
use super::touches::Touches;
use super::writer::Op;
use crate::model::{Class, DeviceInfo, Time};

/// Applies every op inside the caller's transaction. Returns whether outbox
/// rows were added.
///
/// `newest`: a key at least as large as any in `history` (None: not known,
/// and then not learnt here); the caller keeps what this sets only if the
/// batch commits.
pub(super) fn apply(
    conn: &Connection,
    ob: &mut Outbox,
    ops: &[Op],
    touches: &mut Touches,
    newest: &mut Option<i64>,
    now: Instant,
) -> rusqlite::Result<bool> {
    let mut added = false;
    let mut st = Stmts::new(conn);
    for op in ops {
        match op {
            Op::Reading(r, telemetry) => {
                super::history::insert(&mut st, r, newest)?;
                touches.add(r, now);
                if let Some((id, at, trusted)) = telemetry {
                    // The body only: `id` and `seq` are the row's columns
                    // (see `payload::telemetry_body`).
                    ob.enqueue(&mut st, Class::Telemetry, id, *at, |_| {
                        super::payload::telemetry_body(r, *trusted)
                    })?;
                    added = true;
                }
            }
            Op::Alert(a, id, at) => {
                // Stored as a compact body (see `alert_body`).
                ob.enqueue(&mut st, Class::Alert, id, *at, |seq| {
                    outbox::alert_body(id, seq, a)
                })?;
                added = true;
            }
            Op::Status(m, id, at) => {
                ob.enqueue(&mut st, Class::Status, id, *at, |seq| {
                    outbox::status_payload(id, seq, m)
                })?;
                added = true;
            }
            Op::Ack(list) => ob.ack_rows(&mut st, list, None)?,
            Op::Delivered(via, list, now) => ob.ack_rows(&mut st, list, Some((*via, *now)))?,
            Op::Device(d) => {
                touches.write(conn)?;
                touches.clear();
                upsert_device(conn, d)?;
            }
            Op::RemoveDevice(id) => {
                touches.write(conn)?;
                touches.clear();
                conn.prepare_cached("DELETE FROM devices WHERE id = ?1")?
                    .execute([id.as_str()])?;
            }
            Op::Kv(k, Some(v)) => {
                put_kv(conn, k, v)?;
                if k == crate::uplink::arc::queue::CAPTURE_KEY {
                    ob.arc_capture = true;
                }
            }
            Op::Kv(k, None) => {
                conn.prepare_cached("DELETE FROM kv WHERE key = ?1")?
                    .execute([k])?;
                if k == crate::uplink::arc::queue::CAPTURE_KEY {
                    ob.arc_capture = false;
                }
            }
            Op::State(st) => match &st.saved {
                crate::rules::Saved::Full(bytes) => {
                    // The journal ends: its deltas are in this snapshot.
                    conn.prepare_cached("DELETE FROM rules_journal")?
                        .execute([])?;
                    put_kv_large(conn, st.key, bytes)?;
                }
                crate::rules::Saved::Delta { seq, bytes } => {
                    conn.prepare_cached(
                        "INSERT OR REPLACE INTO rules_journal (seq, delta) VALUES (?1, ?2)",
                    )?
                    .execute(params![i64::try_from(*seq).unwrap_or(i64::MAX), bytes])?;
                }
            },
            Op::WipeHistory => {
                conn.execute("DELETE FROM history", [])?;
            }
        }
    }
    Ok(added)
}

/// As [`put_kv`], for a value of megabytes (a full rule-state snapshot at a
/// care site: ~3 MB at 50,000 pendants). Bound as a parameter, the bytes
/// are copied by SQLite (`SQLITE_TRANSIENT`) and copied again into the row
/// it builds in memory: two more copies of the snapshot at once, at the
/// height of a burst. Here the row is written with `zeroblob(n)` (SQLite
/// writes the zeros page by page without building them) and the bytes go
/// into it in place by incremental blob I/O, through the page cache.
fn put_kv_large(conn: &Connection, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    let len = i64::try_from(value.len())
        .map_err(|_| rusqlite::Error::ToSqlConversionFailure("value too large".into()))?;
    super::stmts::update_or_insert(
        conn,
        "UPDATE kv SET value = zeroblob(?2) WHERE key = ?1",
        "INSERT INTO kv (key, value) VALUES (?1, zeroblob(?2))",
        params![key, len],
    )?;
    let rowid: i64 = conn
        .prepare_cached("SELECT rowid FROM kv WHERE key = ?1")?
        .query_row([key], |r| r.get(0))?;
    let mut blob = conn.blob_open(rusqlite::MAIN_DB, "kv", "value", rowid, false)?;
    blob.write_at(value, 0)
}

/// UPDATE by key, INSERT only when the key is new (see
/// `stmts::update_or_insert`).
fn put_kv(conn: &Connection, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    super::stmts::update_or_insert(
        conn,
        "UPDATE kv SET value = ?2 WHERE key = ?1",
        "INSERT INTO kv (key, value) VALUES (?1, ?2)",
        params![key, value],
    )
}

fn upsert_device(conn: &Connection, d: &DeviceInfo) -> rusqlite::Result<()> {
    let Some(id) = &d.id else {
        // Never the whole record: names and rooms are personal data.
        tracing::warn!("device write without an id ignored");
        return Ok(());
    };
    conn.prepare_cached(
        "INSERT INTO devices (id, name, room, role, ieee, nwk, manufacturer, model, last_seen, battery, lqi) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT(id) DO UPDATE SET \
         name = coalesce(excluded.name, name), room = coalesce(excluded.room, room), \
         role = coalesce(excluded.role, role), ieee = coalesce(excluded.ieee, ieee), \
         nwk = coalesce(excluded.nwk, nwk), manufacturer = coalesce(excluded.manufacturer, manufacturer), \
         model = coalesce(excluded.model, model), last_seen = coalesce(excluded.last_seen, last_seen), \
         battery = coalesce(excluded.battery, battery), lqi = coalesce(excluded.lqi, lqi)",
    )?
    .execute(params![
        id.as_str(),
        d.name,
        d.room,
        d.role,
        d.ieee,
        d.nwk.map(i64::from),
        d.manufacturer,
        d.model,
        d.last_seen.map(Time::as_millis),
        d.battery,
        d.lqi.map(i64::from),
    ])?;
    Ok(())
}
