//! History retention: expired readings deleted in small chunks between
//! commits (`history_days`), each in its own short transaction, so a year
//! of expired rows never holds up an alert's commit.

use std::time::{Duration, Instant};

use rusqlite::params;

use super::Writer;
use crate::store::schema;

/// Rows deleted per retention transaction.
pub(super) const RETENTION_CHUNK: i64 = 2000;

impl Writer {
    pub(super) fn retention_wait(&self) -> Duration {
        if self.retention_more {
            Duration::ZERO
        } else {
            self.next_retention
                .saturating_duration_since(Instant::now())
        }
    }

    /// Deletes one chunk of expired history in its own small transaction.
    pub(super) fn retention(&mut self) {
        let keep_ms = i64::from(self.cfg.history_days) * 86_400_000;
        let cutoff = crate::wall::now().as_millis().saturating_sub(keep_ms);
        let r = self.conn.execute(
            "DELETE FROM history WHERE t IN (SELECT t FROM history WHERE t < ?1 ORDER BY t LIMIT ?2)",
            params![schema::history_key(cutoff), RETENTION_CHUNK],
        );
        match r {
            Ok(n) => {
                self.s.history_expired += n as u64;
                self.retention_more = n as i64 == RETENTION_CHUNK;
                if n > 0 {
                    self.publish();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "history retention failed; will retry");
                self.retention_more = false;
            }
        }
        if !self.retention_more {
            self.next_retention = Instant::now() + self.cfg.retention_interval.0;
            if self.s.error.is_none() && self.episode.is_none() {
                let _ = self.reserve.ensure();
                self.set_page_budget();
            }
        }
    }
}
