//! The simulated home used by `carebridge demo` and soak tests.
//!
//! One resident in a five-room home follows a daily routine in local time:
//! asleep in bed at night, bathroom and kitchen in the morning (the fridge
//! door opens), living room most of the day, an outing through the front
//! door some days, back to bed in the evening. Motion sensors fire every few
//! minutes while the resident is in their room (not while asleep); the first
//! simulated hour is always lived-in (someone in a room at once, the fridge,
//! a carer at the front door, one pendant press), so `carebridge demo
//! --speed 60` shows a home within seconds. Temperature sensors report
//! every five minutes (the home cools at night), batteries every six hours,
//! and now and then the panic pendant is pressed.
//!
//! [`Home`] is the pure, deterministic core (a seeded PRNG, time passed in);
//! [`run`] is the shell that feeds the hub on a (possibly fast-forwarded) clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::model::{DeviceId, DeviceInfo, Ingest, Kind, Reading, Time};

pub use crate::config::SimConfig;

/// Rooms of the simulated home.
pub const ROOMS: [&str; 5] = ["bedroom", "bathroom", "kitchen", "living room", "hall"];

/// The simulated devices: (id, kind it reports, room, name, role).
pub const DEVICES: &[(&str, Kind, &str, &str, &str)] = &[
    (
        "bedroom-motion",
        Kind::Motion,
        "bedroom",
        "Bedroom motion",
        "motion",
    ),
    (
        "bathroom-motion",
        Kind::Motion,
        "bathroom",
        "Bathroom motion",
        "motion",
    ),
    (
        "kitchen-motion",
        Kind::Motion,
        "kitchen",
        "Kitchen motion",
        "motion",
    ),
    (
        "living-motion",
        Kind::Motion,
        "living room",
        "Living room motion",
        "motion",
    ),
    ("hall-motion", Kind::Motion, "hall", "Hall motion", "motion"),
    (
        "front-door",
        Kind::Contact,
        "hall",
        "Front door",
        "front_door",
    ),
    (
        "fridge-door",
        Kind::Contact,
        "kitchen",
        "Fridge door",
        "fridge_door",
    ),
    ("bed-sensor", Kind::Bed, "bedroom", "Bed sensor", "bed"),
    (
        "living-temp",
        Kind::Temperature,
        "living room",
        "Living room temperature",
        "temperature",
    ),
    (
        "bedroom-temp",
        Kind::Temperature,
        "bedroom",
        "Bedroom temperature",
        "temperature",
    ),
    (
        "pendant",
        Kind::Panic,
        "living room",
        "Panic pendant",
        "panic",
    ),
    (
        "kitchen-leak",
        Kind::WaterLeak,
        "kitchen",
        "Kitchen leak sensor",
        "water_leak",
    ),
];

/// Registry facts for every simulated device.
pub fn device_infos() -> Vec<DeviceInfo> {
    DEVICES
        .iter()
        .map(|(id, _, room, name, role)| DeviceInfo {
            id: DeviceId::new(id).ok(),
            name: Some((*name).to_string()),
            room: Some((*room).to_string()),
            role: Some((*role).to_string()),
            model: Some("simulated".into()),
            manufacturer: Some("carebridge".into()),
            ..Default::default()
        })
        .collect()
}

/// A small deterministic PRNG (xorshift64*): the simulator needs repeatable
/// days, not cryptographic randomness.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform whole number in [lo, hi].
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = u64::try_from(hi - lo + 1).unwrap_or(1);
        lo + i64::try_from(self.next_u64() % span).unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// Emit a reading from device index with value ×1000 (keeps Ord simple).
    Emit(usize, i64),
    /// The resident moves to a room.
    Enter(usize),
    /// Plan the next local day.
    PlanDay,
    Temperatures,
    Batteries,
    /// The resident is still in this room: its motion sensor fires again.
    Stay(usize),
}

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// The simulated home: feed it a time, get the readings up to that time.
#[derive(Debug)]
pub struct Home {
    rng: Rng,
    tz: jiff::tz::TimeZone,
    queue: BinaryHeap<Reverse<(i64, u64, Ev)>>,
    order: u64,
    room: usize,
    panic_per_day: f64,
    temp_every: i64,
    battery: Vec<f64>,
}

impl Home {
    pub fn new(cfg: &SimConfig, tz: jiff::tz::TimeZone, start: Time) -> Home {
        let mut h = Home {
            rng: Rng::new(cfg.seed),
            tz,
            queue: BinaryHeap::new(),
            order: 0,
            room: 3,
            panic_per_day: cfg.panic_per_day,
            temp_every: i64::from(cfg.temperature_every_s) * 1000,
            battery: vec![100.0; DEVICES.len()],
        };
        let t = start.as_millis();
        h.push(t, Ev::PlanDay);
        h.push(t + 1000, Ev::Temperatures);
        h.push(t + 2000, Ev::Batteries);
        h.first_hour(t);
        h
    }

    /// The demo's first minute must look lived-in: whatever the hour, the
    /// resident is somewhere now, the fridge and the front door open within
    /// the first simulated quarter of an hour (a carer's visit), and the
    /// pendant is pressed once within the first simulated hour.
    fn first_hour(&mut self, t: i64) {
        let h = self.local_hour(t);
        if !(6.5..22.5).contains(&h) {
            // Night: in bed; a trip to the bathroom and back.
            self.room = 0;
            self.push(t + 2000, Ev::Emit(self.device("bed-sensor"), 1000));
            self.push(t + 4 * MIN, Ev::Emit(self.device("bed-sensor"), 0));
            self.push(t + 4 * MIN + 20_000, Ev::Enter(1));
            self.push(t + 12 * MIN, Ev::Enter(0));
            self.push(t + 13 * MIN, Ev::Emit(self.device("bed-sensor"), 1000));
            return;
        }
        let (fridge, front, hall) = (
            self.device("fridge-door"),
            self.device("front-door"),
            self.device("hall-motion"),
        );
        self.push(t + 2000, Ev::Enter(3));
        self.push(t + 3 * MIN, Ev::Enter(2));
        self.push(t + 4 * MIN, Ev::Emit(fridge, 1000));
        self.push(t + 4 * MIN + 25_000, Ev::Emit(fridge, 0));
        self.push(t + 9 * MIN, Ev::Enter(3));
        // A carer's visit: the hall, the front door open and shut.
        let visit = t + self.rng.range(6, 12) * MIN;
        self.push(visit, Ev::Emit(hall, 1000));
        self.push(visit + 15_000, Ev::Emit(front, 1000));
        self.push(visit + 35_000, Ev::Emit(front, 0));
        self.push(visit + 90_000, Ev::Emit(hall, 0));
        let pendant = self.device("pendant");
        let p = t + self.rng.range(20, 50) * MIN;
        self.push(p, Ev::Emit(pendant, 1000));
        self.push(p + 2000, Ev::Emit(pendant, 0));
    }

    fn push(&mut self, at: i64, ev: Ev) {
        self.order += 1;
        self.queue.push(Reverse((at, self.order, ev)));
    }

    fn device(&self, id: &str) -> usize {
        DEVICES.iter().position(|d| d.0 == id).unwrap_or(0)
    }

    fn local_hour(&self, t: i64) -> f64 {
        jiff::Timestamp::from_millisecond(t)
            .map(|ts| {
                let z = ts.to_zoned(self.tz.clone());
                f64::from(z.hour()) + f64::from(z.minute()) / 60.0
            })
            .unwrap_or(12.0)
    }

    /// Local midnight that starts the day containing `t`.
    fn day_start(&self, t: i64) -> i64 {
        jiff::Timestamp::from_millisecond(t)
            .ok()
            .and_then(|ts| ts.to_zoned(self.tz.clone()).start_of_day().ok())
            .map_or(t - t.rem_euclid(24 * HOUR), |z| {
                z.timestamp().as_millisecond()
            })
    }

    /// Every reading with a timestamp up to and including `until`, in order.
    pub fn advance(&mut self, until: Time, out: &mut Vec<Reading>) {
        while let Some(Reverse((at, _, ev))) = self.queue.peek().copied() {
            if at > until.as_millis() {
                break;
            }
            self.queue.pop();
            self.handle(at, ev, out);
        }
    }

    fn emit(&self, at: i64, dev: usize, value: f64, out: &mut Vec<Reading>) {
        let (id, kind, ..) = DEVICES[dev];
        if let (Ok(device), true) = (DeviceId::new(id), value.is_finite()) {
            out.push(Reading {
                device,
                kind,
                value,
                at: Time(at),
            });
        }
    }

    fn handle(&mut self, at: i64, ev: Ev, out: &mut Vec<Reading>) {
        match ev {
            Ev::Emit(dev, milli) => self.emit(at, dev, milli as f64 / 1000.0, out),
            Ev::Enter(room) => self.enter(at, room),
            Ev::Stay(room) => {
                // Asleep in the bedroom at night: no movement to report.
                let asleep = room == 0 && !(6.5..22.5).contains(&self.local_hour(at));
                if self.room == room && !asleep {
                    let motion = [0usize, 1, 2, 3, 4][room.min(4)];
                    self.emit(at, motion, 1.0, out);
                    self.push(at + 90_000, Ev::Emit(motion, 0));
                    let next = at + self.rng.range(2, 6) * MIN;
                    self.push(next, Ev::Stay(room));
                }
            }
            Ev::PlanDay => self.plan_day(at),
            Ev::Temperatures => {
                let h = self.local_hour(at);
                // Heating on 06:30–22:00; the home cools overnight.
                let base = if (6.5..22.0).contains(&h) { 20.5 } else { 17.0 };
                for (id, off) in [("living-temp", 0.4), ("bedroom-temp", -0.8)] {
                    let noise = (self.rng.unit() - 0.5) * 0.4;
                    let v = ((base + off + noise) * 10.0).round() / 10.0;
                    self.emit(at, self.device(id), v, out);
                }
                self.push(at + self.temp_every, Ev::Temperatures);
            }
            Ev::Batteries => {
                for (i, dev) in DEVICES.iter().enumerate() {
                    self.battery[i] = (self.battery[i] - self.rng.unit() * 0.3).max(1.0);
                    let b = self.battery[i].round();
                    if let Ok(device) = DeviceId::new(dev.0) {
                        out.push(Reading {
                            device,
                            kind: Kind::Battery,
                            value: b,
                            at: Time(at),
                        });
                    }
                }
                self.push(at + 6 * HOUR, Ev::Batteries);
            }
        }
    }

    /// The resident walks into `room`: the hall sensor on the way, then the
    /// room's motion sensor fires every few minutes while they stay.
    fn enter(&mut self, at: i64, room: usize) {
        self.room = room;
        let motion = [0usize, 1, 2, 3, 4][room.min(4)];
        self.push(at, Ev::Emit(motion, 1000));
        self.push(at + 90_000, Ev::Emit(motion, 0));
        let again = at + self.rng.range(2, 6) * MIN;
        self.push(again, Ev::Stay(room));
    }

    /// Plans one local day of routine from `at` (the start of the simulation
    /// or local midnight) to the next local midnight.
    fn plan_day(&mut self, at: i64) {
        let day = self.day_start(at);
        let next_day = self.day_start(day + 26 * HOUR);
        let t = |h: f64| day + (h * HOUR as f64) as i64;
        let mut plan: Vec<(i64, usize)> = Vec::new();
        let wake = t(6.75) + self.rng.range(0, 75) * MIN;
        let bed = t(22.0) + self.rng.range(0, 60) * MIN;
        // Morning: out of bed, bathroom, kitchen (fridge), living room.
        plan.push((wake, 1));
        let kitchen = wake + self.rng.range(10, 25) * MIN;
        plan.push((kitchen, 2));
        let breakfast = wake + self.rng.range(30, 45) * MIN;
        plan.push((breakfast, 3));
        // Day: living room, with kitchen and bathroom visits.
        let mut s = breakfast + self.rng.range(40, 90) * MIN;
        while s < bed - HOUR {
            let room = if self.rng.unit() < 0.6 { 2 } else { 1 };
            plan.push((s, room));
            let back = s + self.rng.range(5, 25) * MIN;
            plan.push((back, 3));
            s += self.rng.range(60, 150) * MIN;
        }
        plan.push((bed - 15 * MIN, 1));
        plan.push((bed, 0));
        plan.sort_unstable();
        let fridge = self.device("fridge-door");
        let bed_dev = self.device("bed-sensor");
        let front = self.device("front-door");
        let hall = self.device("hall-motion");
        for (when, room) in plan {
            if when < at || when >= next_day {
                continue;
            }
            self.push(when, Ev::Enter(room));
            if room == 2 {
                let open = when + self.rng.range(1, 5) * MIN;
                self.push(open, Ev::Emit(fridge, 1000));
                let shut = open + self.rng.range(10, 60) * 1000;
                self.push(shut, Ev::Emit(fridge, 0));
            }
        }
        if wake >= at && wake < next_day {
            self.push(wake - 30_000, Ev::Emit(bed_dev, 0));
        }
        if bed >= at && bed < next_day {
            self.push(bed + 2 * MIN, Ev::Emit(bed_dev, 1000));
        }
        // Some days an outing mid-morning through the front door.
        if self.rng.unit() < 0.5 {
            let out_at = t(10.0) + self.rng.range(0, 90) * MIN;
            if out_at >= at {
                self.push(out_at, Ev::Emit(hall, 1000));
                self.push(out_at + 20_000, Ev::Emit(front, 1000));
                self.push(out_at + 40_000, Ev::Emit(front, 0));
                let back = out_at + self.rng.range(45, 120) * MIN;
                self.push(back, Ev::Emit(front, 1000));
                self.push(back + 15_000, Ev::Emit(front, 0));
                self.push(back + 20_000, Ev::Emit(hall, 1000));
            }
        }
        // Panic presses: Poisson-ish, waking hours only.
        let expected = self.panic_per_day;
        let mut presses = expected.floor() as i64;
        if self.rng.unit() < expected.fract() {
            presses += 1;
        }
        let pendant = self.device("pendant");
        for _ in 0..presses {
            let p = wake + self.rng.range(60, ((bed - wake) / MIN).max(61)) * MIN;
            if p >= at && p < next_day {
                self.push(p, Ev::Emit(pendant, 1000));
                self.push(p + 2000, Ev::Emit(pendant, 0));
            }
        }
        self.push(next_day, Ev::PlanDay);
    }
}

/// Feeds the hub from a simulated home until shutdown.
pub async fn run(
    cfg: SimConfig,
    tz: jiff::tz::TimeZone,
    clock: Arc<dyn Clock>,
    out: mpsc::Sender<Ingest>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    for info in device_infos() {
        if out.send(Ingest::Device(info)).await.is_err() {
            return Ok(());
        }
    }
    let mut home = Home::new(&cfg, tz, clock.now());
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        home.advance(clock.now(), &mut batch);
        for r in batch.drain(..) {
            if out.send(Ingest::Reading(r)).await.is_err() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(seed: u64) -> Vec<Reading> {
        let cfg = SimConfig {
            seed,
            ..Default::default()
        };
        let tz = jiff::tz::TimeZone::get("Europe/London").unwrap();
        let start = Time::parse_rfc3339("2026-11-22T00:00:00Z").unwrap();
        let mut home = Home::new(&cfg, tz, start);
        let mut out = Vec::new();
        home.advance(Time(start.as_millis() + 24 * HOUR), &mut out);
        out
    }

    #[test]
    fn a_simulated_day_has_a_routine() {
        let readings = day(7);
        let count = |id: &str| readings.iter().filter(|r| r.device.as_str() == id).count();
        assert!(count("kitchen-motion") >= 2, "kitchen visits");
        assert!(count("living-temp") >= 280, "temperature every 5 minutes");
        assert!(count("bed-sensor") >= 1, "gets up in the morning");
        assert!(count("fridge-door") >= 2, "opens the fridge");
        assert!(
            readings.windows(2).all(|w| w[0].at <= w[1].at),
            "in time order"
        );
    }

    #[test]
    fn the_first_twenty_simulated_minutes_are_lived_in_at_any_hour() {
        for hour in [2, 8, 14, 20] {
            let start = Time(1_764_547_200_000 + hour * HOUR); // 2025-12-01 UTC
            let mut h = Home::new(&SimConfig::default(), jiff::tz::TimeZone::UTC, start);
            let mut out = Vec::new();
            h.advance(Time(start.as_millis() + 20 * MIN), &mut out);
            let moves = out
                .iter()
                .filter(|r| r.kind == Kind::Motion && r.value == 1.0)
                .count();
            let kinds: std::collections::BTreeSet<Kind> = out.iter().map(|r| r.kind).collect();
            assert!(moves >= 2, "{hour}h: {moves} motion reports in 20 min");
            if (8..=20).contains(&hour) {
                assert!(
                    kinds.contains(&Kind::Contact),
                    "{hour}h: no door: {kinds:?}"
                );
            } else {
                assert!(kinds.contains(&Kind::Bed), "{hour}h: no bed mat: {kinds:?}");
            }
        }
        // The pendant within the first hour.
        let start = Time(1_764_547_200_000 + 9 * HOUR);
        let mut h = Home::new(&SimConfig::default(), jiff::tz::TimeZone::UTC, start);
        let mut out = Vec::new();
        h.advance(Time(start.as_millis() + HOUR), &mut out);
        assert!(out.iter().any(|r| r.kind == Kind::Panic && r.value == 1.0));
    }

    #[test]
    fn the_same_seed_gives_the_same_day() {
        assert_eq!(day(42), day(42));
        assert_ne!(day(42), day(43));
    }

    #[test]
    fn panic_presses_follow_the_configured_rate() {
        let cfg = SimConfig {
            panic_per_day: 3.0,
            ..Default::default()
        };
        let tz = jiff::tz::TimeZone::get("Europe/London").unwrap();
        let start = Time::parse_rfc3339("2026-11-22T00:00:00Z").unwrap();
        let mut home = Home::new(&cfg, tz, start);
        let mut out = Vec::new();
        home.advance(Time(start.as_millis() + 10 * 24 * HOUR), &mut out);
        let presses = out
            .iter()
            .filter(|r| r.kind == Kind::Panic && r.value > 0.5)
            .count();
        assert_eq!(presses, 30);
    }
}
