//! Any story (events file) through rules that use every directive's path —
//! escalation, window resolution, routine learning — in a zone with DST,
//! sorted and refused: never panics; a snapshot restore never panics on
//! arbitrary bytes either.
#![no_main]

use carebridge::rules::{Engine, MINIMAL_RULES, Order, RuleSet, cli};
use libfuzzer_sys::fuzz_target;

const CARE: &str = r#"
[[rule]]
id = "panic"
type = "immediate"
kinds = ["panic"]
escalate = "5m"

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

[[rule]]
id = "silent"
type = "silent"
intervals = { temperature = "30m" }
"#;

fuzz_target!(|data: &[u8]| {
    let Ok(set) = RuleSet::parse(MINIMAL_RULES, "built-in") else { return };
    let Ok(care) = RuleSet::parse(CARE, "care") else { return };
    let tz = jiff::tz::TimeZone::get("Europe/London").unwrap_or(jiff::tz::TimeZone::UTC);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cli::replay(&set, jiff::tz::TimeZone::UTC, text, "fuzz.jsonl");
        for order in [Order::Sort, Order::Refuse] {
            let _ = cli::replay_story(&care, tz.clone(), text, "fuzz.jsonl", order);
        }
    }
    if let Ok(mut e) = Engine::new(&care, tz) {
        let _ = e.restore(data, carebridge::model::Time(0));
    }
});
