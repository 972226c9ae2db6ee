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
//!    `retry_max`). One that went out unconfirmed is not repeated by radio.
//!    With MQTT configured it stays in the outbox for MQTT. LoRaWAN-only
//!    (`lorawan_only`), an unconfirmed alert is **done** when: it is not
//!    urgent (sent is delivered for its class: only urgent alerts ask for
//!    acks), or — urgent, unconfirmed because the day's downlinks were used
//!    up — a later confirmed uplink is acknowledged or a downlink `ack`
//!    names it ([`Router::handle_downlink_ack`]). Done rows are deleted
//!    (`Delivered`). The seqs still waiting that way are kept across
//!    restarts ([`Router::take_unconfirmed`] / [`Router::restore_unconfirmed`]),
//!    so a restart never sends them again.
//! 4. The modem task holds one status summary and one alert at a time —
//!    plus one more alert only when it is more severe than all it holds:
//!    most severe first, then lowest seq. The task sends what it holds
//!    most urgent first and pre-empts a waiting lower one, so neither a
//!    summary nor queued info alerts delay a panic by more than one uplink. An info
//!    alert the modem task dropped under budget pressure is not sent by
//!    radio again (LoRaWAN-only, its row is deleted: `Dropped`).
//!
//! Invariants: an alert is never forgotten while its row exists (only
//! [`Router::handle_outbox`], a LoRaWAN ack or a done-by-radio decision
//! remove it); at most one [`Action::Lora`] per job kind is outstanding;
//! every outstanding one ends with [`Router::handle_lora_result`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::Via;
use crate::model::{Severity, Time};

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
    /// No MQTT uplink: the radio is the only path (see rule 3).
    pub lorawan_only: bool,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            mqtt_grace: Duration::from_secs(5),
            retry_min: Duration::from_secs(30),
            retry_max: Duration::from_secs(15 * 60),
            status_every: Duration::from_secs(6 * 3600),
            lorawan_only: false,
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
    /// An info alert the modem task dropped under budget pressure.
    Dropped,
    Failed,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Hand this to the modem; report the end with `handle_lora_result`.
    Lora(LoraJob),
    /// Record in the store that `via` delivered alert `seq` (delete the row).
    Delivered { seq: u64, via: Via },
    /// LoRaWAN-only: delete alert `seq`, dropped from the radio (counted).
    Dropped { seq: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Radio {
    /// Not sent by radio yet (or due again).
    Due,
    /// Failed; due again at this time.
    Retry { at: Time, failures: u32 },
    /// Went out unconfirmed (or dropped): not by radio again.
    SentUnconfirmed,
}

#[derive(Debug, Clone)]
struct Pending {
    /// When the router first saw the row.
    seen: Time,
    radio: Radio,
    severity: Severity,
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
    /// Info alerts the radio dropped under budget pressure.
    pub lora_info_dropped: u64,
    /// LoRaWAN-only: unconfirmed alerts counted as done (see rule 3).
    pub lora_done_unconfirmed: u64,
}

/// The routing state machine.
#[derive(Debug)]
pub struct Router {
    cfg: RouterConfig,
    mqtt_up: bool,
    lora_up: bool,
    /// Alerts with the modem task, and their severity.
    busy_alerts: BTreeMap<u64, Severity>,
    busy_status: bool,
    alerts: BTreeMap<u64, Pending>,
    /// Seqs that went out unconfirmed before a restart.
    restored: BTreeSet<u64>,
    unconfirmed_changed: bool,
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
            busy_alerts: BTreeMap::new(),
            busy_status: false,
            alerts: BTreeMap::new(),
            restored: BTreeSet::new(),
            unconfirmed_changed: false,
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
        !self.busy_alerts.is_empty() || self.busy_status
    }

    /// Seqs that went out unconfirmed and wait (for MQTT, or for an ack),
    /// when that set changed since the last call: keep it across restarts.
    pub fn take_unconfirmed(&mut self) -> Option<Vec<u64>> {
        if !std::mem::take(&mut self.unconfirmed_changed) {
            return None;
        }
        let mut v: Vec<u64> = self
            .alerts
            .iter()
            .filter(|(_, p)| p.radio == Radio::SentUnconfirmed)
            .map(|(s, _)| *s)
            .collect();
        // Restored ones not seen in the outbox yet are still waiting.
        v.extend(self.restored.iter().copied());
        v.sort_unstable();
        v.dedup();
        Some(v)
    }

    /// Seqs saved by [`Router::take_unconfirmed`] before a restart: not
    /// sent by radio again.
    pub fn restore_unconfirmed(&mut self, seqs: &[u64]) {
        self.restored.extend(seqs.iter().copied());
        for s in seqs {
            if let Some(p) = self.alerts.get_mut(s) {
                p.radio = Radio::SentUnconfirmed;
            }
        }
    }

    /// LoRaWAN-only: a downlink `ack` named alert `seq`, which went out
    /// unconfirmed: it is done.
    pub fn handle_downlink_ack(&mut self, seq: u64) {
        if !self.cfg.lorawan_only {
            return;
        }
        if self
            .alerts
            .get(&seq)
            .is_some_and(|p| p.radio == Radio::SentUnconfirmed)
        {
            self.done_unconfirmed(seq);
        }
    }

    fn done_unconfirmed(&mut self, seq: u64) {
        self.alerts.remove(&seq);
        self.restored.remove(&seq);
        self.unconfirmed_changed = true;
        self.stats.lora_done_unconfirmed += 1;
        self.actions.push_back(Action::Delivered {
            seq,
            via: Via::Lorawan,
        });
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
        let rows: Vec<(u64, Severity)> = seqs.iter().map(|s| (*s, Severity::Urgent)).collect();
        self.handle_outbox_rows(&rows, complete, now);
    }

    /// As [`Router::handle_outbox`], with each alert's severity (which
    /// orders the radio queue).
    pub fn handle_outbox_rows(&mut self, rows: &[(u64, Severity)], complete: bool, now: Time) {
        let seqs: Vec<u64> = rows.iter().map(|r| r.0).collect();
        let seqs = &seqs[..];
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
            .filter(|s| !present.contains(s) && !self.busy_alerts.contains_key(s))
            .collect();
        for s in gone {
            self.alerts.remove(&s);
            if self.restored.remove(&s) {
                self.unconfirmed_changed = true;
            }
            self.stats.acked_elsewhere += 1;
        }
        if complete {
            // Restored seqs no longer in the outbox were delivered meanwhile.
            let before = self.restored.len();
            self.restored.retain(|s| present.contains(s));
            self.unconfirmed_changed |= before != self.restored.len();
        }
        for &(s, severity) in rows {
            let restored = self.restored.contains(&s);
            self.alerts.entry(s).or_insert(Pending {
                seen: now,
                radio: if restored {
                    Radio::SentUnconfirmed
                } else {
                    Radio::Due
                },
                severity,
            });
        }
    }

    /// One alert row is known to be gone (acknowledged by another path).
    pub fn handle_gone(&mut self, seq: u64) {
        if self.restored.remove(&seq) {
            self.unconfirmed_changed = true;
        }
        if self.alerts.remove(&seq).is_some() {
            self.stats.acked_elsewhere += 1;
        }
    }

    /// The end of the outstanding LoRaWAN job.
    pub fn handle_lora_result(&mut self, job: LoraJob, result: LoraResult, now: Time) {
        match job {
            LoraJob::Alert(s) => {
                self.busy_alerts.remove(&s);
            }
            LoraJob::Status => self.busy_status = false,
        }
        let only = self.cfg.lorawan_only;
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
                        if only {
                            // The network acknowledged a later uplink: the
                            // urgent ones sent unconfirmed before it are done.
                            let earlier: Vec<u64> = self
                                .alerts
                                .range(..seq)
                                .filter(|(_, p)| p.radio == Radio::SentUnconfirmed)
                                .map(|(s, _)| *s)
                                .collect();
                            for s in earlier {
                                self.done_unconfirmed(s);
                            }
                        }
                    }
                    LoraResult::SentUnconfirmed => {
                        self.stats.lora_alerts_unconfirmed += 1;
                        if only && p.severity != Severity::Urgent {
                            self.done_unconfirmed(seq);
                        } else {
                            p.radio = Radio::SentUnconfirmed;
                            self.unconfirmed_changed = true;
                        }
                    }
                    LoraResult::Dropped => {
                        self.stats.lora_info_dropped += 1;
                        if only {
                            self.alerts.remove(&seq);
                            self.actions.push_back(Action::Dropped { seq });
                        } else {
                            p.radio = Radio::SentUnconfirmed;
                            self.unconfirmed_changed = true;
                        }
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
        if !self.lora_up {
            return None;
        }
        // Most severe first, then lowest seq; one more than the modem task
        // holds only when it is more severe than all it holds (the task
        // puts it first), so a panic never waits behind info alerts.
        let held = self.busy_alerts.values().map(|s| *s as u8).max();
        if self.busy_alerts.len() < MAX_HELD {
            let due = self
                .alerts
                .iter()
                .filter(|(s, _)| !self.busy_alerts.contains_key(s))
                .filter(|(_, p)| held.is_none_or(|h| p.severity as u8 > h))
                .filter(|(_, p)| self.radio_at(p).is_some_and(|t| t <= now))
                .min_by_key(|(s, p)| (std::cmp::Reverse(p.severity as u8), **s))
                .map(|(s, p)| (*s, p.severity));
            if let Some((seq, sev)) = due {
                self.busy_alerts.insert(seq, sev);
                return Some(Action::Lora(LoraJob::Alert(seq)));
            }
        }
        if !self.busy_status && !self.mqtt_up && self.status_due <= now {
            self.busy_status = true;
            return Some(Action::Lora(LoraJob::Status));
        }
        None
    }

    /// When `poll_action` may next have something (None: only new inputs).
    pub fn next_deadline(&self) -> Option<Time> {
        if !self.actions.is_empty() {
            return Some(Time(0));
        }
        if !self.lora_up {
            return None;
        }
        let held = self.busy_alerts.values().map(|s| *s as u8).max();
        let alert = (self.busy_alerts.len() < MAX_HELD)
            .then(|| {
                self.alerts
                    .iter()
                    .filter(|(s, _)| !self.busy_alerts.contains_key(s))
                    .filter(|(_, p)| held.is_none_or(|h| p.severity as u8 > h))
                    .filter_map(|(_, p)| self.radio_at(p))
                    .min()
            })
            .flatten();
        let status = (!self.mqtt_up && !self.busy_status).then_some(self.status_due);
        alert.into_iter().chain(status).min()
    }
}

/// Alerts the modem task holds at most (one per severity).
const MAX_HELD: usize = 3;

/// `min · 2^(failures-1)`, capped at `max`.
fn backoff(min: Duration, max: Duration, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    min.saturating_mul(2u32.pow(exp)).min(max)
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
