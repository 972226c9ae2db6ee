//! Registry facts gathered from readings (`devices.last_seen`, and
//! `devices.battery` from battery readings), kept in memory and written at
//! most once per device per [`FLUSH_EVERY`], or per [`GROUPED_EVERY`] with
//! commit grouping (`[store] commit_delay`), or sooner once facts of
//! [`MAX_GATHERED`] devices wait (bounded memory under a burst).
//!
//! Why: a busy site interleaves the readings of hundreds of devices, so a
//! batch of readings named nearly as many devices as it had readings, and
//! the per-batch upsert cost about one `devices` row write per reading. At
//! a home's rate (commits grouped every `commit_delay`) the `devices` page
//! was one of the ~8 pages every commit wrote to the SD card; written every
//! [`GROUPED_EVERY`] it is one in ten.
//!
//! Invariants:
//! - the facts are written inside one of the writer's transactions, and
//!   forgotten only after that transaction committed (a rolled-back batch
//!   is re-applied, and re-adding its readings is idempotent: the latest
//!   `at` wins, the battery of the last battery reading wins);
//! - they are written before any registry write (`Device`, `RemoveDevice`)
//!   in the same transaction, so an explicit registry value still wins over
//!   an older gathered one;
//! - a flush (`Store::flush`), close, or the last handle going away writes
//!   them, so "flushed" still means `last_seen` is visible to readers; in
//!   between, readers may see `last_seen` up to the interval old (the
//!   history rows themselves are committed with their batch as before; the
//!   web UI flushes before it reads the registry, and the rules keep their
//!   own last-seen times in their saved state). A power cut loses at most
//!   the interval's `last_seen` updates, never a reading.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use crate::model::{DeviceId, Kind, Reading, Time};

/// The longest `devices.last_seen` lags behind committed history.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The same with commit grouping on (SD-card wear at a home's rate).
pub(crate) const GROUPED_EVERY: Duration = Duration::from_secs(300);

/// Devices gathered before the facts are due whatever their age: a burst
/// from tens of thousands of distinct devices (a care site's Wi-Fi hub
/// replaying its queue) would otherwise hold a second's worth of them —
/// 2.7 MB at 35 k new devices a second. Bounded to ~300 KB; the price, only
/// where more than this many devices report within one interval, is that
/// a device may be written more than once per interval.
pub(crate) const MAX_GATHERED: usize = 4096;

#[derive(Clone, Debug)]
pub(crate) struct Touches {
    map: HashMap<DeviceId, (Time, Option<f64>)>,
    /// When the oldest unwritten fact was gathered.
    since: Option<Instant>,
    /// How long gathered facts may wait.
    every: Duration,
}

impl Default for Touches {
    fn default() -> Self {
        Touches::every(FLUSH_EVERY)
    }
}

impl Touches {
    /// Facts written at most once per `every` (unless [`MAX_GATHERED`]
    /// devices wait).
    pub fn every(every: Duration) -> Touches {
        Touches {
            map: HashMap::new(),
            since: None,
            every,
        }
    }

    /// The interval for a writer with this `commit_delay`.
    pub fn interval(commit_delay: Duration) -> Duration {
        if commit_delay.is_zero() {
            FLUSH_EVERY
        } else {
            GROUPED_EVERY.max(commit_delay)
        }
    }

    pub fn add(&mut self, r: &Reading, now: Instant) {
        let battery = (r.kind == Kind::Battery).then_some(r.value);
        let e = self.map.entry(r.device.clone()).or_insert((r.at, None));
        e.0 = e.0.max(r.at);
        if battery.is_some() {
            e.1 = battery;
        }
        self.since.get_or_insert(now);
    }

    /// When the gathered facts must be written (`None`: nothing pending).
    pub fn due(&self) -> Option<Instant> {
        self.since.map(|s| s + self.every)
    }

    pub fn is_due(&self, now: Instant) -> bool {
        self.map.len() >= MAX_GATHERED || self.due().is_some_and(|d| now >= d)
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Writes every gathered fact (inside the caller's transaction); call
    /// [`Touches::clear`] once that transaction committed.
    pub fn write(&self, conn: &Connection) -> rusqlite::Result<()> {
        if self.map.is_empty() {
            return Ok(());
        }
        // UPDATE by key, INSERT only for a device not yet known: an upsert
        // opens SQLite's statement journal at every run (a copy of each
        // table and index page it writes; see `stmts::update_or_insert`).
        // Which of the two to try first follows the last device's outcome:
        // a burst from devices never seen before (a care site's hub
        // replaying its queue) inserts nearly every row, and an UPDATE
        // that misses first would search the registry twice per device;
        // at a home's rate every device is known and the UPDATE hits.
        let mut update = conn.prepare_cached(
            "UPDATE devices SET last_seen = max(coalesce(last_seen, ?2), ?2), \
             battery = coalesce(?3, battery) WHERE id = ?1",
        )?;
        let mut insert = conn.prepare_cached(
            "INSERT OR IGNORE INTO devices (id, last_seen, battery) VALUES (?1, ?2, ?3)",
        )?;
        // In id order: the `devices` rows take the keys in order, filling
        // their pages instead of splitting pages all over the table in the
        // map's hash order.
        let mut facts: Vec<_> = self.map.iter().collect();
        facts.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let mut expect_new = false;
        for (id, (at, battery)) in facts {
            let values = params![id.as_str(), at.as_millis(), battery];
            if expect_new {
                if insert.execute(values)? == 0 {
                    update.execute(values)?;
                    expect_new = false;
                }
            } else if update.execute(values)? == 0 {
                insert.execute(values)?;
                expect_new = true;
            }
        }
        Ok(())
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(d: &str, kind: Kind, value: f64, at: i64) -> Reading {
        Reading::new(DeviceId::new(d).unwrap(), kind, value, Time(at)).unwrap()
    }

    #[test]
    fn keeps_the_latest_time_and_last_battery_and_re_adding_changes_nothing() {
        let now = Instant::now();
        let mut t = Touches::default();
        let batch = [
            r("a", Kind::Battery, 80.0, 5),
            r("a", Kind::Motion, 1.0, 3),
            r("a", Kind::Battery, 70.0, 4),
        ];
        for x in &batch {
            t.add(x, now);
        }
        let once = t.map.clone();
        for x in &batch {
            t.add(x, now);
        }
        assert_eq!(t.map, once);
        assert_eq!(t.map[&DeviceId::new("a").unwrap()], (Time(5), Some(70.0)));
        assert_eq!(t.due(), Some(now + FLUSH_EVERY));
        assert!(!t.is_due(now) && t.is_due(now + FLUSH_EVERY));
        t.clear();
        assert!(t.is_empty() && t.due().is_none());
    }

    #[test]
    fn facts_of_many_devices_are_due_at_once() {
        let now = Instant::now();
        let mut t = Touches::every(GROUPED_EVERY);
        for n in 0..MAX_GATHERED - 1 {
            t.add(&r(&format!("d{n}"), Kind::Motion, 1.0, 3), now);
        }
        assert!(!t.is_due(now));
        t.add(&r("d0", Kind::Motion, 1.0, 4), now);
        assert!(!t.is_due(now), "a device already gathered adds nothing");
        t.add(&r("last", Kind::Motion, 1.0, 3), now);
        assert!(t.is_due(now));
    }

    #[test]
    fn with_commit_grouping_facts_wait_longer_than_any_commit_delay() {
        assert_eq!(Touches::interval(Duration::ZERO), FLUSH_EVERY);
        assert_eq!(Touches::interval(Duration::from_secs(30)), GROUPED_EVERY);
        let long = Duration::from_secs(600);
        assert_eq!(Touches::interval(long), long);
        let now = Instant::now();
        let mut t = Touches::every(GROUPED_EVERY);
        t.add(&r("a", Kind::Motion, 1.0, 3), now);
        assert!(!t.is_due(now + Duration::from_secs(30)));
        assert!(t.is_due(now + GROUPED_EVERY));
    }
}
