//! The dual-path task: carries out the [`Router`]'s decisions between the
//! outbox, the MQTT link state and the LoRaWAN modem task.
//!
//! Owns: the router, the stable device index used by the compact codec
//! (persisted in the store's kv under [`DEVICE_INDEX_KEY`], shown in the
//! status document so a LoRaWAN-only cloud can name devices), the memory of
//! alerts recently sent by radio (so a downlink `ack` by seq or by device
//! and kind finds its rule), and the LoRaWAN part of the status document.
//!
//! Invariants:
//! - the outbox stays the truth: an alert is deleted only through
//!   `Write::Delivered` after a LoRaWAN confirmed ack (or by MQTT's PUBACK);
//!   before each radio send the row is re-read, so an alert MQTT already
//!   delivered is not sent again (a race within one commit may still send
//!   it twice: receivers de-duplicate by `id`/`seq`);
//! - the outbox is re-read every [`RESCAN`] and on every new row, which is
//!   how acknowledgements by the other path reach the router;
//! - downlink commands become the same [`Command`]s MQTT delivers, handled
//!   by the same handler (`ack`, `ping`, `permit_join`); LoRaWAN-only, a
//!   downlink `ack` of an alert sent unconfirmed also makes it done;
//! - the router's set of alerts sent unconfirmed and still waiting is kept
//!   in the kv under [`UNCONFIRMED_KEY`], so a restart does not send them
//!   again;
//! - a modem that refuses its set-up raises one `warning` alert
//!   (rule [`MODEM_RULE`]) per episode (until it joins again).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::lorawan::codec::{self, AlertMsg, Downlink, RoomActivity, Summary, Uplink};
use super::lorawan::policy::RadioEvent;
use super::lorawan::{Delivery, LoraEvent, LoraUplink, Message};
use super::router::{Action, LoraJob, LoraResult, Router, RouterConfig};
use super::{Command, UplinkState};
use crate::model::{Alert, AlertState, Class, Kind, Severity, Time};
use crate::store::{Store, Write};

/// The kv key of the device → compact index map (JSON object).
pub const DEVICE_INDEX_KEY: &str = "lorawan.device_index";
/// The kv key of the seqs sent unconfirmed and still waiting (JSON array).
pub const UNCONFIRMED_KEY: &str = "lorawan.unconfirmed";
/// The rule id of the warning raised when the modem refuses its set-up.
pub const MODEM_RULE: &str = "lorawan-modem";
/// How often the outbox is re-read to notice rows the other path acked.
pub const RESCAN: Duration = Duration::from_secs(2);
/// Alert rows the router tracks at once (the oldest first).
const WINDOW: usize = 1000;
/// Alerts remembered for downlink acks.
const REMEMBER: usize = 256;

/// The LoRaWAN side as the heartbeat and the UI show it.
pub use crate::status::LoraStatus;

/// A shared, cheap snapshot of [`LoraStatus`].
pub type SharedStatus = Arc<Mutex<LoraStatus>>;

/// What the task needs.
pub struct Dual {
    pub store: Store,
    pub lora: LoraUplink,
    pub events: mpsc::Receiver<LoraEvent>,
    /// The MQTT link's state (`None`: no MQTT uplink configured).
    pub mqtt: Option<watch::Receiver<UplinkState>>,
    /// Where downlink commands go (the same handler as MQTT's `cmd/<name>`).
    pub commands: mpsc::Sender<Command>,
    pub router: RouterConfig,
    /// Send alerts as confirmed uplinks.
    pub confirmed_alerts: bool,
    pub status: SharedStatus,
}

impl std::fmt::Debug for Dual {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dual")
    }
}

/// An alert sent by radio, for matching downlink acks.
#[derive(Debug, Clone)]
struct Sent {
    seq: u64,
    device_index: u16,
    kind: Option<Kind>,
    rule: String,
    device: String,
}

struct State {
    router: Router,
    index: BTreeMap<String, u16>,
    sent: VecDeque<Sent>,
    /// Severity of the alert rows seen (parsed once per row).
    severity: BTreeMap<u64, Severity>,
    /// A set-up refusal was raised as an alert and the modem has not joined since.
    refusal_raised: bool,
}

fn set_status(s: &SharedStatus, f: impl FnOnce(&mut LoraStatus)) {
    match s.lock() {
        Ok(mut g) => f(&mut g),
        Err(p) => f(&mut p.into_inner()),
    }
}

fn mqtt_up(rx: &Option<watch::Receiver<UplinkState>>) -> bool {
    rx.as_ref().is_some_and(|r| r.borrow().state == "connected")
}

impl Dual {
    /// Runs until shutdown.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let index = match self.store.kv_get(DEVICE_INDEX_KEY).await? {
            Some(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "device index map unreadable; starting a new one");
                BTreeMap::new()
            }),
            None => BTreeMap::new(),
        };
        let mut st = State {
            router: Router::new(self.router.clone(), crate::wall::now()),
            index,
            sent: VecDeque::new(),
            severity: BTreeMap::new(),
            refusal_raised: false,
        };
        if let Some(b) = self.store.kv_get(UNCONFIRMED_KEY).await? {
            match serde_json::from_slice::<Vec<u64>>(&b) {
                Ok(seqs) => st.router.restore_unconfirmed(&seqs),
                Err(e) => tracing::warn!(key = UNCONFIRMED_KEY, error = %e, "unreadable; ignored"),
            }
        }
        set_status(&self.status, |s| {
            s.state = "starting".into();
            s.device_index = st.index.clone();
        });
        st.router
            .handle_mqtt(mqtt_up(&self.mqtt), crate::wall::now());
        let (res_tx, mut results) = mpsc::channel::<(LoraJob, LoraResult)>(8);
        let mut changed = self.store.outbox_changed();
        let mut mqtt = self.mqtt.clone();
        let mut events = Some(std::mem::replace(&mut self.events, mpsc::channel(1).1));
        let mut next_scan = Time(0);
        loop {
            let now = crate::wall::now();
            if now >= next_scan {
                self.rescan(&mut st, now).await?;
                next_scan = now.saturating_add(RESCAN);
            }
            while let Some(a) = st.router.poll_action(crate::wall::now()) {
                self.act(&mut st, a, &res_tx).await?;
            }
            if let Some(seqs) = st.router.take_unconfirmed() {
                let bytes = serde_json::to_vec(&seqs)?;
                self.store
                    .submit(Write::Kv(UNCONFIRMED_KEY.into(), Some(bytes)))
                    .await?;
            }
            set_status(&self.status, |s| s.router = st.router.stats());
            let now = crate::wall::now();
            let wake = st
                .router
                .next_deadline()
                .map_or(next_scan, |t| t.min(next_scan));
            let sleep = wake.since(now).max(Duration::from_millis(5));
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                ev = async { match events.as_mut() { Some(e) => e.recv().await, None => std::future::pending().await } } => match ev {
                    Some(ev) => self.on_event(&mut st, ev).await,
                    None => {
                        st.router.handle_lora(false, crate::wall::now());
                        set_status(&self.status, |s| s.state = "stopped".into());
                        // The modem task is gone (the gateway is stopping).
                        events = None;
                    }
                },
                r = results.recv() => if let Some((job, result)) = r {
                    st.router.handle_lora_result(job, result, crate::wall::now());
                },
                r = changed.changed() => {
                    if r.is_err() {
                        return Err(anyhow::anyhow!("store closed"));
                    }
                    next_scan = Time(0);
                }
                r = async { match mqtt.as_mut() { Some(m) => m.changed().await, None => std::future::pending().await } } => {
                    if r.is_err() {
                        mqtt = None;
                    }
                    st.router.handle_mqtt(mqtt_up(&mqtt), crate::wall::now());
                }
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    async fn rescan(&self, st: &mut State, now: Time) -> anyhow::Result<()> {
        let rows = self.store.outbox_fetch(Class::Alert, 0, WINDOW).await?;
        let mut known = BTreeMap::new();
        for r in &rows {
            let sev = match st.severity.get(&r.seq) {
                Some(s) => *s,
                None => severity_of(&r.payload),
            };
            known.insert(r.seq, sev);
        }
        let list: Vec<(u64, Severity)> = known.iter().map(|(s, v)| (*s, *v)).collect();
        st.severity = known;
        st.router
            .handle_outbox_rows(&list, rows.len() < WINDOW, now);
        Ok(())
    }

    async fn act(
        &self,
        st: &mut State,
        a: Action,
        results: &mpsc::Sender<(LoraJob, LoraResult)>,
    ) -> anyhow::Result<()> {
        match a {
            Action::Delivered { seq, via } => {
                self.store
                    .submit(Write::Delivered {
                        via,
                        rows: vec![(Class::Alert, seq)],
                    })
                    .await?;
            }
            Action::Dropped { seq } => {
                tracing::info!(seq, "info alert dropped from the radio (airtime budget)");
                self.store
                    .submit(Write::Ack(vec![(Class::Alert, seq)]))
                    .await?;
            }
            Action::Lora(job) => {
                let payload = match job {
                    LoraJob::Alert(seq) => self.alert_payload(st, seq).await?,
                    LoraJob::Status => Some(self.summary(st).await?),
                };
                let Some(payload) = payload else {
                    // The row is gone: the other path delivered it.
                    if let LoraJob::Alert(seq) = job {
                        st.router.handle_gone(seq);
                    }
                    st.router
                        .handle_lora_result(job, LoraResult::Failed, crate::wall::now());
                    return Ok(());
                };
                let (class, severity) = match job {
                    LoraJob::Alert(seq) => (
                        Class::Alert,
                        st.severity.get(&seq).copied().unwrap_or(Severity::Urgent),
                    ),
                    LoraJob::Status => (Class::Status, Severity::Info),
                };
                // Acks (downlinks) are for urgent alerts only.
                let confirmed = self.confirmed_alerts && severity == Severity::Urgent;
                let msg = Message {
                    class,
                    severity,
                    payload,
                    confirmed,
                };
                let (lora, tx) = (self.lora.clone(), results.clone());
                tokio::spawn(async move {
                    let result = match lora.send(msg).await {
                        Ok(Delivery::Acked) => LoraResult::Acked,
                        Ok(Delivery::SentUnconfirmed) => LoraResult::SentUnconfirmed,
                        Ok(Delivery::Dropped(why)) => {
                            tracing::info!(?job, %why, "LoRaWAN send dropped");
                            LoraResult::Dropped
                        }
                        Ok(Delivery::Failed(why)) => {
                            tracing::info!(?job, %why, "LoRaWAN send failed; will retry");
                            LoraResult::Failed
                        }
                        Err(_) => LoraResult::Failed,
                    };
                    let _ = tx.send((job, result)).await;
                });
            }
        }
        Ok(())
    }

    /// The compact alert for outbox row `seq`, or `None` when the row is gone.
    async fn alert_payload(&self, st: &mut State, seq: u64) -> anyhow::Result<Option<Vec<u8>>> {
        let rows = self
            .store
            .outbox_fetch(Class::Alert, seq.saturating_sub(1), 1)
            .await?;
        let Some(row) = rows.into_iter().next().filter(|r| r.seq == seq) else {
            return Ok(None);
        };
        let alert: Alert = match serde_json::from_slice(&row.payload) {
            Ok(a) => a,
            Err(e) => {
                // Never expected (the store wrote it); send a bare alert
                // rather than nothing.
                tracing::error!(seq, error = %e, "alert row does not parse");
                return Ok(Some(vec![codec::VERSION << 5 | 1, 0xf8, 0, 0]));
            }
        };
        let idx = self.device_index(st, alert.device.as_str()).await?;
        let msg = AlertMsg::from_alert(&alert, idx, crate::wall::now());
        st.sent.push_back(Sent {
            seq,
            device_index: idx,
            kind: alert.kind,
            rule: alert.rule.to_string(),
            device: alert.device.as_str().to_string(),
        });
        while st.sent.len() > REMEMBER {
            st.sent.pop_front();
        }
        let mut out = Vec::with_capacity(7);
        codec::encode(&Uplink::Alert(msg), &mut out)?;
        Ok(Some(out))
    }

    /// The device's stable index, assigned (and persisted) on first use.
    async fn device_index(&self, st: &mut State, device: &str) -> anyhow::Result<u16> {
        if let Some(i) = st.index.get(device) {
            return Ok(*i);
        }
        let next = st.index.values().max().map_or(0, |m| m.saturating_add(1));
        st.index.insert(device.to_string(), next);
        let bytes = serde_json::to_vec(&st.index)?;
        self.store
            .submit(Write::Kv(DEVICE_INDEX_KEY.into(), Some(bytes)))
            .await?;
        set_status(&self.status, |s| s.device_index = st.index.clone());
        Ok(next)
    }

    /// The compact status: the last 24 h of history and the backlog.
    async fn summary(&self, _st: &mut State) -> anyhow::Result<Vec<u8>> {
        let now = crate::wall::now();
        let since = Time(now.as_millis() - 86_400_000);
        let history = self.store.history(since, now, 200_000).await?;
        let devices = self.store.devices().await?;
        let stats = self.store.stats();
        let backlog = stats.alert.rows + stats.status.rows + stats.telemetry.rows;
        let s = build_summary(&history, &devices, backlog, since);
        set_status(&self.status, |st| st.room_index = s.1);
        let mut out = Vec::with_capacity(codec::MAX_SUMMARY);
        codec::encode(&Uplink::Summary(s.0), &mut out)?;
        Ok(out)
    }

    async fn on_event(&self, st: &mut State, ev: LoraEvent) {
        let now = crate::wall::now();
        match ev {
            LoraEvent::Radio(RadioEvent::SetupRefused {
                command,
                error,
                retry_in,
            }) => {
                st.router.handle_lora(false, now);
                let msg = format!(
                    "LoRaWAN modem refused its set-up ({command}: {error}); retrying in {} s",
                    retry_in.as_secs()
                );
                set_status(&self.status, |s| {
                    s.state = "set-up refused".into();
                    s.detail = msg.clone();
                });
                if !st.refusal_raised {
                    st.refusal_raised = true;
                    self.raise_modem_warning(msg, now).await;
                }
            }
            LoraEvent::Radio(RadioEvent::JoinState { joined, detail }) => {
                if joined {
                    st.refusal_raised = false;
                }
                st.router.handle_lora(joined, now);
                set_status(&self.status, |s| {
                    s.state = if joined { "joined" } else { "joining" }.into();
                    s.detail = detail;
                });
            }
            LoraEvent::Port { up, detail } => {
                if !up {
                    st.router.handle_lora(false, now);
                }
                set_status(&self.status, |s| {
                    s.state = if up { "joining" } else { "port down" }.into();
                    s.detail = detail;
                });
            }
            LoraEvent::Radio(RadioEvent::ModemReset(why)) => {
                st.router.handle_lora(false, now);
                set_status(&self.status, |s| s.detail = format!("modem reset: {why}"));
            }
            LoraEvent::Airtime {
                used_24h,
                limit,
                downlinks_24h,
                data_rate,
                stats,
            } => set_status(&self.status, |s| {
                s.airtime_24h_ms = u64::try_from(used_24h.as_millis()).unwrap_or(u64::MAX);
                s.airtime_limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
                s.downlinks_24h = downlinks_24h;
                s.data_rate = data_rate;
                s.joins = stats.joins;
                s.sessions_kept = stats.sessions_kept;
                s.info_dropped = stats.info_dropped;
            }),
            LoraEvent::Radio(RadioEvent::DownlinkInvalid { port, error, .. }) => {
                tracing::warn!(port, %error, "LoRaWAN downlink ignored");
            }
            LoraEvent::Radio(RadioEvent::Downlink(d)) => {
                set_status(&self.status, |s| {
                    s.last_downlink = Some(d.to_json().to_string());
                });
                if let Some(seq) = acked_seq(&d, &st.sent) {
                    st.router.handle_downlink_ack(seq);
                }
                match downlink_command(&d, &st.sent) {
                    Some(cmd) => {
                        if self.commands.try_send(cmd).is_err() {
                            tracing::warn!(?d, "LoRaWAN command dropped: handler busy");
                        }
                    }
                    None => tracing::warn!(?d, "LoRaWAN ack matches no alert sent by radio"),
                }
            }
        }
    }
}

impl Dual {
    /// One `warning` alert: the modem refuses its set-up (the carer's
    /// dashboard sees it by MQTT, or by radio once the modem works).
    async fn raise_modem_warning(&self, message: String, now: Time) {
        let Some(alert) = Alert::gateway(
            MODEM_RULE,
            "lorawan-modem",
            AlertState::Raised,
            message,
            now,
        ) else {
            return;
        };
        if let Err(e) = self.store.submit(Write::Alert(Box::new(alert))).await {
            tracing::error!(error = %e, "could not raise the LoRaWAN modem warning");
        }
    }
}

/// The severity of an alert row (urgent when it does not parse: never
/// demote what cannot be read).
fn severity_of(payload: &[u8]) -> Severity {
    #[derive(serde::Deserialize)]
    struct Sev {
        severity: Severity,
    }
    serde_json::from_slice::<Sev>(payload).map_or(Severity::Urgent, |s| s.severity)
}

/// The seq of the alert a downlink `ack` names, if it names one sent by radio.
fn acked_seq(d: &Downlink, sent: &VecDeque<Sent>) -> Option<u64> {
    match d {
        Downlink::AckSeq { seq } => sent
            .iter()
            .rev()
            .find(|s| s.seq & 0xffff_ffff == u64::from(*seq))
            .map(|s| s.seq),
        Downlink::AckIndex { device_index, kind } => sent
            .iter()
            .rev()
            .find(|s| s.device_index == *device_index && (kind.is_none() || s.kind == *kind))
            .map(|s| s.seq),
        _ => None,
    }
}

/// The [`Command`] a downlink stands for (`None`: an ack for an unknown alert).
fn downlink_command(d: &Downlink, sent: &VecDeque<Sent>) -> Option<Command> {
    use serde_json::json;
    let cmd = |name: &str, body: serde_json::Value| Command {
        name: name.to_string(),
        payload: body.to_string().into_bytes(),
        receipt: None,
    };
    let ack = |s: &Sent| {
        cmd(
            "ack",
            json!({"rule": s.rule, "device": s.device, "via": "lorawan"}),
        )
    };
    match d {
        Downlink::Ping { token } => Some(cmd("ping", json!({"token": token, "via": "lorawan"}))),
        Downlink::PermitJoin { secs } => Some(cmd("permit_join", json!({"seconds": secs}))),
        Downlink::AckSeq { seq } => sent
            .iter()
            .rev()
            .find(|s| s.seq & 0xffff_ffff == u64::from(*seq))
            .map(ack),
        Downlink::AckIndex { device_index, kind } => sent
            .iter()
            .rev()
            .find(|s| s.device_index == *device_index && (kind.is_none() || s.kind == *kind))
            .map(ack),
    }
}

/// Kinds that count as activity in a room.
fn is_activity(k: Kind) -> bool {
    matches!(k, Kind::Motion | Kind::Contact | Kind::Bed | Kind::Chair)
}

/// The daily summary from `history` since `since`, and the room index used.
pub fn build_summary(
    history: &[crate::model::Reading],
    devices: &[crate::model::DeviceInfo],
    backlog: u64,
    since: Time,
) -> (Summary, BTreeMap<String, u8>) {
    let mut rooms: Vec<&str> = devices.iter().filter_map(|d| d.room.as_deref()).collect();
    rooms.sort_unstable();
    rooms.dedup();
    rooms.truncate(codec::MAX_ROOMS);
    let room_index: BTreeMap<String, u8> = rooms
        .iter()
        .enumerate()
        .map(|(i, r)| (r.to_string(), u8::try_from(i).unwrap_or(u8::MAX)))
        .collect();
    let room_of: BTreeMap<&str, u8> = devices
        .iter()
        .filter_map(|d| {
            let id = d.id.as_ref()?.as_str();
            let room = room_index.get(d.room.as_deref()?)?;
            Some((id, *room))
        })
        .collect();
    let mut slots: Vec<u128> = vec![0; rooms.len()];
    let (mut tmin, mut tmax) = (f64::INFINITY, f64::NEG_INFINITY);
    for r in history {
        if r.kind == Kind::Temperature {
            tmin = tmin.min(r.value);
            tmax = tmax.max(r.value);
        }
        if is_activity(r.kind)
            && r.value != 0.0
            && let Some(room) = room_of.get(r.device.as_str())
        {
            let slot = (r.at.as_millis() - since.as_millis()).clamp(0, 86_399_999) / 900_000;
            if let Some(bits) = slots.get_mut(usize::from(*room)) {
                *bits |= 1u128 << slot;
            }
        }
    }
    let half = |v: f64| {
        v.is_finite()
            .then(|| (v * 2.0).round().clamp(-127.0, 127.0) as i8)
    };
    let battery_low = devices
        .iter()
        .filter(|d| d.battery.is_some_and(|b| b < 20.0))
        .count();
    let summary = Summary {
        period_h: 24,
        temp_min_half_c: half(tmin),
        temp_max_half_c: half(tmax),
        battery_low: u8::try_from(battery_low).unwrap_or(u8::MAX),
        backlog: u16::try_from(backlog).unwrap_or(u16::MAX),
        rooms: slots
            .iter()
            .enumerate()
            .map(|(i, b)| RoomActivity {
                room_index: u8::try_from(i).unwrap_or(u8::MAX),
                active_slots: u8::try_from(b.count_ones()).unwrap_or(u8::MAX),
            })
            .collect(),
    };
    (summary, room_index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeviceId, DeviceInfo, Reading};

    fn sent() -> VecDeque<Sent> {
        [
            (4, 0, Some(Kind::Panic), "panic", "pendant"),
            (9, 3, Some(Kind::WaterLeak), "leak", "kitchen-leak"),
            (12, 0, Some(Kind::Fall), "fall", "pendant"),
        ]
        .into_iter()
        .map(|(seq, device_index, kind, rule, device)| Sent {
            seq,
            device_index,
            kind,
            rule: rule.into(),
            device: device.into(),
        })
        .collect()
    }

    fn body(c: &Command) -> serde_json::Value {
        serde_json::from_slice(&c.payload).unwrap()
    }

    #[test]
    fn downlink_acks_find_the_alert_sent_by_radio_by_seq_or_by_device_and_kind() {
        let s = sent();
        let c = downlink_command(&Downlink::AckSeq { seq: 9 }, &s).unwrap();
        assert_eq!(c.name, "ack");
        assert_eq!(body(&c)["rule"], "leak");
        assert_eq!(body(&c)["device"], "kitchen-leak");
        let by_kind = Downlink::AckIndex {
            device_index: 0,
            kind: Some(Kind::Panic),
        };
        assert_eq!(
            body(&downlink_command(&by_kind, &s).unwrap())["rule"],
            "panic"
        );
        // No kind: the most recent alert of that device.
        let any = Downlink::AckIndex {
            device_index: 0,
            kind: None,
        };
        assert_eq!(body(&downlink_command(&any, &s).unwrap())["rule"], "fall");
        assert!(downlink_command(&Downlink::AckSeq { seq: 5 }, &s).is_none());
    }

    #[test]
    fn ping_and_permit_join_downlinks_become_the_mqtt_commands() {
        let c = downlink_command(&Downlink::Ping { token: 7 }, &VecDeque::new()).unwrap();
        assert_eq!(
            (c.name.as_str(), body(&c)["token"].as_u64()),
            ("ping", Some(7))
        );
        let c = downlink_command(&Downlink::PermitJoin { secs: 120 }, &VecDeque::new()).unwrap();
        assert_eq!(c.name, "permit_join");
        assert_eq!(body(&c)["seconds"], 120);
    }

    #[test]
    fn summary_counts_active_quarter_hours_per_room_and_temperature_extremes() {
        let dev = |id: &str, room: &str, battery: Option<f64>| DeviceInfo {
            id: Some(DeviceId::new(id).unwrap()),
            room: Some(room.into()),
            battery,
            ..Default::default()
        };
        let devices = vec![
            dev("hall-pir", "hall", Some(80.0)),
            dev("kitchen-pir", "kitchen", Some(5.0)),
            dev("kitchen-temp", "kitchen", None),
        ];
        let since = Time(0);
        let r = |d: &str, k: Kind, v: f64, min: i64| {
            Reading::new(DeviceId::new(d).unwrap(), k, v, Time(min * 60_000)).unwrap()
        };
        let history = vec![
            r("hall-pir", Kind::Motion, 1.0, 1),
            r("hall-pir", Kind::Motion, 1.0, 2), // same quarter-hour
            r("hall-pir", Kind::Motion, 0.0, 20), // no motion: not activity
            r("kitchen-pir", Kind::Motion, 1.0, 30),
            r("kitchen-pir", Kind::Motion, 1.0, 50),
            r("kitchen-temp", Kind::Temperature, 17.3, 10),
            r("kitchen-temp", Kind::Temperature, 21.0, 40),
        ];
        let (s, rooms) = build_summary(&history, &devices, 70_000, since);
        assert_eq!(rooms.get("hall"), Some(&0));
        assert_eq!(rooms.get("kitchen"), Some(&1));
        let slots: Vec<u8> = s.rooms.iter().map(|r| r.active_slots).collect();
        assert_eq!(slots, vec![1, 2]);
        assert_eq!((s.temp_min_half_c, s.temp_max_half_c), (Some(35), Some(42)));
        assert_eq!(s.battery_low, 1);
        assert_eq!(s.backlog, u16::MAX, "saturates");
        let mut out = Vec::new();
        codec::encode(&Uplink::Summary(s), &mut out).unwrap();
        assert!(out.len() <= codec::MAX_SUMMARY);
    }
}
