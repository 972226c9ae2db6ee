//! The uplink policy: what to send, when, and how to report it.
//!
//! Owns: the queue of messages handed over by the integrator (ordered by
//! class, then severity, then age: the most urgent alert first), the
//! airtime [`Budget`], the join rate limit, retries of confirmed uplinks
//! that were not acknowledged, who may ask for an acknowledgement (only
//! urgent alerts: the daily downlinks are theirs), dropping info alerts
//! under budget pressure, and decoding downlinks.
//!
//! Invariants:
//! - nothing goes on air unless [`Budget::earliest`] allowed it at that
//!   moment (joins included, booked as 23-byte frames; a confirmed uplink
//!   with modem retransmissions booked at its worst case);
//! - every submitted message ends in exactly one [`CoreEvent::Delivered`];
//! - a message never goes ahead of a waiting one of a higher class or
//!   severity; a lower one waiting for the modem to retry (busy, duty
//!   cycle) is taken back so the urgent one goes first;
//! - info alerts use only the airtime not reserved for alerts; one that
//!   could not go within `info_max_wait` is dropped ([`Delivery::Dropped`],
//!   counted in [`CoreStats::info_dropped`]);
//! - joins: the n-th join attempt within 24 h waits `join_backoff_min ·
//!   2^(n-1)` (capped) after the previous one; the attempts are part of the
//!   persisted state ([`Persisted`]), so restarts do not reset the limit.
//!
//! Pure: driven by `handle_line` / `handle_timeout` / `submit` with `now`.

use std::collections::VecDeque;
use std::time::Duration;

use super::airtime::{
    Budget, BudgetLimits, DEFAULT_UPLINK_HZ, Ledger, Radio, eu868_data_rate, eu868_max_payload,
    time_on_air,
};
use super::codec::{self, Downlink};
use super::modem::{Driver, ModemEvent, SendOutcome};
use crate::model::{Class, Severity, Time};

/// One payload to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub class: Class,
    /// Orders alerts (urgent first) and decides who may be confirmed.
    pub severity: Severity,
    /// Application payload (normally from `codec::encode`).
    pub payload: Vec<u8>,
    /// Ask the network to acknowledge (honoured for urgent alerts only,
    /// while the downlink cap allows).
    pub confirmed: bool,
}

/// How a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The network acknowledged it: the outbox row may be deleted.
    Acked,
    /// Sent without confirmation (by request, because it is not urgent, or
    /// because the downlink cap was reached): it left the radio.
    SentUnconfirmed,
    /// An info alert not sent: the budget had no room for it in time.
    Dropped(String),
    /// Not delivered; keep it in the outbox.
    Failed(String),
}

/// What the core reports.
#[derive(Debug, Clone, PartialEq)]
pub enum CoreEvent {
    /// The end of one submitted message (the task answers its sender).
    Delivered { id: u64, delivery: Delivery },
    /// Everything else, which the task passes on to the integrator as is.
    Radio(RadioEvent),
}

/// What happened on the radio side: join state, downlinks, modem resets.
#[derive(Debug, Clone, PartialEq)]
pub enum RadioEvent {
    JoinState {
        joined: bool,
        detail: String,
    },
    Downlink(Downlink),
    /// A downlink that is not a valid command.
    DownlinkInvalid {
        port: u8,
        bytes: Vec<u8>,
        error: String,
    },
    ModemReset(String),
    /// The modem refused its set-up; tried again after `retry_in`.
    SetupRefused {
        command: String,
        error: String,
        retry_in: Duration,
    },
}

/// Policy settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreConfig {
    /// The starting modulation (the data rate the modem reports wins).
    pub radio: Radio,
    pub data_rate: u8,
    pub limits: BudgetLimits,
    /// Port per class, indexed by `Class as usize`.
    pub ports: [u8; 3],
    /// Extra attempts of a confirmed uplink that got no ack.
    pub confirmed_retries: u8,
    /// Retransmissions the modem makes itself (`AT+RETY`), booked as airtime.
    pub retransmissions: u8,
    pub join_backoff_min: Duration,
    pub join_backoff_max: Duration,
    /// How long an info alert may wait for airtime before it is dropped.
    pub info_max_wait: Duration,
}

/// What the policy keeps across restarts (the shell stores it in the kv).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Persisted {
    pub budget: Ledger,
    /// Join attempts in the last 24 h (ms).
    pub joins: Vec<i64>,
}

/// Counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreStats {
    /// Join accepts received (each one a downlink).
    pub joins: u64,
    /// Start-ups that found the modem still joined (no join needed).
    pub sessions_kept: u64,
    pub info_dropped: u64,
    /// Sends taken back from the modem for a more urgent one.
    pub preempted: u64,
}

#[derive(Debug, Clone)]
struct Pending {
    id: u64,
    msg: Message,
    attempts: u8,
    confirmed_now: bool,
}

impl Pending {
    /// Lower goes first: class, then severity (urgent first), then age.
    fn rank(&self) -> (u8, u8, u64) {
        let sev = 2u8.saturating_sub(self.msg.severity as u8);
        (self.msg.class as u8, sev, self.id)
    }
    /// The budget share it draws on: info alerts only get what is not
    /// reserved for alerts.
    fn budget_class(&self) -> Class {
        if self.msg.class == Class::Alert && self.msg.severity == Severity::Info {
            Class::Status
        } else {
            self.msg.class
        }
    }
}

const DAY: Duration = Duration::from_secs(86_400);

/// The uplink policy around one modem [`Driver`].
#[derive(Debug)]
pub struct Core {
    driver: Driver,
    budget: Budget,
    cfg: CoreConfig,
    queue: Vec<Pending>,
    inflight: Option<Pending>,
    joins: VecDeque<Time>,
    join_at: Time,
    wake_at: Option<Time>,
    events: VecDeque<CoreEvent>,
    stats: CoreStats,
    dirty: bool,
}

impl Core {
    pub fn new(driver: Driver, cfg: CoreConfig, now: Time) -> Self {
        Self::restore(driver, cfg, &Persisted::default(), now)
    }

    /// A core that continues a saved ledger and join history.
    pub fn restore(driver: Driver, cfg: CoreConfig, saved: &Persisted, now: Time) -> Self {
        let budget = Budget::restore(cfg.limits.clone(), &saved.budget, now);
        let mut joins: Vec<Time> = saved
            .joins
            .iter()
            .map(|t| Time(*t))
            .filter(|t| now.since(*t) < DAY && *t <= now)
            .collect();
        joins.sort();
        let mut c = Core {
            driver,
            budget,
            cfg,
            queue: Vec::new(),
            inflight: None,
            joins: joins.into(),
            join_at: now,
            wake_at: None,
            events: VecDeque::new(),
            stats: CoreStats::default(),
            dirty: false,
        };
        c.join_at = c.next_join_after(now);
        c
    }

    pub fn is_joined(&self) -> bool {
        self.driver.is_joined()
    }
    pub fn budget(&self) -> &Budget {
        &self.budget
    }
    pub fn driver(&self) -> &Driver {
        &self.driver
    }
    pub fn stats(&self) -> CoreStats {
        self.stats
    }
    /// Messages waiting (not counting the one on air).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
    /// When the next join may be tried.
    pub fn join_at(&self) -> Time {
        self.join_at
    }

    /// The state to keep, when it changed since the last call.
    pub fn take_persisted(&mut self) -> Option<Persisted> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        Some(self.persisted())
    }

    /// The state to keep (ledger and join history).
    pub fn persisted(&self) -> Persisted {
        Persisted {
            budget: self.budget.ledger(),
            joins: self.joins.iter().map(|t| t.0).collect(),
        }
    }

    /// The modulation the modem uses now (ADR moves it).
    fn radio(&self) -> Radio {
        eu868_data_rate(self.driver.data_rate()).unwrap_or(self.cfg.radio)
    }

    /// Queues a message. One that can never fit is failed at once.
    pub fn submit(&mut self, id: u64, msg: Message, now: Time) {
        let dr = self.driver.data_rate();
        let max = eu868_max_payload(dr);
        let air = super::airtime::uplink_airtime(self.radio(), msg.payload.len());
        let never = if msg.payload.len() > max {
            Some(format!(
                "payload of {} bytes exceeds {max} at DR{dr}",
                msg.payload.len(),
            ))
        } else if air > self.budget.allowance(msg.class) {
            Some(format!("airtime {air:?} exceeds the daily allowance"))
        } else {
            None
        };
        if let Some(why) = never {
            self.deliver(id, Delivery::Failed(why));
            return;
        }
        self.enqueue(Pending {
            id,
            msg,
            attempts: 0,
            confirmed_now: false,
        });
        self.pump(now);
    }

    fn enqueue(&mut self, p: Pending) {
        let at = self.queue.partition_point(|q| q.rank() < p.rank());
        self.queue.insert(at, p);
    }

    pub fn handle_line(&mut self, line: &str, now: Time) {
        self.driver.handle_line(line, now);
        self.pump(now);
    }

    pub fn handle_timeout(&mut self, now: Time) {
        self.driver.handle_timeout(now);
        self.pump(now);
    }

    pub fn next_deadline(&self) -> Option<Time> {
        let join = (!self.driver.is_joined() && self.driver.is_ready()).then_some(self.join_at);
        [self.driver.next_deadline(), self.wake_at, join]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn poll_transmit(&mut self) -> Option<String> {
        self.driver.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<CoreEvent> {
        self.events.pop_front()
    }

    fn deliver(&mut self, id: u64, delivery: Delivery) {
        self.events.push_back(CoreEvent::Delivered { id, delivery });
    }

    /// Airtime of one attempt of `p` at the current data rate, with the
    /// modem's own retransmissions of a confirmed uplink at worst case.
    fn attempt_airtime(&self, p: &Pending, confirmed: bool) -> Duration {
        let one = super::airtime::uplink_airtime(self.radio(), p.msg.payload.len());
        if confirmed {
            one * (1 + u32::from(self.cfg.retransmissions))
        } else {
            one
        }
    }

    fn pump(&mut self, now: Time) {
        while let Some(ev) = self.driver.poll_event() {
            self.on_modem(ev, now);
        }
        self.wake_at = None;
        self.preempt_for_urgent();
        while let Some(ev) = self.driver.poll_event() {
            self.on_modem(ev, now);
        }
        if !self.driver.is_ready() {
            return;
        }
        if !self.driver.is_joined() {
            self.try_join(now);
            return;
        }
        while let Some(p) = self.queue.first() {
            let confirmed = p.msg.confirmed && p.msg.severity == Severity::Urgent;
            let air = self.attempt_airtime(p, confirmed);
            let class = p.budget_class();
            let info = p.msg.class == Class::Alert && p.msg.severity == Severity::Info;
            match self.budget.earliest(class, air, DEFAULT_UPLINK_HZ, now) {
                Ok(t) if t <= now => break,
                Ok(t) if info && t.since(now) > self.cfg.info_max_wait => {
                    let why = format!("info alert dropped: no airtime before {}", t.to_rfc3339());
                    self.drop_head(why);
                }
                Ok(t) => {
                    self.wake_at = Some(t);
                    return;
                }
                Err(e) if info => self.drop_head(format!("info alert dropped: {e}")),
                Err(e) => {
                    let p = self.queue.remove(0);
                    self.deliver(p.id, Delivery::Failed(e.to_string()));
                }
            }
        }
        if self.queue.is_empty() {
            return;
        }
        let mut p = self.queue.remove(0);
        p.confirmed_now =
            p.msg.confirmed && p.msg.severity == Severity::Urgent && self.budget.may_confirm(now);
        let port = self.cfg.ports[p.msg.class as usize];
        match self
            .driver
            .send(p.id, port, &p.msg.payload, p.confirmed_now, now)
        {
            Ok(()) => self.inflight = Some(p),
            Err(_) => self.enqueue(p),
        }
    }

    fn drop_head(&mut self, why: String) {
        let p = self.queue.remove(0);
        self.stats.info_dropped += 1;
        self.deliver(p.id, Delivery::Dropped(why));
    }

    /// A send of lower rank than the queue's head that only waits for the
    /// modem to retry goes back to the queue.
    fn preempt_for_urgent(&mut self) {
        let (Some(head), Some(fl)) = (self.queue.first(), self.inflight.as_ref()) else {
            return;
        };
        let (h, f) = (head.rank(), fl.rank());
        if (h.0, h.1) >= (f.0, f.1) {
            return;
        }
        if let Some(id) = self.driver.preempt()
            && let Some(p) = self.inflight.take().filter(|p| p.id == id)
        {
            self.stats.preempted += 1;
            self.enqueue(p);
        }
    }

    /// The n-th attempt within 24 h waits min · 2^(n-1) after the last one.
    fn next_join_after(&self, now: Time) -> Time {
        let Some(last) = self.joins.back() else {
            return now;
        };
        let n = u32::try_from(self.joins.len()).unwrap_or(u32::MAX);
        let wait = self
            .cfg
            .join_backoff_min
            .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(16)))
            .min(self.cfg.join_backoff_max);
        last.saturating_add(wait)
    }

    fn try_join(&mut self, now: Time) {
        if now < self.join_at {
            return;
        }
        let air = time_on_air(self.radio(), 23);
        match self
            .budget
            .earliest(Class::Alert, air, DEFAULT_UPLINK_HZ, now)
        {
            Ok(t) if t <= now => {
                if self.driver.join(now).is_ok() {
                    self.joins.push_back(now);
                    while self.joins.front().is_some_and(|t| now.since(*t) >= DAY) {
                        self.joins.pop_front();
                    }
                    self.dirty = true;
                    self.join_at = self.next_join_after(now);
                }
            }
            Ok(t) => self.join_at = t,
            Err(_) => self.join_at = now.saturating_add(Duration::from_secs(3600)),
        }
    }

    fn on_modem(&mut self, ev: ModemEvent, now: Time) {
        let state = |joined: bool, detail: String| {
            CoreEvent::Radio(RadioEvent::JoinState { joined, detail })
        };
        match ev {
            ModemEvent::Ready => {}
            ModemEvent::Joined => {
                // The join accept is a downlink.
                self.budget.record_downlink(now);
                self.dirty = true;
                self.stats.joins += 1;
                self.events.push_back(state(true, "joined".into()));
            }
            ModemEvent::SessionKept => {
                self.stats.sessions_kept += 1;
                self.events
                    .push_back(state(true, "joined (session kept by the modem)".into()));
            }
            ModemEvent::JoinFailed(why) => {
                self.join_at = self.next_join_after(now).max(now);
                self.events
                    .push_back(state(false, format!("join failed: {why}")));
            }
            ModemEvent::TxStarted { phy_len } => {
                let (class, confirmed) =
                    self.inflight.as_ref().map_or((Class::Alert, false), |p| {
                        (p.budget_class(), p.confirmed_now)
                    });
                let one = time_on_air(self.radio(), phy_len);
                let air = if confirmed {
                    one * (1 + u32::from(self.cfg.retransmissions))
                } else {
                    one
                };
                self.budget
                    .record_uplink(class, now, air, DEFAULT_UPLINK_HZ);
                self.dirty = true;
            }
            ModemEvent::Sent { id, outcome } => self.on_sent(id, outcome, now),
            ModemEvent::Downlink(rx) => {
                let in_confirmed = self.inflight.as_ref().is_some_and(|p| p.confirmed_now);
                if !in_confirmed {
                    // A confirmed uplink's downlink is booked with its ack.
                    self.budget.record_downlink(now);
                    self.dirty = true;
                }
                if rx.port == 0 || rx.data.is_empty() {
                    return;
                }
                let ev = match codec::decode_downlink(&rx.data) {
                    Ok((cmd, _)) => RadioEvent::Downlink(cmd),
                    Err(e) => RadioEvent::DownlinkInvalid {
                        port: rx.port,
                        bytes: rx.data,
                        error: e.to_string(),
                    },
                };
                self.events.push_back(CoreEvent::Radio(ev));
            }
            ModemEvent::SetupRefused {
                command,
                error,
                retry_in,
            } => {
                self.events
                    .push_back(CoreEvent::Radio(RadioEvent::SetupRefused {
                        command: command.clone(),
                        error: error.clone(),
                        retry_in,
                    }));
                self.events.push_back(state(
                    false,
                    format!("modem refused set-up ({command}: {error})"),
                ));
            }
            ModemEvent::Reset(why) => {
                self.events
                    .push_back(CoreEvent::Radio(RadioEvent::ModemReset(why.clone())));
                self.events
                    .push_back(state(false, format!("modem reset: {why}")));
            }
            ModemEvent::Unexpected(_) => {}
        }
    }

    fn on_sent(&mut self, id: u64, outcome: SendOutcome, now: Time) {
        let Some(mut p) = self.inflight.take().filter(|p| p.id == id) else {
            return;
        };
        p.attempts += 1;
        let retry_left = p.attempts <= self.cfg.confirmed_retries;
        match outcome {
            SendOutcome::Acked => {
                self.budget.record_downlink(now);
                self.dirty = true;
                self.deliver(id, Delivery::Acked);
            }
            SendOutcome::Sent => self.deliver(id, Delivery::SentUnconfirmed),
            SendOutcome::NotAcked if retry_left => self.enqueue(p),
            SendOutcome::NotAcked => self.deliver(
                id,
                Delivery::Failed(format!("no acknowledgement after {} attempts", p.attempts)),
            ),
            // Not joined or reset: it goes again after the (re)join.
            SendOutcome::Failed(_) if !self.driver.is_joined() => {
                p.attempts -= 1;
                self.enqueue(p)
            }
            SendOutcome::Failed(_) if retry_left => self.enqueue(p),
            SendOutcome::Failed(why) => self.deliver(id, Delivery::Failed(why)),
        }
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
