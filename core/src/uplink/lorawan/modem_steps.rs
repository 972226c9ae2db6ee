//! The driver's step transitions: a command answered (next command or the
//! op's end), set-up finished or refused, a command refused by the modem.
//! Split from `modem.rs` for size; the same `Driver`, see its invariants.

use std::collections::VecDeque;
use std::time::Duration;

use super::super::at::AtError;
use super::{Driver, ModemEvent, Op};
use crate::model::Time;

impl Driver {
    /// The current step answered; run the next command of the op or finish it.
    pub(super) fn step_done(&mut self, now: Time) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        if let Some(next) = c.rest.pop_front() {
            c.cmd = next.clone();
            c.deadline = now.saturating_add(self.t.command);
            c.retries = 0;
            c.damaged = false;
            self.out.push_back(next);
            return;
        }
        let Some(c) = self.current.take() else {
            return;
        };
        match c.op {
            Op::Start => match self.dialect.session_query() {
                Some(q) => self.start(Op::Session, q, VecDeque::new(), now),
                None => self.begin_setup(now),
            },
            Op::Session => self.begin_setup(now),
            Op::Setup => self.finish_setup(),
            _ => {}
        }
    }

    pub(super) fn finish_setup(&mut self) {
        self.ready = true;
        self.boots_in_setup = 0;
        self.setup_backoff = self.t.setup_backoff_min;
        self.events.push_back(ModemEvent::Ready);
        if self.session_kept {
            self.joined = true;
            self.events.push_back(ModemEvent::SessionKept);
        }
    }

    /// The modem refused its set-up: report it and try again after a back-off.
    pub(super) fn refuse_setup(&mut self, command: String, error: String, now: Time) {
        let wait = self.setup_backoff;
        self.setup_backoff = (self.setup_backoff * 2).min(self.t.setup_backoff_max);
        self.restart("set-up refused", wait, now);
        self.events.push_back(ModemEvent::SetupRefused {
            command,
            error,
            retry_in: wait,
        });
    }

    pub(super) fn refused(&mut self, e: AtError, now: Time) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        let transient = match &e {
            AtError::Busy | AtError::NoFreeChannel => Some(self.t.busy_retry),
            AtError::DutyCycle { wait_ms } => Some(wait_ms.map_or(self.t.busy_retry, |ms| {
                Duration::from_millis(ms.saturating_add(100))
            })),
            _ => None,
        };
        match transient {
            Some(wait) if c.retries < self.t.max_retries => {
                c.retries += 1;
                c.retry_at = Some(now.saturating_add(wait));
            }
            _ => {
                let Some(c) = self.current.take() else {
                    return;
                };
                if e == AtError::NotJoined {
                    self.joined = false;
                }
                if matches!(c.op, Op::Setup | Op::Start) {
                    self.refuse_setup(c.cmd, e.to_string(), now);
                    return;
                }
                self.fail_op(c.op, e.to_string());
            }
        }
    }
}
