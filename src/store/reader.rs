//! The reader thread: owns a read-only connection and runs queries sent as
//! closures, answering over oneshot channels, so async callers await instead
//! of blocking the runtime. WAL lets it read a consistent snapshot while the
//! writer commits.
//!
//! Invariant: rows from outside (device ids, kind codes) are re-validated on
//! the way out; a row that no longer parses is skipped with a warning rather
//! than failing the whole query.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::{OutboxRow, Store, StoreError, schema};
use crate::model::{Class, DeviceId, DeviceInfo, Kind, Reading, Time};

type Job = Box<dyn FnOnce(&Connection) + Send>;

pub(crate) struct ReaderHandle {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for ReaderHandle {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("store reader thread panicked");
        }
    }
}

impl ReaderHandle {
    pub fn spawn(path: &Path, busy: Duration) -> Result<ReaderHandle, StoreError> {
        let conn = schema::open_reader(path, busy)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("store-reader".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&conn);
                }
            })
            .map_err(|source| StoreError::Io {
                path: PathBuf::from(path),
                source,
            })?;
        Ok(ReaderHandle {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.tx
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)
    }
}

fn fetch(
    conn: &Connection,
    class: Class,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut stmt = conn.prepare_cached(super::stmts::per_class(class, FETCH_SQL))?;
    let rows = stmt.query_map(params![i64::try_from(after_seq).unwrap_or(i64::MAX)], |r| {
        let seq = u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0);
        let id: String = r.get(1)?;
        let at = Time::from_millis(r.get(2)?);
        let stored: Vec<u8> = r.get(3)?;
        // Telemetry rows keep only the body (see `payload::telemetry_body`),
        // alert rows a compact body (see `alert_body`).
        let payload = match class {
            Class::Telemetry => super::payload::telemetry_doc(&id, seq, stored),
            Class::Alert => super::alert_body::alert_doc(&id, seq, at, stored),
            Class::Status => stored,
        };
        Ok(OutboxRow {
            class,
            seq,
            id,
            at,
            payload,
        })
    })?;
    // No `LIMIT ?`: the rows are stepped one by one, so taking `limit`
    // of them reads no more.
    Ok(rows.take(limit).collect::<Result<Vec<_>, _>>()?)
}

/// The uplink's read, one statement per class (see `stmts::per_class`).
pub(super) const FETCH_SQL: [&str; 3] = [
    "SELECT seq, id, at, payload FROM outbox WHERE class = 0 AND seq > ?1 ORDER BY seq",
    "SELECT seq, id, at, payload FROM outbox WHERE class = 1 AND seq > ?1 ORDER BY seq",
    "SELECT seq, id, at, payload FROM outbox WHERE class = 2 AND seq > ?1 ORDER BY seq",
];

const DEVICE_COLS: &str =
    "id, name, room, role, ieee, nwk, manufacturer, model, last_seen, battery, lqi";

fn device_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<DeviceInfo>> {
    let id: String = r.get(0)?;
    let Ok(id) = DeviceId::new(&id) else {
        tracing::warn!(id, "skipping device row with an invalid id");
        return Ok(None);
    };
    Ok(Some(DeviceInfo {
        id: Some(id),
        name: r.get(1)?,
        room: r.get(2)?,
        role: r.get(3)?,
        ieee: r.get(4)?,
        nwk: r
            .get::<_, Option<i64>>(5)?
            .and_then(|v| u16::try_from(v).ok()),
        manufacturer: r.get(6)?,
        model: r.get(7)?,
        last_seen: r.get::<_, Option<i64>>(8)?.map(Time::from_millis),
        battery: r.get(9)?,
        lqi: r
            .get::<_, Option<i64>>(10)?
            .and_then(|v| u8::try_from(v).ok()),
        checkin_s: None,
    }))
}

fn devices(conn: &Connection) -> Result<Vec<DeviceInfo>, StoreError> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {DEVICE_COLS} FROM devices ORDER BY id"))?;
    let rows = stmt.query_map([], device_row)?;
    let mut out = Vec::new();
    for r in rows {
        out.extend(r?);
    }
    Ok(out)
}

fn device(conn: &Connection, id: &str) -> Result<Option<DeviceInfo>, StoreError> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {DEVICE_COLS} FROM devices WHERE id = ?1"))?;
    let mut rows = stmt.query_map([id], device_row)?;
    match rows.next() {
        Some(r) => Ok(r?),
        None => Ok(None),
    }
}

fn history(
    conn: &Connection,
    since: Time,
    until: Time,
    limit: usize,
) -> Result<Vec<Reading>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT device, kind, value, at FROM history WHERE t >= ?4 AND t < ?5 \
         AND at >= ?1 AND at < ?2 ORDER BY t LIMIT ?3",
    )?;
    readings(
        &mut stmt,
        params![
            since.as_millis(),
            until.as_millis(),
            i64::try_from(limit).unwrap_or(i64::MAX),
            schema::history_key(since.as_millis()),
            schema::history_key(until.as_millis()),
        ],
    )
}

/// Each device's newest reading of each kind at or after `since` (one scan
/// of that time range; SQLite takes the bare columns from the row holding
/// the `MAX`).
fn latest_per_device(conn: &Connection, since: Time) -> Result<Vec<Reading>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT device, kind, value, MAX(at) FROM history WHERE t >= ?2 AND at >= ?1 GROUP BY device, kind",
    )?;
    readings(
        &mut stmt,
        params![since.as_millis(), schema::history_key(since.as_millis())],
    )
}

/// Rows of `(device, kind, value, at)` as readings; a row that no longer
/// parses (an unknown kind code) is skipped with a warning.
fn readings(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<Reading>, StoreError> {
    let rows = stmt.query_map(params, |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, f64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (dev, kind, value, at) = row?;
        let kind = u8::try_from(kind).ok().and_then(Kind::from_code);
        match (DeviceId::new(&dev), kind) {
            (Ok(device), Some(kind)) => out.push(Reading {
                device,
                kind,
                value,
                at: Time::from_millis(at),
            }),
            _ => tracing::warn!(dev, "skipping unreadable history row"),
        }
    }
    Ok(out)
}

fn history_of(
    conn: &Connection,
    device: &DeviceId,
    since: Time,
    until: Time,
    limit: usize,
) -> Result<Vec<Reading>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT kind, value, at FROM history WHERE t >= ?5 AND t < ?6 \
         AND device = ?1 AND at >= ?2 AND at < ?3 ORDER BY t LIMIT ?4",
    )?;
    let rows = stmt.query_map(
        params![
            device.as_str(),
            since.as_millis(),
            until.as_millis(),
            i64::try_from(limit).unwrap_or(i64::MAX),
            schema::history_key(since.as_millis()),
            schema::history_key(until.as_millis()),
        ],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, f64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (kind, value, at) = row?;
        match u8::try_from(kind).ok().and_then(Kind::from_code) {
            Some(kind) => out.push(Reading {
                device: device.clone(),
                kind,
                value,
                at: Time::from_millis(at),
            }),
            None => tracing::warn!(kind, "skipping history row of unknown kind"),
        }
    }
    Ok(out)
}

fn kv_get(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT value FROM kv WHERE key = ?1")?;
    let mut rows = stmt.query_map([key], |r| r.get::<_, Vec<u8>>(0))?;
    match rows.next() {
        Some(v) => Ok(Some(v?)),
        None => Ok(None),
    }
}

fn kv_scan(conn: &Connection, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    // kv is small (other modules' state): a scan is fine and avoids
    // computing a range end for arbitrary UTF-8 prefixes.
    let mut stmt = conn.prepare_cached(
        "SELECT key, value FROM kv WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
    )?;
    let rows = stmt.query_map([prefix], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn rule_journal(conn: &Connection) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT delta FROM rules_journal ORDER BY seq")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

impl Store {
    /// Runs `f` on the reader connection and awaits its answer.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.reader()?.send(Box::new(move |c| {
            let _ = tx.send(f(c));
        }))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// As `read`, for plain threads.
    fn read_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.reader()?.send(Box::new(move |c| {
            let _ = tx.send(f(c));
        }))?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Committed rows of `class` with `seq > after_seq`, ascending, at most
    /// `limit`, then the alerts (or status) held in memory while the disk
    /// refuses them (same `id`, the `seq` they will be written with).
    pub async fn outbox_fetch(
        &self,
        class: Class,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let mut rows = self
            .read(move |c| fetch(c, class, after_seq, limit))
            .await?;
        // Alerts the disk refused travel anyway (see `held`).
        self.inner
            .held
            .merge_into(class, after_seq, limit, &mut rows);
        Ok(rows)
    }

    /// As [`Store::outbox_fetch`], for plain threads.
    pub fn outbox_fetch_blocking(
        &self,
        class: Class,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let mut rows = self.read_blocking(move |c| fetch(c, class, after_seq, limit))?;
        self.inner
            .held
            .merge_into(class, after_seq, limit, &mut rows);
        Ok(rows)
    }

    /// The `limit` most recent alert deliveries and their paths, most recent first.
    pub async fn alert_deliveries(
        &self,
        limit: usize,
    ) -> Result<Vec<super::AlertDelivery>, StoreError> {
        self.read(move |c| Ok(super::delivery::recent(c, limit)?))
            .await
    }

    /// The delivery records of the alerts with these UUIDs (delivered ones
    /// still kept; an alert not listed is still waiting, or aged out).
    pub async fn alert_deliveries_of(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<super::AlertDelivery>, StoreError> {
        self.read(move |c| Ok(super::delivery::of_ids(c, &ids)?))
            .await
    }

    /// Every registered device, by id.
    pub async fn devices(&self) -> Result<Vec<DeviceInfo>, StoreError> {
        self.read(devices).await
    }

    pub async fn device(&self, id: &DeviceId) -> Result<Option<DeviceInfo>, StoreError> {
        let id = id.clone();
        self.read(move |c| device(c, id.as_str())).await
    }

    /// Readings with `since <= at < until`, oldest first, at most `limit`.
    pub async fn history(
        &self,
        since: Time,
        until: Time,
        limit: usize,
    ) -> Result<Vec<Reading>, StoreError> {
        self.read(move |c| history(c, since, until, limit)).await
    }

    /// Each device's newest reading since `since` (the commissioning report).
    pub async fn latest_per_device(&self, since: Time) -> Result<Vec<Reading>, StoreError> {
        self.read(move |c| latest_per_device(c, since)).await
    }

    /// One device's readings with `since <= at < until`, oldest first.
    pub async fn history_of(
        &self,
        device: &DeviceId,
        since: Time,
        until: Time,
        limit: usize,
    ) -> Result<Vec<Reading>, StoreError> {
        let device = device.clone();
        self.read(move |c| history_of(c, &device, since, until, limit))
            .await
    }

    pub async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.read(move |c| kv_get(c, &key)).await
    }

    /// Every `(key, value)` whose key starts with `prefix`, by key.
    pub async fn kv_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let prefix = prefix.to_owned();
        self.read(move |c| kv_scan(c, &prefix)).await
    }

    /// The rule engine's deltas since its last full snapshot, in order
    /// (see [`super::StateWrite`]).
    pub async fn rule_journal(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.read(rule_journal).await
    }

    /// Full `PRAGMA integrity_check` (slow on big files; start-up runs the quick one).
    pub async fn integrity_check(&self) -> Result<(), StoreError> {
        let path = self.inner.path.clone();
        self.read(move |c| schema::check(c, &path, "integrity_check"))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{db, reading};
    use crate::model::{Kind, Time};
    use crate::store::{Store, StoreConfig, Write};

    #[tokio::test]
    async fn latest_per_device_is_each_devices_newest_reading_however_busy_the_others_are() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
        // A chatty thermometer and a door that spoke once, early, and once late.
        s.submit(Write::Reading(reading("door", Kind::Contact, 1.0, 1_000)))
            .await
            .unwrap();
        for i in 0..30_000 {
            let r = reading(
                "temp",
                Kind::Temperature,
                f64::from(i % 30),
                2_000 + i64::from(i),
            );
            s.submit(Write::ReadingNoTelemetry(r)).await.unwrap();
        }
        s.submit(Write::Reading(reading("door", Kind::Contact, 0.0, 40_000)))
            .await
            .unwrap();
        s.flush().await.unwrap();
        let mut got = s.latest_per_device(Time(0)).await.unwrap();
        got.sort_by(|a, b| a.device.cmp(&b.device));
        let seen: Vec<(&str, f64, i64)> = got
            .iter()
            .map(|r| (r.device.as_str(), r.value, r.at.as_millis()))
            .collect();
        assert_eq!(seen, vec![("door", 0.0, 40_000), ("temp", 29.0, 31_999)]);
        // Only the window asked for.
        assert!(s.latest_per_device(Time(50_000)).await.unwrap().is_empty());
        s.close().await.unwrap();
    }
}
