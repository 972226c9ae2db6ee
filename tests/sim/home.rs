//! One home and its resident for a month: the devices, and a day's life as
//! sensor readings in true time (motion in rooms, bed, the front door,
//! temperatures, batteries, a panic press now and then, a fall, a leak, a
//! cold spell, a sensor going silent). Generated up front from the seed.

use carebridge::model::{DeviceId, DeviceInfo, Kind};
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::rng::Rng;

pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 60 * MIN;

/// (id, room, role, main kind)
pub const DEVICES: &[(&str, &str, &str, Kind)] = &[
    ("bed-mat", "bedroom", "bed", Kind::Bed),
    ("pir-bedroom", "bedroom", "", Kind::Motion),
    ("pir-hall", "hall", "", Kind::Motion),
    ("pir-kitchen", "kitchen", "", Kind::Motion),
    ("pir-living", "living_room", "", Kind::Motion),
    ("pir-bathroom", "bathroom", "", Kind::Motion),
    ("door-front", "hall", "front_door", Kind::Contact),
    ("temp-living", "living_room", "", Kind::Temperature),
    ("pendant", "hall", "pendant", Kind::Panic),
    ("fall-detector", "bathroom", "", Kind::Fall),
    ("leak-kitchen", "kitchen", "", Kind::WaterLeak),
];
pub const BED: usize = 0;
pub const PIR_BEDROOM: usize = 1;
pub const PIR_HALL: usize = 2;
pub const PIR_KITCHEN: usize = 3;
pub const PIR_BATHROOM: usize = 5;
pub const DOOR: usize = 6;
pub const TEMP: usize = 7;
pub const PENDANT: usize = 8;
pub const FALL: usize = 9;
pub const LEAK: usize = 10;

pub fn device_id(i: usize) -> DeviceId {
    DeviceId::new(DEVICES[i].0).unwrap_or_else(|_| unreachable!())
}

pub fn device_info(i: usize) -> DeviceInfo {
    let (id, room, role, _) = DEVICES[i];
    DeviceInfo {
        id: DeviceId::new(id).ok(),
        name: Some(id.replace('-', " ")),
        room: Some(room.into()),
        role: (!role.is_empty()).then(|| role.to_string()),
        ..DeviceInfo::default()
    }
}

/// One sensor message, stamped by the gateway when it arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct Ev {
    /// True time (ms since the epoch).
    pub t: i64,
    pub dev: usize,
    pub kind: Kind,
    pub value: f64,
}

/// The month: readings sorted by true time, and where it ends.
#[derive(Debug)]
pub struct Month {
    pub events: Vec<Ev>,
    pub start: i64,
    /// Incidents stop here; the last two days are calm (everything resolves).
    pub calm_from: i64,
    pub end: i64,
}

fn local(tz: &TimeZone, day: Date, minutes: i64) -> i64 {
    let dt = day
        .at(0, 0, 0, 0)
        .checked_add(jiff::Span::new().minutes(minutes))
        .unwrap_or_else(|_| unreachable!());
    tz.to_ambiguous_zoned(dt)
        .compatible()
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or_else(|_| unreachable!())
}

struct Gen<'a> {
    tz: &'a TimeZone,
    rng: Rng,
    out: Vec<Ev>,
}

impl Gen<'_> {
    fn at(&mut self, day: Date, minutes: f64, dev: usize, kind: Kind, value: f64) {
        let whole = minutes.floor() as i64;
        let t = local(self.tz, day, whole) + ((minutes - whole as f64) * MIN as f64) as i64;
        self.out.push(Ev {
            t,
            dev,
            kind,
            value,
        });
    }
    fn main(&mut self, day: Date, minutes: f64, dev: usize, value: f64) {
        self.at(day, minutes, dev, DEVICES[dev].3, value);
    }
    /// A PIR: motion, then idle two minutes later.
    fn motion(&mut self, day: Date, minutes: f64, dev: usize) {
        self.main(day, minutes, dev, 1.0);
        self.main(day, minutes + 2.0, dev, 0.0);
    }
    fn door(&mut self, day: Date, minutes: f64, open_min: f64) {
        self.main(day, minutes, DOOR, 1.0);
        self.main(day, minutes + open_min, DOOR, 0.0);
    }
    fn r(&mut self, lo: i64, hi: i64) -> f64 {
        self.rng.range(lo, hi) as f64
    }

    fn day(&mut self, day: Date, calm: bool) {
        let wake = self.r(420, 510);
        let bed = self.r(1320, 1395);
        self.main(day, wake, BED, 0.0);
        self.motion(day, wake + 0.5, PIR_BEDROOM);
        if calm || self.rng.chance(0.93) {
            let b = wake + self.r(10, 40);
            self.motion(day, b, PIR_KITCHEN);
        }
        let out_at = (!calm && self.rng.chance(0.4)).then(|| self.r(600, 1000));
        let nap_at = (!calm && self.rng.chance(0.06)).then(|| self.r(780, 900));
        let mut t = wake + 45.0;
        let mut went_out = false;
        while t < bed - 10.0 {
            if let Some(o) = out_at
                && !went_out
                && t >= o
            {
                went_out = true;
                self.motion(day, t, PIR_HALL);
                self.door(day, t + 1.0, 0.5);
                t += self.r(60, 300);
                self.door(day, t, 0.5);
                self.motion(day, t + 0.7, PIR_HALL);
                continue;
            }
            if let Some(n) = nap_at
                && t >= n
                && t < n + 60.0
            {
                t += self.r(240, 330); // asleep in the chair
            }
            let room = [4, 4, 4, 4, 3, 3, 2, 5, 1][self.rng.range(0, 8) as usize];
            self.motion(day, t, room);
            t += self.r(5, 45);
        }
        self.motion(day, bed - 5.0, PIR_BEDROOM);
        self.main(day, bed, BED, 1.0);
        self.night(day, calm);
        // Temperatures every 15 minutes, with a cold spell now and then.
        let spell = (!calm && self.rng.chance(0.05)).then(|| (self.r(0, 1200), self.r(60, 480)));
        for q in 0..96 {
            let m = f64::from(q) * 15.0 + self.r(0, 2);
            let cold = spell.is_some_and(|(s, d)| m >= s && m < s + d);
            let v = if cold {
                13.5 + self.r(0, 20) / 10.0
            } else {
                19.0 + self.r(0, 20) / 10.0
            };
            self.main(day, m, TEMP, v);
        }
        if !calm && self.rng.chance(0.08) {
            let m = wake + self.r(30, 600);
            self.main(day, m, PENDANT, 1.0);
            self.main(day, m + 0.05, PENDANT, 0.0);
            if self.rng.chance(0.3) {
                self.main(day, m + 0.5, PENDANT, 1.0);
                self.main(day, m + 0.55, PENDANT, 0.0);
            }
        }
        if !calm && self.rng.chance(0.04) {
            let m = self.r(0, 1400);
            self.main(day, m, LEAK, 1.0);
            let dry = m + self.r(10, 360);
            self.main(day, dry, LEAK, 0.0);
        }
        if !calm && self.rng.chance(0.02) {
            let m = self.r(0, 1400);
            self.at(day, m, DOOR, Kind::Tamper, 1.0);
            let back = m + self.r(1, 10);
            self.at(day, back, DOOR, Kind::Tamper, 0.0);
        }
    }

    /// From bedtime to the next morning: a toilet trip, a fall, or a walk
    /// out of the front door.
    fn night(&mut self, day: Date, calm: bool) {
        let m = 1440.0 + self.r(30, 270);
        let roll = self.rng.unit();
        if !calm && roll < 0.04 {
            self.main(day, m, BED, 0.0);
            self.motion(day, m + 1.0, PIR_BATHROOM);
            if self.rng.chance(0.5) {
                let f = m + self.r(2, 10);
                self.main(day, f, FALL, 1.0);
                self.main(day, f + 0.1, FALL, 0.0);
            }
            let back = m + self.r(35, 90);
            self.main(day, back, BED, 1.0);
        } else if !calm && roll < 0.07 {
            self.main(day, m, BED, 0.0);
            self.motion(day, m + 1.0, PIR_HALL);
            let open = self.r(2, 20);
            self.door(day, m + 2.0, open);
            let back = m + 3.0 + open + self.r(1, 5);
            self.main(day, back, BED, 1.0);
        } else if roll < 0.6 {
            self.main(day, m, BED, 0.0);
            self.motion(day, m + 1.0, PIR_BATHROOM);
            let back = m + self.r(5, 20);
            self.main(day, back, BED, 1.0);
        }
    }
}

/// A month (and two calm days) of one home, from `first` (a civil date).
pub fn month(rng: &mut Rng, tz: &TimeZone, first: Date, days: i64) -> Month {
    let mut g = Gen {
        tz,
        rng: rng.fork(),
        out: Vec::new(),
    };
    let total = days + 2;
    let mut dates = Vec::new();
    for d in 0..total {
        let day = first
            .checked_add(jiff::Span::new().days(d))
            .unwrap_or_else(|_| unreachable!());
        dates.push(day);
        g.day(day, d >= days);
    }
    let start = local(tz, first, 0);
    let calm_from = local(tz, dates[days as usize], 0);
    let end = local(tz, dates[(total - 1) as usize], 12 * 60);
    // Batteries: a report from every device every ~3 h; one battery may run
    // low (below 15 %) and be replaced a day or two later.
    let low = g.rng.chance(0.5).then(|| {
        let dev = g.rng.range(0, DEVICES.len() as i64 - 1) as usize;
        let from = start + g.rng.range(0, days - 3) * 24 * HOUR;
        (dev, from, from + g.rng.range(20, 60) * HOUR)
    });
    for dev in 0..DEVICES.len() {
        let mut t = start + g.rng.range(0, 180) * MIN;
        while t < end {
            let mut v = 95.0 - (t - start) as f64 / (24 * HOUR) as f64 * 0.2;
            if let Some((d, a, b)) = low
                && d == dev
            {
                if t >= a && t < b {
                    v = 12.0;
                } else if t >= b {
                    v = 100.0;
                }
            }
            g.out.push(Ev {
                t,
                dev,
                kind: Kind::Battery,
                value: v.round(),
            });
            t += g.rng.range(160, 200) * MIN;
        }
    }
    // A sensor goes silent for hours (a flat battery, out of range).
    let mut silent = Vec::new();
    for d in 0..days {
        if g.rng.chance(0.05) {
            let dev = g.rng.range(0, DEVICES.len() as i64 - 1) as usize;
            let a = start + d * 24 * HOUR + g.rng.range(0, 24 * 60) * MIN;
            silent.push((dev, a, a + g.rng.range(120, 30 * 60) * MIN));
        }
    }
    // Back in touch, a device reports its current state (the last state it
    // could not send), as a rejoining Zigbee device does.
    let mut events = Vec::with_capacity(g.out.len());
    let mut last_lost: std::collections::BTreeMap<(usize, usize, u8), Ev> = Default::default();
    for e in g.out {
        match silent
            .iter()
            .position(|&(d, a, b)| d == e.dev && e.t >= a && e.t < b)
        {
            Some(w) if e.kind.is_binary() => {
                last_lost.insert((w, e.dev, e.kind.code()), e);
            }
            Some(_) => {}
            None => events.push(e),
        }
    }
    for ((w, _, _), e) in last_lost {
        events.push(Ev {
            t: silent[w].2,
            ..e
        });
    }
    events.sort_by_key(|e| e.t);
    // With each battery report, the leak sensor and the door contact repeat
    // their state (as such devices' periodic reports do), so a change lost
    // while the gateway was down is not lost for good.
    let mut state: [Option<f64>; DEVICES.len()] = [None; DEVICES.len()];
    let mut repeats = Vec::new();
    for e in &events {
        if e.kind == DEVICES[e.dev].3 {
            state[e.dev] = Some(e.value);
        } else if e.kind == Kind::Battery
            && matches!(e.dev, LEAK | DOOR)
            && let Some(v) = state[e.dev]
        {
            repeats.push(Ev {
                t: e.t + 1,
                dev: e.dev,
                kind: DEVICES[e.dev].3,
                value: v,
            });
        }
    }
    events.extend(repeats);
    events.sort_by_key(|e| e.t);
    Month {
        events,
        start,
        calm_from,
        end,
    }
}
