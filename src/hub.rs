//! The hub: one task owns the live state and moves every input through the
//! rules into the store.
//!
//! For each [`Ingest`] event, in arrival order:
//! - a reading goes to the rule engine (which may raise or clear alerts),
//!   then to the store (history, registry, telemetry outbox row), and to the
//!   live view;
//! - each alert goes to the store's outbox (committed before any uplink can
//!   see it) and to the live view;
//! - device facts update the engine and the registry;
//! - link status changes are kept for the heartbeat.
//!
//! Readings from the device front door ([`crate::frontdoor`]) arrive on
//! their own bounded channel as [`AckedReading`]s, taken up to
//! [`ACKED_BATCH`] at a time (what is already queued): the readings, then
//! their alerts with one rule-state snapshot, then the acknowledgements, so
//! the store fires each only after the commit that holds its reading and
//! alerts (the front door then sends the PUBACK).
//!
//! Rule timers fire from the same loop at `engine.next_deadline()`, so the
//! engine is never shared and needs no lock. The hub never waits for a
//! commit (the store batches); it waits only when the store's queue is full,
//! which back-pressures the inputs instead of dropping anything.
//!
//! Pre-alarms: the engine's local warnings (`rules::prealarm`) go to the
//! Zigbee task as [`ZigbeeCommand::Warn`]s, IAS WD commands
//! (`zigbee::ias_wd::prealarm_commands`: Start Warning for the pre-alarm's
//! length, Stop when it is cancelled or sent) to every registered device
//! with role `siren` (`zb-` ids). They are offered without waiting
//! (`try_send`): a coordinator down or busy never holds up the hub; a
//! command that does not fit is logged and counted (`siren_dropped`).
//!
//! Time: twice a second the hub asks the clock whether the wall clock
//! stepped ([`Clock::follow`]); a step shifts the engine by the same amount
//! before anything reads the new time (durations keep true elapsed time,
//! local-time timers are recomputed), so no timer fires early or twice.
//! Alerts raised while the clock is not trusted say so (`time_trusted`).
//!
//! Crash consistency: alerts commit together with the rule state that made
//! them (one store write, one transaction), so a restart after a crash
//! neither raises a committed alert again nor forgets a committed clear;
//! other rule progress is saved every [`SAVE_EVERY`], or every
//! [`LAZY_COMMITS`] × `[store] commit_delay` with commit grouping (SD-card
//! wear), and at shutdown.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, TrustFrame};
use crate::model::{Alert, DeviceInfo, Ingest, LinkStatus, Reading, Time};
use crate::rules::Engine;
use crate::store::{Store, Write};
use crate::zigbee::ZigbeeCommand;

/// What the live view (web UI, SSE) sees.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Live {
    Reading(Reading),
    Alert(Alert),
    Device(DeviceInfo),
    Link(LinkStatus),
    /// Stamps made while the clock was untrusted were put right by a step.
    Clock(crate::clock::Correction),
}

/// An alert count's key: rule (shared with the alert, no copy per alert),
/// severity, state.
pub type RuleKey = (Arc<str>, &'static str, &'static str);

/// Counters for the heartbeat.
#[derive(Debug, Default)]
pub struct HubStats {
    pub readings: AtomicU64,
    pub alerts: AtomicU64,
    /// Readings per kind, indexed by [`crate::model::Kind::code`].
    pub by_kind: [AtomicU64; 32],
    /// Alerts per (rule, severity, state).
    pub by_rule: std::sync::Mutex<BTreeMap<RuleKey, u64>>,
    /// Times each link went down (a coordinator reset or lost port counts here).
    pub link_downs: std::sync::Mutex<BTreeMap<String, u64>>,
    /// The household's mode as the engine last reported it (status
    /// document; refreshed with each rule-state save and each mode command).
    pub mode: std::sync::Mutex<crate::rules::mode::ModeState>,
    /// Siren commands (pre-alarms) handed to the Zigbee task.
    pub siren_sent: AtomicU64,
    /// Siren commands not handed over: no Zigbee task, or its queue full.
    pub siren_dropped: AtomicU64,
    /// Each active rule's type by rule id (refreshed at start and at each
    /// rule-set change): the ARC path maps alerts by it (`silent` → loss of
    /// supervision, `inactivity` → no activity, …).
    pub rule_types: std::sync::RwLock<HashMap<String, crate::rules::RuleType>>,
}

impl HubStats {
    /// Records the engine's rule types (see `rule_types`).
    pub fn set_rule_types(&self, engine: &Engine) {
        let m = engine
            .rule_types()
            .into_iter()
            .map(|(id, t)| (id.to_string(), t))
            .collect();
        match self.rule_types.write() {
            Ok(mut g) => *g = m,
            Err(p) => *p.into_inner() = m,
        }
    }

    /// The type of rule `id`, if it is active.
    pub fn rule_type(&self, id: &str) -> Option<crate::rules::RuleType> {
        match self.rule_types.read() {
            Ok(g) => g.get(id).copied(),
            Err(p) => p.into_inner().get(id).copied(),
        }
    }
}

/// A reading whose sender waits until it is durable (the front door sends
/// the device's PUBACK then); `ack` is `None` for QoS 0.
#[derive(Debug)]
pub struct AckedReading {
    pub reading: Reading,
    pub ack: Option<crate::store::AckTo>,
}

/// Commands other tasks send to the hub.
#[derive(Debug)]
pub enum HubCommand {
    /// Device facts from config or the UI.
    Device(DeviceInfo),
    /// Acknowledge an alert (from `cmd/ack` or the UI); the reply says
    /// whether a matching open alert was found.
    Ack {
        rule: String,
        device: Option<crate::model::DeviceId>,
        reply: tokio::sync::oneshot::Sender<bool>,
    },
    /// Acknowledge one alert by its instance id (`Alert::instance`, from
    /// `cmd/ack` with `instance` or the UI); stops its escalation.
    AckInstance {
        instance: String,
        reply: tokio::sync::oneshot::Sender<bool>,
    },
    /// Switch to a new, already validated rule set (from the UI or the
    /// cloud, via [`crate::rules::active::Rules`]); unchanged rules keep
    /// their state.
    Rules {
        set: crate::rules::RuleSet,
        reply: tokio::sync::oneshot::Sender<crate::rules::ReloadSummary>,
    },
    /// Set the household's mode (`cmd/mode`, the web UI): away, visitor or
    /// home, optionally until a time; the reply is the mode now, or why not.
    Mode {
        mode: crate::rules::mode::Mode,
        until: Option<crate::model::Time>,
        source: String,
        reply: tokio::sync::oneshot::Sender<Result<crate::rules::mode::ModeState, String>>,
    },
}

/// Where the rule engine's state is kept between runs (the store's kv table).
pub const RULE_STATE_KEY: &str = "rules.state";
/// A save of the engine's state (`Engine::save`, a delta when it can be)
/// as the store writes it: a snapshot under [`RULE_STATE_KEY`], deltas
/// after it in the store's rule journal (`Store::rule_journal`).
fn state_write(saved: crate::rules::Saved, lazy: bool) -> crate::store::StateWrite {
    crate::store::StateWrite {
        key: RULE_STATE_KEY,
        saved,
        lazy,
    }
}

/// The saved rule state: the snapshot and the deltas after it, in order.
pub async fn load_rule_state(
    store: &Store,
) -> Result<Option<(Vec<u8>, Vec<Vec<u8>>)>, crate::store::StoreError> {
    let Some(full) = store.kv_get(RULE_STATE_KEY).await? else {
        return Ok(None);
    };
    let deltas = store.rule_journal().await?;
    Ok(Some((full, deltas)))
}

/// How often changed rule state (armed timers, learned routines) is saved:
/// a restart loses at most this much rule progress, never an alert.
pub const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// With commit grouping, the periodic save goes with every this many
/// grouped commits, not with each: at a home's rate its delta (every
/// sensor's slots) was the largest part of a grouped commit (1.6 of 6.8
/// pages, `VERSUS_WALSTAT=1`). A power cut then loses at most 5 ×
/// `commit_delay` of rule progress (5 minutes by default) — never an alert
/// or a clear, which commit with their state; the readings themselves are
/// in the history.
pub const LAZY_COMMITS: u32 = 5;

/// Most front-door readings taken in one turn of the hub (their alerts
/// share one rule-state snapshot; see `Hub::on_acked`).
pub const ACKED_BATCH: usize = 256;

/// How often the hub looks for a wall-clock step: steps are followed
/// within this time.
pub const CLOCK_CHECK: std::time::Duration = std::time::Duration::from_millis(500);

/// A supervisor's watchdog the hub feeds from its loop, so a stuck hub
/// gets the process restarted (systemd's `WatchdogSec`, passed in by app).
pub struct Watchdog {
    /// How often the supervisor expects to hear from us.
    pub interval: std::time::Duration,
    /// Tells the supervisor the hub is alive.
    pub feed: Box<dyn Fn() + Send + Sync>,
}

/// The hub's parts.
pub struct Hub {
    pub engine: Engine,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// Fed from the hub's loop, when the process runs under a watchdog.
    pub watchdog: Option<Watchdog>,
    /// Send readings upstream as telemetry.
    pub telemetry: bool,
    pub live: broadcast::Sender<Live>,
    pub links: watch::Sender<BTreeMap<String, LinkStatus>>,
    pub stats: Arc<HubStats>,
    /// Gives each alert its upstream UUID before the UI and the store see
    /// it, so the UI can show which path delivered it.
    pub ids: crate::ids::IdGen,
    /// Readings from the front door, acknowledged after their commit.
    pub acked: Option<mpsc::Receiver<AckedReading>>,
    /// What was stamped since the last clock step, and under which trust
    /// (start it with [`TrustFrame::new`]`(clock.now(), clock.state().trusted)`).
    pub frame: TrustFrame,
    /// Commands to the Zigbee coordinator (pre-alarm sirens), when
    /// `[zigbee]` is configured.
    pub zigbee: Option<mpsc::Sender<ZigbeeCommand>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

impl Hub {
    /// Runs until shutdown (inputs closing does not stop it: timers still fire).
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<Ingest>,
        mut commands: mpsc::Receiver<HubCommand>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut alerts = Vec::new();
        // The watchdog is fed from this loop: a stuck hub gets restarted.
        let mut keepalive = tokio::time::interval(
            self.watchdog
                .as_ref()
                .map_or(SAVE_EVERY, |w| (w.interval / 3).min(SAVE_EVERY)),
        );
        let mut clock_check = tokio::time::interval(CLOCK_CHECK);
        clock_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut inputs_open = true;
        let mut acked = self.acked.take();
        let mut acks = Vec::new();
        // The periodic save waits for the store's commit anyway; with
        // grouping it goes with one commit in LAZY_COMMITS.
        let lazy_every = SAVE_EVERY.max(self.store.commit_delay() * LAZY_COMMITS);
        let mut lazy_saved = tokio::time::Instant::now();
        loop {
            let deadline = self.engine.next_deadline();
            let sleep = deadline_sleep(&*self.clock, deadline);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                // With no inputs left (or none configured) the hub still
                // runs: rule timers (silent sensors, inactivity), commands
                // and the watchdog do not depend on inputs.
                ev = input.recv(), if inputs_open => match ev {
                    Some(ev) => self.on_ingest(ev, &mut alerts).await?,
                    None => inputs_open = false,
                },
                Some(a) = recv_acked(&mut acked) => {
                    self.on_acked(a, acked.as_mut(), &mut alerts, &mut acks).await?;
                }
                Some(cmd) = commands.recv() => match cmd {
                    HubCommand::Device(info) => self.on_device(info).await?,
                    HubCommand::Ack { rule, device, reply } => {
                        let found = self.engine.ack(&rule, device.as_ref(), self.clock.now());
                        // An ack forgotten in a crash would leave the alert open.
                        self.save_rule_state().await?;
                        let _ = reply.send(found);
                    }
                    HubCommand::AckInstance { instance, reply } => {
                        let found = self.engine.ack_instance(&instance, self.clock.now());
                        let _ = reply.send(found);
                    }
                    HubCommand::Rules { set, reply } => {
                        let summary = self.engine.reload(&set);
                        self.stats.set_rule_types(&self.engine);
                        // Timers of new rules may already be due.
                        self.engine.on_tick(self.clock.now(), &mut alerts);
                        self.emit_alerts(&mut alerts).await?;
                        self.save_rule_state().await?;
                        let _ = reply.send(summary);
                    }
                    HubCommand::Mode { mode, until, source, reply } => {
                        let set =
                            self.engine
                                .set_mode(mode, until, &source, self.clock.now(), &mut alerts);
                        self.emit_alerts(&mut alerts).await?;
                        // A mode forgotten in a crash would stand the rules up again.
                        self.save_rule_state().await?;
                        let _ = reply.send(match set {
                            Ok(()) => Ok(self.engine.mode().clone()),
                            Err(e) => Err(e.to_string()),
                        });
                    }
                },
                // Before the timers: a step shifts them first.
                _ = clock_check.tick() => {
                    if let Some(step) = self.clock.follow() {
                        self.on_step(step, &mut alerts).await?;
                    }
                    let trusted = self.clock.state().trusted;
                    self.frame.note_trust(trusted);
                    self.store.set_clock_trusted(trusted).await?;
                }
                _ = sleep => {
                    self.engine.on_tick(self.clock.now(), &mut alerts);
                    self.emit_alerts(&mut alerts).await?;
                }
                _ = keepalive.tick() => {
                    if let Some(w) = &self.watchdog {
                        (w.feed)();
                    }
                    if lazy_saved.elapsed() + std::time::Duration::from_millis(50) >= lazy_every {
                        lazy_saved = tokio::time::Instant::now();
                        self.save_rule_state_lazily().await?;
                    }
                }
            }
        }
        // A clean stop (an update, a restart) leaves one full snapshot.
        if self.engine.state_dirty() || self.engine.journal_open() {
            let saved = self.engine.save_full();
            self.store
                .submit(Write::State(state_write(saved, false)))
                .await?;
        }
        Ok(())
    }

    /// Front-door readings: this one and those already queued behind it
    /// (at most [`ACKED_BATCH`]) go through the rules, then their alerts
    /// are committed with ONE rule-state snapshot (its cost grows with the
    /// number of devices, so one per alert made a burst quadratic), then
    /// their acks are submitted: each fires with the commit that holds its
    /// reading and every alert of the turn.
    async fn on_acked(
        &mut self,
        first: AckedReading,
        rx: Option<&mut mpsc::Receiver<AckedReading>>,
        alerts: &mut Vec<Alert>,
        acks: &mut Vec<crate::store::AckTo>,
    ) -> anyhow::Result<()> {
        let mut next = Some(first);
        let mut rx = rx;
        let mut n = 0;
        while let Some(a) = next.take() {
            self.on_reading(a.reading, alerts).await?;
            acks.extend(a.ack);
            n += 1;
            if n < ACKED_BATCH {
                next = rx.as_mut().and_then(|r| r.try_recv().ok());
            }
        }
        self.emit_alerts(alerts).await?;
        for ack in acks.drain(..) {
            self.store.submit_ack(ack).await?;
        }
        Ok(())
    }

    /// A reading through the rules (alerts appended to `alerts`, not yet
    /// emitted) into the store and the live view.
    async fn on_reading(&mut self, r: Reading, alerts: &mut Vec<Alert>) -> anyhow::Result<()> {
        self.stats.readings.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = self.stats.by_kind.get(usize::from(r.kind.code())) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.engine.on_reading(self.clock.now(), &r, alerts);
        let _ = self.live.send(Live::Reading(r.clone()));
        let w = if self.telemetry {
            Write::Reading(r)
        } else {
            Write::ReadingNoTelemetry(r)
        };
        self.store.submit(w).await?;
        Ok(())
    }

    async fn on_ingest(&mut self, ev: Ingest, alerts: &mut Vec<Alert>) -> anyhow::Result<()> {
        match ev {
            Ingest::Reading(r) => {
                self.on_reading(r, alerts).await?;
                self.emit_alerts(alerts).await?;
            }
            Ingest::Device(info) => self.on_device(info).await?,
            Ingest::Link(status) => {
                if status.up {
                    tracing::info!(link = %status.link, detail = %status.detail, "link up");
                } else {
                    tracing::warn!(link = %status.link, detail = %status.detail, "link down");
                    if let Ok(mut m) = self.stats.link_downs.lock() {
                        *m.entry(status.link.clone()).or_default() += 1;
                    }
                }
                let _ = self.live.send(Live::Link(status.clone()));
                self.links.send_modify(|m| {
                    m.insert(status.link.clone(), status);
                });
            }
        }
        Ok(())
    }

    /// Persists the engine's state when it changed since the last save.
    async fn save_rule_state(&mut self) -> anyhow::Result<()> {
        if self.engine.state_dirty() {
            if let Ok(mut m) = self.stats.mode.lock()
                && *m != *self.engine.mode()
            {
                tracing::info!(mode = self.engine.mode().mode.as_str(), source = %self.engine.mode().source, "household mode");
                *m = self.engine.mode().clone();
            }
            let saved = self.engine.save();
            self.store
                .submit(Write::State(state_write(saved, false)))
                .await?;
        }
        Ok(())
    }

    /// The periodic save ([`SAVE_EVERY`]): progress only (alerts commit
    /// with their own state), so it may wait for the store's next commit
    /// (`commit_delay`: a quiet home does not write a transaction for it).
    async fn save_rule_state_lazily(&mut self) -> anyhow::Result<()> {
        if self.engine.state_dirty() {
            let saved = self.engine.save();
            self.store
                .submit(Write::State(state_write(saved, true)))
                .await?;
        }
        Ok(())
    }

    /// The wall clock stepped: the engine follows (see `Engine::shift`);
    /// timers a step made due (a local-time window end) fire now.
    async fn on_step(
        &mut self,
        step: crate::clock::Step,
        alerts: &mut Vec<Alert>,
    ) -> anyhow::Result<()> {
        tracing::warn!(
            delta_ms = step.delta_ms,
            at = %step.at,
            trusted = self.clock.state().trusted,
            "wall clock stepped; rule clocks follow"
        );
        if let Some(c) = self.frame.on_step(step, self.clock.state().trusted) {
            tracing::info!(
                from = %c.from, until = %c.until, delta_ms = c.delta_ms,
                alerts = c.alerts.len() as u64 + c.alerts_more,
                "stamps made while the clock was untrusted are corrected by this step"
            );
            self.clock.record(c.clone());
            let _ = self.live.send(Live::Clock(c));
        }
        self.engine.shift(step.delta_ms, self.clock.now());
        self.engine.on_tick(self.clock.now(), alerts);
        self.emit_alerts(alerts).await?;
        self.save_rule_state().await
    }

    async fn on_device(&mut self, info: DeviceInfo) -> anyhow::Result<()> {
        self.engine.set_device(&info);
        let _ = self.live.send(Live::Device(info.clone()));
        self.store.submit(Write::Device(Box::new(info))).await?;
        Ok(())
    }

    /// Gives each alert its uid and trust, shows it live, and commits them
    /// all with the engine state that made them (one transaction).
    async fn emit_alerts(&mut self, alerts: &mut Vec<Alert>) -> anyhow::Result<()> {
        // Pre-alarm warnings (the engine's queue must not grow).
        for w in self.engine.take_warnings() {
            tracing::warn!(rule = %w.rule, instance = %w.instance, act = ?w.act, message = %w.message, "pre-alarm");
            self.sound_sirens(w.act);
        }
        if alerts.is_empty() {
            return Ok(());
        }
        let trusted = self.clock.state().trusted;
        let mut batch = Vec::with_capacity(alerts.len());
        for mut a in alerts.drain(..) {
            let uid = self.ids.next_id();
            self.frame.note_alert(&uid, trusted);
            a.uid = Some(uid);
            a.time_trusted = trusted;
            self.stats.alerts.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut m) = self.stats.by_rule.lock() {
                *m.entry((a.rule.clone(), a.severity.as_str(), a.state.as_str()))
                    .or_default() += 1;
            }
            tracing::info!(
                rule = %a.rule, device = %a.device, severity = %a.severity,
                state = a.state.as_str(), "alert"
            );
            let _ = self.live.send(Live::Alert(a.clone()));
            batch.push(a);
        }
        let state = state_write(self.engine.save(), false);
        self.store
            .submit(Write::AlertsWithState {
                alerts: batch,
                state,
            })
            .await?;
        Ok(())
    }
}

impl Hub {
    /// A pre-alarm's warning to every registered siren (role `siren`,
    /// a `zb-` device id), without waiting (see the module doc).
    fn sound_sirens(&self, act: crate::rules::prealarm::WarningAct) {
        let sirens: Vec<u64> = self
            .engine
            .sirens()
            .iter()
            .filter_map(|id| {
                let ieee = crate::zigbee::zcl_map::ieee_of(id);
                if ieee.is_none() {
                    tracing::warn!(device = %id, "a siren must be a Zigbee device (zb- id)");
                }
                ieee
            })
            .collect();
        if sirens.is_empty() {
            tracing::warn!("pre-alarm: no siren (no Zigbee device with role \"siren\")");
            return;
        }
        for command in crate::zigbee::ias_wd::prealarm_commands(act) {
            for &ieee in &sirens {
                let sent = self
                    .zigbee
                    .as_ref()
                    .map(|tx| tx.try_send(ZigbeeCommand::Warn { ieee, command }));
                if let Some(Ok(())) = sent {
                    self.stats.siren_sent.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.stats.siren_dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        ieee = format!("{ieee:016x}"),
                        ?command,
                        "siren command not sent: no Zigbee coordinator, or its queue is full"
                    );
                }
            }
        }
    }
}

/// The next front-door reading; pending forever once there is none to come.
async fn recv_acked(rx: &mut Option<mpsc::Receiver<AckedReading>>) -> Option<AckedReading> {
    let got = match rx.as_mut() {
        Some(r) => r.recv().await,
        None => None,
    };
    if got.is_none() {
        *rx = None;
        std::future::pending::<()>().await;
    }
    got
}

/// Sleeps until the engine's next deadline on `clock` (which may run fast).
async fn deadline_sleep(clock: &dyn Clock, deadline: Option<Time>) {
    match deadline {
        None => std::future::pending::<()>().await,
        Some(d) => {
            let ahead = d.as_millis() - clock.now().as_millis();
            if ahead > 0 {
                let real_ms = (ahead as f64 / clock.speed()).ceil() as u64;
                tokio::time::sleep(std::time::Duration::from_millis(real_ms)).await;
            }
        }
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
