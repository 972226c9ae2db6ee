//! The dual-path routing decision: what goes over LoRaWAN, and when.
//!
//! The two paths and what they carry:
//! - **MQTT** reads the whole outbox itself (alerts, status, telemetry,
//!   [`super::mqtt`]) whenever it is connected: telemetry only ever goes
//!   this way;
//! - **LoRaWAN** carries alerts and, while MQTT is down (or absent), a
//!   compact status summary every `status_every`. This module decides it.
//!
//! Rules (a pure state machine: inputs are path states, outbox rows,
//! results and `now`; outputs are [`Action`]s, no clock and no I/O inside):
//! 1. Every alert row in the outbox is sent over every healthy path until
//!    one acknowledges it. MQTT gets it at once; LoRaWAN gets it at once
//!    while MQTT is down, and after `mqtt_grace` while MQTT is connected —
//!    a connected broker normally acks in milliseconds, so the grace spares
//!    airtime, yet a link that looks up but is dead (no PUBACK) still gets
//!    the alert out by radio after the grace.
//! 2. The first acknowledgement deletes the row and records its path
//!    (`Write::Delivered`); a row that vanished from the outbox
//!    ([`Router::handle_outbox`]) was acknowledged by the other path and is
//!    no longer sent. Redelivery over the other path in between is allowed:
//!    receivers de-duplicate by the alert's `id`/`seq`.
//! 3. A LoRaWAN send that failed (no ack after the modem's retries, budget,
//!    modem lost) is retried after an exponential backoff (`retry_min` …
//!    `retry_max`). One that went out unconfirmed (the daily downlink cap
//!    was reached) is not repeated by radio: it stays in the outbox for MQTT.
//! 4. One message is handed to the modem at a time, alerts lowest seq first;
//!    the modem task's own budget then decides the moment it goes on air.
//!
//! Invariants: an alert is never forgotten while its row exists (only
//! [`Router::handle_outbox`] and a LoRaWAN ack remove it); at most one
//! [`Action::Lora`] is outstanding; every outstanding one ends with
//! [`Router::handle_lora_result`].

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::Via;
use crate::model::Time;

/// Routing settings (from `[lorawan]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RouterConfig {
    /// How long a connected MQTT link may take to ack an alert before it
    /// also goes by radio (`0s`: at once, unless MQTT acked it already).
    pub mqtt_grace: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Status summaries over LoRaWAN while MQTT is down.
    pub status_every: Duration,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            mqtt_grace: Duration::from_secs(5),
            retry_min: Duration::from_secs(30),
            retry_max: Duration::from_secs(15 * 60),
            status_every: Duration::from_secs(6 * 3600),
        }
    }
}

/// What to send over LoRaWAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraJob {
    /// The alert with this outbox seq.
    Alert(u64),
    /// A compact status summary.
    Status,
}

/// How a LoRaWAN send ended (mirrors `lorawan::Delivery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraResult {
    Acked,
    SentUnconfirmed,
    Failed,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Hand this to the modem; report the end with `handle_lora_result`.
    Lora(LoraJob),
    /// Record in the store that `via` delivered alert `seq` (delete the row).
    Delivered { seq: u64, via: Via },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Radio {
    /// Not sent by radio yet (or due again).
    Due,
    /// Failed; due again at this time.
    Retry { at: Time, failures: u32 },
    /// Went out unconfirmed: left to MQTT.
    SentUnconfirmed,
}

#[derive(Debug, Clone)]
struct Pending {
    /// When the router first saw the row.
    seen: Time,
    radio: Radio,
}

/// Counters for the heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RouterStats {
    /// Alert rows waiting (either path).
    pub pending: usize,
    pub lora_alerts_acked: u64,
    pub lora_alerts_unconfirmed: u64,
    pub lora_failures: u64,
    pub lora_status_sent: u64,
    /// Alerts that vanished because the other path (MQTT) acked first.
    pub acked_elsewhere: u64,
}

/// The routing state machine.
#[derive(Debug)]
pub struct Router {
    cfg: RouterConfig,
    mqtt_up: bool,
    lora_up: bool,
    busy: Option<LoraJob>,
    alerts: BTreeMap<u64, Pending>,
    status_due: Time,
    status_failures: u32,
    actions: VecDeque<Action>,
    stats: RouterStats,
}

impl Router {
    /// A router at `now` with both paths down.
    pub fn new(cfg: RouterConfig, now: Time) -> Self {
        Router {
            status_due: now.saturating_add(cfg.mqtt_grace),
            cfg,
            mqtt_up: false,
            lora_up: false,
            busy: None,
            alerts: BTreeMap::new(),
            status_failures: 0,
            actions: VecDeque::new(),
            stats: RouterStats::default(),
        }
    }

    pub fn stats(&self) -> RouterStats {
        RouterStats {
            pending: self.alerts.len(),
            ..self.stats.clone()
        }
    }

    pub fn is_busy(&self) -> bool {
        self.busy.is_some()
    }

    /// MQTT connected (`true`) or not.
    pub fn handle_mqtt(&mut self, up: bool, now: Time) {
        if self.mqtt_up && !up {
            // The first summary after a grace, so a short blip costs nothing.
            self.status_due = now.saturating_add(self.cfg.mqtt_grace);
        }
        self.mqtt_up = up;
    }

    /// LoRaWAN joined and its port open (`true`) or not.
    pub fn handle_lora(&mut self, up: bool, _now: Time) {
        self.lora_up = up;
    }

    /// The alert rows now in the outbox, by seq ascending. `complete` says
    /// the list is the whole class; otherwise it is the head up to its last
    /// seq. Rows not seen before are added; known rows up to the listed
    /// range that are gone were acknowledged elsewhere and are dropped.
    pub fn handle_outbox(&mut self, seqs: &[u64], complete: bool, now: Time) {
        let upto = if complete {
            u64::MAX
        } else {
            seqs.last().copied().unwrap_or(0)
        };
        let present: std::collections::BTreeSet<u64> = seqs.iter().copied().collect();
        let gone: Vec<u64> = self
            .alerts
            .range(..=upto)
            .map(|(s, _)| *s)
            .filter(|s| !present.contains(s) && self.busy != Some(LoraJob::Alert(*s)))
            .collect();
        for s in gone {
            self.alerts.remove(&s);
            self.stats.acked_elsewhere += 1;
        }
        for &s in seqs {
            self.alerts.entry(s).or_insert(Pending {
                seen: now,
                radio: Radio::Due,
            });
        }
    }

    /// One alert row is known to be gone (acknowledged by another path).
    pub fn handle_gone(&mut self, seq: u64) {
        if self.alerts.remove(&seq).is_some() {
            self.stats.acked_elsewhere += 1;
        }
    }

    /// The end of the outstanding LoRaWAN job.
    pub fn handle_lora_result(&mut self, job: LoraJob, result: LoraResult, now: Time) {
        if self.busy == Some(job) {
            self.busy = None;
        }
        match job {
            LoraJob::Alert(seq) => {
                let (retry_min, retry_max) = (self.cfg.retry_min, self.cfg.retry_max);
                let Some(p) = self.alerts.get_mut(&seq) else {
                    return;
                };
                match result {
                    LoraResult::Acked => {
                        self.alerts.remove(&seq);
                        self.stats.lora_alerts_acked += 1;
                        self.actions.push_back(Action::Delivered {
                            seq,
                            via: Via::Lorawan,
                        });
                    }
                    LoraResult::SentUnconfirmed => {
                        p.radio = Radio::SentUnconfirmed;
                        self.stats.lora_alerts_unconfirmed += 1;
                    }
                    LoraResult::Failed => {
                        let failures = match p.radio {
                            Radio::Retry { failures, .. } => failures + 1,
                            _ => 1,
                        };
                        let at = now.saturating_add(backoff(retry_min, retry_max, failures));
                        p.radio = Radio::Retry { at, failures };
                        self.stats.lora_failures += 1;
                    }
                }
            }
            LoraJob::Status => match result {
                LoraResult::Failed => {
                    self.status_failures += 1;
                    self.stats.lora_failures += 1;
                    let wait =
                        backoff(self.cfg.retry_min, self.cfg.retry_max, self.status_failures);
                    self.status_due = now.saturating_add(wait);
                }
                _ => {
                    self.status_failures = 0;
                    self.stats.lora_status_sent += 1;
                    self.status_due = now.saturating_add(self.cfg.status_every);
                }
            },
        }
    }

    /// When the alert may go by radio (None: never again from here).
    fn radio_at(&self, p: &Pending) -> Option<Time> {
        match p.radio {
            Radio::SentUnconfirmed => None,
            Radio::Retry { at, .. } => Some(at),
            Radio::Due if self.mqtt_up => Some(p.seen.saturating_add(self.cfg.mqtt_grace)),
            // MQTT down (or absent): at once.
            Radio::Due => Some(p.seen),
        }
    }

    /// The next action, if any is due at `now`.
    pub fn poll_action(&mut self, now: Time) -> Option<Action> {
        if let Some(a) = self.actions.pop_front() {
            return Some(a);
        }
        if !self.lora_up || self.busy.is_some() {
            return None;
        }
        let due = self
            .alerts
            .iter()
            .find(|(_, p)| self.radio_at(p).is_some_and(|t| t <= now))
            .map(|(s, _)| *s);
        let job = match due {
            Some(seq) => LoraJob::Alert(seq),
            None if !self.mqtt_up && self.status_due <= now => LoraJob::Status,
            None => return None,
        };
        self.busy = Some(job);
        Some(Action::Lora(job))
    }

    /// When `poll_action` may next have something (None: only new inputs).
    pub fn next_deadline(&self) -> Option<Time> {
        if !self.actions.is_empty() {
            return Some(Time(0));
        }
        if !self.lora_up || self.busy.is_some() {
            return None;
        }
        let alert = self.alerts.values().filter_map(|p| self.radio_at(p)).min();
        let status = (!self.mqtt_up).then_some(self.status_due);
        alert.into_iter().chain(status).min()
    }
}

/// `min · 2^(failures-1)`, capped at `max`.
fn backoff(min: Duration, max: Duration, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    min.saturating_mul(2u32.pow(exp)).min(max)
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
