//! The durable store (SQLite): device registry, reading history, outbox.
//! (Being built: see the store issue. Only the config section exists yet.)

use serde::{Deserialize, Serialize};

use crate::config::Problem;

/// `[store]`: the database's limits and retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Days of reading history kept for the UI and the routine rules.
    pub history_days: u32,
    /// Outbox size cap in MiB: above it the oldest telemetry is evicted
    /// (alerts are never evicted).
    pub outbox_max_mb: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history_days: 30,
            outbox_max_mb: 256,
        }
    }
}

impl StoreConfig {
    pub const DEFAULT_TOML: &'static str = r#"[store]
# Days of reading history kept (for the UI and routine learning).
history_days = 30
# Outbox cap in MiB; above it the oldest telemetry is evicted. Alerts never are.
outbox_max_mb = 256
"#;

    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.history_days == 0 || self.history_days > 3650 {
            out.push(Problem::new("history_days", "must be between 1 and 3650"));
        }
        if self.outbox_max_mb == 0 {
            out.push(Problem::new("outbox_max_mb", "must be at least 1"));
        }
        out
    }
}

// ---- TEMPORARY type-check shim: replaced by the real store when it lands ----
use crate::model::{Alert, Class, DeviceId, DeviceInfo, Reading, Time};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database is corrupt: {detail}")]
    Corrupt { detail: String },
    #[error("store closed")]
    Closed,
}

#[derive(Debug, Clone)]
pub struct Store;

impl StoreStats {
    pub fn backlog_rows(&self) -> u64 {
        0
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreStats {
    pub backlog: std::collections::BTreeMap<String, u64>,
    pub evicted: std::collections::BTreeMap<String, u64>,
}

pub enum Write {
    Reading(Reading),
    ReadingNoTelemetry(Reading),
    Alert(Alert),
    Status(serde_json::Map<String, serde_json::Value>),
    Ack(Vec<(Class, u64)>),
    Device(DeviceInfo),
    RemoveDevice(DeviceId),
    Kv(String, Option<Vec<u8>>),
}

pub struct OutboxRow {
    pub class: Class,
    pub seq: u64,
    pub id: String,
    pub at: Time,
    pub payload: Vec<u8>,
}

impl Store {
    pub fn open(_path: &Path, _cfg: &StoreConfig) -> Result<Store, StoreError> {
        Err(StoreError::Closed)
    }
    pub fn quarantine(path: &Path) -> Result<PathBuf, StoreError> {
        Ok(path.to_path_buf())
    }
    pub async fn submit(&self, _w: Write) -> Result<(), StoreError> {
        Err(StoreError::Closed)
    }
    pub fn outbox_changed(&self) -> tokio::sync::watch::Receiver<u64> {
        tokio::sync::watch::channel(0).1
    }
    pub async fn outbox_fetch(
        &self,
        _c: Class,
        _after: u64,
        _limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        Err(StoreError::Closed)
    }
    pub fn submit_blocking(&self, _w: Write) -> Result<(), StoreError> {
        Err(StoreError::Closed)
    }
    pub async fn devices(&self) -> Result<Vec<DeviceInfo>, StoreError> {
        Err(StoreError::Closed)
    }
    pub async fn device(&self, _id: &DeviceId) -> Result<Option<DeviceInfo>, StoreError> {
        Err(StoreError::Closed)
    }
    pub async fn history(
        &self,
        _since: Time,
        _until: Time,
        _limit: usize,
    ) -> Result<Vec<Reading>, StoreError> {
        Err(StoreError::Closed)
    }
    pub async fn kv_get(&self, _key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Err(StoreError::Closed)
    }
    pub async fn integrity_check(&self) -> Result<(), StoreError> {
        Err(StoreError::Closed)
    }
    pub async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    pub fn stats(&self) -> StoreStats {
        StoreStats::default()
    }
    pub async fn close(self) -> Result<(), StoreError> {
        Ok(())
    }
}
