//! The commented default configuration (`carebridge config defaults`),
//! rendered from the types: each value is the section's `Default`
//! serialised with toml, each comment comes from the one table in `notes`.
//!
//! Invariant (tested): every key of every section type has a note and
//! appears in the file, and the file parses back to `Config::default()`
//! with the sections it shows enabled (`local_broker`, `uplink.mqtt`,
//! `web`) set to their defaults.

use serde::Serialize;

use super::notes::{HEAD, KEYS, Key, SECTIONS, Section};
use super::{GatewayConfig, LocalBrokerConfig, LogConfig, MqttUplinkConfig};

/// The commented default configuration file, as `carebridge config defaults` prints it.
pub fn defaults_toml() -> String {
    render(false)
}

/// A section's default values as a TOML table (`None` keys are absent).
fn defaults_of(section: &str) -> toml::Table {
    fn t<T: Serialize + Default>() -> toml::Table {
        toml::Table::try_from(T::default()).unwrap_or_default()
    }
    match section {
        "gateway" => t::<GatewayConfig>(),
        "local_broker" => t::<LocalBrokerConfig>(),
        "uplink.mqtt" => t::<MqttUplinkConfig>(),
        "store" => t::<crate::config::StoreConfig>(),
        "rules" => t::<crate::rules::RulesConfig>(),
        "web" => t::<crate::config::WebConfig>(),
        "zigbee" => t::<crate::zigbee::ZigbeeConfig>(),
        "serial" => t::<crate::line::SerialBoardConfig>(),
        "lorawan" => t::<crate::uplink::lorawan::LorawanConfig>(),
        "ota" => t::<crate::config::OtaConfig>(),
        "arc" => t::<crate::config::ArcConfig>(),
        "remote" => t::<crate::config::RemoteConfig>(),
        "homeassistant" => t::<crate::config::HaConfig>(),
        "metrics" => t::<crate::config::MetricsConfig>(),
        "simulator" => t::<crate::config::SimConfig>(),
        "devices.*" => t::<super::DeviceConfig>(),
        "log" => t::<LogConfig>(),
        _ => toml::Table::new(),
    }
}

/// The keys of a section, in the notes' order.
fn keys_of(section: &Section) -> impl Iterator<Item = (&'static str, &'static Key)> {
    KEYS.iter().filter_map(move |k| {
        let short = k.key.strip_prefix(section.name)?.strip_prefix('.')?;
        (!short.contains('.')).then_some((short, k))
    })
}

/// Renders the file. `all_on` (for tests) shows every section enabled and
/// only default values, no examples, so that it parses to the defaults.
fn render(all_on: bool) -> String {
    let mut out = String::new();
    comment(&mut out, "", HEAD);
    for section in SECTIONS {
        let hide = section.off && !all_on;
        let values = defaults_of(section.name);
        out.push('\n');
        comment(&mut out, "", section.about);
        out.push_str(if hide { "# " } else { "" });
        out.push_str(section.header);
        out.push('\n');
        let mut lines = Vec::new();
        for (short, key) in keys_of(section) {
            let value = values
                .get(short)
                .filter(|v| !matches!(v, toml::Value::Table(t) if t.is_empty()));
            let (text, commented) = match (key.example, value) {
                (Some(example), _) if !all_on => (example.to_string(), true),
                (_, Some(v)) => (v.to_string(), hide),
                // An optional key without a default: left out.
                (_, None) => continue,
            };
            let hash = if commented || hide { "# " } else { "" };
            lines.push((key, format!("{hash}{short} = {text}")));
        }
        // Comments at line ends start in one column (long lines aside).
        let column = lines
            .iter()
            .filter(|(k, l)| !k.after.is_empty() && l.chars().count() <= 40)
            .map(|(_, l)| l.chars().count() + 2)
            .max()
            .unwrap_or(0);
        for (key, line) in lines {
            comment(&mut out, "", key.above);
            out.push_str(&line);
            let mut after = key.after.lines();
            if let Some(first) = after.next() {
                let pad = column.saturating_sub(line.chars().count()).max(2);
                out.push_str(&format!("{:pad$}# {first}", ""));
            }
            out.push('\n');
            for more in after {
                let lead = if line.starts_with('#') { "#" } else { "" };
                out.push_str(&format!("{lead:column$}# {more}\n"));
            }
        }
    }
    out
}

/// `text` as `# ` comment lines (after `prefix`, which hides a section).
fn comment(out: &mut String, prefix: &str, text: &str) {
    for line in text.lines() {
        let line = format!("{prefix}# {line}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
#[path = "defaults_tests.rs"]
mod tests;
