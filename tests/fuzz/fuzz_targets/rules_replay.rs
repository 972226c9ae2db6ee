//! Any events file through the built-in rules: never panics; a snapshot
//! restore never panics on arbitrary bytes either.
#![no_main]

use carebridge::rules::{Engine, MINIMAL_RULES, RuleSet, cli};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(set) = RuleSet::parse(MINIMAL_RULES, "built-in") else { return };
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cli::replay(&set, jiff::tz::TimeZone::UTC, text, "fuzz.jsonl");
    }
    if let Ok(mut e) = Engine::new(&set, jiff::tz::TimeZone::UTC) {
        let _ = e.restore(data, carebridge::model::Time(0));
    }
});
