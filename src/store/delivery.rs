//! Which path delivered each alert (schema v2, v7, v12).
//!
//! An alert may travel over MQTT and LoRaWAN at the same time (the router
//! sends it over every healthy path until one acknowledges it), and to an
//! alarm receiving centre (`uplink::arc`). The first uplink acknowledgement
//! deletes the outbox row and, in the same transaction, records the path; a
//! later acknowledgement from the other uplink finds no row and records
//! nothing.
//!
//! ```sql
//! CREATE TABLE delivery_run (            -- schema v12: the uplinks' records
//!     first INTEGER PRIMARY KEY NOT NULL, -- the run's first alert seq
//!     last INTEGER NOT NULL,             -- its last
//!     via TEXT NOT NULL,                 -- 'mqtt' or 'lorawan'
//!     delivered_at INTEGER NOT NULL,     -- acknowledgement time, ms
//!     alerts TEXT NOT NULL               -- [[seq, "UUID", queued_at ms], …]
//! );
//! CREATE TABLE alert_delivery (          -- schema v7 (v2 keyed it by seq)
//!     slot INTEGER PRIMARY KEY NOT NULL, -- seq % KEEP: a ring of KEEP rows
//!     seq INTEGER NOT NULL,              -- the alert's outbox seq
//!     id TEXT NOT NULL,                  -- the alert's UUID (the receiver's dedup key)
//!     via TEXT NOT NULL,                 -- 'arc' (and 'mqtt'/'lorawan' before v12)
//!     queued_at INTEGER NOT NULL,        -- outbox enqueue time, ms
//!     delivered_at INTEGER NOT NULL      -- acknowledgement time, ms
//! );
//! CREATE VIEW deliveries (seq, id, via, queued_at, delivered_at) -- one row per alert:
//!     …                                  -- the first delivery of each seq
//! ```
//!
//! **One row per acknowledged run** (`delivery_run`): the uplinks' PUBACKs
//! come in runs (~28 alerts a run in a 50 k burst), and one row per run
//! replaces an UPDATE of a ring row per alert — that per-alert b-tree work
//! was ~5 % of the CPU of an alert burst, and writing a run's records with
//! set-based statements did not reduce it (session 18). The ARC's task
//! records each alert it delivers in the ring `alert_delivery`, from its own
//! connection, as before. The view `deliveries` shows one record per alert:
//! the earliest delivery of its seq, whichever path made it; the web UI,
//! the status document and `sqlite3` users read it.
//!
//! Counters `delivered.mqtt` / `delivered.lorawan` (in `counters`) count every
//! alert each uplink delivered since the database was created (an alert the
//! ARC delivered first is counted by the uplink that delivered it too). The
//! records kept are about the newest [`KEEP`] alerts: runs whose last seq
//! is older are pruned (by whole runs, every [`PRUNE_EVERY`] seqs); the
//! ring keeps the newest record of each slot. The counters, the latest
//! record and the oldest run kept are mirrored in memory ([`Tally`], part of
//! the writer's outbox mirror, so a rolled-back batch leaves them as they
//! were); the counters are written once per transaction (`Tally::save`).
//!
//! A crash between the far end's acknowledgement and this commit loses only
//! the record of the ack: the row is still in the outbox and is sent again
//! (possibly over the other path); receivers de-duplicate by `id`/`seq`.

use super::stmts::Stmts;
use rusqlite::{Connection, params};

use super::outbox::{get_counter, set_counter, to_i64};
use crate::model::Time;

/// Delivery records kept: about the newest this many alerts.
pub const KEEP: i64 = 10_000;
/// Runs are pruned when the oldest kept is this many seqs past [`KEEP`].
pub const PRUNE_EVERY: u64 = 1_000;

pub use crate::status::{AlertDelivery, DeliveredStats, Via};

/// The store counter of rows delivered over `via`.
fn counter(via: Via) -> &'static str {
    match via {
        Via::Mqtt => "delivered.mqtt",
        Via::Lorawan => "delivered.lorawan",
        // Written by the ARC task's own connection (`uplink::arc::queue`),
        // never by the writer's tally.
        Via::Arc => "delivered.arc",
    }
}

/// Schema v7: the ring (see the module doc); the newest record of each
/// slot is kept. `10000` is [`KEEP`].
pub(crate) const MIGRATION_V7: &str = r#"
    CREATE TABLE alert_delivery_v7 (
        slot INTEGER PRIMARY KEY NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        via TEXT NOT NULL,
        queued_at INTEGER NOT NULL,
        delivered_at INTEGER NOT NULL
    );
    INSERT OR REPLACE INTO alert_delivery_v7 (slot, seq, id, via, queued_at, delivered_at)
        SELECT seq % 10000, seq, id, via, queued_at, delivered_at
        FROM alert_delivery ORDER BY seq;
    DROP TABLE alert_delivery;
    ALTER TABLE alert_delivery_v7 RENAME TO alert_delivery;
"#;

/// Schema v12: the uplinks' records, one row per acknowledged run, and
/// the view of one record per alert (see the module doc). `->>` needs
/// SQLite 3.38 (the bundled one is newer).
pub(crate) const MIGRATION_V12: &str = r#"
    CREATE TABLE delivery_run (
        first INTEGER PRIMARY KEY NOT NULL,
        last INTEGER NOT NULL,
        via TEXT NOT NULL,
        delivered_at INTEGER NOT NULL,
        alerts TEXT NOT NULL
    );
    CREATE VIEW deliveries (seq, id, via, queued_at, delivered_at) AS
        SELECT seq, id, via, queued_at, min(delivered_at) FROM (
            SELECT seq, id, via, queued_at, delivered_at FROM alert_delivery
            UNION ALL
            SELECT j.value ->> 0, j.value ->> 1, r.via, j.value ->> 2, r.delivered_at
            FROM delivery_run r, json_each(r.alerts) j
        ) GROUP BY seq;
"#;

/// Schema v13: the view skips what is not a record instead of failing on
/// it — a damaged `alerts` text (not JSON) or an element that is not
/// `[integer seq, "UUID", integer queued_at]` — so one bad row (a manual
/// edit, a torn copy) costs only its own records, not the store's opening
/// (which reads the newest record) or the UI's list.
pub(crate) const MIGRATION_V13: &str = r#"
    DROP VIEW deliveries;
    CREATE VIEW deliveries (seq, id, via, queued_at, delivered_at) AS
        SELECT seq, id, via, queued_at, min(delivered_at) FROM (
            SELECT seq, id, via, queued_at, delivered_at FROM alert_delivery
            UNION ALL
            SELECT j.value ->> 0, j.value ->> 1, r.via, j.value ->> 2, r.delivered_at
            FROM delivery_run r,
                json_each(CASE WHEN json_valid(r.alerts) THEN r.alerts ELSE '[]' END) j
            WHERE j.type = 'array'
                AND typeof(j.value ->> 0) = 'integer'
                AND typeof(j.value ->> 1) = 'text'
                AND typeof(j.value ->> 2) = 'integer'
        ) GROUP BY seq;
"#;

/// Records the first delivery of alert `seq` in its ring slot (a record
/// of the same or a newer seq already there wins). Returns whether it was
/// recorded. The ARC task's record (the uplinks record runs:
/// [`Tally::record_run`]).
pub(crate) fn upsert(
    conn: &Connection,
    seq: u64,
    id: &str,
    via: Via,
    queued_at: Time,
    now: Time,
) -> rusqlite::Result<bool> {
    let values = params![
        to_i64(seq),
        id,
        via.as_str(),
        queued_at.as_millis(),
        now.as_millis(),
        KEEP
    ];
    // An UPDATE of one row by its key, then (only while the ring is not
    // yet full) an INSERT that ignores a taken slot: neither needs SQLite's
    // statement journal, which an upsert opens (a copy of every page it
    // writes, per row; it was 5 % of the writer's CPU in an alert burst).
    let updated = conn.prepare_cached(UPDATE_SQL)?.execute(values)?;
    if updated > 0 {
        return Ok(true);
    }
    let inserted = conn.prepare_cached(INSERT_SQL)?.execute(values)?;
    Ok(inserted > 0)
}

const RUN_SQL: &str = "INSERT OR REPLACE INTO delivery_run (first, last, via, delivered_at, alerts) \
     VALUES (?1, ?2, ?3, ?4, ?5)";
/// Runs whose alerts are all at or before `?1` (the newest seq − KEEP).
const PRUNE_SQL: &str = "DELETE FROM delivery_run WHERE last <= ?1";

/// The `first` of the oldest run kept (None: no run).
fn oldest_run(conn: &Connection) -> rusqlite::Result<Option<u64>> {
    let first = conn
        .prepare_cached("SELECT min(first) FROM delivery_run")?
        .query_row([], |r| r.get::<_, Option<i64>>(0))?;
    Ok(first.map(|f| u64::try_from(f).unwrap_or(0)))
}

const UPDATE_SQL: &str = "UPDATE alert_delivery SET seq = ?1, id = ?2, via = ?3, queued_at = ?4, \
     delivered_at = ?5 WHERE slot = ?1 % ?6 AND seq < ?1";
const INSERT_SQL: &str = "INSERT OR IGNORE INTO alert_delivery (slot, seq, id, via, queued_at, delivered_at) \
     VALUES (?1 % ?6, ?1, ?2, ?3, ?4, ?5)";

pub(crate) const MIGRATION_V2: &str = r#"
    CREATE TABLE alert_delivery (
        seq INTEGER PRIMARY KEY NOT NULL,
        id TEXT NOT NULL,
        via TEXT NOT NULL,
        queued_at INTEGER NOT NULL,
        delivered_at INTEGER NOT NULL
    );
"#;

/// Delivery counters and the latest record, mirrored in memory by the
/// writer; [`Tally::save`] persists them inside the batch's transaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Tally {
    pub stats: DeliveredStats,
    /// Counters changed since the last save.
    dirty: bool,
    /// The `first` of the oldest run kept (None: no run).
    oldest_run: Option<u64>,
}

impl Tally {
    /// Reads the counters and the latest record (once, at open).
    pub fn load(conn: &Connection) -> rusqlite::Result<Tally> {
        Ok(Tally {
            stats: stats(conn)?,
            dirty: false,
            oldest_run: oldest_run(conn)?,
        })
    }

    /// Records the delivery over `via` at `now` of a run of alerts, each
    /// `(seq, UUID, queued_at)` in seq order (inside the caller's
    /// transaction, with the deletion of their outbox rows): one row.
    /// Counters wait for [`Tally::save`]; runs older than about [`KEEP`]
    /// alerts are pruned here now and then.
    pub fn record_run(
        &mut self,
        st: &mut Stmts<'_>,
        alerts: Vec<(u64, String, Time)>,
        via: Via,
        now: Time,
    ) -> rusqlite::Result<()> {
        let (Some(first), Some(newest)) = (alerts.first(), alerts.last()) else {
            return Ok(());
        };
        let (first, last) = (first.0, newest.0);
        let doc: Vec<(u64, &str, i64)> = alerts
            .iter()
            .map(|(seq, id, at)| (*seq, id.as_str(), at.as_millis()))
            .collect();
        let doc = serde_json::to_string(&doc)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        st.get(RUN_SQL)?.execute(params![
            to_i64(first),
            to_i64(last),
            via.as_str(),
            now.as_millis(),
            doc
        ])?;
        let n = alerts.len() as u64;
        match via {
            Via::Mqtt => self.stats.mqtt += n,
            Via::Lorawan => self.stats.lorawan += n,
            // Not written through the writer (see `counter`).
            Via::Arc => {}
        }
        self.dirty = true;
        // The newest record by (delivered_at, seq), as `recent` orders them.
        let newer = self
            .stats
            .last
            .as_ref()
            .is_none_or(|l| (now, last) >= (l.delivered_at, l.seq));
        if let (true, Some((seq, id, queued_at))) = (newer, alerts.into_iter().next_back()) {
            self.stats.last = Some(AlertDelivery {
                seq,
                id,
                via,
                queued_at,
                delivered_at: now,
            });
        }
        let oldest = *self.oldest_run.get_or_insert(first);
        let keep_from = last.saturating_sub(KEEP.unsigned_abs());
        if oldest.saturating_add(PRUNE_EVERY) <= keep_from {
            st.get(PRUNE_SQL)?.execute([to_i64(keep_from)])?;
            self.oldest_run = oldest_run(st.conn())?;
        }
        Ok(())
    }

    /// Writes changed counters (inside the batch's transaction).
    pub fn save(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if std::mem::take(&mut self.dirty) {
            set_counter(conn, counter(Via::Mqtt), self.stats.mqtt)?;
            set_counter(conn, counter(Via::Lorawan), self.stats.lorawan)?;
        }
        Ok(())
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<AlertDelivery>> {
    let via: String = r.get(2)?;
    let Some(via) = Via::parse(&via) else {
        return Ok(None);
    };
    Ok(Some(AlertDelivery {
        seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
        id: r.get(1)?,
        via,
        queued_at: Time::from_millis(r.get(3)?),
        delivered_at: Time::from_millis(r.get(4)?),
    }))
}

/// The `limit` most recent deliveries, most recent first.
pub(crate) fn recent(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<AlertDelivery>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, id, via, queued_at, delivered_at FROM deliveries ORDER BY delivered_at DESC, seq DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], row)?;
    let mut out = Vec::new();
    for r in rows {
        out.extend(r?);
    }
    Ok(out)
}

/// The records of the alerts with these UUIDs (those delivered and still
/// kept), in no particular order, the earliest delivery of each. One scan
/// of the records kept (about 2 × [`KEEP`] rows: the runs' and the ring's).
pub(crate) fn of_ids(conn: &Connection, ids: &[String]) -> rusqlite::Result<Vec<AlertDelivery>> {
    let mut out = Vec::new();
    // SQLite's default limit on bound parameters is 32766; stay well below.
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare(&format!(
            "SELECT seq, id, via, queued_at, delivered_at FROM deliveries WHERE id IN ({marks})"
        ))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(chunk.iter()), row)?;
        for r in rows {
            out.extend(r?);
        }
    }
    Ok(out)
}

/// The counters and the latest record.
pub(crate) fn stats(conn: &Connection) -> rusqlite::Result<DeliveredStats> {
    Ok(DeliveredStats {
        mqtt: get_counter(conn, counter(Via::Mqtt))?,
        lorawan: get_counter(conn, counter(Via::Lorawan))?,
        last: recent(conn, 1)?.into_iter().next(),
    })
}

#[cfg(test)]
#[path = "delivery_tests.rs"]
mod tests;
