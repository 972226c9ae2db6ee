//! The hand-over of alerts (and the newest status document) that the writer
//! holds in memory because the disk refuses them.
//!
//! While commits fail, the writer keeps the failing batch and publishes here
//! each alert and the newest status of it as the outbox row it WILL become:
//! same `id`, the `seq` it gets when the held batch commits as held (the
//! writer keeps held alerts first and in order, so the prediction holds),
//! the exact payload. [`super::Store::outbox_fetch`] serves these rows after
//! the committed ones, so every uplink (MQTT, LoRaWAN) delivers a raised
//! alert even when it cannot be written. An acknowledgement of a held row
//! reaches the writer after the alert in its batch, so both commit in the
//! same transaction (the row is then deleted at once, its delivery recorded).
//!
//! Invariants: only `Alert` and `Status` rows are held; the list is replaced
//! whole by the writer (after a failed commit) and emptied after the commit
//! that wrote them; a row seen both here and in the table is the same row
//! (same class and seq), and readers prefer the table's.

use std::sync::{Arc, Mutex};

use super::OutboxRow;
use crate::model::Class;

/// Rows the writer holds in memory, in class then seq order.
#[derive(Clone, Default)]
pub(crate) struct Held(Arc<Mutex<Vec<OutboxRow>>>);

impl Held {
    pub fn replace(&self, rows: Vec<OutboxRow>) -> bool {
        let mut g = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let changed = *g != rows;
        *g = rows;
        changed
    }

    pub fn clear(&self) {
        self.replace(Vec::new());
    }

    pub fn len(&self, class: Class) -> usize {
        self.with(|rows| rows.iter().filter(|r| r.class == class).count())
    }

    fn with<T>(&self, f: impl FnOnce(&Vec<OutboxRow>) -> T) -> T {
        match self.0.lock() {
            Ok(g) => f(&g),
            Err(p) => f(&p.into_inner()),
        }
    }

    /// Appends held rows of `class` after `after` (and after the last
    /// committed row already in `rows`), up to `limit` rows in all.
    pub fn merge_into(&self, class: Class, after: u64, limit: usize, rows: &mut Vec<OutboxRow>) {
        if rows.len() >= limit || !matches!(class, Class::Alert | Class::Status) {
            return;
        }
        let floor = rows.last().map_or(after, |r| r.seq.max(after));
        self.with(|held| {
            for r in held.iter().filter(|r| r.class == class && r.seq > floor) {
                if rows.len() >= limit {
                    break;
                }
                rows.push(r.clone());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Time;

    fn row(class: Class, seq: u64) -> OutboxRow {
        OutboxRow {
            class,
            seq,
            id: format!("id-{seq}"),
            at: Time::from_millis(0),
            payload: b"{}".to_vec(),
        }
    }

    #[test]
    fn held_rows_follow_the_committed_ones_without_repeating_a_seq() {
        let h = Held::default();
        h.replace(vec![row(Class::Alert, 3), row(Class::Alert, 4)]);
        let mut rows = vec![row(Class::Alert, 2), row(Class::Alert, 3)];
        h.merge_into(Class::Alert, 0, 10, &mut rows);
        let seqs: Vec<u64> = rows.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [2, 3, 4]);
    }

    #[test]
    fn held_rows_respect_the_cursor_the_limit_and_the_class() {
        let h = Held::default();
        h.replace(vec![row(Class::Alert, 5), row(Class::Alert, 6)]);
        let mut rows = Vec::new();
        h.merge_into(Class::Alert, 5, 10, &mut rows);
        assert_eq!(rows.len(), 1);
        let mut rows = Vec::new();
        h.merge_into(Class::Alert, 0, 1, &mut rows);
        assert_eq!(rows.len(), 1);
        let mut rows = Vec::new();
        h.merge_into(Class::Telemetry, 0, 10, &mut rows);
        assert!(rows.is_empty());
        assert_eq!(h.len(Class::Alert), 2);
        h.clear();
        assert_eq!(h.len(Class::Alert), 0);
    }
}
