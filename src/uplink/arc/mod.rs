//! The alarm receiving centre path (SIA DC-09): a client task that sends
//! alerts to the ARC in parallel with MQTT and LoRaWAN. The codec is pure
//! and lives in the core ([`carebridge_core::arc`], re-exported here).
//!
//! - Alerts come from [`queue`] (captured in the alert's own transaction),
//!   oldest urgent first, then the rest oldest first.
//! - Each goes to the primary receiver, `attempts` times, then to the
//!   secondary; with neither answering the task waits (doubling up to
//!   `retry_max`) and starts again. Everything stays queued meanwhile.
//! - ACK (matching sequence) = delivered: the row is deleted and the
//!   delivery recorded (`via = arc` when the ARC was first).
//! - NAK: if its timestamp is off by more than `time_tolerance` our clock
//!   is corrected by the difference and the message sent again at once;
//!   otherwise it is a refusal (wrong key, unknown account): counted,
//!   logged, reported in the status, retried like a timeout.
//! - DUH: the receiver cannot use this event: counted, logged, dropped.
//! - Idle for `supervision`: a NULL link test; every `periodic_test`: a
//!   Contact ID 602 test report; [`ArcHandle::test`]: a 601 manual test
//!   (zone 0, the gateway); [`ArcHandle::test_device`]: a 601 manual test
//!   with a device's zone (the commissioning walk-through, one per device).

pub mod link;
pub mod queue;

pub use carebridge_core::arc::ArcStatus;
pub use carebridge_core::arc::*;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use carebridge_core::config::{ArcConfig, ArcTarget};

use crate::clock::Clock;
use crate::model::{AlertState, Kind, Severity, Time};
use link::{Conn, Exchange};
use queue::{Queue, Queued};

/// Shared view of the status.
pub type SharedArcStatus = Arc<Mutex<ArcStatus>>;

impl std::fmt::Debug for ArcHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArcHandle").finish_non_exhaustive()
    }
}

/// Asks the task to send a manual test (Contact ID 601) now; answers
/// whether a receiver acknowledged it.
#[derive(Clone)]
pub struct ArcHandle {
    tests: mpsc::Sender<TestReq>,
    pub status: SharedArcStatus,
}

/// A receiver's acknowledgement of a manual test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestAck {
    /// `"primary"` or `"secondary"`.
    pub receiver: &'static str,
    /// The zone the test carried (0: the gateway itself).
    pub zone: u16,
}

/// One manual test asked of the task: for a device (its zone) or the gateway.
struct TestReq {
    device: Option<String>,
    reply: oneshot::Sender<Result<TestAck, String>>,
}

impl ArcHandle {
    async fn ask(&self, device: Option<String>) -> Result<TestAck, String> {
        let (tx, rx) = oneshot::channel();
        self.tests
            .send(TestReq { device, reply: tx })
            .await
            .map_err(|_| "the ARC task is not running".to_string())?;
        rx.await.map_err(|_| "the ARC task stopped".to_string())?
    }

    /// Sends a test signal (zone 0); `Ok("primary"|"secondary")` once acknowledged.
    pub async fn test(&self) -> Result<&'static str, String> {
        self.ask(None).await.map(|a| a.receiver)
    }

    /// Sends a manual test (Contact ID 601) carrying `device`'s zone
    /// (`[arc.zones]`, else the number kept in `arc_zone`, given now at
    /// its first use): what the ARC sees when that device raises an alarm.
    pub async fn test_device(&self, device: &str) -> Result<TestAck, String> {
        self.ask(Some(device.to_string())).await
    }
}

/// Everything the task needs.
pub struct ArcTask {
    pub cfg: ArcConfig,
    pub key: Option<Key>,
    pub db: PathBuf,
    pub busy: Duration,
    pub clock: Arc<dyn Clock>,
    /// Bumped after each commit that may have queued an alert.
    pub changed: tokio::sync::watch::Receiver<u64>,
    /// Where the task reports (shared with the status builder).
    pub status: SharedArcStatus,
    /// The type of an active rule by id (`silent`, `inactivity`, …), so a
    /// silent device reaches the ARC as loss of supervision without an
    /// `[arc.rules]` entry.
    pub rule_type: RuleTypeFn,
}

/// Looks up an active rule's type by its id.
pub type RuleTypeFn = Arc<dyn Fn(&str) -> Option<&'static str> + Send + Sync>;

/// Reads and decodes `[arc] key_file` (errors name the key).
pub fn load_key(cfg: &ArcConfig) -> Result<Option<Key>, String> {
    if cfg.encryption == "none" {
        return Ok(None);
    }
    let path = cfg.key_file.as_ref().ok_or("arc.key_file: missing")?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("arc.key_file: {}: {e}", path.display()))?;
    let bytes = cfg
        .decode_key(&text)
        .map_err(|e| format!("arc.key_file: {}: {e}", path.display()))?;
    Key::new(&bytes)
        .map(Some)
        .map_err(|e| format!("arc.key_file: {e}"))
}

/// Starts the task: its handle, and the future to spawn.
pub fn start(
    t: ArcTask,
    shutdown: CancellationToken,
) -> (
    ArcHandle,
    impl std::future::Future<Output = anyhow::Result<()>>,
) {
    let (tx, rx) = mpsc::channel(4);
    let status = t.status.clone();
    status.lock().unwrap_or_else(|p| p.into_inner()).state = "down";
    let handle = ArcHandle {
        tests: tx,
        status: status.clone(),
    };
    (handle, run(t, rx, status, shutdown))
}

enum Outcome {
    Acked(&'static str),
    Duh,
    /// No receiver acknowledged it.
    Down,
}

struct Sender {
    cfg: ArcConfig,
    key: Option<Key>,
    ids: Ids,
    targets: Vec<(&'static str, ArcTarget)>,
    conns: Vec<Conn>,
    clock: Arc<dyn Clock>,
    offset_ms: i64,
    status: SharedArcStatus,
    rng: ring::rand::SystemRandom,
}

impl Sender {
    fn st(&self) -> std::sync::MutexGuard<'_, ArcStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn frame(&self, kind: MsgType, seq: u16, data: &str) -> Vec<u8> {
        let at = Time::from_millis(self.clock.now().as_millis().saturating_add(self.offset_ms));
        let mut pad = [0u8; 16];
        let _ = ring::rand::SecureRandom::fill(&self.rng, &mut pad);
        let mut out = Vec::with_capacity(160);
        let msg = Message {
            kind,
            seq,
            data: data.to_string(),
            at,
        };
        frame::encode(&msg, &self.ids, self.key.as_ref(), &pad, &mut out);
        out
    }

    /// Sends one message until a receiver acknowledges it, trying each
    /// receiver `attempts` times.
    async fn send(&mut self, kind: MsgType, seq: u16, data: &str) -> Outcome {
        let timeout = self.cfg.ack_timeout.0;
        let mut resynced = false;
        for ti in 0..self.targets.len() {
            if ti > 0 {
                self.st().failovers += 1;
            }
            let mut tries = 0;
            while tries < self.cfg.attempts {
                tries += 1;
                let bytes = self.frame(kind, seq, data);
                let (name, target) = self.targets[ti].clone();
                let x = link::exchange(
                    &mut self.conns[ti],
                    &target,
                    &bytes,
                    self.key.as_ref(),
                    timeout,
                )
                .await;
                match x {
                    Exchange::Reply(r) if matches!(r.kind, ReplyKind::Ack | ReplyKind::Rsp) => {
                        if r.seq.is_some_and(|s| s != seq) {
                            tracing::warn!(target: "carebridge::arc", "{name} receiver acknowledged sequence {:?}, not {seq}", r.seq);
                            continue;
                        }
                        let mut st = self.st();
                        st.state = "connected";
                        st.receiver = Some(name);
                        st.last_error = None;
                        st.last_ack_at = Some(self.clock.now());
                        return Outcome::Acked(name);
                    }
                    Exchange::Reply(r) if r.kind == ReplyKind::Duh => {
                        let mut st = self.st();
                        st.duh += 1;
                        st.state = "connected";
                        st.last_error =
                            Some(format!("{name} receiver answered DUH to {}", kind.token()));
                        tracing::error!(target: "carebridge::arc", "{name} receiver cannot use this event (DUH): {data:?}");
                        return Outcome::Duh;
                    }
                    Exchange::Reply(r) => {
                        let now = self.clock.now();
                        let tol = i64::try_from(self.cfg.time_tolerance.0.as_millis())
                            .unwrap_or(i64::MAX);
                        let mut st = self.st();
                        st.naks += 1;
                        match reply::nak_action(&r, now, self.offset_ms, tol) {
                            NakAction::Resync(off) => {
                                st.nak_resyncs += 1;
                                st.clock_offset_ms = off;
                                drop(st);
                                tracing::warn!(target: "carebridge::arc", "{name} receiver's clock differs by {} ms: resending with its time", off - self.offset_ms);
                                self.offset_ms = off;
                                // The first resync of a message does not use up an attempt.
                                if !resynced {
                                    resynced = true;
                                    tries -= 1;
                                }
                            }
                            NakAction::Refused => {
                                st.state = "refused";
                                st.last_error = Some(format!(
                                    "{name} receiver refused the message (NAK): wrong key or account?"
                                ));
                                tracing::error!(target: "carebridge::arc", "{name} receiver refused {} seq {seq} (NAK): check account and key", kind.token());
                            }
                        }
                    }
                    Exchange::Empty => {
                        let mut st = self.st();
                        st.timeouts += 1;
                        st.last_error = Some(format!("{name} receiver discarded the message"));
                    }
                    Exchange::Failed(e) => {
                        let mut st = self.st();
                        st.timeouts += 1;
                        if st.state != "refused" {
                            st.state = "down";
                        }
                        st.last_error = Some(format!("{name}: {e}"));
                        drop(st);
                        tracing::warn!(target: "carebridge::arc", "{name} receiver: {e}");
                    }
                }
            }
        }
        Outcome::Down
    }
}

/// The alert of a queued row, as the ARC sees it: `None` when not for the ARC.
fn event_of(
    cfg: &ArcConfig,
    q: &Queued,
    rule_type: &(dyn Fn(&str) -> Option<&'static str> + Send + Sync),
    zone_of: impl Fn(&str) -> u16,
) -> Option<Event> {
    let v: serde_json::Value = serde_json::from_slice(&q.payload).ok()?;
    let rule = v.get("rule")?.as_str()?;
    // Escalated re-sends: the ARC has the situation already.
    if v.get("attempt")
        .and_then(|a| a.as_u64())
        .is_some_and(|a| a > 1)
    {
        return None;
    }
    let severity = match v.get("severity")?.as_str()? {
        "urgent" => Severity::Urgent,
        "warning" => Severity::Warning,
        _ => Severity::Info,
    };
    let state = match v.get("state")?.as_str()? {
        "cleared" => AlertState::Cleared,
        _ => AlertState::Raised,
    };
    let kind = v
        .get("kind")
        .and_then(|k| k.as_str())
        .and_then(|k| k.parse::<Kind>().ok());
    let rule_kind = v
        .get("rule_kind")
        .and_then(|k| k.as_str())
        .or_else(|| rule_type(rule));
    let class = match cfg.rule_class(rule) {
        Some(c) => c?,
        None => classify(rule_kind, kind, severity)?,
    };
    let device = v.get("device").and_then(|d| d.as_str()).unwrap_or("");
    let zone = cfg
        .zones
        .get(device)
        .copied()
        .unwrap_or_else(|| zone_of(device));
    Some(Event {
        class,
        state,
        partition: cfg.partition,
        zone,
    })
}

fn is_urgent(q: &Queued) -> bool {
    serde_json::from_slice::<serde_json::Value>(&q.payload)
        .ok()
        .and_then(|v| {
            v.get("severity")
                .and_then(|s| s.as_str())
                .map(|s| s == "urgent")
        })
        .unwrap_or(false)
}

async fn blocking<T: Send + 'static>(
    q: &Arc<Mutex<Queue>>,
    f: impl FnOnce(&mut Queue) -> rusqlite::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let q = q.clone();
    Ok(tokio::task::spawn_blocking(move || {
        let mut g = q.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    })
    .await??)
}

async fn run(
    t: ArcTask,
    mut tests: mpsc::Receiver<TestReq>,
    status: SharedArcStatus,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let ArcTask {
        cfg,
        key,
        db,
        busy,
        clock,
        mut changed,
        status: _,
        rule_type,
    } = t;
    let queue = Arc::new(Mutex::new(Queue::open(&db, busy)?));
    let mut targets = vec![(
        "primary",
        ArcTarget::parse(&cfg.primary).map_err(anyhow::Error::msg)?,
    )];
    if let Some(s) = &cfg.secondary {
        targets.push((
            "secondary",
            ArcTarget::parse(s).map_err(anyhow::Error::msg)?,
        ));
    }
    let format = cfg.format;
    let mut s = Sender {
        ids: Ids {
            account: cfg.account.to_ascii_uppercase(),
            receiver: cfg.receiver.clone(),
            line: cfg.line.clone(),
        },
        conns: targets.iter().map(|_| Conn::None).collect(),
        targets,
        key,
        clock: clock.clone(),
        offset_ms: 0,
        status: status.clone(),
        rng: ring::rand::SystemRandom::new(),
        cfg,
    };
    let account = s.ids.account.clone();
    let supervision = s.cfg.supervision.0;
    let periodic = s.cfg.periodic_test.0;
    let mut last_sent = tokio::time::Instant::now();
    let mut next_test = tokio::time::Instant::now() + periodic;
    let mut backoff = Duration::from_secs(1);
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let mut pending = blocking(&queue, |q| q.pending()).await?;
        status.lock().unwrap_or_else(|p| p.into_inner()).queued = pending.len() as u64;
        // Oldest urgent first, then the rest oldest first.
        pending.sort_by_key(|q| (!is_urgent(q), q.seq));
        let mut down = false;
        if let Some(q) = pending.into_iter().next() {
            let cfg2 = s.cfg.clone();
            let q2 = q.clone();
            let types = rule_type.clone();
            let ev = blocking(&queue, move |db| {
                let reserved: Vec<u16> = cfg2.zones.values().copied().collect();
                Ok(event_of(&cfg2, &q2, &*types, |d| {
                    db.zone(d, &reserved).unwrap_or(999)
                }))
            })
            .await?;
            let Some(ev) = ev else {
                tracing::info!(target: "carebridge::arc", "alert {} is not for the ARC", q.seq);
                blocking(&queue, move |db| db.drop_row(q.seq)).await?;
                continue;
            };
            let dc09 = match q.dc09_seq {
                Some(n) => n,
                None => {
                    let qs = q.seq;
                    blocking(&queue, move |db| {
                        let n = db.next_seq()?;
                        db.assign(qs, n)?;
                        Ok(n)
                    })
                    .await?
                }
            };
            let data = ev.body(format, &account);
            let kind = Event::msg_type(format);
            let out = tokio::select! {
                o = s.send(kind, dc09, &data) => o,
                _ = shutdown.cancelled() => return Ok(()),
            };
            last_sent = tokio::time::Instant::now();
            match out {
                Outcome::Acked(by) => {
                    let now = clock.now();
                    tracing::info!(target: "carebridge::arc", "alert {} acknowledged by the {by} receiver ({data})", q.seq);
                    blocking(&queue, move |db| db.delivered(&q, now)).await?;
                    status.lock().unwrap_or_else(|p| p.into_inner()).delivered += 1;
                    backoff = Duration::from_secs(1);
                }
                Outcome::Duh => blocking(&queue, move |db| db.drop_row(q.seq)).await?,
                Outcome::Down => down = true,
            }
            if !down {
                continue;
            }
        }
        // Nothing to send (or no receiver): wait for work, a test, the
        // supervision or test-report time, or the back-off.
        let now = tokio::time::Instant::now();
        let mut wake = if down {
            now + backoff
        } else {
            now + Duration::from_secs(3600)
        };
        if !supervision.is_zero() {
            wake = wake.min(last_sent + supervision);
        }
        if !periodic.is_zero() {
            wake = wake.min(next_test);
        }
        if down {
            backoff = (backoff * 2).min(s.cfg.retry_max.0);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = changed.changed(), if !down => { if r.is_err() { return Ok(()); } }
            Some(TestReq { device, reply }) = tests.recv() => {
                let fixed = device.as_deref().and_then(|d| s.cfg.zones.get(d).copied());
                let reserved: Vec<u16> = s.cfg.zones.values().copied().collect();
                let (seq, zone) = blocking(&queue, move |db| {
                    let zone = match (fixed, device) {
                        (Some(z), _) => z,
                        (None, Some(d)) => db.zone(&d, &reserved)?,
                        (None, None) => 0,
                    };
                    Ok((db.next_seq()?, zone))
                })
                .await?;
                let e = Event { class: EventClass::ManualTest, state: AlertState::Raised, partition: s.cfg.partition, zone };
                let out = s.send(Event::msg_type(format), seq, &e.body(format, &account)).await;
                last_sent = tokio::time::Instant::now();
                s.st().tests_sent += 1;
                let _ = reply.send(match out {
                    Outcome::Acked(by) => Ok(TestAck { receiver: by, zone }),
                    Outcome::Duh => Err("the receiver answered DUH".into()),
                    Outcome::Down => Err(s.st().last_error.clone().unwrap_or_else(|| "no receiver answered".into())),
                });
            }
            _ = tokio::time::sleep_until(wake) => {
                let now = tokio::time::Instant::now();
                if !periodic.is_zero() && now >= next_test {
                    next_test = now + periodic;
                    let seq = blocking(&queue, |db| db.next_seq()).await?;
                    let e = Event { class: EventClass::PeriodicTest, state: AlertState::Raised, partition: s.cfg.partition, zone: 0 };
                    let _ = s.send(Event::msg_type(format), seq, &e.body(format, &account)).await;
                    s.st().tests_sent += 1;
                    last_sent = tokio::time::Instant::now();
                } else if !supervision.is_zero() && now >= last_sent + supervision {
                    let seq = blocking(&queue, |db| db.next_seq()).await?;
                    let _ = s.send(MsgType::Null, seq, "").await;
                    s.st().supervision_sent += 1;
                    last_sent = tokio::time::Instant::now();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(payload: &str) -> Queued {
        Queued {
            seq: 1,
            id: "a-1".into(),
            at: Time(0),
            payload: payload.as_bytes().to_vec(),
            dc09_seq: None,
        }
    }

    #[test]
    fn an_alert_maps_by_its_rules_type_without_an_arc_rules_entry() {
        let cfg = ArcConfig::default();
        let silent = row(
            r#"{"rule":"quiet-sensors","severity":"warning","state":"raised","device":"t1","kind":"temperature"}"#,
        );
        let types = |id: &str| (id == "quiet-sensors").then_some("silent");
        let ev = event_of(&cfg, &silent, &types, |_| 7).expect("for the ARC");
        assert_eq!((ev.class, ev.zone), (EventClass::SilentDevice, 7));
        // A rule the engine does not know (or no lookup): a warning about a
        // temperature is not for the ARC.
        let none = |_: &str| None;
        assert!(event_of(&cfg, &silent, &none, |_| 7).is_none());
        // `[arc.rules]` still wins.
        let mut off = cfg.clone();
        off.rules.insert("quiet-sensors".into(), "off".into());
        assert!(event_of(&off, &silent, &types, |_| 7).is_none());
    }
}
