//! The rule state's journal (a full snapshot and the deltas after it):
//! arbitrary deltas after a real snapshot, and arbitrary snapshots, never
//! panic on restore; a delta that does not follow or fit ends the journal.
#![no_main]

use carebridge::model::{DeviceId, Kind, Reading, Time};
use carebridge::rules::{Engine, RuleSet, Saved};
use libfuzzer_sys::fuzz_target;

const CARE: &str = r#"
[[rule]]
id = "panic"
type = "immediate"
kinds = ["panic"]
escalate = "5m"

[[rule]]
id = "quiet-room"
type = "inactivity"
kind = "motion"
per = "room"
for = "2h"

[[rule]]
id = "night-door"
type = "window"
kind = "contact"
window = "23:00-06:00"

[[rule]]
id = "late-start"
type = "routine"
window = "05:00-12:00"
min_days = 2
"#;

fuzz_target!(|data: &[u8]| {
    let Ok(care) = RuleSet::parse(CARE, "care") else { return };
    let tz = jiff::tz::TimeZone::UTC;
    let Ok(mut e) = Engine::new(&care, tz.clone()) else { return };
    let mut out = Vec::new();
    let t0 = 1_795_435_200_000_i64;
    for (i, kind) in [Kind::Panic, Kind::Motion, Kind::Contact].into_iter().enumerate() {
        let Ok(id) = DeviceId::new(&format!("d{i}")) else { return };
        if let Ok(r) = Reading::new(id, kind, 1.0, Time(t0 + i as i64)) {
            e.on_reading(Time(t0 + i as i64), &r, &mut out);
        }
    }
    let Saved::Full(full) = e.save() else { return };
    // The input, split at 0xff bytes, as the deltas.
    let deltas: Vec<Vec<u8>> = data.split(|b| *b == 0xff).map(<[u8]>::to_vec).collect();
    if let Ok(mut b) = Engine::new(&care, tz.clone()) {
        let _ = b.restore_journal(&full, &deltas, Time(t0));
        let _ = b.save();
    }
    // The input as the snapshot, with its own pieces as deltas.
    if let Ok(mut b) = Engine::new(&care, tz) {
        let _ = b.restore_journal(data, &deltas[1..], Time(0));
    }
});
