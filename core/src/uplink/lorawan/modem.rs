//! The modem driver: one AT command sequencer behind which both dialects sit.
//!
//! Owns: the conversation with the modem — probe, session check, configure,
//! join, send — one command in flight at a time, with time-outs, bounded
//! retries of commands the modem refused for a transient reason (busy, duty
//! cycle, no free channel) or answered with a damaged line, and a reset
//! only when the modem stops answering altogether.
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
//! Start-up: no reset. The driver probes (`AT`), asks whether the modem
//! still holds a session (RUI3 `AT+NJS=?`; the Wio-E5 has no such query and
//! answers a join with `+JOIN: Joined already` instead), and then runs the
//! full setup (work mode, band, keys, retransmissions, ADR/DR) or, with a
//! session kept, only the settings that do not touch the session
//! ([`ModemEvent::SessionKept`]: no join, no airtime).
//!
//! Invariants:
//! - at most one command is in flight; every command has a deadline;
//! - every `send` ends in exactly one [`ModemEvent::Sent`];
//! - line noise never resets the modem: glued replies are split
//!   ([`Dialect::split`]), a damaged or missing answer to a setup or
//!   preparation command re-sends that one command (up to `max_retries`),
//!   and an unconfirmed uplink the modem accepted counts as sent even when
//!   its `TX_DONE` is lost (no duplicate uplink);
//! - a modem that refuses its setup reports [`ModemEvent::SetupRefused`]
//!   and is tried again after a doubling back-off (`setup_backoff_min` …
//!   `setup_backoff_max`), never in a tight loop;
//! - only a silent modem (no answer to a command after its retries, or to
//!   a probe) is reset (`ATZ` / `AT+RESET`), which forgets the join: the
//!   driver reports [`ModemEvent::Reset`] and starts over.

use std::collections::VecDeque;
use std::time::Duration;

use super::at::{AtLine, RxFrame};
pub use super::dialect::{Dialect, ModemSettings, Timeouts, data_rate_of};
use crate::model::Time;

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
    /// A join request was accepted by the network (a join accept came down).
    Joined,
    /// The modem still held its session: joined without a join.
    SessionKept,
    JoinFailed(String),
    /// The modem accepted a transmission (join request or uplink) of this
    /// many PHY bytes: book its airtime now (at [`Driver::data_rate`]).
    TxStarted {
        phy_len: usize,
    },
    Sent {
        id: u64,
        outcome: SendOutcome,
    },
    Downlink(RxFrame),
    /// The modem refused a setup command for good (wrong mode, bad value):
    /// set-up is tried again after `retry_in`.
    SetupRefused {
        command: String,
        error: String,
        retry_in: Duration,
    },
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
    /// The first probe after start-up or a reboot.
    Start,
    /// Asking whether the modem kept its session.
    Session,
    Setup,
    /// Is the modem still there (after a time-out)?
    Probe,
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
    /// A damaged line came while waiting for the answer to `cmd`.
    damaged: bool,
}

impl Current {
    /// Sending the last command of a send: the transmission itself.
    fn transmitting(&self) -> bool {
        matches!(self.op, Op::Send { .. }) && self.rest.is_empty()
    }
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
    session_kept: bool,
    data_rate: u8,
    timeouts_in_row: u32,
    setup_backoff: Duration,
    boots_in_setup: u32,
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
    /// A driver that starts by probing the modem (no reset: a modem that
    /// answers keeps its session).
    pub fn new(dialect: Box<dyn Dialect>, settings: ModemSettings, t: Timeouts, now: Time) -> Self {
        let mut d = Driver {
            dialect,
            data_rate: settings.data_rate,
            settings,
            setup_backoff: t.setup_backoff_min,
            t,
            current: None,
            booting_until: None,
            ready: false,
            joined: false,
            session_kept: false,
            timeouts_in_row: 0,
            boots_in_setup: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
            resets: 0,
        };
        d.begin(now);
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
    /// Resets sent so far.
    pub fn resets(&self) -> u32 {
        self.resets
    }
    /// The settings it was made with.
    pub fn settings(&self) -> &ModemSettings {
        &self.settings
    }
    /// The data rate the modem last reported (or was set to).
    pub fn data_rate(&self) -> u8 {
        self.data_rate
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
        if self.settings.adr {
            // The rate the network chose, read just before the transmission.
            let at = cmds.len().saturating_sub(1);
            cmds.insert(at, self.dialect.data_rate_query());
        }
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

    /// Takes back a send that has not gone on air yet and is only waiting
    /// to retry after a busy / duty-cycle refusal, so a more urgent message
    /// can go first. Returns its id (no `Sent` event is reported for it).
    pub fn preempt(&mut self) -> Option<u64> {
        let c = self.current.as_ref()?;
        match c.op {
            Op::Send { id, .. } if c.retry_at.is_some() && !c.accepted => {
                self.current = None;
                Some(id)
            }
            _ => None,
        }
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
            damaged: false,
        });
    }

    /// Probe first: a modem that answers is not reset.
    fn begin(&mut self, now: Time) {
        self.session_kept = false;
        let probe = self.dialect.probe();
        self.start(Op::Start, probe, VecDeque::new(), now);
    }

    fn begin_setup(&mut self, now: Time) {
        let mut cmds: VecDeque<String> = if self.session_kept {
            self.dialect.resume(&self.settings).into()
        } else {
            self.dialect.setup(&self.settings).into()
        };
        match cmds.pop_front() {
            Some(first) => self.start(Op::Setup, first, cmds, now),
            None => self.finish_setup(),
        }
    }

    /// Forgets everything the modem had (it restarted) and waits `wait`
    /// before starting over with a probe.
    fn restart(&mut self, why: &str, wait: Duration, now: Time) {
        if let Some(c) = self.current.take() {
            self.fail_op(c.op, format!("modem restarted: {why}"));
        }
        self.booting_until = Some(now.saturating_add(wait));
        self.ready = false;
        self.joined = false;
        self.session_kept = false;
    }

    fn reset(&mut self, why: &str, now: Time) {
        self.out.push_back(self.dialect.reset());
        self.resets += 1;
        self.restart(why, self.t.boot, now);
        self.events.push_back(ModemEvent::Reset(why.to_string()));
    }

    fn fail_op(&mut self, op: Op, why: String) {
        match op {
            Op::Send { id, .. } => self.events.push_back(ModemEvent::Sent {
                id,
                outcome: SendOutcome::Failed(why),
            }),
            Op::Join => self.events.push_back(ModemEvent::JoinFailed(why)),
            Op::Start | Op::Session | Op::Probe | Op::Setup => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Time) {
        if let Some(b) = self.booting_until {
            if now >= b {
                self.booting_until = None;
                self.timeouts_in_row = 0;
                self.begin(now);
            }
            return;
        }
        let max_retries = self.t.max_retries;
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
        // A setup or preparation command that got no (or a damaged)
        // answer: send that one command again (idempotent settings).
        let resendable = matches!(c.op, Op::Start | Op::Session | Op::Setup)
            || (matches!(c.op, Op::Send { .. }) && !c.transmitting());
        if resendable && c.retries < max_retries {
            c.retries += 1;
            c.damaged = false;
            c.deadline = now.saturating_add(self.t.command);
            self.out.push_back(c.cmd.clone());
            return;
        }
        self.timeouts_in_row += 1;
        let Some(c) = self.current.take() else {
            return;
        };
        match c.op {
            Op::Start | Op::Session | Op::Setup | Op::Probe => {
                self.reset("no answer from the modem", now);
                return;
            }
            // The modem took the uplink: it went on air even though its
            // end (TX_DONE) never arrived readable. Not sent again.
            Op::Send {
                id,
                confirmed: false,
                ..
            } if c.accepted => self.events.push_back(ModemEvent::Sent {
                id,
                outcome: SendOutcome::Sent,
            }),
            Op::Send {
                id,
                confirmed: true,
                ..
            } if c.accepted => self.events.push_back(ModemEvent::Sent {
                id,
                outcome: SendOutcome::NotAcked,
            }),
            op => {
                let what = format!("time-out waiting for the answer to {}", c.cmd);
                self.fail_op(op, what);
            }
        }
        if self.timeouts_in_row >= 2 {
            self.reset("no answer from the modem", now);
            return;
        }
        // Is the modem still there? A silent probe resets it.
        let probe = self.dialect.probe();
        self.start(Op::Probe, probe, VecDeque::new(), now);
    }

    pub fn handle_line(&mut self, line: &str, now: Time) {
        let parts: Vec<String> = self
            .dialect
            .split(line)
            .into_iter()
            .map(str::to_string)
            .collect();
        for p in parts {
            self.handle_one(&p, now);
        }
    }

    fn handle_one(&mut self, line: &str, now: Time) {
        let parsed = self.dialect.parse(line);
        self.timeouts_in_row = 0;
        match parsed {
            AtLine::Downlink(rx) => {
                self.events.push_back(ModemEvent::Downlink(rx));
                return;
            }
            AtLine::Boot => {
                if self.booting_until.is_some() {
                    return;
                }
                if self.ready {
                    // The modem restarted on its own: it forgot the join.
                    let why = "modem restarted on its own";
                    self.restart(why, self.t.boot, now);
                    self.events.push_back(ModemEvent::Reset(why.into()));
                } else if self.current.is_some() {
                    // Rebooted during set-up (RUI3 does after switching
                    // work mode with AT+NWM): start over once it is up.
                    self.boots_in_setup += 1;
                    if self.boots_in_setup > 3 {
                        let cmd = self
                            .current
                            .as_ref()
                            .map_or(String::new(), |c| c.cmd.clone());
                        self.current = None;
                        self.refuse_setup(cmd, "modem restarts at every set-up".into(), now);
                    } else {
                        self.restart("rebooted during set-up", self.t.boot, now);
                    }
                }
                return;
            }
            _ => {}
        }
        let settle = self.t.settle;
        let Some(c) = self.current.as_mut() else {
            if !matches!(parsed, AtLine::Done(_) | AtLine::Ok | AtLine::TxDone) {
                self.events
                    .push_back(ModemEvent::Unexpected(line.to_string()));
            }
            return;
        };
        if c.retry_at.is_some() || line.trim() == c.cmd {
            // Late output of a refused attempt, or the modem echoing us.
            return;
        }
        if let AtLine::Value { key, value } = &parsed {
            if c.op == Op::Session && self.dialect.session_joined(key, value) {
                self.session_kept = true;
            }
            if key == "DR"
                && let Some(dr) = data_rate_of(value)
            {
                self.data_rate = dr;
            }
        }
        let value_ends = self.dialect.value_ends_command();
        match (&mut c.op, parsed) {
            // The modem has no session query, or (RUI3 in P2P mode) refuses
            // it: not joined, full set-up.
            (Op::Session, AtLine::Error(_)) => {
                self.current = None;
                self.begin_setup(now);
            }
            (_, AtLine::Error(e)) => self.refused(e, now),
            (Op::Start | Op::Session | Op::Probe | Op::Setup, AtLine::Ok) => self.step_done(now),
            (Op::Start | Op::Session | Op::Probe | Op::Setup, AtLine::Value { .. })
                if value_ends =>
            {
                self.step_done(now)
            }
            (Op::Join, AtLine::Ok) => {
                if !c.accepted {
                    c.accepted = true;
                    c.deadline = now.saturating_add(self.t.join);
                    // A join request is 23 PHY bytes.
                    self.events.push_back(ModemEvent::TxStarted { phy_len: 23 });
                }
            }
            (Op::Join, AtLine::Joined) => {
                let fresh = c.accepted;
                self.current = None;
                self.joined = true;
                // `+JOIN: Joined already` (Wio-E5): no request went out.
                self.events.push_back(if fresh {
                    ModemEvent::Joined
                } else {
                    ModemEvent::SessionKept
                });
            }
            (Op::Join, AtLine::JoinFailed(why)) => {
                self.current = None;
                self.events.push_back(ModemEvent::JoinFailed(why));
            }
            (Op::Send { .. }, AtLine::Ok) if !c.rest.is_empty() => self.step_done(now),
            (Op::Send { .. }, AtLine::Value { .. }) if !c.rest.is_empty() && value_ends => {
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
            (_, AtLine::Other(_)) => {
                // A damaged line (noise, a reply cut short): give a good
                // answer a moment, then send the one command again. The
                // transmission itself is never sent twice: its events
                // follow anyway, or its time-out decides.
                if c.transmitting() {
                    if !c.accepted {
                        let wait = self.t.send;
                        c.deadline = c.deadline.max(now.saturating_add(wait));
                    } else if let Op::Send {
                        confirmed: false, ..
                    } = c.op
                    {
                        c.deadline = c.deadline.min(now.saturating_add(settle));
                    }
                } else if !matches!(c.op, Op::Join) {
                    c.damaged = true;
                    c.deadline = c.deadline.min(now.saturating_add(settle));
                }
            }
            (_, AtLine::Done(_) | AtLine::TxDone | AtLine::Value { .. }) => {}
            (_, other) => self
                .events
                .push_back(ModemEvent::Unexpected(format!("{other:?}"))),
        }
    }

    fn end_send(&mut self, outcome: SendOutcome) {
        if let Some(Current {
            op: Op::Send { id, phy_len, .. },
            accepted,
            ..
        }) = self.current.take()
        {
            if !accepted {
                // Its acceptance (`OK`) was lost to noise: it went on air all the same.
                self.events.push_back(ModemEvent::TxStarted { phy_len });
            }
            self.events.push_back(ModemEvent::Sent { id, outcome });
        }
    }
}

#[path = "modem_steps.rs"]
mod steps;

#[cfg(test)]
#[path = "modem_tests.rs"]
mod tests;
