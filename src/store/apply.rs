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
                let lo = super::schema::history_key(r.at.as_millis());
                let hi = lo.saturating_add(super::schema::HISTORY_SLOTS - 1);
                let row = params![
                    r.device.as_str(),
                    i64::from(r.kind.code()),
                    r.value,
                    r.at.as_millis(),
                    lo,
                    hi,
                ];
                // A reading newer than every row (the live stream) takes
                // the next key of its millisecond from what this writer
                // knows; an older one asks the table (see `HISTORY_SQL`).
                let at_key = match next_key(*newest, lo, hi) {
                    Some(t) => st.get(HISTORY_AT_SQL)?.execute(params![
                        r.device.as_str(),
                        i64::from(r.kind.code()),
                        r.value,
                        r.at.as_millis(),
                        t,
                    ]),
                    None => Ok(0),
                };
                match at_key {
                    Ok(1) => {}
                    // The key was taken after all (a row written behind the
                    // writer's back): stop trusting what it knows and let the
                    // table decide, so the reading is still stored.
                    Err(e)
                        if e.sqlite_error_code()
                            == Some(rusqlite::ErrorCode::ConstraintViolation) =>
                    {
                        tracing::warn!("history key taken; keys come from the table from now on");
                        *newest = None;
                        st.get(HISTORY_SQL)?.execute(row)?;
                    }
                    Err(e) => return Err(e),
                    Ok(_) => {
                        st.get(HISTORY_SQL)?.execute(row)?;
                    }
                }
                if let Some(n) = newest {
                    *n = (*n).max(conn.last_insert_rowid());
                }
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
                ob.enqueue(&mut st, Class::Alert, id, *at, |seq| {
                    outbox::alert_payload(id, seq, a)
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
                    put_kv(conn, st.key, bytes)?;
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

/// UPDATE by key, INSERT only when the key is new: no statement journal
/// (see `outbox::set_counter`).
/// The key of a reading of `[lo, hi]` (its millisecond's keys) when
/// `newest` is at least every key in the table: `lo` if the millisecond has
/// no row yet, the next one if it has; `None` (ask the table) when that is
/// not known, the reading is older than the newest row, or its millisecond
/// is full.
fn next_key(newest: Option<i64>, lo: i64, hi: i64) -> Option<i64> {
    match newest {
        None => None,
        Some(n) if n < lo => Some(lo),
        Some(n) if n < hi => Some(n + 1),
        Some(_) => None,
    }
}

/// One reading into `history` at a key [`next_key`] gave.
const HISTORY_AT_SQL: &str =
    "INSERT INTO history (t, device, kind, value, at) VALUES (?5, ?1, ?2, ?3, ?4)";

/// One reading into `history`. `t`: the next free key of its millisecond
/// (one b-tree seek); NULL when all HISTORY_SLOTS are taken, which makes
/// SQLite append the row after the newest (kept, never lost).
const HISTORY_SQL: &str = "INSERT INTO history (t, device, kind, value, at) VALUES ( \
     (SELECT CASE WHEN max(t) IS NULL THEN ?5 WHEN max(t) < ?6 THEN max(t) + 1 END \
      FROM history WHERE t >= ?5 AND t <= ?6), ?1, ?2, ?3, ?4)";

fn put_kv(conn: &Connection, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    let updated = conn
        .prepare_cached("UPDATE kv SET value = ?2 WHERE key = ?1")?
        .execute(params![key, value])?;
    if updated == 0 {
        conn.prepare_cached("INSERT INTO kv (key, value) VALUES (?1, ?2)")?
            .execute(params![key, value])?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::next_key;

    #[test]
    fn a_key_comes_from_the_newest_only_when_the_reading_is_not_older() {
        // Unknown newest: ask the table.
        assert_eq!(next_key(None, 100, 199), None);
        // Empty table or a newer millisecond: its first key.
        assert_eq!(next_key(Some(i64::MIN), 100, 199), Some(100));
        assert_eq!(next_key(Some(99), 100, 199), Some(100));
        // The same millisecond: the next key, until it is full.
        assert_eq!(next_key(Some(100), 100, 199), Some(101));
        assert_eq!(next_key(Some(198), 100, 199), Some(199));
        assert_eq!(next_key(Some(199), 100, 199), None);
        // An older reading: ask the table.
        assert_eq!(next_key(Some(250), 100, 199), None);
        // The extremes do not overflow.
        assert_eq!(
            next_key(Some(i64::MAX - 1), i64::MAX - 5, i64::MAX),
            Some(i64::MAX)
        );
        assert_eq!(
            next_key(Some(i64::MIN), i64::MIN, i64::MIN + 9),
            Some(i64::MIN + 1)
        );
    }
}
