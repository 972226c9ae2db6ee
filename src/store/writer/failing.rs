//! The writer while a batch keeps failing: waiting between retries (and
//! still taking messages while readings are shed), handing alerts over to
//! the uplinks (`held`), shedding readings, abandoning a batch at shutdown.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{HOLD_MAX, Op, Writer};
use crate::model::Class;
use crate::store::outbox;
use crate::store::{Msg, OutboxRow, StoreError};

impl Writer {
    /// Sleeps between retries of a failing batch, ending early when the
    /// store is closing; while readings are shed, keeps taking messages so
    /// producers (and an alert behind their readings) never block.
    pub(super) fn wait(
        &mut self,
        rt: &tokio::runtime::Runtime,
        d: Duration,
        rx: &mut mpsc::Receiver<Msg>,
        ops: &mut Vec<Op>,
        flushes: &mut Vec<oneshot::Sender<()>>,
        close: &mut Option<oneshot::Sender<Result<(), StoreError>>>,
    ) {
        let until = Instant::now() + d;
        let mut msgs = Vec::new();
        while Instant::now() < until && !self.closing.load(Ordering::Relaxed) {
            if self.shedding && ops.len() < HOLD_MAX && !rx.is_empty() {
                rt.block_on(rx.recv_many(&mut msgs, HOLD_MAX - ops.len()));
                let before = ops.len();
                for m in msgs.drain(..) {
                    self.take(m, ops, flushes, close, true);
                }
                if ops.len() > before {
                    self.hold(ops);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Gives up a failing batch at shutdown: the transaction was rolled
    /// back whole, so nothing of it is in the file; devices re-send what
    /// was not acknowledged, the rules re-raise from their saved state.
    pub(super) fn abandon(
        &mut self,
        ops: &[Op],
        close: Option<oneshot::Sender<Result<(), StoreError>>>,
    ) {
        let alerts = ops.iter().filter(|o| matches!(o, Op::Alert(..))).count();
        tracing::error!(
            pending = ops.len(),
            alerts,
            "store closing with uncommitted writes: batch abandoned (nothing of it was written)"
        );
        if let Some(c) = close {
            let _ = c.send(Err(StoreError::Abandoned { pending: ops.len() }));
        }
    }

    /// After a successful commit: the held rows are in the table now.
    pub(super) fn recovered(&mut self) {
        if self.shedding {
            tracing::info!(
                shed = self.s.readings_shed,
                "disk space again: readings are stored again"
            );
            self.shedding = false;
        }
        if self.s.held_alerts > 0 || self.held.len(Class::Status) > 0 {
            self.held.clear();
            self.s.held_alerts = 0;
            self.publish();
        }
    }

    /// Drops the readings of a batch that cannot fit (counted).
    pub(super) fn shed(&mut self, ops: &mut Vec<Op>) {
        let before = ops.len();
        ops.retain(|o| !matches!(o, Op::Reading(..)));
        self.count_shed((before - ops.len()) as u64);
    }

    pub(super) fn count_shed(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.s.readings_shed += n;
        if let Some(ep) = &mut self.episode {
            ep.evicted.readings_shed += n;
        }
    }

    /// Publishes the alerts and newest status of a failing batch as the
    /// outbox rows they will become (see `held`), waking the uplinks.
    pub(super) fn hold(&mut self, ops: &[Op]) {
        let mut rows = Vec::new();
        let mut next = [
            self.outbox.class(Class::Alert).next_seq,
            self.outbox.class(Class::Status).next_seq,
        ];
        for op in ops {
            let (class, id, at, payload) = match op {
                Op::Alert(a, id, at) => {
                    (Class::Alert, id, at, outbox::alert_payload(id, next[0], a))
                }
                Op::Status(m, id, at) => (
                    Class::Status,
                    id,
                    at,
                    outbox::status_payload(id, next[1], m),
                ),
                _ => continue,
            };
            let i = usize::from(class == Class::Status);
            if let Ok(payload) = payload {
                rows.push(OutboxRow {
                    class,
                    seq: next[i],
                    id: id.clone(),
                    at: *at,
                    payload,
                });
            }
            next[i] += 1;
        }
        let alerts = rows.iter().filter(|r| r.class == Class::Alert).count();
        if self.held.replace(rows) {
            self.changed.send_modify(|v| *v += 1);
        }
        self.s.held_alerts = alerts;
        self.publish();
    }

    /// While the reserve is missing (a small or full disk), checkpoint the
    /// WAL to nothing at most once a second, so it never holds pages the
    /// main file would have to grow for on a full disk.
    pub(super) fn keep_wal_small(&mut self) {
        if self.reserve.present() || self.last_checkpoint.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_checkpoint = Instant::now();
        self.checkpoint();
        if self.episode.is_none() {
            let _ = self.reserve.ensure();
        }
    }
}
