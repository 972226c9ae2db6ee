//! Which uplink path delivered each alert (schema v2).
//!
//! An alert may travel over MQTT and LoRaWAN at the same time (the router
//! sends it over every healthy path until one acknowledges it). The first
//! acknowledgement deletes the outbox row and, in the same transaction,
//! records the path here; a later acknowledgement from the other path finds
//! no row and records nothing. So each alert seq appears at most once, naming
//! the path that delivered it first.
//!
//! ```sql
//! CREATE TABLE alert_delivery (
//!     seq INTEGER PRIMARY KEY NOT NULL,  -- the alert's outbox seq
//!     id TEXT NOT NULL,                  -- the alert's UUID (the receiver's dedup key)
//!     via TEXT NOT NULL,                 -- 'mqtt' or 'lorawan'
//!     queued_at INTEGER NOT NULL,        -- outbox enqueue time, ms
//!     delivered_at INTEGER NOT NULL      -- acknowledgement time, ms
//! );
//! ```
//!
//! Counters `delivered.mqtt` / `delivered.lorawan` (in `counters`) count every
//! recorded delivery since the database was created; the table keeps only
//! the newest [`KEEP`] rows.
//!
//! Cost per acknowledged alert: one `INSERT` here. The counters and the
//! latest record are kept in memory ([`Tally`], part of the writer's outbox
//! mirror, so a rolled-back batch leaves them as they were); the counters
//! are written and old records pruned once per transaction (`Tally::save`),
//! not once per row.
//!
//! A crash between the far end's acknowledgement and this commit loses only
//! the record of the ack: the row is still in the outbox and is sent again
//! (possibly over the other path); receivers de-duplicate by `id`/`seq`.

use rusqlite::{Connection, params};

use super::outbox::{get_counter, set_counter};
use crate::model::Time;

/// Delivery records kept (older ones are pruned on insert).
pub const KEEP: i64 = 10_000;

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
    /// Highest alert seq recorded since the last save (prune from there).
    recorded_max: Option<u64>,
    /// Counters changed since the last save.
    dirty: bool,
}

impl Tally {
    /// Reads the counters and the latest record (once, at open).
    pub fn load(conn: &Connection) -> rusqlite::Result<Tally> {
        Ok(Tally {
            stats: stats(conn)?,
            recorded_max: None,
            dirty: false,
        })
    }

    /// Records the first delivery of alert `seq` (inside the caller's
    /// transaction): one row; counters and pruning wait for [`Tally::save`].
    pub fn record(
        &mut self,
        conn: &Connection,
        seq: u64,
        id: String,
        via: Via,
        queued_at: Time,
        now: Time,
    ) -> rusqlite::Result<()> {
        let seq_i = i64::try_from(seq).unwrap_or(i64::MAX);
        let n = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO alert_delivery (seq, id, via, queued_at, delivered_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![seq_i, id, via.as_str(), queued_at.as_millis(), now.as_millis()])?;
        if n == 0 {
            return Ok(());
        }
        match via {
            Via::Mqtt => self.stats.mqtt += 1,
            Via::Lorawan => self.stats.lorawan += 1,
            // Not written through the writer (see `counter`).
            Via::Arc => {}
        }
        self.dirty = true;
        self.recorded_max = Some(self.recorded_max.map_or(seq, |m| m.max(seq)));
        // The newest record by (delivered_at, seq), as `recent` orders them.
        let newer = self
            .stats
            .last
            .as_ref()
            .is_none_or(|l| (now, seq) >= (l.delivered_at, l.seq));
        if newer {
            self.stats.last = Some(AlertDelivery {
                seq,
                id,
                via,
                queued_at,
                delivered_at: now,
            });
        }
        Ok(())
    }

    /// Writes changed counters and prunes records older than the newest
    /// [`KEEP`] (inside the batch's transaction).
    pub fn save(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if let Some(max) = self.recorded_max.take() {
            conn.prepare_cached("DELETE FROM alert_delivery WHERE seq <= ?1")?
                .execute([i64::try_from(max).unwrap_or(i64::MAX) - KEEP])?;
        }
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
        "SELECT seq, id, via, queued_at, delivered_at FROM alert_delivery ORDER BY delivered_at DESC, seq DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], row)?;
    let mut out = Vec::new();
    for r in rows {
        out.extend(r?);
    }
    Ok(out)
}

/// The records of the alerts with these UUIDs (those delivered and still
/// kept), in no particular order. One scan of at most [`KEEP`] rows.
pub(crate) fn of_ids(conn: &Connection, ids: &[String]) -> rusqlite::Result<Vec<AlertDelivery>> {
    let mut out = Vec::new();
    // SQLite's default limit on bound parameters is 32766; stay well below.
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare(&format!(
            "SELECT seq, id, via, queued_at, delivered_at FROM alert_delivery WHERE id IN ({marks})"
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
mod tests {
    use super::super::tests::{alert, db};
    use super::super::{Store, StoreConfig, Write};
    use super::*;
    use crate::model::Class;

    #[tokio::test]
    async fn first_acknowledging_path_is_recorded_and_the_second_ack_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = db(&dir);
        let s = Store::open(&path, &StoreConfig::default()).unwrap();
        for i in 0..3 {
            s.submit(Write::Alert(alert("panic", i))).await.unwrap();
        }
        s.flush().await.unwrap();
        let rows = s.outbox_fetch(Class::Alert, 0, 10).await.unwrap();
        let ack = |via, seq| Write::Delivered {
            via,
            rows: vec![(Class::Alert, seq)],
        };
        s.submit(ack(Via::Lorawan, 1)).await.unwrap();
        s.submit(ack(Via::Mqtt, 1)).await.unwrap();
        s.submit(ack(Via::Mqtt, 2)).await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(s.stats().alert.rows, 1, "seq 3 is still waiting");
        let d = s.stats().delivered;
        assert_eq!((d.mqtt, d.lorawan), (1, 1));
        assert_eq!(d.last.as_ref().map(|l| l.seq), Some(2));
        let log = s.alert_deliveries(10).await.unwrap();
        let mut by_seq: Vec<(u64, Via, String)> =
            log.iter().map(|l| (l.seq, l.via, l.id.clone())).collect();
        by_seq.sort();
        assert_eq!(
            by_seq,
            vec![
                (1, Via::Lorawan, rows[0].id.clone()),
                (2, Via::Mqtt, rows[1].id.clone())
            ]
        );
        s.close().await.unwrap();
        // Counters and records survive a restart.
        let s = Store::open(&path, &StoreConfig::default()).unwrap();
        let d = s.stats().delivered;
        assert_eq!((d.mqtt, d.lorawan), (1, 1));
        assert_eq!(s.alert_deliveries(10).await.unwrap().len(), 2);
        s.close().await.unwrap();
    }

    #[tokio::test]
    async fn an_alert_keeps_the_uuid_it_was_raised_with_and_is_found_by_it_once_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
        let mut a = alert("panic", 1);
        a.uid = Some("5f0c8b52-3c1e-4d2a-9b7e-0a1b2c3d4e5f".into());
        s.submit(Write::Alert(a)).await.unwrap();
        s.submit(Write::Alert(alert("panic", 2))).await.unwrap();
        s.flush().await.unwrap();
        let rows = s.outbox_fetch(Class::Alert, 0, 10).await.unwrap();
        assert_eq!(rows[0].id, "5f0c8b52-3c1e-4d2a-9b7e-0a1b2c3d4e5f");
        let payload = String::from_utf8(rows[0].payload.clone()).unwrap();
        assert!(
            payload.contains("\"id\":\"5f0c8b52-3c1e-4d2a-9b7e-0a1b2c3d4e5f\""),
            "{payload}"
        );
        assert_eq!(rows[1].id.len(), 36, "the store gives one when missing");
        let want = vec![rows[0].id.clone(), rows[1].id.clone(), "never-sent".into()];
        assert!(
            s.alert_deliveries_of(want.clone())
                .await
                .unwrap()
                .is_empty()
        );
        s.submit(Write::Delivered {
            via: Via::Lorawan,
            rows: vec![(Class::Alert, rows[0].seq)],
        })
        .await
        .unwrap();
        s.flush().await.unwrap();
        let got = s.alert_deliveries_of(want).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].id.as_str(), got[0].via),
            (rows[0].id.as_str(), Via::Lorawan)
        );
        s.close().await.unwrap();
    }

    #[tokio::test]
    async fn delivered_telemetry_is_deleted_but_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
        let r = super::super::tests::reading("k-temp", crate::model::Kind::Temperature, 20.0, 1);
        s.submit(Write::Reading(r)).await.unwrap();
        s.flush().await.unwrap();
        s.submit(Write::Delivered {
            via: Via::Mqtt,
            rows: vec![(Class::Telemetry, 1)],
        })
        .await
        .unwrap();
        s.flush().await.unwrap();
        assert_eq!(s.stats().telemetry.rows, 0);
        assert_eq!(s.stats().delivered.mqtt, 0);
        assert!(s.alert_deliveries(10).await.unwrap().is_empty());
        s.close().await.unwrap();
    }
}
