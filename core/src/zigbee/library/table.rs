//! The device library's table format (TOML) and its checks: what a
//! definition says, parsed from `[[device]]` entries and validated with
//! errors naming the file, the entry and the key.
//!
//! ```toml
//! [[device]]
//! id = "aqara_door"                  # unique; errors and the API name it
//! vendor = "Aqara"
//! model = "MCCGQ11LM"                # the vendor's model name (shown)
//! description = "Door and window contact"
//! match = [{ manufacturer = "LUMI", model = "lumi.sensor_magnet.aq2" }]
//! senses = ["contact", "battery"]
//! commissioning = "Open the door, then close it"
//! checkin = "1h"                     # the device's own keep-alive period
//! battery_mv = [2850, 3000]          # voltage → % (0 % and 100 %)
//! battery_percent_scale = 2          # power-config 0x0021 units per %
//! quirks = ["xiaomi_keepalive"]
//! reporting = []                     # replaces the generic reporting set
//! [[device.map]]                     # one source → one reading kind
//! cluster = 0x0006
//! attr = 0x0000                      # or command / dp / xiaomi / zone_bit
//! kind = "contact"
//! ```
//! Map keys: a source (`cluster` + `attr`, `cluster` + `command`, `dp` for
//! Tuya data points, `xiaomi` for a 0xFF01 tag, `zone_bit` for an IAS zone
//! status bit); `when` (applies only when the raw value equals it);
//! `value` (fixed reading value); `scale` (raw × scale); `invert` (binary
//! kinds: 1 − value); `clear_after` (a binary kind that the device never
//! clears: 0 after this long without another 1); `clear_after_on_time`
//! (the same, taking the time from an On-with-timed-off command).

use std::time::Duration;

use serde::Deserialize;

use crate::model::Kind;
use crate::setting::{ConfigError, Dur, Problem};

/// Device-specific behaviour outside the map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quirk {
    /// Answer Tuya time-sync requests (cluster 0xEF00, command 0x24).
    TuyaTimeSync,
    /// The firmware counts time from 2000-01-01, not 1970.
    TuyaTimeEpoch2000,
    /// Xiaomi keep-alive: the device leaves a network whose parent does
    /// not answer its keep-alive the Xiaomi way (README: router advice).
    XiaomiKeepalive,
}

impl Quirk {
    pub const ALL: [(&'static str, Quirk); 3] = [
        ("tuya_time_sync", Quirk::TuyaTimeSync),
        ("tuya_time_epoch_2000", Quirk::TuyaTimeEpoch2000),
        ("xiaomi_keepalive", Quirk::XiaomiKeepalive),
    ];
    pub fn as_str(self) -> &'static str {
        Quirk::ALL
            .iter()
            .find(|(_, q)| *q == self)
            .map_or("", |(n, _)| n)
    }
}

/// Where a mapped value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Attr { cluster: u16, attr: u16 },
    Command { cluster: u16, command: u8 },
    TuyaDp(u8),
    Xiaomi(u8),
    ZoneBit(u8),
}

/// One mapping: a source to a reading kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Map {
    pub source: Source,
    pub kind: Kind,
    pub when: Option<f64>,
    pub value: Option<f64>,
    pub scale: f64,
    pub invert: bool,
    pub clear_after: Option<Duration>,
    pub clear_after_on_time: bool,
}

/// One attribute to configure reporting for (replacing the generic set).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub cluster: u16,
    pub attr: u16,
    /// ZCL data type id.
    #[serde(rename = "type")]
    pub ty: u8,
    pub min: u16,
    pub max: u16,
    #[serde(default)]
    pub change: Option<i64>,
}

/// A `match` entry: the Basic cluster's model id, and its manufacturer
/// name when given (Tuya: one model id, many manufacturer names).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(default)]
    pub manufacturer: Option<String>,
    pub model: String,
}

/// One device definition.
#[derive(Clone, Debug, PartialEq)]
pub struct Definition {
    pub id: String,
    pub vendor: String,
    pub model: String,
    pub description: String,
    pub matches: Vec<Match>,
    pub senses: Vec<Kind>,
    pub commissioning: String,
    pub checkin: Option<Duration>,
    pub battery_mv: Option<(f64, f64)>,
    pub battery_percent_scale: Option<f64>,
    pub reporting: Option<Vec<Report>>,
    pub quirks: Vec<Quirk>,
    pub maps: Vec<Map>,
}

impl Definition {
    pub fn has(&self, q: Quirk) -> bool {
        self.quirks.contains(&q)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    kind: Kind,
    #[serde(default)]
    cluster: Option<u16>,
    #[serde(default)]
    attr: Option<u16>,
    #[serde(default)]
    command: Option<u8>,
    #[serde(default)]
    dp: Option<u8>,
    #[serde(default)]
    xiaomi: Option<u8>,
    #[serde(default)]
    zone_bit: Option<u8>,
    #[serde(default)]
    when: Option<f64>,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    scale: Option<f64>,
    #[serde(default)]
    invert: bool,
    #[serde(default)]
    clear_after: Option<Dur>,
    #[serde(default)]
    clear_after_on_time: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDef {
    id: String,
    vendor: String,
    model: String,
    description: String,
    #[serde(rename = "match")]
    matches: Vec<Match>,
    senses: Vec<Kind>,
    commissioning: String,
    #[serde(default)]
    checkin: Option<Dur>,
    #[serde(default)]
    battery_mv: Option<[f64; 2]>,
    #[serde(default)]
    battery_percent_scale: Option<f64>,
    #[serde(default)]
    reporting: Option<Vec<Report>>,
    #[serde(default)]
    quirks: Vec<String>,
    #[serde(default, rename = "map")]
    maps: Vec<RawMap>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    device: Vec<RawDef>,
}

fn map_of(m: RawMap, key: &str, out: &mut Vec<Problem>) -> Option<Map> {
    let sources = [
        m.attr.is_some(),
        m.command.is_some(),
        m.dp.is_some(),
        m.xiaomi.is_some(),
        m.zone_bit.is_some(),
    ];
    let n = sources.iter().filter(|b| **b).count();
    if n != 1 {
        out.push(Problem::new(
            key,
            "needs exactly one source: attr, command (each with cluster), dp, xiaomi or zone_bit",
        ));
        return None;
    }
    let need_cluster = m.attr.is_some() || m.command.is_some();
    if need_cluster != m.cluster.is_some() {
        let why = if need_cluster {
            "attr and command need a cluster"
        } else {
            "cluster goes with attr or command only"
        };
        out.push(Problem::new(format!("{key}.cluster"), why));
        return None;
    }
    let source = match (m.cluster, m.attr, m.command, m.dp, m.xiaomi, m.zone_bit) {
        (Some(cluster), Some(attr), ..) => Source::Attr { cluster, attr },
        (Some(cluster), _, Some(command), ..) => Source::Command { cluster, command },
        (_, _, _, Some(dp), ..) => Source::TuyaDp(dp),
        (_, _, _, _, Some(t), _) => Source::Xiaomi(t),
        (.., Some(b)) if b < 16 => Source::ZoneBit(b),
        _ => {
            out.push(Problem::new(format!("{key}.zone_bit"), "must be 0 to 15"));
            return None;
        }
    };
    for (k, v) in [("when", m.when), ("value", m.value), ("scale", m.scale)] {
        if v.is_some_and(|x| !x.is_finite()) {
            out.push(Problem::new(
                format!("{key}.{k}"),
                "must be a finite number",
            ));
            return None;
        }
    }
    if (m.clear_after.is_some() || m.clear_after_on_time || m.invert) && !m.kind.is_binary() {
        out.push(Problem::new(
            format!("{key}.kind"),
            format!(
                "{} is not an on/off kind: invert and clear_after need one",
                m.kind
            ),
        ));
        return None;
    }
    if m.clear_after.is_some_and(|d| d.0.is_zero()) {
        out.push(Problem::new(
            format!("{key}.clear_after"),
            "must be above zero",
        ));
        return None;
    }
    Some(Map {
        source,
        kind: m.kind,
        when: m.when,
        value: m.value,
        scale: m.scale.unwrap_or(1.0),
        invert: m.invert,
        clear_after: m.clear_after.map(|d| d.0),
        clear_after_on_time: m.clear_after_on_time,
    })
}

fn def_of(d: RawDef, key: &str, out: &mut Vec<Problem>) -> Option<Definition> {
    let before = out.len();
    let id_ok = !d.id.is_empty()
        && d.id.len() <= 64
        && d.id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !id_ok {
        out.push(Problem::new(
            format!("{key}.id"),
            "must be 1–64 characters of a-z, 0-9, _ and -",
        ));
    }
    for (k, v) in [
        ("vendor", &d.vendor),
        ("model", &d.model),
        ("description", &d.description),
        ("commissioning", &d.commissioning),
    ] {
        if v.trim().is_empty() {
            out.push(Problem::new(format!("{key}.{k}"), "must not be empty"));
        }
    }
    if d.matches.is_empty() || d.matches.iter().any(|m| m.model.is_empty()) {
        out.push(Problem::new(
            format!("{key}.match"),
            "needs at least one { model = \"…\" } (manufacturer optional)",
        ));
    }
    if d.senses.is_empty() {
        out.push(Problem::new(
            format!("{key}.senses"),
            "must name at least one reading kind",
        ));
    }
    let mut quirks = Vec::new();
    for (i, q) in d.quirks.iter().enumerate() {
        match Quirk::ALL.iter().find(|(n, _)| n == q) {
            Some((_, q)) => quirks.push(*q),
            None => out.push(Problem::new(
                format!("{key}.quirks[{i}]"),
                format!(
                    "unknown quirk {q:?} (known: {})",
                    Quirk::ALL.map(|(n, _)| n).join(", ")
                ),
            )),
        }
    }
    if let Some([a, b]) = d.battery_mv
        && !(a.is_finite() && b.is_finite() && 0.0 < a && a < b)
    {
        out.push(Problem::new(
            format!("{key}.battery_mv"),
            "must be [empty, full] in mV with 0 < empty < full",
        ));
    }
    if d.battery_percent_scale
        .is_some_and(|s| !(s.is_finite() && s > 0.0))
    {
        out.push(Problem::new(
            format!("{key}.battery_percent_scale"),
            "must be above zero",
        ));
    }
    if d.checkin.is_some_and(|c| c.0.is_zero()) {
        out.push(Problem::new(format!("{key}.checkin"), "must be above zero"));
    }
    let maps: Vec<Map> = d
        .maps
        .into_iter()
        .enumerate()
        .filter_map(|(i, m)| map_of(m, &format!("{key}.map[{i}]"), out))
        .collect();
    if out.len() > before {
        return None;
    }
    Some(Definition {
        id: d.id,
        vendor: d.vendor,
        model: d.model,
        description: d.description,
        matches: d.matches,
        senses: d.senses,
        commissioning: d.commissioning,
        checkin: d.checkin.map(|c| c.0),
        battery_mv: d.battery_mv.map(|[a, b]| (a, b)),
        battery_percent_scale: d.battery_percent_scale,
        reporting: d.reporting,
        quirks,
        maps,
    })
}

/// Parses and checks a table. Errors name `path`, the entry
/// (`device[3] (aqara_door)`) and the key.
pub fn parse(text: &str, path: &str) -> Result<Vec<Definition>, ConfigError> {
    let raw: RawFile =
        toml::from_str(text).map_err(|e| crate::setting::locate::parse_error(text, path, &e))?;
    let mut problems = Vec::new();
    let mut defs = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (i, d) in raw.device.into_iter().enumerate() {
        let key = format!("device[{i}] ({})", d.id);
        if !ids.insert(d.id.clone()) {
            problems.push(Problem::new(
                format!("{key}.id"),
                "is used by an earlier entry",
            ));
        }
        if let Some(def) = def_of(d, &key, &mut problems) {
            defs.push(def);
        }
    }
    if problems.is_empty() {
        Ok(defs)
    } else {
        Err(ConfigError::Invalid {
            path: path.to_string(),
            problems: problems.into_iter().map(|p| (None, p)).collect(),
        })
    }
}
