//! `[store]`: the database's limits, retention and start-up check.
//!
//! Keys, defaults and validation; the part that uses it lives in the
//! shell crate.

use super::{Dur, Problem};
use serde::{Deserialize, Serialize};

/// `[store]`: the database's limits and retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Days of reading history kept for the UI and the routine rules.
    pub history_days: u32,
    /// Outbox size cap in MiB: above it the oldest telemetry is evicted
    /// (alerts are never evicted).
    pub outbox_max_mb: u64,
    /// Most writes applied in one transaction (one fsync) by group commit.
    pub batch_max: usize,
    /// Writes that may wait for the writer before `submit` pushes back.
    pub queue_capacity: usize,
    /// How long writes nobody waits for (readings without a PUBACK to send:
    /// Zigbee, serial, QoS 0; acknowledgements of telemetry; the rules'
    /// periodic state) may wait to be committed together, so a quiet home
    /// writes one transaction per this interval instead of one per reading
    /// (SD-card wear); a power cut loses at most this much of them. Alerts,
    /// a reading whose device waits for its PUBACK, status, registry
    /// changes and flushes commit at once and take the waiting writes
    /// along; 64 waiting writes commit at once; a web page that reads the
    /// history or the registry commits them first. Default `60s` (a home
    /// of 20 sensors reporting once a minute then writes ~2 KB per reading;
    /// see the README's measured figures); `0s` turns grouping off.
    pub commit_delay: Dur,
    /// How often the writer deletes expired history (in small chunks).
    pub retention_interval: Dur,
    /// How long a connection waits for a lock before failing.
    pub busy_timeout: Dur,
    /// KiB of disk kept in a ballast file (`<db>.reserve`) and given back
    /// when the disk fills, so the store can still checkpoint and evict
    /// telemetry to make room for alerts. Also bounds the WAL (half of it).
    pub disk_reserve_kb: u64,
    /// Check run by `Store::open`: `quick` (default; reads the whole file,
    /// about 0.7 s per 150 MB here), `full` (`integrity_check`, slower) or
    /// `off` (corruption then surfaces on first access).
    pub startup_check: StartupCheck,
}

/// Which SQLite consistency check `Store::open` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StartupCheck {
    #[default]
    Quick,
    Full,
    Off,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history_days: 30,
            outbox_max_mb: 256,
            batch_max: 1024,
            queue_capacity: 8192,
            commit_delay: Dur::secs(60),
            retention_interval: Dur::mins(10),
            busy_timeout: Dur::secs(5),
            disk_reserve_kb: 8192,
            startup_check: StartupCheck::Quick,
        }
    }
}

impl StoreConfig {
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.history_days == 0 || self.history_days > 3650 {
            out.push(Problem::new("history_days", "must be between 1 and 3650"));
        }
        if self.outbox_max_mb == 0 || self.outbox_max_mb > 1 << 20 {
            out.push(Problem::new(
                "outbox_max_mb",
                "must be between 1 and 1048576",
            ));
        }
        if self.batch_max == 0 || self.batch_max > 100_000 {
            out.push(Problem::new("batch_max", "must be between 1 and 100000"));
        }
        if self.commit_delay.0 > std::time::Duration::from_secs(300) {
            out.push(Problem::new("commit_delay", "must be at most 5m"));
        }
        if self.queue_capacity == 0 || self.queue_capacity > 1_000_000 {
            out.push(Problem::new(
                "queue_capacity",
                "must be between 1 and 1000000",
            ));
        }
        if self.retention_interval.0 < std::time::Duration::from_secs(1) {
            out.push(Problem::new("retention_interval", "must be at least 1s"));
        }
        if !(128..=1 << 20).contains(&self.disk_reserve_kb) {
            out.push(Problem::new(
                "disk_reserve_kb",
                "must be between 128 and 1048576",
            ));
        }
        if self.busy_timeout.0 > std::time::Duration::from_secs(600) {
            out.push(Problem::new("busy_timeout", "must be at most 10m"));
        }
        out
    }
}
