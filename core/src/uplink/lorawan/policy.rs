//! The uplink policy: what to send, when, and how to report it.
//!
//! Owns: the queue of messages handed over by the integrator (one queue per
//! [`Class`], alerts first), the airtime [`Budget`], join backoff, retries of
//! confirmed uplinks that were not acknowledged, the downgrade of alerts to
//! unconfirmed when the daily downlink cap is reached, and decoding downlinks.
//!
//! Invariants:
//! - nothing goes on air unless [`Budget::earliest`] allowed it at that
//!   moment (joins included, booked as 23-byte frames);
//! - every submitted message ends in exactly one [`CoreEvent::Delivered`];
//! - a message of a lower class never goes ahead of a waiting alert.
//!
//! Pure: driven by `handle_line` / `handle_timeout` / `submit` with `now`.

use std::collections::VecDeque;
use std::time::Duration;

use super::airtime::{
    Budget, BudgetLimits, DEFAULT_UPLINK_HZ, Radio, eu868_max_payload, time_on_air, uplink_airtime,
};
use super::codec::{self, Downlink};
use super::modem::{Driver, ModemEvent, SendOutcome};
use crate::model::{Class, Time};

/// One payload to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub class: Class,
    /// Application payload (normally from `codec::encode`).
    pub payload: Vec<u8>,
    /// Ask the network to acknowledge (only honoured while the downlink cap allows).
    pub confirmed: bool,
}

/// How a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The network acknowledged it: the outbox row may be deleted.
    Acked,
    /// Sent without confirmation (by request, or because the downlink cap was
    /// reached): it left the radio, nothing more is known.
    SentUnconfirmed,
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
}

/// Policy settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreConfig {
    pub radio: Radio,
    pub data_rate: u8,
    pub limits: BudgetLimits,
    /// Port per class, indexed by `Class as usize`.
    pub ports: [u8; 3],
    /// Extra attempts of a confirmed uplink that got no ack.
    pub confirmed_retries: u8,
    pub join_backoff_min: Duration,
    pub join_backoff_max: Duration,
}

#[derive(Debug, Clone)]
struct Pending {
    id: u64,
    msg: Message,
    attempts: u8,
    confirmed_now: bool,
}

/// The uplink policy around one modem [`Driver`].
#[derive(Debug)]
pub struct Core {
    driver: Driver,
    budget: Budget,
    cfg: CoreConfig,
    queues: [VecDeque<Pending>; 3],
    inflight: Option<Pending>,
    join_at: Time,
    join_backoff: Duration,
    wake_at: Option<Time>,
    events: VecDeque<CoreEvent>,
}

impl Core {
    pub fn new(driver: Driver, cfg: CoreConfig, now: Time) -> Self {
        let budget = Budget::new(cfg.limits.clone());
        Self::with_budget(driver, cfg, budget, now)
    }

    /// A core that continues an existing airtime ledger (after a port loss).
    pub fn with_budget(driver: Driver, cfg: CoreConfig, budget: Budget, now: Time) -> Self {
        Core {
            driver,
            budget,
            join_backoff: cfg.join_backoff_min,
            cfg,
            queues: Default::default(),
            inflight: None,
            join_at: now,
            wake_at: None,
            events: VecDeque::new(),
        }
    }

    pub fn is_joined(&self) -> bool {
        self.driver.is_joined()
    }
    pub fn into_budget(self) -> Budget {
        self.budget
    }
    pub fn budget(&self) -> &Budget {
        &self.budget
    }
    pub fn driver(&self) -> &Driver {
        &self.driver
    }
    /// Messages waiting (not counting the one on air).
    pub fn queued(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    /// Queues a message. One that can never fit is failed at once.
    pub fn submit(&mut self, id: u64, msg: Message, now: Time) {
        let max = eu868_max_payload(self.cfg.data_rate);
        let air = uplink_airtime(self.cfg.radio, msg.payload.len());
        let never = if msg.payload.len() > max {
            Some(format!(
                "payload of {} bytes exceeds {max} at DR{}",
                msg.payload.len(),
                self.cfg.data_rate
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
        self.queues[msg.class as usize].push_back(Pending {
            id,
            msg,
            attempts: 0,
            confirmed_now: false,
        });
        self.pump(now);
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

    fn pump(&mut self, now: Time) {
        while let Some(ev) = self.driver.poll_event() {
            self.on_modem(ev, now);
        }
        self.wake_at = None;
        if !self.driver.is_ready() {
            return;
        }
        if !self.driver.is_joined() {
            self.try_join(now);
            return;
        }
        let Some(class) = (0..3).find(|c| !self.queues[*c].is_empty()) else {
            return;
        };
        let Some(p) = self.queues[class].front() else {
            return;
        };
        let air = uplink_airtime(self.cfg.radio, p.msg.payload.len());
        match self
            .budget
            .earliest(p.msg.class, air, DEFAULT_UPLINK_HZ, now)
        {
            Ok(t) if t <= now => {}
            Ok(t) => {
                self.wake_at = Some(t);
                return;
            }
            Err(e) => {
                if let Some(p) = self.queues[class].pop_front() {
                    self.deliver(p.id, Delivery::Failed(e.to_string()));
                }
                return;
            }
        }
        let Some(mut p) = self.queues[class].pop_front() else {
            return;
        };
        p.confirmed_now = p.msg.confirmed && self.budget.may_confirm(now);
        let port = self.cfg.ports[class];
        match self
            .driver
            .send(p.id, port, &p.msg.payload, p.confirmed_now, now)
        {
            Ok(()) => self.inflight = Some(p),
            Err(_) => self.queues[class].push_front(p),
        }
    }

    fn try_join(&mut self, now: Time) {
        if now < self.join_at {
            return;
        }
        let air = time_on_air(self.cfg.radio, 23);
        match self
            .budget
            .earliest(Class::Alert, air, DEFAULT_UPLINK_HZ, now)
        {
            Ok(t) if t <= now => {
                let _ = self.driver.join(now);
            }
            Ok(t) => self.join_at = t,
            Err(_) => self.join_at = now.saturating_add(Duration::from_secs(3600)),
        }
    }

    fn on_modem(&mut self, ev: ModemEvent, now: Time) {
        match ev {
            ModemEvent::Ready => {}
            ModemEvent::Joined => {
                self.join_backoff = self.cfg.join_backoff_min;
                self.events
                    .push_back(CoreEvent::Radio(RadioEvent::JoinState {
                        joined: true,
                        detail: "joined".into(),
                    }));
            }
            ModemEvent::JoinFailed(why) => {
                self.join_at = now.saturating_add(self.join_backoff);
                self.join_backoff = (self.join_backoff * 2).min(self.cfg.join_backoff_max);
                self.events
                    .push_back(CoreEvent::Radio(RadioEvent::JoinState {
                        joined: false,
                        detail: format!("join failed: {why}"),
                    }));
            }
            ModemEvent::TxStarted { phy_len } => {
                let class = self.inflight.as_ref().map_or(Class::Alert, |p| p.msg.class);
                self.budget.record_uplink(
                    class,
                    now,
                    time_on_air(self.cfg.radio, phy_len),
                    DEFAULT_UPLINK_HZ,
                );
            }
            ModemEvent::Sent { id, outcome } => self.on_sent(id, outcome, now),
            ModemEvent::Downlink(rx) => {
                let in_confirmed = self.inflight.as_ref().is_some_and(|p| p.confirmed_now);
                if !in_confirmed {
                    // A confirmed uplink's downlink is booked with its ack.
                    self.budget.record_downlink(now);
                }
                if rx.port == 0 || rx.data.is_empty() {
                    return;
                }
                match codec::decode_downlink(&rx.data) {
                    Ok((cmd, _)) => self
                        .events
                        .push_back(CoreEvent::Radio(RadioEvent::Downlink(cmd))),
                    Err(e) => {
                        self.events
                            .push_back(CoreEvent::Radio(RadioEvent::DownlinkInvalid {
                                port: rx.port,
                                bytes: rx.data,
                                error: e.to_string(),
                            }))
                    }
                }
            }
            ModemEvent::Reset(why) => {
                self.events
                    .push_back(CoreEvent::Radio(RadioEvent::ModemReset(why.clone())));
                self.events
                    .push_back(CoreEvent::Radio(RadioEvent::JoinState {
                        joined: false,
                        detail: format!("modem reset: {why}"),
                    }));
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
                self.deliver(id, Delivery::Acked);
            }
            SendOutcome::Sent => self.deliver(id, Delivery::SentUnconfirmed),
            SendOutcome::NotAcked if retry_left => self.requeue(p),
            SendOutcome::NotAcked => self.deliver(
                id,
                Delivery::Failed(format!("no acknowledgement after {} attempts", p.attempts)),
            ),
            // Not joined or reset: it goes again after the (re)join.
            SendOutcome::Failed(_) if !self.driver.is_joined() => {
                p.attempts -= 1;
                self.requeue(p)
            }
            SendOutcome::Failed(_) if retry_left => self.requeue(p),
            SendOutcome::Failed(why) => self.deliver(id, Delivery::Failed(why)),
        }
    }

    fn requeue(&mut self, p: Pending) {
        let c = p.msg.class as usize;
        self.queues[c].push_front(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uplink::lorawan::airtime::eu868_data_rate;
    use crate::uplink::lorawan::modem::{ModemSettings, Timeouts};
    use crate::uplink::lorawan::rak3172::Rak3172;

    fn core() -> Core {
        let settings = ModemSettings {
            region: "EU868".into(),
            dev_eui: [1; 8],
            join_eui: [2; 8],
            app_key: [3; 16],
            data_rate: 5,
        };
        let d = Driver::new(Box::new(Rak3172), settings, Timeouts::default(), Time(0));
        let cfg = CoreConfig {
            radio: eu868_data_rate(5).unwrap_or(Radio {
                sf: 7,
                bw: super::super::airtime::Bandwidth::Khz125,
            }),
            data_rate: 5,
            limits: BudgetLimits::default(),
            ports: [10, 11, 12],
            confirmed_retries: 1,
            join_backoff_min: Duration::from_secs(15),
            join_backoff_max: Duration::from_secs(3600),
        };
        Core::new(d, cfg, Time(0))
    }

    /// A scripted RAK3172 that answers everything at once.
    fn answer(c: &mut Core, now: i64, ack: bool) {
        while let Some(cmd) = c.poll_transmit() {
            if cmd == "ATZ" {
                continue;
            }
            c.handle_line("OK", Time(now));
            if cmd.starts_with("AT+JOIN") {
                c.handle_line("+EVT:JOINED", Time(now));
            }
            if cmd.starts_with("AT+SEND") {
                let l = if ack {
                    "+EVT:SEND_CONFIRMED_OK"
                } else {
                    "+EVT:SEND_CONFIRMED_FAILED(4)"
                };
                c.handle_line(l, Time(now));
            }
        }
    }

    fn events(c: &mut Core) -> Vec<CoreEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    #[test]
    fn alert_waits_for_the_join_off_time_then_is_acked() {
        let mut c = core();
        c.handle_timeout(Time(2000));
        answer(&mut c, 2000, true);
        assert!(c.is_joined());
        let msg = Message {
            class: Class::Alert,
            payload: vec![0x21, 0x34, 0, 3],
            confirmed: true,
        };
        c.submit(1, msg, Time(2100));
        // The join (61.7 ms at SF7) closed g1 for 6.17 s.
        let wake = c.next_deadline().unwrap();
        assert!(wake > Time(8000) && wake < Time(8200), "{wake:?}");
        c.handle_timeout(wake);
        answer(&mut c, wake.0, true);
        let ev = events(&mut c);
        assert!(
            ev.contains(&CoreEvent::Delivered {
                id: 1,
                delivery: Delivery::Acked
            }),
            "{ev:?}"
        );
        assert_eq!(c.budget().downlinks_24h(wake), 1);
    }

    #[test]
    fn unacked_alert_is_retried_once_then_failed() {
        let mut c = core();
        c.handle_timeout(Time(2000));
        answer(&mut c, 2000, false);
        let msg = Message {
            class: Class::Alert,
            payload: vec![1, 2, 3],
            confirmed: true,
        };
        c.submit(1, msg, Time(2100));
        for _ in 0..4 {
            if let Some(t) = c.next_deadline() {
                c.handle_timeout(t);
                answer(&mut c, t.0, false);
            }
        }
        let ev = events(&mut c);
        assert!(ev.iter().any(|e| matches!(e,
            CoreEvent::Delivered { id: 1, delivery: Delivery::Failed(w) } if w.contains("2 attempts"))), "{ev:?}");
    }

    #[test]
    fn oversized_payload_fails_at_once() {
        let mut c = core();
        let msg = Message {
            class: Class::Telemetry,
            payload: vec![0; 300],
            confirmed: false,
        };
        c.submit(5, msg, Time(0));
        assert!(matches!(
            &events(&mut c)[..],
            [CoreEvent::Delivered {
                id: 5,
                delivery: Delivery::Failed(_)
            }]
        ));
    }
}
