//! Where in a rules file a problem is: turns TOML errors and rule keys into
//! `line` and `rule[N].key`, the way `config/locate.rs` does for the main file.
//!
//! Invariant: rule indices count `[[rule]]` headers from 0, the same index
//! the validation uses, so a message's `rule[N]` and its line agree.

use crate::config::ConfigError;

/// Turns a TOML/serde error into `file:line:col: key: message`.
pub fn parse_error(text: &str, path: &str, e: &toml::de::Error) -> ConfigError {
    let (line, column, key, message) = crate::config::error_at(text, e, key_at);
    ConfigError::Parse {
        path: path.to_string(),
        line,
        column,
        key,
        message,
    }
}

/// `rule[N].key` for the line holding `offset`: N counts `[[rule]]` headers above.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();
    let above = &text[..line_start];
    let n = above.lines().filter(|l| l.trim() == "[[rule]]").count();
    let sub = above
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .and_then(|l| {
            l.trim_matches(|c| c == '[' || c == ']')
                .strip_prefix("rule.")
        })
        .map(|s| s.to_string());
    let base = if n == 0 {
        String::new()
    } else {
        format!("rule[{}]", n - 1)
    };
    let key = line
        .split('=')
        .next()
        .map(|k| k.trim().trim_matches('"'))
        .unwrap_or("");
    let mut parts = vec![base];
    if let Some(s) = sub {
        parts.push(s);
    }
    if !line.starts_with('[') && !key.is_empty() {
        parts.push(key.to_string());
    }
    let k = parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(".");
    (!k.is_empty()).then_some(k)
}

/// The 1-based line of `key` (or its sub-table) inside the `index`-th `[[rule]]`.
pub fn locate(text: &str, index: usize, key: &str) -> Option<usize> {
    let mut n = 0usize;
    let mut inside = false;
    let mut header = None;
    let first = key.split('.').next().unwrap_or(key);
    let alias = match first {
        "devices" => "device",
        "rooms" => "room",
        "roles" => "role",
        "kinds" => "kind",
        other => other,
    };
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l == "[[rule]]" {
            inside = n == index;
            if inside {
                header = Some(i + 1);
            }
            n += 1;
            continue;
        }
        if !inside {
            continue;
        }
        if l.starts_with('[') {
            let name = l.trim_matches(|c| c == '[' || c == ']').trim();
            if name == format!("rule.{first}") {
                return Some(i + 1);
            }
            continue;
        }
        if let Some((k, _)) = l.split_once('=') {
            let k = k.trim().trim_matches('"');
            if k == first || k == alias {
                return Some(i + 1);
            }
        }
    }
    header
}
