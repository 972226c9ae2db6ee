//! The ARC path's durable queue, in the gateway's database.
//!
//! ```sql
//! CREATE TABLE arc_queue (            -- alerts not yet acknowledged by an ARC
//!     seq INTEGER PRIMARY KEY,        -- the alert's outbox seq
//!     id TEXT NOT NULL, at INTEGER NOT NULL, payload BLOB NOT NULL,
//!     dc09_seq INTEGER                -- DC-09 sequence given at first send
//! );
//! CREATE TABLE arc_zone (zone INTEGER PRIMARY KEY, device TEXT NOT NULL UNIQUE);
//! CREATE TABLE arc_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
//! ```
//!
//! Invariants:
//! - **Captured in the alert's own transaction.** While `kv['arc.capture']`
//!   exists (the app sets it when `[arc]` is configured, clears it when not)
//!   the store's writer copies every alert row into `arc_queue` ([`CAPTURE_SQL`])
//!   in the transaction that inserts it into the outbox (schema v4–v8 did
//!   it with a trigger; v9 drops it, see `store::schema`), so a kill -9 at any point leaves the alert either in both
//!   queues or in neither; an MQTT acknowledgement deleting the outbox row
//!   leaves the ARC's copy alone.
//! - **Deleted only after the ARC acknowledged it** (or it is not for the
//!   ARC, or the receiver answered DUH: both logged and counted).
//! - **The DC-09 sequence of a row is written before its first send** and
//!   reused on every resend, also after a restart, so the receiver
//!   recognises a repeat as a duplicate.
//! - This queue is the one exception to the store's single writer: the ARC
//!   task writes these three tables (and its `alert_delivery` record and the
//!   `delivered.arc` counter) over a connection of its own, off the
//!   runtime, under SQLite's lock with the store's busy timeout. The writer
//!   never touches them, so the two never disagree about a row.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::model::Time;

pub const MIGRATION: &str = r#"
    CREATE TABLE arc_queue (
        seq INTEGER PRIMARY KEY NOT NULL,
        id TEXT NOT NULL,
        at INTEGER NOT NULL,
        payload BLOB NOT NULL,
        dc09_seq INTEGER
    );
    CREATE TABLE arc_zone (zone INTEGER PRIMARY KEY, device TEXT NOT NULL UNIQUE);
    CREATE TABLE arc_state (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
    CREATE TRIGGER arc_capture AFTER INSERT ON outbox
    WHEN NEW.class = 0 AND EXISTS (SELECT 1 FROM kv WHERE key = 'arc.capture')
    BEGIN
        INSERT OR IGNORE INTO arc_queue (seq, id, at, payload) VALUES (NEW.seq, NEW.id, NEW.at, NEW.payload);
    END;
"#;

/// v9: capture moves from the trigger to [`CAPTURE_SQL`], run by the
/// store's writer (see `store::schema`).
pub const MIGRATION_V9: &str = "DROP TRIGGER IF EXISTS arc_capture;";

/// The kv key whose presence turns capture on.
pub const CAPTURE_KEY: &str = "arc.capture";

/// Whether capture is on (at the writer's open; afterwards the writer
/// follows its own writes of [`CAPTURE_KEY`]).
pub(crate) fn capturing(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM kv WHERE key = ?1)",
        [CAPTURE_KEY],
        |r| r.get(0),
    )
}

/// Copies an alert row (seq, id, at, payload) into the ARC's queue; the
/// store's writer runs it in the transaction that inserts the alert into
/// the outbox (what the v4 trigger did). A row already there is kept.
pub(crate) const CAPTURE_SQL: &str =
    "INSERT OR IGNORE INTO arc_queue (seq, id, at, payload) VALUES (?1, ?2, ?3, ?4)";

/// One queued alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub seq: u64,
    pub id: String,
    pub at: Time,
    pub payload: Vec<u8>,
    pub dc09_seq: Option<u16>,
}

/// The ARC task's connection.
pub struct Queue {
    conn: Connection,
}

impl Queue {
    pub fn open(path: &Path, busy: Duration) -> rusqlite::Result<Queue> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(busy)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(Queue { conn })
    }

    /// Every queued alert, in outbox order.
    pub fn pending(&self) -> rusqlite::Result<Vec<Queued>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT seq, id, at, payload, dc09_seq FROM arc_queue ORDER BY seq")?;
        let rows = st.query_map([], |r| {
            Ok(Queued {
                seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                id: r.get(1)?,
                at: Time::from_millis(r.get(2)?),
                payload: r.get(3)?,
                dc09_seq: r
                    .get::<_, Option<i64>>(4)?
                    .and_then(|s| u16::try_from(s).ok()),
            })
        })?;
        rows.collect()
    }

    /// The next DC-09 sequence number (persisted before it is used).
    pub fn next_seq(&self) -> rusqlite::Result<u16> {
        let last: i64 = self
            .conn
            .query_row("SELECT value FROM arc_state WHERE key = 'seq'", [], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0);
        let next = carebridge_core::arc::frame::next_seq(u16::try_from(last).unwrap_or(0));
        self.conn.execute(
            "INSERT INTO arc_state (key, value) VALUES ('seq', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [i64::from(next)],
        )?;
        Ok(next)
    }

    /// Gives queued row `seq` its DC-09 sequence number, durably.
    pub fn assign(&self, seq: u64, dc09: u16) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE arc_queue SET dc09_seq = ?2 WHERE seq = ?1",
            params![i64::try_from(seq).unwrap_or(i64::MAX), i64::from(dc09)],
        )?;
        Ok(())
    }

    /// The ARC acknowledged row `seq` at `now`: delete it and record the
    /// delivery (`via = 'arc'` when no path delivered it before).
    pub fn delivered(&mut self, q: &Queued, now: Time) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        let seq = i64::try_from(q.seq).unwrap_or(i64::MAX);
        tx.execute("DELETE FROM arc_queue WHERE seq = ?1", [seq])?;
        crate::store::delivery::upsert(&tx, q.seq, &q.id, crate::store::Via::Arc, q.at, now)?;
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ('delivered.arc', 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
            [],
        )?;
        tx.commit()
    }

    /// Drops row `seq` without delivery (not for the ARC, or refused for good).
    pub fn drop_row(&self, seq: u64) -> rusqlite::Result<()> {
        self.conn.execute(
            "DELETE FROM arc_queue WHERE seq = ?1",
            [i64::try_from(seq).unwrap_or(i64::MAX)],
        )?;
        Ok(())
    }

    /// The zone of `device`: at its first event, the lowest number (1–999)
    /// neither given to another device nor `reserved` (the zones
    /// `[arc.zones]` names: two devices must never share a zone at the ARC).
    pub fn zone(&self, device: &str, reserved: &[u16]) -> rusqlite::Result<u16> {
        let clamp = |z: i64| u16::try_from(z.clamp(0, 999)).unwrap_or(999);
        let known = self
            .conn
            .query_row(
                "SELECT zone FROM arc_zone WHERE device = ?1",
                [device],
                |r| r.get::<_, i64>(0),
            )
            .optional()?;
        if let Some(z) = known {
            return Ok(clamp(z));
        }
        let mut stmt = self.conn.prepare_cached("SELECT zone FROM arc_zone")?;
        let used = stmt
            .query_map([], |r| r.get::<_, i64>(0))?
            .collect::<rusqlite::Result<std::collections::HashSet<i64>>>()?;
        let free = (1..=999u16)
            .find(|z| !used.contains(&i64::from(*z)) && !reserved.contains(z))
            .unwrap_or(999);
        self.conn.execute(
            "INSERT OR IGNORE INTO arc_zone (zone, device) VALUES (?1, ?2)",
            params![i64::from(free), device],
        )?;
        Ok(free)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Alert, AlertState, Class, DeviceId, Kind, Severity};
    use crate::store::{Store, StoreConfig, Via, Write};

    fn alert(rule: &str, at: i64) -> Alert {
        Alert {
            uid: None,
            rule: Arc::from(rule),
            severity: Severity::Urgent,
            state: AlertState::Raised,
            device: DeviceId::new("hall-panic").unwrap(),
            room: None,
            at: Time::from_millis(at),
            message: "pressed".into(),
            value: Some(1.0),
            kind: Some(Kind::Panic),
            time_trusted: true,
            instance: None,
        }
    }

    #[tokio::test]
    async fn alerts_are_captured_only_while_capture_is_on_and_survive_the_mqtt_ack() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("carebridge.db");
        let s = Store::open(&path, &StoreConfig::default()).unwrap();
        s.submit(Write::Alert(Box::new(alert("before", 1))))
            .await
            .unwrap();
        s.submit(Write::Kv(CAPTURE_KEY.into(), Some(b"1".to_vec())))
            .await
            .unwrap();
        s.submit(Write::Alert(Box::new(alert("panic", 2))))
            .await
            .unwrap();
        s.flush().await.unwrap();
        // MQTT acknowledges both: the outbox rows go, the ARC's copy stays.
        s.submit(Write::Delivered {
            via: Via::Mqtt,
            rows: vec![(Class::Alert, 1), (Class::Alert, 2)],
        })
        .await
        .unwrap();
        s.flush().await.unwrap();
        assert!(
            s.outbox_fetch(Class::Alert, 0, 10)
                .await
                .unwrap()
                .is_empty()
        );

        let mut q = Queue::open(&path, Duration::from_secs(5)).unwrap();
        let p = q.pending().unwrap();
        assert_eq!(p.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2]);
        assert!(
            std::str::from_utf8(&p[0].payload)
                .unwrap()
                .contains("\"rule\":\"panic\"")
        );
        // Sequence numbers are persistent and given before the first send.
        let n = q.next_seq().unwrap();
        q.assign(2, n).unwrap();
        assert_eq!(q.pending().unwrap()[0].dc09_seq, Some(n));
        assert_eq!(q.next_seq().unwrap(), n + 1);
        // Zones: first come, kept.
        assert_eq!(
            (
                q.zone("a", &[]).unwrap(),
                q.zone("b", &[]).unwrap(),
                q.zone("a", &[]).unwrap()
            ),
            (1, 2, 1)
        );
        // A zone `[arc.zones]` gives another device is never handed out.
        assert_eq!(q.zone("c", &[3, 4]).unwrap(), 5);
        assert_eq!(q.zone("d", &[3, 4]).unwrap(), 6);
        // The ARC's ACK (a second later) deletes it; MQTT was first, so the
        // alert's record (the earliest delivery) stays mqtt.
        let later = Time::from_millis(crate::wall::now().as_millis() + 1_000);
        q.delivered(&p[0], later).unwrap();
        assert!(q.pending().unwrap().is_empty());
        let via: String = q
            .conn
            .query_row("SELECT via FROM deliveries WHERE seq = 2", [], |r| r.get(0))
            .unwrap();
        assert_eq!(via, "mqtt");

        // Capture off: new alerts are not queued for the ARC.
        s.submit(Write::Kv(CAPTURE_KEY.into(), None)).await.unwrap();
        s.submit(Write::Alert(Box::new(alert("after", 4))))
            .await
            .unwrap();
        s.flush().await.unwrap();
        assert!(q.pending().unwrap().is_empty());
        s.close().await.unwrap();
    }
}
