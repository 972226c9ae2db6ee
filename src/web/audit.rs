//! The audit log: who changed what, when. Every configuration change and
//! every acknowledgement made through the UI is appended here and logged.
//!
//! Invariant: the log is bounded to [`AUDIT_MAX`] newest entries and is
//! persisted (one JSON document under the `web/audit` key) before the
//! change is reported as done.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::model::Time;

/// Entries kept (oldest dropped first).
pub const AUDIT_MAX: usize = 1000;

/// One audited action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub at: Time,
    /// The account that did it (`"-"` for the system itself).
    pub user: String,
    /// A short verb, e.g. `device.update`, `user.create`, `alert.ack`.
    pub action: String,
    /// What exactly (names the object and the new values).
    pub detail: String,
}

/// The in-memory log, newest last.
#[derive(Debug, Default)]
pub struct AuditLog {
    entries: VecDeque<Entry>,
}

impl AuditLog {
    pub fn from_json(bytes: &[u8]) -> AuditLog {
        let entries: VecDeque<Entry> = serde_json::from_slice(bytes).unwrap_or_default();
        AuditLog { entries }
    }

    pub fn push(&mut self, e: Entry) {
        // The detail can hold device names and rooms (personal data): debug only.
        tracing::info!(target: "carebridge::audit", user = %e.user, action = %e.action, "audit");
        tracing::debug!(target: "carebridge::audit", detail = %e.detail, "audit detail");
        self.entries.push_back(e);
        while self.entries.len() > AUDIT_MAX {
            self.entries.pop_front();
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.entries).unwrap_or_default()
    }

    /// Newest first, at most `limit`.
    pub fn recent(&self, limit: usize) -> Vec<Entry> {
        self.entries.iter().rev().take(limit).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(i: usize) -> Entry {
        Entry {
            at: Time(i as i64),
            user: "ann".into(),
            action: "device.update".into(),
            detail: format!("#{i}"),
        }
    }

    #[test]
    fn log_is_bounded_and_lists_newest_first() {
        let mut log = AuditLog::default();
        for i in 0..AUDIT_MAX + 5 {
            log.push(e(i));
        }
        assert_eq!(log.len(), AUDIT_MAX);
        let r = log.recent(2);
        assert_eq!(r[0].detail, format!("#{}", AUDIT_MAX + 4));
        assert_eq!(r[1].detail, format!("#{}", AUDIT_MAX + 3));
    }

    #[test]
    fn log_round_trips_through_json_and_survives_garbage() {
        let mut log = AuditLog::default();
        log.push(e(1));
        let back = AuditLog::from_json(&log.to_json());
        assert_eq!(back.recent(10), log.recent(10));
        assert!(AuditLog::from_json(b"{not json").is_empty());
    }
}
