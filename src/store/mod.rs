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
