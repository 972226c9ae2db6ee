//! Commit grouping: how long the writer waits for more writes before a
//! commit. Gathering (a busy writer polls a little longer for readings, so
//! one fsync covers more of them) and deferring (`commit_delay`: writes
//! nobody waits for wait up to the delay, so a home commits once a minute,
//! not once per reading), and when the gathered registry facts are due.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Writer;
use crate::model::Class;
use crate::store::{Msg, Write};

/// Longest extra wait for more readings after a wake-up (see `gather`).
const GATHER: Duration = Duration::from_millis(1);
const GATHER_POLL: Duration = Duration::from_micros(200);
/// Gathering happens only this soon after the previous commit.
const BUSY: Duration = Duration::from_millis(2);
/// A wake-up that found this many writes commits at once.
const GATHER_MIN: usize = 64;

impl Writer {
    pub(super) fn touches_wait(&self) -> Duration {
        self.touches.due().map_or(Duration::MAX, |d| {
            d.max(self.touches_retry)
                .saturating_duration_since(Instant::now())
        })
    }

    /// Group commit, gathering: while busy (the last commit ended less than
    /// [`BUSY`] ago), a wake-up that found only a few readings or uplink
    /// acknowledgements (nothing else) polls the queue a little longer, at
    /// most [`GATHER`], so one transaction and one fsync cover more of them
    /// when the hub and the writer share a CPU (in a 50 k alert burst the
    /// uplink's acknowledgements alone made 44 % of the fsyncs: 465 → 262,
    /// 1,981 → 1,646 bytes written an alert). Anything else (an alert, a
    /// flush) ends the wait at the next poll; an idle writer (a home's sporadic
    /// readings, a panic press) never waits. With `commit_delay` set and
    /// only writes nobody waits for taken, [`Writer::defer`] waits instead;
    /// a batch with an ack waiter (a front-door PUBACK) gathers as without
    /// the delay.
    pub(super) fn gather(
        &self,
        rt: &tokio::runtime::Runtime,
        rx: &mut mpsc::Receiver<Msg>,
        msgs: &mut Vec<Msg>,
        batch_max: usize,
    ) {
        if !self.cfg.commit_delay.0.is_zero() && msgs.iter().all(is_deferrable) {
            return self.defer(rt, rx, msgs, batch_max);
        }
        if self.last_commit.elapsed() > BUSY {
            return;
        }
        let until = Instant::now() + GATHER;
        let want = GATHER_MIN.min(batch_max);
        while msgs.len() < want && msgs.iter().all(keeps_gathering) && Instant::now() < until {
            std::thread::sleep(GATHER_POLL);
            while msgs.len() < batch_max && !rx.is_empty() {
                let room = batch_max - msgs.len();
                rt.block_on(rx.recv_many(msgs, room));
            }
        }
    }

    /// SD-card wear: while only readings, acknowledgements and saved rule
    /// state wait (none of them an alert), keep taking more for up to
    /// `commit_delay`, so a quiet home commits (and fsyncs WAL pages) once
    /// per delay rather than once per reading. Anything else (an alert, a
    /// status, a flush, a close) or [`GATHER_MIN`] waiting writes end the
    /// wait at once.
    fn defer(
        &self,
        rt: &tokio::runtime::Runtime,
        rx: &mut mpsc::Receiver<Msg>,
        msgs: &mut Vec<Msg>,
        batch_max: usize,
    ) {
        let until = Instant::now() + self.cfg.commit_delay.0;
        let want = GATHER_MIN.min(batch_max);
        while msgs.len() < want && msgs.iter().all(is_deferrable) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let room = batch_max - msgs.len();
            let got =
                rt.block_on(async { tokio::time::timeout(left, rx.recv_many(msgs, room)).await });
            match got {
                Ok(0) => return, // every handle gone: commit now
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }
}

/// A reading, the acknowledgement that follows one (the front door's
/// readings each come with one; it must not end the gathering), or an
/// uplink's acknowledgement of rows it delivered: while busy, a wake-up
/// that found only those waits for the readings behind them instead of
/// paying a commit and an fsync of its own (nobody waits for it; the
/// rows are already out).
fn keeps_gathering(m: &Msg) -> bool {
    matches!(
        m,
        Msg::Write(
            Write::Reading(_)
                | Write::ReadingNoTelemetry(_)
                | Write::Ack(_)
                | Write::Delivered { .. }
        ) | Msg::Ack(_)
    )
}

/// Writes whose commit may wait (`commit_delay`) because nobody waits for
/// them and a power cut costs only what a sensor reports again anyway:
/// readings without an ack waiter, acknowledgements of telemetry and status
/// rows (an unrecorded one means a duplicate upstream, de-duplicated by
/// id), and lazy kv values (the rules' periodic progress). Never an alert,
/// an alert's acknowledgement, another module's kv value (a LoRaWAN device
/// index must not be handed out twice), a registry change, a flush or an
/// ack waiter.
fn is_deferrable(m: &Msg) -> bool {
    match m {
        Msg::Clock(_) | Msg::Write(Write::Reading(_) | Write::ReadingNoTelemetry(_)) => true,
        Msg::Write(Write::State(st)) => st.lazy,
        Msg::Write(Write::Ack(rows) | Write::Delivered { rows, .. }) => {
            rows.iter().all(|(c, _)| *c != Class::Alert)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::delivery::Via;

    #[test]
    fn uplink_acknowledgements_keep_gathering_and_anything_urgent_ends_it() {
        let gathers = [
            Msg::Write(Write::Ack(vec![(Class::Telemetry, 7)])),
            Msg::Write(Write::Ack(vec![(Class::Alert, 3)])),
            Msg::Write(Write::Delivered {
                via: Via::Mqtt,
                rows: vec![(Class::Alert, 3), (Class::Alert, 4)],
            }),
        ];
        for (i, m) in gathers.iter().enumerate() {
            assert!(
                keeps_gathering(m),
                "gathers[{i}] should not end the gathering"
            );
        }
        let (tx, _rx) = tokio::sync::oneshot::channel();
        let ends = [
            Msg::Flush(tx),
            Msg::Write(Write::Status(serde_json::Map::new())),
            Msg::Write(Write::Kv("k".into(), Some(vec![1]))),
            Msg::Write(Write::WipeHistory),
        ];
        for (i, m) in ends.iter().enumerate() {
            assert!(!keeps_gathering(m), "ends[{i}] must end the gathering");
        }
        // An alert's acknowledgement still commits at once when the writer
        // is idle (`commit_delay` never defers it).
        assert!(!is_deferrable(&gathers[2]));
        assert!(is_deferrable(&gathers[0]));
    }
}
