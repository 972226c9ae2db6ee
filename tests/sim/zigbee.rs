//! Four of the home's devices (the pendant, the front door, the hall PIR,
//! the living-room thermometer) talk Zigbee: their messages go as real ZNP
//! frames from a simulated Z-Stack coordinator stick through the pure
//! coordinator state machine (session, start-up, ZCL), which turns them
//! back into readings. The stick can reset (the coordinator fails and the
//! shell starts a new one after a backoff, as `zigbee::port` does); while it
//! is not running, those devices' messages are lost.
//!
//! Note for the core crate: the stick is `zigbee::sim_stick` (pure, but a
//! simulator: it lives with the `sim` feature); this module is the only
//! part of the simulation that needs it.

use std::collections::HashMap;
use std::time::Duration;

use carebridge::model::{Ingest, Kind, Reading, Time};
use carebridge::zigbee::coordinator::{Coordinator, CoordinatorConfig, Output};
use carebridge::zigbee::frame::{Decoder, Frame};
use carebridge::zigbee::network::NetworkParams;
use carebridge::zigbee::sim_stick::{SimDeviceKind, Stick};
use carebridge::zigbee::sys::ResetInd;
use carebridge::zigbee::wire::Msg;
use carebridge::zigbee::zcl_map;

use super::home;

const BACKOFF_MIN: i64 = 1_000;
const BACKOFF_MAX: i64 = 60_000;

fn cfg() -> CoordinatorConfig {
    CoordinatorConfig {
        channel: 20,
        srsp_timeout: Duration::from_secs(6),
        stall_timeout: Duration::from_millis(500),
        wait_timeout: Duration::from_secs(30),
        interview_timeout: Duration::from_secs(10),
        // The product pings every 60 s; 10 min keeps a month of pings cheap.
        ping_interval: Duration::from_secs(600),
        vibration_is_fall: true,
    }
}

pub struct Zigbee {
    c: Coordinator,
    stick: Stick,
    stored: Option<NetworkParams>,
    /// home device → IEEE address; zigbee device id → home device.
    ieee: HashMap<usize, u64>,
    by_id: HashMap<String, usize>,
    /// IAS zone state per device: (alarm, tamper).
    zone: HashMap<usize, (bool, bool)>,
    retry_at: Option<i64>,
    backoff: i64,
    readings: Vec<(usize, Reading)>,
    pub failures: Vec<String>,
}

impl Zigbee {
    pub fn new(now: Time) -> Zigbee {
        let mut stick = Stick::new();
        let mut ieee = HashMap::new();
        for (dev, kind) in [
            (home::PENDANT, SimDeviceKind::PanicButton),
            (home::DOOR, SimDeviceKind::Contact),
            (home::PIR_HALL, SimDeviceKind::Motion),
            (home::TEMP, SimDeviceKind::Temperature),
        ] {
            ieee.insert(dev, stick.add_device(kind));
        }
        let by_id = ieee
            .iter()
            .map(|(d, i)| (zcl_map::device_id(*i).to_string(), *d))
            .collect();
        let mut z = Zigbee {
            c: Coordinator::new(cfg(), None, NetworkParams::from_random(20, &[7; 26]), false),
            stick,
            stored: None,
            ieee,
            by_id,
            zone: HashMap::new(),
            retry_at: None,
            backoff: BACKOFF_MIN,
            readings: Vec::new(),
            failures: Vec::new(),
        };
        z.c.handle_timeout(now);
        z.pump(now);
        z.c.permit_join(60, now);
        z.pump(now);
        let mut t = now;
        while t.0 < now.0 + 2_000 {
            t = Time(t.0 + 50);
            z.handle_timeout(t);
        }
        z.readings.clear();
        z
    }

    pub fn is_zigbee(&self, dev: usize) -> bool {
        self.ieee.contains_key(&dev)
    }

    pub fn is_running(&self) -> bool {
        self.c.is_running()
    }

    pub fn next_deadline(&self) -> Option<Time> {
        match self.retry_at {
            Some(r) => Some(Time(r)),
            None => self.c.next_deadline(),
        }
    }

    pub fn handle_timeout(&mut self, now: Time) {
        if self.retry_at.is_some_and(|r| r <= now.0) {
            self.retry_at = None;
            self.start(now, true);
            return;
        }
        if self.retry_at.is_none() {
            self.c.handle_timeout(now);
            self.pump(now);
        }
    }

    /// A new coordinator over the same stick (after a failure, or at the
    /// gateway's start), with the network parameters it saved.
    pub fn start(&mut self, now: Time, reset_first: bool) {
        self.c = Coordinator::new(
            cfg(),
            self.stored.clone(),
            NetworkParams::from_random(20, &[9; 26]),
            reset_first,
        );
        self.retry_at = None;
        self.c.handle_timeout(now);
        self.pump(now);
    }

    /// The stick lost power and came back: it says so with a reset indication.
    pub fn stick_reset(&mut self, now: Time) {
        self.stick.power_cycle();
        let ind = ResetInd {
            reason: 0,
            transport_rev: 2,
            product_id: 1,
            major: 2,
            minor: 7,
            maint: 1,
        };
        self.c.handle_bytes(&ind.to_frame().to_bytes(), now);
        self.pump(now);
    }

    /// The device's own state changed (whether or not its message gets
    /// through: the state is the device's, not the gateway's).
    pub fn set_state(&mut self, dev: usize, kind: Kind, value: f64) {
        let z = self.zone.entry(dev).or_default();
        match kind {
            Kind::Tamper => z.1 = value >= 0.5,
            Kind::Panic | Kind::Contact | Kind::Motion => z.0 = value >= 0.5,
            _ => {}
        }
    }

    /// A device's message; `false` if it could not be sent (link down).
    pub fn send(&mut self, dev: usize, kind: Kind, value: f64, now: Time) -> bool {
        self.set_state(dev, kind, value);
        let (Some(&ieee), true) = (self.ieee.get(&dev), self.c.is_running()) else {
            return false;
        };
        let frames: Vec<Frame> = match kind {
            Kind::Temperature => self.stick.temperature(ieee, value, 50.0),
            Kind::Tamper | Kind::Panic | Kind::Contact | Kind::Motion => {
                let (a, t) = self.zone.get(&dev).copied().unwrap_or_default();
                self.stick.zone_alarm(ieee, a, t).into_iter().collect()
            }
            _ => return false,
        };
        for f in frames {
            self.c.handle_bytes(&f.to_bytes(), now);
        }
        self.pump(now);
        true
    }

    /// Readings the coordinator produced, as (home device, reading).
    pub fn take_readings(&mut self) -> Vec<(usize, Reading)> {
        std::mem::take(&mut self.readings)
    }

    fn pump(&mut self, now: Time) {
        for _ in 0..10_000 {
            let mut any = false;
            let mut to_host = Vec::new();
            while let Some(b) = self.c.poll_transmit() {
                any = true;
                let mut d = Decoder::new();
                d.push(&b);
                while let Some(f) = d.next_frame() {
                    to_host.extend(self.stick.handle(&f, now.0 as u64));
                }
            }
            to_host.extend(self.stick.tick(now.0 as u64));
            for f in to_host {
                any = true;
                self.c.handle_bytes(&f.to_bytes(), now);
            }
            while let Some(o) = self.c.poll_output() {
                match o {
                    Output::Save(p) => self.stored = Some(p),
                    Output::Failed(why) => {
                        self.failures.push(why);
                        self.retry_at = Some(now.0 + self.backoff);
                        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    }
                    Output::Ingest(Ingest::Reading(r)) => {
                        if let Some(&dev) = self.by_id.get(r.device.as_str()) {
                            self.readings.push((dev, r));
                        }
                    }
                    Output::Ingest(Ingest::Link(l)) if l.up => self.backoff = BACKOFF_MIN,
                    Output::Ingest(_) => {}
                }
            }
            if !any {
                return;
            }
        }
    }
}
