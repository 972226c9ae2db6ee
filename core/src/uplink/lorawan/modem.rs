//! The modem driver: one AT command sequencer behind which both dialects sit.
//!
//! Owns: the conversation with the modem — reset, configure, join, send —
//! one command in flight at a time, with time-outs, bounded retries of
//! commands the modem refused for a transient reason (busy, duty cycle, no
//! free channel), and a reset when the modem stops answering.
//!
//! It does **not** decide when to join or send (that is policy: the airtime
//! budget in `policy.rs`); it says when it is able to ([`Driver::is_ready`]).
//!
//! Driven by the caller, no clock, no I/O (house style, like quinn-proto):
//! `handle_line(line, now)`, `handle_timeout(now)`, `next_deadline()`,
//! `poll_transmit()` (a command line to write, without CR LF) and
//! `poll_event()`. The dialect ([`Dialect`], implemented in `rak3172.rs` and
//! `wio_e5.rs`) only spells commands and parses lines.
//!
//! Invariants:
//! - at most one command is in flight; every command has a deadline;
//! - every `send` ends in exactly one [`ModemEvent::Sent`];
//! - two time-outs in a row (or a silent probe) reset the modem, which
//!   forgets the join: the driver re-runs setup and reports [`ModemEvent::Reset`].

use std::collections::VecDeque;
use std::time::Duration;

use super::at::{AtError, AtLine, RxFrame};
use crate::model::Time;

/// OTAA identity and radio settings given to the modem at setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModemSettings {
    /// Region name as configured (`EU868`).
    pub region: String,
    pub dev_eui: [u8; 8],
    pub join_eui: [u8; 8],
    pub app_key: [u8; 16],
    /// Uplink data rate (EU868 DR0–DR5); ADR stays off so airtime is predictable.
    pub data_rate: u8,
}

/// How one modem family spells commands and formats output.
pub trait Dialect: Send {
    fn name(&self) -> &'static str;
    fn parse(&self, line: &str) -> AtLine;
    /// A command that any live modem answers at once.
    fn probe(&self) -> String;
    /// Restarts the modem (answer not awaited).
    fn reset(&self) -> String;
    /// Configuration commands, each answered by an `Ok` or a `Value`.
    fn setup(&self, s: &ModemSettings) -> Vec<String>;
    fn join(&self) -> String;
    /// Commands to send one uplink: preparation commands (each answered by
    /// `Ok`/`Value`) and last the transmission itself.
    fn send(&self, port: u8, data: &[u8], confirmed: bool) -> Vec<String>;
    /// Whether an `Acked` line ends a confirmed send (RUI3) or a `Done` follows (Wio-E5).
    fn ack_ends_send(&self) -> bool;
}

/// Time-outs of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    pub command: Duration,
    pub join: Duration,
    pub send: Duration,
    pub confirmed_send: Duration,
    /// Wait after a reset before talking again.
    pub boot: Duration,
    /// Wait before retrying a command refused as busy (duty cycle waits come from the modem when it says).
    pub busy_retry: Duration,
    /// Transient refusals retried before the send fails.
    pub max_retries: u8,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            command: Duration::from_secs(3),
            join: Duration::from_secs(30),
            send: Duration::from_secs(15),
            confirmed_send: Duration::from_secs(40),
            boot: Duration::from_millis(1500),
            busy_retry: Duration::from_secs(2),
            max_retries: 3,
        }
    }
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Unconfirmed uplink left the radio.
    Sent,
    /// Confirmed uplink acknowledged by the network.
    Acked,
    /// Confirmed uplink sent but no acknowledgement came.
    NotAcked,
    /// Not sent (or unknown), with the reason.
    Failed(String),
}

/// What the driver reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModemEvent {
    /// Setup finished; the modem can join.
    Ready,
    Joined,
    JoinFailed(String),
    /// The modem accepted a transmission (join request or uplink) of this
    /// many PHY bytes: book its airtime now.
    TxStarted {
        phy_len: usize,
    },
    Sent {
        id: u64,
        outcome: SendOutcome,
    },
    Downlink(RxFrame),
    /// The modem was reset (by us, for the reason given, or on its own).
    Reset(String),
    /// A line the driver had no use for (for logs).
    Unexpected(String),
}

/// Why the driver cannot take a request now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("modem not ready (setting up, resetting or busy with a command)")]
    NotReady,
    #[error("not joined")]
    NotJoined,
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Probe,
    Setup,
    Join,
    Send {
        id: u64,
        confirmed: bool,
        acked: bool,
        phy_len: usize,
    },
}

#[derive(Debug)]
struct Current {
    op: Op,
    cmd: String,
    /// Commands still to run after `cmd` for this op.
    rest: VecDeque<String>,
    deadline: Time,
    accepted: bool,
    retries: u8,
    /// Set while waiting to retry `cmd` after a transient refusal.
    retry_at: Option<Time>,
}

/// The dialect-independent AT conversation.
pub struct Driver {
    dialect: Box<dyn Dialect>,
    settings: ModemSettings,
    t: Timeouts,
    current: Option<Current>,
    booting_until: Option<Time>,
    ready: bool,
    joined: bool,
    timeouts_in_row: u32,
    out: VecDeque<String>,
    events: VecDeque<ModemEvent>,
    resets: u32,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("dialect", &self.dialect.name())
            .field("ready", &self.ready)
            .field("joined", &self.joined)
            .field("current", &self.current)
            .finish()
    }
}

impl Driver {
    /// A driver that starts by resetting the modem.
    pub fn new(dialect: Box<dyn Dialect>, settings: ModemSettings, t: Timeouts, now: Time) -> Self {
        let mut d = Driver {
            dialect,
            settings,
            t,
            current: None,
            booting_until: None,
            ready: false,
            joined: false,
            timeouts_in_row: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
            resets: 0,
        };
        d.reset("start-up", now);
        d
    }

    pub fn dialect_name(&self) -> &'static str {
        self.dialect.name()
    }
    /// Configured, idle, able to take `join` or `send`.
    pub fn is_ready(&self) -> bool {
        self.ready && self.current.is_none() && self.booting_until.is_none()
    }
    pub fn is_joined(&self) -> bool {
        self.joined
    }
    /// Resets done so far (including start-up).
    pub fn resets(&self) -> u32 {
        self.resets
    }

    pub fn poll_transmit(&mut self) -> Option<String> {
        self.out.pop_front()
    }
    pub fn poll_event(&mut self) -> Option<ModemEvent> {
        self.events.pop_front()
    }

    pub fn next_deadline(&self) -> Option<Time> {
        match (&self.current, self.booting_until) {
            (_, Some(b)) => Some(b),
            (Some(c), None) => Some(c.retry_at.unwrap_or(c.deadline)),
            (None, None) => None,
        }
    }

    /// Starts a join. The caller has checked the airtime budget.
    pub fn join(&mut self, now: Time) -> Result<(), DriverError> {
        if !self.is_ready() {
            return Err(DriverError::NotReady);
        }
        let cmd = self.dialect.join();
        self.start(Op::Join, cmd, VecDeque::new(), now);
        Ok(())
    }

    /// Starts an uplink; its end is reported as `Sent { id, .. }`.
    pub fn send(
        &mut self,
        id: u64,
        port: u8,
        data: &[u8],
        confirmed: bool,
        now: Time,
    ) -> Result<(), DriverError> {
        if !self.is_ready() {
            return Err(DriverError::NotReady);
        }
        if !self.joined {
            return Err(DriverError::NotJoined);
        }
        let mut cmds: VecDeque<String> = self.dialect.send(port, data, confirmed).into();
        let Some(first) = cmds.pop_front() else {
            return Err(DriverError::NotReady);
        };
        let op = Op::Send {
            id,
            confirmed,
            acked: false,
            phy_len: super::airtime::MAC_OVERHEAD + data.len(),
        };
        self.start(op, first, cmds, now);
        Ok(())
    }

    fn start(&mut self, op: Op, cmd: String, rest: VecDeque<String>, now: Time) {
        let deadline = now.saturating_add(self.t.command);
        self.out.push_back(cmd.clone());
        self.current = Some(Current {
            op,
            cmd,
            rest,
            deadline,
            accepted: false,
            retries: 0,
            retry_at: None,
        });
    }

    fn reset(&mut self, why: &str, now: Time) {
        if let Some(c) = self.current.take() {
            self.fail_op(c.op, format!("modem reset: {why}"));
        }
        self.out.push_back(self.dialect.reset());
        self.booting_until = Some(now.saturating_add(self.t.boot));
        self.ready = false;
        self.joined = false;
        self.resets += 1;
        self.events.push_back(ModemEvent::Reset(why.to_string()));
    }

    fn fail_op(&mut self, op: Op, why: String) {
        match op {
            Op::Send { id, .. } => self.events.push_back(ModemEvent::Sent {
                id,
                outcome: SendOutcome::Failed(why),
            }),
            Op::Join => self.events.push_back(ModemEvent::JoinFailed(why)),
            Op::Probe | Op::Setup => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Time) {
        if let Some(b) = self.booting_until {
            if now >= b {
                self.booting_until = None;
                self.timeouts_in_row = 0;
                let mut cmds: VecDeque<String> = self.dialect.setup(&self.settings).into();
                match cmds.pop_front() {
                    Some(first) => self.start(Op::Setup, first, cmds, now),
                    None => self.finish_setup(),
                }
            }
            return;
        }
        let Some(c) = self.current.as_mut() else {
            return;
        };
        if let Some(r) = c.retry_at {
            if now >= r {
                c.retry_at = None;
                c.deadline = now.saturating_add(self.t.command);
                self.out.push_back(c.cmd.clone());
            }
            return;
        }
        if now < c.deadline {
            return;
        }
        self.timeouts_in_row += 1;
        let Some(c) = self.current.take() else {
            return;
        };
        if matches!(c.op, Op::Probe | Op::Setup) || self.timeouts_in_row >= 2 {
            self.current = Some(c);
            self.reset("no answer from the modem", now);
            return;
        }
        let what = format!("time-out waiting for the answer to {}", c.cmd);
        self.fail_op(c.op, what);
        // Is the modem still there? A silent probe resets it.
        let probe = self.dialect.probe();
        self.start(Op::Probe, probe, VecDeque::new(), now);
    }

    pub fn handle_line(&mut self, line: &str, now: Time) {
        let parsed = self.dialect.parse(line);
        self.timeouts_in_row = 0;
        match parsed {
            AtLine::Downlink(rx) => {
                self.events.push_back(ModemEvent::Downlink(rx));
                return;
            }
            AtLine::Boot => {
                if self.booting_until.is_none() && self.ready {
                    // The modem restarted on its own: it forgot the join.
                    self.reset("modem restarted on its own", now);
                }
                return;
            }
            _ => {}
        }
        let Some(c) = self.current.as_mut() else {
            if !matches!(parsed, AtLine::Done(_) | AtLine::Ok) {
                self.events
                    .push_back(ModemEvent::Unexpected(line.to_string()));
            }
            return;
        };
        if c.retry_at.is_some() || line.trim() == c.cmd {
            // Late output of a refused attempt, or the modem echoing us.
            return;
        }
        match (&mut c.op, parsed) {
            (_, AtLine::Error(e)) => self.refused(e, now),
            (Op::Probe | Op::Setup, AtLine::Ok | AtLine::Value { .. }) => self.step_done(now),
            (Op::Join, AtLine::Ok) => {
                if !c.accepted {
                    c.accepted = true;
                    c.deadline = now.saturating_add(self.t.join);
                    // A join request is 23 PHY bytes.
                    self.events.push_back(ModemEvent::TxStarted { phy_len: 23 });
                }
            }
            (Op::Join, AtLine::Joined) => {
                self.current = None;
                self.joined = true;
                self.events.push_back(ModemEvent::Joined);
            }
            (Op::Join, AtLine::JoinFailed(why)) => {
                self.current = None;
                self.events.push_back(ModemEvent::JoinFailed(why));
            }
            (Op::Send { .. }, AtLine::Ok | AtLine::Value { .. }) if !c.rest.is_empty() => {
                self.step_done(now)
            }
            (
                Op::Send {
                    confirmed, phy_len, ..
                },
                AtLine::Ok,
            ) => {
                if !c.accepted {
                    c.accepted = true;
                    let wait = if *confirmed {
                        self.t.confirmed_send
                    } else {
                        self.t.send
                    };
                    c.deadline = now.saturating_add(wait);
                    let phy_len = *phy_len;
                    self.events.push_back(ModemEvent::TxStarted { phy_len });
                }
            }
            (
                Op::Send {
                    confirmed: false, ..
                },
                AtLine::TxDone | AtLine::Done(_),
            ) => self.end_send(SendOutcome::Sent),
            (Op::Send { acked, .. }, AtLine::Acked) => {
                *acked = true;
                if self.dialect.ack_ends_send() {
                    self.end_send(SendOutcome::Acked);
                }
            }
            (Op::Send { .. }, AtLine::NotAcked) => self.end_send(SendOutcome::NotAcked),
            (
                Op::Send {
                    confirmed: true,
                    acked,
                    ..
                },
                AtLine::Done(_),
            ) => {
                let o = if *acked {
                    SendOutcome::Acked
                } else {
                    SendOutcome::NotAcked
                };
                self.end_send(o)
            }
            (_, AtLine::Other(_) | AtLine::Done(_) | AtLine::TxDone) => {}
            (_, other) => self
                .events
                .push_back(ModemEvent::Unexpected(format!("{other:?}"))),
        }
    }

    fn end_send(&mut self, outcome: SendOutcome) {
        if let Some(Current {
            op: Op::Send { id, .. },
            ..
        }) = self.current.take()
        {
            self.events.push_back(ModemEvent::Sent { id, outcome });
        }
    }

    /// The current step answered; run the next command of the op or finish it.
    fn step_done(&mut self, now: Time) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        if let Some(next) = c.rest.pop_front() {
            c.cmd = next.clone();
            c.deadline = now.saturating_add(self.t.command);
            c.retries = 0;
            self.out.push_back(next);
            return;
        }
        if let Some(c) = self.current.take()
            && c.op == Op::Setup
        {
            self.finish_setup();
        }
    }

    fn finish_setup(&mut self) {
        self.ready = true;
        self.events.push_back(ModemEvent::Ready);
    }

    fn refused(&mut self, e: AtError, now: Time) {
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
                if c.op == Op::Setup {
                    // A modem that refuses its configuration is reset and tried again.
                    self.current = Some(c);
                    self.reset(&format!("setup refused: {e}"), now);
                    return;
                }
                self.fail_op(c.op, e.to_string());
            }
        }
    }
}

#[cfg(test)]
#[path = "modem_tests.rs"]
mod tests;
