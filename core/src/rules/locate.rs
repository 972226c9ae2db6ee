//! Where in a rules file a problem is: `line` and `rule[N].key`, through the
//! main config file's locator (`config::error_at`, `config::line_of`), which
//! reads the spans of toml's own parser.
//!
//! Invariant: `rule[N]` is the N-th `[[rule]]` table from 0, the same index
//! the validation uses, so a message's `rule[N]` and its line agree.

use crate::setting::line_of;
pub use crate::setting::parse_error;

/// The 1-based line of `key` (or its sub-table) inside the `index`-th
/// `[[rule]]`, else of that rule's header.
pub fn locate(text: &str, index: usize, key: &str) -> Option<usize> {
    let first = key.split('.').next().unwrap_or(key);
    // A rule may name one device or several (`device` / `devices`, ...);
    // validation names the plural.
    let alias = match first {
        "devices" => "device",
        "rooms" => "room",
        "roles" => "role",
        "kinds" => "kind",
        other => other,
    };
    let rule = format!("rule[{index}]");
    line_of(text, &format!("{rule}.{first}"))
        .or_else(|| line_of(text, &format!("{rule}.{alias}")))
        .or_else(|| line_of(text, &rule))
}
