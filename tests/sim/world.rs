//! The gateway in virtual time: the rule engine, an outbox model, the
//! dual-path router, an MQTT path model and the LoRaWAN policy + modem
//! driver against a simulated modem; faults from the schedule. One `step`
//! advances to the next instant anything is due and handles it; the
//! invariants (`check`) run inside each step and after it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use carebridge::model::{Alert, AlertState, Kind, Reading, Time};
use carebridge::rules::{Engine, RuleSet};
use carebridge::uplink::backoff::Backoff;
use carebridge::uplink::lorawan::policy;
use carebridge::uplink::router::{LoraJob, Router, RouterConfig};
use jiff::tz::TimeZone;

use crate::check::{Books, Expect};
use crate::faults::Fault;
use crate::home::{self, DEVICES, Month};
use crate::modem::Modem;
use crate::rng::Rng;
use crate::zigbee::Zigbee;

#[path = "persist.rs"]
mod persist;
#[path = "uplink.rs"]
mod uplink;
use uplink::lora_core;

/// The hub saves rule state this often when it changed (`hub::SAVE_EVERY`).
const SAVE_EVERY: i64 = 10_000;
/// The dual task re-reads the outbox this often (`dual::RESCAN`).
const RESCAN: i64 = 2_000;

#[derive(Debug, Clone)]
struct Row {
    uid: String,
    alert: Alert,
}

/// A QoS 1 publish on its way: received upstream at `recv`, PUBACK at `ack`.
#[derive(Debug, Clone)]
struct Flight {
    seq: u64,
    uid: String,
    recv: i64,
    ack: i64,
    received: bool,
}

#[derive(Debug)]
struct Mqtt {
    link_ok: bool,
    connected: bool,
    up_since: i64,
    retry_at: Option<i64>,
    backoff: Backoff,
    flights: Vec<Flight>,
}

/// Deliberate breakages of the gateway model, to show the checks catch them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    None,
    /// Delete an outbox row when it is handed to MQTT, not on its PUBACK.
    DeleteOnSend,
    /// Every raise is emitted twice.
    DoubleFire,
}

pub struct World {
    pub rng: Rng,
    pub t: i64,
    offset: i64,
    tz: TimeZone,
    set: RuleSet,
    engine: Engine,
    en: i64,
    pub expect: Expect,
    /// The rule state in the store: the model's expectations and engine
    /// clock at the last save, and the snapshot bytes (see `save`).
    saved: Option<(Expect, i64)>,
    saved_bytes: Vec<u8>,
    /// Engine generation the bytes / the last save stand for.
    bytes_gen: Option<u64>,
    saved_gen: u64,
    save_no: u64,
    /// Buggify: crash right after the next alert, before the next
    /// periodic save (the alert's own commit holds the state).
    trap: bool,
    /// Alerts emitted whose rule state is not committed yet.
    unsaved_alerts: bool,
    save_at: Option<i64>,
    outbox: BTreeMap<u64, Row>,
    next_seq: u64,
    pub books: Books,
    router: Router,
    rescan_at: Option<i64>,
    mqtt: Mqtt,
    lora: policy::Core,
    modem: Modem,
    jobs: HashMap<u64, (LoraJob, Option<String>)>,
    /// The payload of each job: the modem task may hold an alert and a
    /// summary (or a more severe alert) at once, so what went on air is
    /// found by its bytes.
    job_payloads: HashMap<u64, Vec<u8>>,
    lora_current: Option<u64>,
    next_job: u64,
    acks: Vec<(i64, String, String)>,
    down_until: Option<i64>,
    faults: VecDeque<(i64, Fault)>,
    month: Month,
    zigbee: Zigbee,
    next_ev: usize,
    pub trace: VecDeque<String>,
    pub steps: u64,
    /// Trace lines kept for a failure report (`SIM_TRACE`, default 40).
    pub trace_len: usize,
    pub stats: BTreeMap<&'static str, u64>,
    /// A deliberate breakage (proves the checks can fail).
    pub broken: Break,
}

fn new_engine(set: &RuleSet, tz: &TimeZone) -> Engine {
    let mut e = Engine::new(set, tz.clone()).unwrap_or_else(|e| panic!("rules: {e}"));
    for i in 0..DEVICES.len() {
        e.set_device(&home::device_info(i));
    }
    e
}

impl World {
    pub fn new(
        seed_rng: &mut Rng,
        set: RuleSet,
        tz: TimeZone,
        month: Month,
        faults: Vec<(i64, Fault)>,
    ) -> World {
        let t = month.start;
        let now = Time(t);
        World {
            rng: seed_rng.fork(),
            t,
            offset: 0,
            engine: new_engine(&set, &tz),
            tz,
            set,
            en: i64::MIN,
            expect: Expect::default(),
            saved: None,
            saved_bytes: Vec::new(),
            bytes_gen: None,
            saved_gen: 0,
            save_no: 0,
            trap: false,
            save_at: None,
            unsaved_alerts: false,
            outbox: BTreeMap::new(),
            next_seq: 1,
            books: Books::default(),
            router: Router::new(RouterConfig::default(), now),
            rescan_at: None,
            mqtt: Mqtt {
                link_ok: true,
                connected: false,
                up_since: t,
                retry_at: Some(t),
                backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
                flights: Vec::new(),
            },
            lora: lora_core(now),
            modem: Modem::new(0.1, 0.05),
            jobs: HashMap::new(),
            job_payloads: HashMap::new(),
            lora_current: None,
            next_job: 1,
            acks: Vec::new(),
            down_until: None,
            faults: faults.into(),
            month,
            zigbee: Zigbee::new(now),
            next_ev: 0,
            trace: VecDeque::new(),
            steps: 0,
            trace_len: std::env::var("SIM_TRACE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(40),
            stats: BTreeMap::new(),
            broken: Break::None,
        }
    }

    fn wall(&self) -> Time {
        Time(self.t + self.offset)
    }

    pub fn note(&mut self, s: String) {
        if self.trace.len() >= self.trace_len {
            self.trace.pop_front();
        }
        self.trace
            .push_back(format!("{} {s}", fmt_t(self.t, self.offset)));
    }

    fn count(&mut self, what: &'static str) {
        *self.stats.entry(what).or_default() += 1;
    }

    /// A deadline in wall time, as a true time (not before now).
    fn true_of(&self, wall: Option<Time>) -> Option<i64> {
        wall.map(|d| self.t + (d.0 - self.wall().0).max(0))
    }

    /// What is due now (for a livelock report).
    pub fn due_now(&self) -> String {
        format!(
            "engine {:?} router {:?} lora {:?} (joined {}, ready {}) modem {:?} mqtt {:?} rescan {:?} save {:?} wall {}",
            self.engine.next_deadline(),
            self.router.next_deadline(),
            self.lora.next_deadline(),
            self.lora.is_joined(),
            self.lora.driver().is_ready(),
            self.modem.next_due(),
            self.mqtt.retry_at,
            self.rescan_at,
            self.save_at,
            self.wall().0
        )
    }

    fn next_time(&self) -> Option<i64> {
        let mut c: Vec<Option<i64>> = vec![
            self.faults.front().map(|f| f.0),
            self.month.events.get(self.next_ev).map(|e| e.t),
            self.down_until,
            self.modem.next_due(),
        ];
        if self.mqtt.connected {
            // The carer's acks wait for the link (they come over MQTT).
            c.push(self.acks.iter().map(|a| a.0).min());
        }
        if self.down_until.is_none() {
            c.extend([
                self.true_of(self.engine.next_deadline()),
                self.true_of(self.router.next_deadline()),
                self.true_of(self.lora.next_deadline()),
                self.true_of(self.zigbee.next_deadline()),
                self.mqtt.retry_at,
                self.mqtt
                    .flights
                    .iter()
                    .map(|f| if f.received { f.ack } else { f.recv })
                    .min(),
                self.rescan_at,
                self.save_at,
            ]);
        }
        c.into_iter().flatten().min()
    }

    /// One step; `Ok(false)` when the run is over.
    pub fn step(&mut self) -> Result<bool, String> {
        let Some(next) = self.next_time() else {
            self.note("nothing more to do".into());
            return Ok(false);
        };
        if next > self.month.end {
            self.note(format!("next {} is past the end", fmt_t(next, 0)));
            return Ok(false);
        }
        self.t = next.max(self.t);
        self.steps += 1;
        self.serialise_if_clean();
        while self.faults.front().is_some_and(|f| f.0 <= self.t) {
            if let Some((_, f)) = self.faults.pop_front() {
                self.fault(f)?;
            }
        }
        if let Some(up) = self.down_until {
            if self.t < up {
                self.while_down();
                return Ok(true);
            }
            self.restart()?;
        }
        let now = self.wall();
        for line in self.modem.take_due(self.t) {
            self.lora.handle_line(&line, now);
        }
        if self
            .true_of(self.lora.next_deadline())
            .is_some_and(|d| d <= self.t)
        {
            self.lora.handle_timeout(now);
        }
        self.pump_lora()?;
        if self
            .true_of(self.zigbee.next_deadline())
            .is_some_and(|d| d <= self.t)
        {
            self.zigbee.handle_timeout(now);
            for (dev, r) in self.zigbee.take_readings() {
                self.feed(&home::Ev {
                    t: self.t,
                    dev,
                    kind: r.kind,
                    value: r.value,
                })?;
            }
        }
        while let Some(e) = self
            .month
            .events
            .get(self.next_ev)
            .filter(|e| e.t <= self.t)
            .cloned()
        {
            self.next_ev += 1;
            self.reading(&e)?;
        }
        let mut out = Vec::new();
        self.engine.on_tick(now, &mut out);
        self.en = self.en.max(now.0);
        self.emit(out)?;
        self.commit_alerts();
        self.carer_acks();
        self.mqtt_step()?;
        if self.rescan_at.is_some_and(|r| r <= self.t) {
            self.rescan();
        }
        self.route()?;
        self.pump_lora()?;
        if self.save_at.is_some_and(|s| s <= self.t) {
            self.save();
        }
        self.serialise_if_clean();
        if self.save_at.is_none() && self.engine.state_dirty() {
            self.save_at = Some((self.t / SAVE_EVERY + 1) * SAVE_EVERY);
        }
        Ok(true)
    }

    fn while_down(&mut self) {
        // Sensor messages and modem lines reach nobody while the gateway is down.
        while let Some(e) = self
            .month
            .events
            .get(self.next_ev)
            .filter(|e| e.t <= self.t)
        {
            self.zigbee.set_state(e.dev, e.kind, e.value);
            self.next_ev += 1;
            self.count("readings lost while down");
        }
        self.modem.take_due(self.t);
    }

    /// A sensor message: Zigbee devices' go through the stick and the
    /// coordinator (lost while it is not running), the rest straight in.
    fn reading(&mut self, e: &home::Ev) -> Result<(), String> {
        let now = self.wall();
        if !self.zigbee.is_zigbee(e.dev) || e.kind == Kind::Battery {
            return self.feed(e);
        }
        if !self.zigbee.send(e.dev, e.kind, e.value, now) {
            self.count("zigbee messages lost (coordinator not running)");
            return Ok(());
        }
        let got = self.zigbee.take_readings();
        if !got
            .iter()
            .any(|(d, r)| *d == e.dev && r.kind == e.kind && (r.value - e.value).abs() < 0.01)
        {
            return Err(format!(
                "zigbee: {} {} {} went in, {got:?} came out",
                DEVICES[e.dev].0, e.kind, e.value
            ));
        }
        self.count("zigbee messages");
        for (dev, r) in got {
            self.feed(&home::Ev {
                t: self.t,
                dev,
                kind: r.kind,
                value: r.value,
            })?;
        }
        Ok(())
    }

    fn feed(&mut self, e: &home::Ev) -> Result<(), String> {
        let now = self.wall();
        let r = Reading::new(home::device_id(e.dev), e.kind, e.value, now)
            .map_err(|x| x.to_string())?;
        // Timers due at this instant fire before the reading is seen: check
        // them against what the engine knew before it.
        let mut out = Vec::new();
        self.engine.on_tick(now, &mut out);
        self.en = self.en.max(now.0);
        self.emit(std::mem::take(&mut out))?;
        let must_raise = match e.kind {
            Kind::WaterLeak => Some("water_leak"),
            Kind::Tamper => Some("tamper"),
            _ => None,
        }
        .filter(|rule| {
            let dev = DEVICES[e.dev].0;
            let open = self.books.is_open(rule, dev);
            e.value >= 0.5 && !open && self.expect.fresh(e.dev, e.kind, e.value, now.0)
        });
        self.engine.on_reading(now, &r, &mut out);
        if let Some(rule) = must_raise
            && !out
                .iter()
                .any(|a| &*a.rule == rule && a.state == AlertState::Raised)
        {
            return Err(format!(
                "{rule} {}: active reading with no open alert raised nothing",
                DEVICES[e.dev].0
            ));
        }
        self.emit(out)?;
        let en = self.en;
        if !self.expect.reading(e.dev, e.kind, e.value, now.0, en) {
            self.count("readings dropped (stale)");
        }
        self.count("readings");
        self.commit_alerts();
        Ok(())
    }

    /// Alerts from the engine: the hub gives each a uid and commits it
    /// (with the rule state: `commit_alerts`, once the step's work is done).
    fn emit(&mut self, alerts: Vec<Alert>) -> Result<(), String> {
        self.unsaved_alerts |= !alerts.is_empty();
        for a in alerts {
            let seq = self.next_seq;
            self.next_seq += 1;
            let uid = format!("a{seq}");
            self.books.on_alert(&a, &uid, self.en, &self.expect)?;
            if self.broken == Break::DoubleFire && a.state == AlertState::Raised {
                // Broken on purpose: the same situation fires twice.
                self.books
                    .on_alert(&a, &format!("{uid}x"), self.en, &self.expect)?;
            }
            self.note(format!(
                "alert {uid} {} {} {} at {}",
                a.rule,
                a.state.as_str(),
                a.device,
                fmt_t(a.at.0, 0)
            ));
            self.count(if a.state == AlertState::Raised {
                "raised"
            } else {
                "cleared"
            });
            self.outbox.insert(
                seq,
                Row {
                    uid: uid.clone(),
                    alert: a,
                },
            );
            if std::mem::take(&mut self.trap) && self.down_until.is_none() {
                let next_save = (self.t / SAVE_EVERY + 1) * SAVE_EVERY;
                let at = self.t + self.rng.range(0, next_save - self.t - 1);
                let down_ms = self.rng.range(2_000, 60_000);
                let i = self.faults.partition_point(|f| f.0 <= at);
                self.faults.insert(
                    i,
                    (
                        at,
                        Fault::Restart {
                            crash: true,
                            down_ms,
                        },
                    ),
                );
                self.count("buggify crashes");
            }
            if self.mqtt.connected {
                self.publish(seq, uid);
            }
            let seqs: Vec<u64> = self.outbox.keys().copied().collect();
            self.router.handle_outbox(&seqs, true, self.wall());
            self.rescan_at.get_or_insert(self.t + RESCAN);
        }
        Ok(())
    }

    fn fault(&mut self, f: Fault) -> Result<(), String> {
        self.note(format!("FAULT {f:?}"));
        self.count("faults");
        match f {
            Fault::MqttLink(ok) => {
                self.mqtt.link_ok = ok;
                if !ok {
                    self.mqtt_down();
                }
            }
            Fault::LoraNetwork(ok) => self.modem.network_down = !ok,
            Fault::ModemHang => self.modem.hang(),
            Fault::ModemReboot => self.modem.reboot(self.t),
            Fault::StickReset => {
                let now = self.wall();
                self.zigbee.stick_reset(now);
                if !self.zigbee.is_running() {
                    self.count("zigbee coordinator restarts");
                }
            }
            Fault::ClockStep(d) => {
                self.offset += d;
                // A running hub follows the step (`Clock::follow`): the
                // engine shifts and the state is saved at once.
                if self.down_until.is_none() {
                    let now = self.wall();
                    self.engine.shift(d, now);
                    self.expect.shift(d);
                    self.en += d;
                    self.unsaved_alerts = true;
                    self.commit_alerts();
                }
            }
            Fault::Restart { crash, down_ms } => {
                if self.down_until.is_some() {
                    return Ok(());
                }
                if !crash {
                    self.books.saved();
                    self.engine.mark_saved();
                    self.saved = Some((self.expect.clone(), self.en));
                    self.save_no += 1;
                    self.saved_gen = self.save_no;
                } else if self.saved.is_some() && self.bytes_gen != Some(self.saved_gen) {
                    // Clean since the save (else the bytes would exist).
                    if self.engine.state_dirty() {
                        return Err("sim: no snapshot bytes for the last save".into());
                    }
                }
                if self.saved.is_some() {
                    self.serialise();
                }
                self.mqtt_down();
                self.mqtt.retry_at = None;
                self.down_until = Some(self.t + down_ms);
                self.save_at = None;
                self.rescan_at = None;
            }
        }
        Ok(())
    }

    fn restart(&mut self) -> Result<(), String> {
        self.down_until = None;
        let now = self.wall();
        self.engine = new_engine(&self.set, &self.tz);
        match self.saved.clone() {
            Some((ex, en)) => {
                self.engine
                    .restore(&self.saved_bytes, now)
                    .map_err(|e| format!("restore: {e}"))?;
                let n = self.books.unsaved();
                if n > 0 {
                    return Err(format!(
                        "a crash took back {n} committed alert changes (rule state not committed with them)"
                    ));
                }
                self.expect = ex;
                self.en = en.max(now.0);
            }
            None => {
                self.expect = Expect::default();
                self.en = now.0;
            }
        }
        self.router = Router::new(RouterConfig::default(), now);
        self.lora = lora_core(now);
        self.zigbee.start(now, false);
        self.jobs.clear();
        self.job_payloads.clear();
        self.lora_current = None;
        self.mqtt.retry_at = Some(self.t);
        self.rescan();
        self.note("gateway restarted".into());
        self.count("restarts");
        Ok(())
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }
}

pub fn fmt_t(ms: i64, offset: i64) -> String {
    let ts = jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default();
    if offset == 0 {
        ts
    } else {
        format!("{ts}(wall{offset:+}ms)")
    }
}
