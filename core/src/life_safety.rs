//! Life-safety coverage of a rule set: a rule set that raises nothing for
//! a panic press, a fall, smoke or a water leak must never be applied by
//! accident (an empty text, a stale backup, a bad push from the cloud).
//!
//! A kind is *covered* when an enabled `immediate` or `threshold` rule
//! names it in `kinds` without a time `window` (a rule limited to some
//! devices or rooms still counts: the installer chose it). Which kinds
//! must be covered is `[rules] life_safety` (default [`DEFAULT`]); the
//! shells refuse a rule set that leaves one of them uncovered unless the
//! request carries an explicit confirmation, and show a standing warning
//! while one is uncovered.
//!
//! Pure: a function over the parsed rule set.

use crate::model::Kind;
use crate::rules::{RuleSet, RuleType};

/// The kinds covered unless `[rules] life_safety` says otherwise.
pub const DEFAULT: [Kind; 4] = [Kind::Panic, Kind::Fall, Kind::Smoke, Kind::WaterLeak];

/// The field (web API, backup restore, `cmd/config`) that confirms a rule
/// set without some life-safety rules on purpose.
pub const CONFIRM_FIELD: &str = "allow_missing_life_safety";

/// The kinds of `required` that no rule of `set` covers, in `required`'s order.
pub fn missing(set: &RuleSet, required: &[Kind]) -> Vec<Kind> {
    required
        .iter()
        .copied()
        .filter(|k| {
            !set.rules.iter().any(|r| {
                r.enabled
                    && matches!(r.kind, RuleType::Immediate | RuleType::Threshold)
                    && r.window.is_none()
                    && r.kinds.0.contains(k)
            })
        })
        .collect()
}

/// `panic, smoke` — the missing kinds for a message.
pub fn names(kinds: &[Kind]) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The refusal message naming what is missing.
pub fn refusal(kinds: &[Kind]) -> String {
    format!(
        "this rule set has no alert rule for {} (life-safety): nobody would be alerted; \
         add the rules back, or send \"{CONFIRM_FIELD}\": true to apply it anyway",
        names(kinds)
    )
}

/// The standing warning while some are uncovered.
pub fn warning(kinds: &[Kind]) -> String {
    format!(
        "Life-safety alerts are off: no active rule raises an alert for {}. \
         Restore them on the Rules page.",
        names(kinds)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> RuleSet {
        RuleSet::parse(text, "t").unwrap()
    }

    #[test]
    fn the_built_in_rules_cover_every_life_safety_kind() {
        assert!(missing(&set(crate::rules::MINIMAL_RULES), &DEFAULT).is_empty());
    }

    #[test]
    fn an_empty_rule_set_misses_them_all_in_order() {
        assert_eq!(missing(&set(""), &DEFAULT), DEFAULT.to_vec());
        assert_eq!(
            names(&missing(&set(""), &DEFAULT)),
            "panic, fall, smoke, water_leak"
        );
        assert!(
            missing(&set(""), &[]).is_empty(),
            "nothing required, nothing missing"
        );
    }

    #[test]
    fn disabled_or_windowed_rules_do_not_count_but_room_limited_ones_do() {
        let s = set(r#"
[[rule]]
id = "panic"
type = "immediate"
kinds = ["panic"]
enabled = false

[[rule]]
id = "smoke-bedroom"
type = "immediate"
kinds = ["smoke", "water_leak"]
rooms = ["bedroom"]

[[rule]]
id = "fall"
type = "immediate"
kinds = ["fall"]
"#);
        assert_eq!(missing(&s, &DEFAULT), vec![Kind::Panic]);
        assert!(refusal(&[Kind::Panic]).contains("panic"));
        assert!(refusal(&[Kind::Panic]).contains(CONFIRM_FIELD));
    }
}
