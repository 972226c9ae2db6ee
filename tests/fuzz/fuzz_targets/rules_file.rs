//! Any rules file text: parsing never panics, and a file that parses
//! compiles and survives a few readings, a snapshot and a restore.
#![no_main]

use carebridge::model::{DeviceId, Kind, Reading, Time};
use carebridge::rules::{Engine, RuleSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(set) = RuleSet::parse(text, "fuzz.toml") else { return };
    let Ok(mut e) = Engine::new(&set, jiff::tz::TimeZone::UTC) else { return };
    let Ok(dev) = DeviceId::new("d1") else { return };
    let mut out = Vec::new();
    for (i, kind) in Kind::ALL.iter().enumerate() {
        let r = Reading { device: dev.clone(), kind: *kind, value: (i % 3) as f64, at: Time(i as i64 * 600_000) };
        e.on_reading(r.at, &r, &mut out);
    }
    e.on_tick(Time(400 * 86_400_000), &mut out);
    let snap = e.snapshot();
    if let Ok(mut e2) = Engine::new(&set, jiff::tz::TimeZone::UTC) {
        let _ = e2.restore(&snap, Time(0));
    }
    let _ = e.status();
});
