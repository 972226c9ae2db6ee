//! The World's uplink side: the MQTT path model (QoS 1 publishes,
//! PUBACKs, disconnects, reconnect backoff), the outbox rescans feeding the
//! dual-path router, its actions, and the LoRaWAN policy core with its
//! modem; the carer's acknowledgements come back over MQTT.

use std::time::Duration;

use carebridge::model::{Class, Time};
use carebridge::uplink::lorawan::codec::{self, AlertMsg, Summary, Uplink};
use carebridge::uplink::lorawan::modem::{Driver, ModemSettings};
use carebridge::uplink::lorawan::policy::{CoreEvent, Delivery, Message, RadioEvent};
use carebridge::uplink::lorawan::rak3172::Rak3172;
use carebridge::uplink::lorawan::{LorawanConfig, policy};
use carebridge::uplink::router::{Action, LoraJob, LoraResult};

use super::{Break, Flight, RESCAN, World};
use crate::check::NO_CLEAR;
use crate::home::{self, DEVICES, MIN};

pub(super) fn lora_core(now: Time) -> policy::Core {
    let cfg = LorawanConfig::default();
    let settings = ModemSettings {
        region: "EU868".into(),
        dev_eui: [1; 8],
        join_eui: [2; 8],
        app_key: [3; 16],
        data_rate: cfg.data_rate,
        adr: false,
        retransmissions: 0,
    };
    let driver = Driver::new(Box::new(Rak3172), settings, cfg.timeouts(), now);
    let core_cfg = cfg
        .core_config()
        .unwrap_or_else(|e| panic!("lorawan defaults: {e}"));
    policy::Core::new(driver, core_cfg, now)
}

impl World {
    pub(super) fn publish(&mut self, seq: u64, uid: String) {
        if self.broken == Break::DeleteOnSend
            && let Some(row) = self.outbox.remove(&seq)
        {
            // Broken on purpose: "sent" is taken for "acknowledged".
            let _ = self
                .books
                .on_delete(&row.uid)
                .map_err(|e| self.books.broken.push(e));
        }
        let recv = self.t + self.rng.range(5, 400);
        let ack = recv + self.rng.range(5, 400);
        self.mqtt.flights.push(Flight {
            seq,
            uid,
            recv,
            ack,
            received: false,
        });
    }

    pub(super) fn mqtt_step(&mut self) -> Result<(), String> {
        if self.mqtt.retry_at.is_some_and(|r| r <= self.t) {
            self.mqtt.retry_at = None;
            if self.mqtt.link_ok {
                self.mqtt.connected = true;
                self.mqtt.up_since = self.t;
                self.router.handle_mqtt(true, self.wall());
                self.note("mqtt connected".into());
                let rows: Vec<(u64, String)> = self
                    .outbox
                    .iter()
                    .map(|(s, r)| (*s, r.uid.clone()))
                    .collect();
                for (s, u) in rows {
                    self.publish(s, u);
                }
            } else {
                let d = self.mqtt.backoff.next_delay(self.rng.unit());
                self.mqtt.retry_at = Some(self.t + d.as_millis() as i64);
            }
        }
        let t = self.t;
        let mut i = 0;
        while i < self.mqtt.flights.len() {
            let f = self.mqtt.flights[i].clone();
            if !f.received && f.recv <= t {
                self.mqtt.flights[i].received = true;
                self.books.receive(&f.uid)?;
                self.count("upstream via mqtt");
            }
            if f.ack <= t {
                self.mqtt.flights.swap_remove(i);
                if let Some(row) = self.outbox.remove(&f.seq) {
                    self.books.on_delete(&row.uid)?;
                    self.note(format!("mqtt puback {}", row.uid));
                }
                continue;
            }
            i += 1;
        }
        Ok(())
    }

    pub(super) fn mqtt_down(&mut self) {
        if !self.mqtt.connected {
            return;
        }
        self.mqtt.connected = false;
        // In flight: received or not as it happened; the PUBACKs are lost.
        self.mqtt.flights.clear();
        self.router.handle_mqtt(false, self.wall());
        let lasted = Duration::from_millis((self.t - self.mqtt.up_since).max(0) as u64);
        self.mqtt.backoff.connected_for(lasted);
        let d = self.mqtt.backoff.next_delay(self.rng.unit());
        self.mqtt.retry_at = Some(self.t + d.as_millis() as i64);
        self.note("mqtt disconnected".into());
    }

    pub(super) fn rescan(&mut self) {
        let seqs: Vec<u64> = self.outbox.keys().copied().collect();
        self.router.handle_outbox(&seqs, true, self.wall());
        self.rescan_at =
            (!seqs.is_empty() || self.router.stats().pending > 0).then_some(self.t + RESCAN);
    }

    pub(super) fn route(&mut self) -> Result<(), String> {
        let now = self.wall();
        while let Some(a) = self.router.poll_action(now) {
            match a {
                Action::Delivered { seq, .. } => {
                    if let Some(row) = self.outbox.remove(&seq) {
                        self.books.on_delete(&row.uid)?;
                        self.note(format!("lora delivered {}", row.uid));
                    }
                }
                Action::Dropped { seq } => {
                    if let Some(row) = self.outbox.remove(&seq) {
                        self.books.on_delete(&row.uid)?;
                        self.note(format!("lora dropped {}", row.uid));
                    }
                }
                Action::Lora(job) => self.lora_job(job, now)?,
            }
        }
        Ok(())
    }

    pub(super) fn lora_job(&mut self, job: LoraJob, now: Time) -> Result<(), String> {
        let (msg, uid) = match job {
            LoraJob::Alert(seq) => {
                let Some(row) = self.outbox.get(&seq) else {
                    self.router.handle_gone(seq);
                    self.router.handle_lora_result(job, LoraResult::Failed, now);
                    return Ok(());
                };
                let idx = DEVICES
                    .iter()
                    .position(|d| d.0 == row.alert.device.as_str())
                    .unwrap_or(0);
                let m = AlertMsg::from_alert(&row.alert, idx as u16, now);
                let mut p = Vec::new();
                codec::encode(&Uplink::Alert(m), &mut p).map_err(|e| e.to_string())?;
                (
                    Message {
                        class: Class::Alert,
                        severity: row.alert.severity,
                        payload: p,
                        confirmed: true,
                    },
                    Some(row.uid.clone()),
                )
            }
            LoraJob::Status => {
                let s = Summary {
                    period_h: 24,
                    temp_min_half_c: None,
                    temp_max_half_c: None,
                    battery_low: 0,
                    backlog: self.outbox.len() as u16,
                    rooms: Vec::new(),
                };
                let mut p = Vec::new();
                codec::encode(&Uplink::Summary(s), &mut p).map_err(|e| e.to_string())?;
                (
                    Message {
                        class: Class::Status,
                        severity: carebridge::model::Severity::Info,
                        payload: p,
                        confirmed: false,
                    },
                    None,
                )
            }
        };
        let id = self.next_job;
        self.next_job += 1;
        self.jobs.insert(id, (job, uid));
        self.job_payloads.insert(id, msg.payload.clone());
        self.lora_current = Some(id);
        self.lora.submit(id, msg, now);
        Ok(())
    }

    pub(super) fn pump_lora(&mut self) -> Result<(), String> {
        let now = self.wall();
        for _ in 0..1000 {
            let mut any = false;
            while let Some(line) = self.lora.poll_transmit() {
                any = true;
                self.modem.command(&line, self.t, &mut self.rng);
            }
            for (_, data) in std::mem::take(&mut self.modem.received) {
                let on_air = self
                    .job_payloads
                    .iter()
                    .filter(|(id, p)| **p == data && self.jobs.contains_key(id))
                    .map(|(id, _)| *id)
                    .min()
                    .or(self.lora_current);
                let job = on_air.and_then(|id| self.jobs.get(&id)).cloned();
                if let Some((LoraJob::Alert(seq), Some(uid))) = job {
                    match codec::decode(&data) {
                        Ok((Uplink::Alert(m), _)) => {
                            let row_state = self.books.raised.get(&uid).map(|r| r.1);
                            if row_state != Some(m.state) {
                                return Err(format!(
                                    "lora payload for seq {seq} says {:?}, row {uid} is {row_state:?}",
                                    m.state
                                ));
                            }
                        }
                        other => return Err(format!("lora alert payload decodes as {other:?}")),
                    }
                    self.books.receive(&uid)?;
                    self.count("upstream via lora");
                }
            }
            while let Some(ev) = self.lora.poll_event() {
                any = true;
                match ev {
                    CoreEvent::Delivered { id, delivery } => {
                        self.job_payloads.remove(&id);
                        if let Some((job, _)) = self.jobs.remove(&id) {
                            if self.lora_current == Some(id) {
                                self.lora_current = None;
                            }
                            let r = match delivery {
                                Delivery::Acked => LoraResult::Acked,
                                Delivery::SentUnconfirmed => LoraResult::SentUnconfirmed,
                                Delivery::Dropped(_) => LoraResult::Dropped,
                                Delivery::Failed(_) => LoraResult::Failed,
                            };
                            self.router.handle_lora_result(job, r, now);
                        }
                    }
                    CoreEvent::Radio(RadioEvent::JoinState { joined, .. }) => {
                        self.router.handle_lora(joined, now)
                    }
                    CoreEvent::Radio(RadioEvent::ModemReset(why)) => {
                        self.router.handle_lora(false, now);
                        self.note(format!("modem reset: {why}"));
                    }
                    _ => {}
                }
            }
            if any {
                self.route()?;
            } else {
                return Ok(());
            }
        }
        Err("lora pump did not settle".into())
    }

    /// The carer acknowledges urgent alerts a few minutes after they
    /// arrive (over MQTT: it waits while the gateway is unreachable).
    pub(super) fn carer_acks(&mut self) {
        for (rule, dev) in std::mem::take(&mut self.books.newly_received) {
            if NO_CLEAR.contains(&rule.as_str()) || self.rng.chance(0.2) {
                let at = self.t + self.rng.range(1, 15) * MIN;
                self.acks.push((at, rule, dev));
            }
        }
        if !self.mqtt.connected {
            return;
        }
        let t = self.t;
        let due: Vec<(i64, String, String)> =
            self.acks.iter().filter(|a| a.0 <= t).cloned().collect();
        self.acks.retain(|a| a.0 > t);
        for (_, rule, dev) in due {
            let id = home::device_id(DEVICES.iter().position(|d| d.0 == dev).unwrap_or(0));
            if self.engine.ack(&rule, Some(&id), self.wall()) {
                self.books.on_ack(&rule, &dev);
                self.note(format!("carer ack {rule} {dev}"));
                self.unsaved_alerts = true;
                self.commit_alerts();
            }
        }
    }
}
