//! The rules file: TOML `[[rule]]` tables parsed into a validated [`RuleSet`].
//!
//! Invariants: a [`RuleSet`] that exists has passed [`RuleSpec::problems`]
//! for every rule (required keys present, keys that the rule type does not
//! use refused, ids unique), so compiling it cannot fail. Errors name the
//! file, the line and the key (`rules.toml:14: rule[2].window: …`), like the
//! main config file. See `RULES.md` beside this file for every rule type.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, IntoDeserializer, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::locate::{locate, parse_error};
use super::window::Window;
use crate::model::{DeviceId, Kind, Severity};
use crate::setting::{ConfigError, Dur, Problem};

/// Why a rules file or a rule state snapshot was refused. `Display` is the
/// message users see.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read, parsed or validated: the same error, and
    /// the same messages, as the main configuration file's.
    #[error(transparent)]
    File(#[from] ConfigError),
    #[error("rule state snapshot: {0}")]
    Snapshot(String),
}

/// The rule types. See RULES.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleType {
    Immediate,
    Threshold,
    Window,
    Inactivity,
    Absence,
    Sequence,
    Silent,
    LowBattery,
    Tamper,
    Routine,
    Dwell,
    GoneOut,
}

impl RuleType {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleType::Immediate => "immediate",
            RuleType::Threshold => "threshold",
            RuleType::Window => "window",
            RuleType::Inactivity => "inactivity",
            RuleType::Absence => "absence",
            RuleType::Sequence => "sequence",
            RuleType::Silent => "silent",
            RuleType::LowBattery => "low_battery",
            RuleType::Tamper => "tamper",
            RuleType::Routine => "routine",
            RuleType::Dwell => "dwell",
            RuleType::GoneOut => "gone_out",
        }
    }
}

/// Which binary state a window or sequence step waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Want {
    /// value ≥ 0.5 (door open, in bed, motion).
    Active,
    /// value < 0.5 (door closed, out of bed).
    Idle,
    /// any reading.
    Any,
}

impl Want {
    pub fn matches(self, value: f64) -> bool {
        match self {
            Want::Active => value >= 0.5,
            Want::Idle => value < 0.5,
            Want::Any => true,
        }
    }
}

/// What ends a window rule's situation (`resolve`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolve {
    /// The state reverses (door closed, back in bed).
    Reverse,
    /// The state reverses *and* then motion is seen indoors (any motion or
    /// occupancy sensor): evidence she is back inside.
    Inside,
}

/// What an inactivity rule keeps one clock for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    /// One clock for everything the rule selects ("no motion in any room").
    #[default]
    Rule,
    /// One clock per room.
    Room,
    /// One clock per device.
    Device,
}

/// A string or a list of strings in TOML (`room = "hall"` or `rooms = [...]`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct List<T>(pub Vec<T>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<List<T>, E> {
                let de: de::value::StrDeserializer<'_, E> = s.into_deserializer();
                Ok(List(vec![T::deserialize(de)?]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<List<T>, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(List(v))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// Which readings a rule (or a sequence step) looks at. All given lists
/// must match (AND); within a list any entry matches (OR); an empty list
/// matches everything.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Step {
    #[serde(alias = "device")]
    pub devices: List<String>,
    #[serde(alias = "room")]
    pub rooms: List<String>,
    #[serde(alias = "role")]
    pub roles: List<String>,
    #[serde(alias = "kind")]
    pub kinds: List<Kind>,
    /// Which state the reading must report (default: active).
    pub state: Option<Want>,
}

/// One `[[rule]]` table, as written. Unset keys take per-type defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: std::sync::Arc<str>,
    #[serde(rename = "type")]
    pub kind: RuleType,
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Template; `{name}`, `{room}`, `{value}`, `{device}` are filled in.
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, alias = "device")]
    pub devices: List<String>,
    #[serde(default, alias = "room")]
    pub rooms: List<String>,
    #[serde(default, alias = "role")]
    pub roles: List<String>,
    #[serde(default, alias = "kind")]
    pub kinds: List<Kind>,
    #[serde(default)]
    pub below: Option<f64>,
    #[serde(default)]
    pub above: Option<f64>,
    #[serde(default)]
    pub hysteresis: Option<f64>,
    #[serde(default, rename = "for")]
    pub for_: Option<Dur>,
    #[serde(default)]
    pub window: Option<Window>,
    #[serde(default)]
    pub state: Option<Want>,
    #[serde(default)]
    pub clear: Option<bool>,
    #[serde(default)]
    pub cooldown: Option<Dur>,
    #[serde(default)]
    pub per: Option<Per>,
    #[serde(default)]
    pub min_value: Option<f64>,
    #[serde(default)]
    pub start: Option<Step>,
    #[serde(default)]
    pub cancel: Vec<Step>,
    #[serde(default)]
    pub within: Option<Dur>,
    #[serde(default)]
    pub interval: Option<Dur>,
    #[serde(default)]
    pub intervals: BTreeMap<Kind, Dur>,
    #[serde(default)]
    pub days: Option<u16>,
    #[serde(default)]
    pub min_days: Option<u16>,
    #[serde(default)]
    pub percentile: Option<f64>,
    #[serde(default)]
    pub margin: Option<Dur>,
    /// Window rules: a state already holding when the window begins counts
    /// as entered at the window start (default true).
    #[serde(default)]
    pub at_start: Option<bool>,
    /// Window rules: what ends the situation (default `inside` for a
    /// contact opening, `reverse` otherwise).
    #[serde(default)]
    pub resolve: Option<Resolve>,
    /// Re-send a raised alert nobody acknowledged every this long, with a
    /// raised severity and the attempt number (off when absent).
    #[serde(default)]
    pub escalate: Option<Dur>,
    /// How many re-sends at most (default 3).
    #[serde(default)]
    pub escalate_max: Option<u32>,
    /// Inactivity, dwell and sequence rules: warn locally (siren) this long
    /// before the alert goes out; a button press cancels it (off when absent).
    #[serde(default)]
    pub prealarm: Option<Dur>,
}

fn yes() -> bool {
    true
}

impl RuleSpec {
    /// The optional keys that are set, by name.
    fn set_keys(&self) -> Vec<&'static str> {
        let mut k = Vec::new();
        let mut add = |set: bool, name: &'static str| {
            if set {
                k.push(name);
            }
        };
        add(!self.devices.0.is_empty(), "devices");
        add(!self.rooms.0.is_empty(), "rooms");
        add(!self.roles.0.is_empty(), "roles");
        add(!self.kinds.0.is_empty(), "kinds");
        add(self.below.is_some(), "below");
        add(self.above.is_some(), "above");
        add(self.hysteresis.is_some(), "hysteresis");
        add(self.for_.is_some(), "for");
        add(self.window.is_some(), "window");
        add(self.state.is_some(), "state");
        add(self.clear.is_some(), "clear");
        add(self.cooldown.is_some(), "cooldown");
        add(self.per.is_some(), "per");
        add(self.min_value.is_some(), "min_value");
        add(self.start.is_some(), "start");
        add(!self.cancel.is_empty(), "cancel");
        add(self.within.is_some(), "within");
        add(self.interval.is_some(), "interval");
        add(!self.intervals.is_empty(), "intervals");
        add(self.days.is_some(), "days");
        add(self.min_days.is_some(), "min_days");
        add(self.percentile.is_some(), "percentile");
        add(self.margin.is_some(), "margin");
        add(self.at_start.is_some(), "at_start");
        add(self.resolve.is_some(), "resolve");
        add(self.prealarm.is_some(), "prealarm");
        k
    }

    /// Keys each type accepts besides id, type, severity, message, enabled.
    fn allowed(&self) -> &'static [&'static str] {
        match self.kind {
            RuleType::Immediate => &["devices", "rooms", "roles", "kinds", "clear", "cooldown"],
            RuleType::Tamper => &["devices", "rooms", "roles", "cooldown"],
            RuleType::Threshold => &[
                "devices",
                "rooms",
                "roles",
                "kinds",
                "below",
                "above",
                "hysteresis",
                "for",
            ],
            RuleType::Window => &[
                "devices", "rooms", "roles", "kinds", "window", "state", "for", "at_start",
                "resolve",
            ],
            RuleType::Inactivity => &[
                "devices",
                "rooms",
                "roles",
                "kinds",
                "for",
                "window",
                "per",
                "min_value",
                "prealarm",
            ],
            RuleType::Dwell => &["rooms", "kinds", "for", "window", "min_value", "prealarm"],
            RuleType::GoneOut => &["devices", "rooms", "roles", "kinds", "for"],
            RuleType::Absence => &["devices", "rooms", "roles", "kinds", "window", "min_value"],
            RuleType::Sequence => &["start", "cancel", "within", "window", "prealarm"],
            RuleType::Silent => &[
                "devices",
                "rooms",
                "roles",
                "kinds",
                "interval",
                "intervals",
            ],
            RuleType::LowBattery => &["devices", "rooms", "roles", "below", "hysteresis"],
            RuleType::Routine => &[
                "devices",
                "rooms",
                "roles",
                "kinds",
                "window",
                "min_value",
                "days",
                "min_days",
                "percentile",
                "margin",
            ],
        }
    }

    /// Everything wrong with this rule; keys are relative to the rule table.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if DeviceId::new(&self.id).is_err() {
            out.push(Problem::new(
                "id",
                format!(
                    "{:?}: use 1 to 64 characters from A-Z a-z 0-9 . _ : -",
                    self.id
                ),
            ));
        }
        let allowed = self.allowed();
        for k in self.set_keys() {
            if !allowed.contains(&k) {
                out.push(Problem::new(
                    k,
                    format!("not used by rules of type {:?}", self.kind.as_str()),
                ));
            }
        }
        let mut need = |set: bool, key: &str, why: &str| {
            if !set {
                out.push(Problem::new(key, why.to_string()));
            }
        };
        match self.kind {
            RuleType::Immediate => need(
                !self.kinds.0.is_empty(),
                "kinds",
                "required: which reading kinds raise the alert (e.g. [\"panic\"])",
            ),
            RuleType::Threshold => {
                need(
                    !self.kinds.0.is_empty(),
                    "kinds",
                    "required (e.g. \"temperature\")",
                );
                need(
                    self.below.is_some() != self.above.is_some(),
                    "below",
                    "set exactly one of below or above",
                );
            }
            RuleType::Window => {
                need(
                    !self.kinds.0.is_empty(),
                    "kinds",
                    "required (e.g. \"contact\")",
                );
                need(
                    self.window.is_some(),
                    "window",
                    "required (e.g. \"23:00-06:00\")",
                );
            }
            RuleType::Inactivity => need(self.for_.is_some(), "for", "required (e.g. \"4h\")"),
            RuleType::Absence | RuleType::Routine => {
                need(
                    self.window.is_some(),
                    "window",
                    "required (e.g. \"07:00-11:00\")",
                );
            }
            RuleType::Sequence => {
                need(
                    self.start.is_some(),
                    "start",
                    "required: the step that starts the clock",
                );
                need(self.within.is_some(), "within", "required (e.g. \"30m\")");
            }
            RuleType::Dwell => {
                need(
                    !self.rooms.0.is_empty(),
                    "rooms",
                    "required: the room(s) to watch (e.g. \"bathroom\")",
                );
                need(self.for_.is_some(), "for", "required (e.g. \"45m\")");
            }
            RuleType::GoneOut => {
                need(self.for_.is_some(), "for", "required (e.g. \"20m\")");
                if self.severity == Some(Severity::Urgent) {
                    out.push(Problem::new(
                        "severity",
                        "a guess that she went out is a soft check: info or warning, never urgent",
                    ));
                }
                if self.kinds.0.iter().any(|k| *k != Kind::Contact) {
                    out.push(Problem::new(
                        "kinds",
                        "gone_out watches doors: only \"contact\"",
                    ));
                }
            }
            RuleType::Silent | RuleType::LowBattery | RuleType::Tamper => {}
        }
        for (key, v) in [
            ("below", self.below),
            ("above", self.above),
            ("hysteresis", self.hysteresis),
            ("min_value", self.min_value),
        ] {
            if let Some(v) = v
                && !v.is_finite()
            {
                out.push(Problem::new(key, "must be a finite number"));
            }
        }
        if self.hysteresis.is_some_and(|h| h < 0.0) {
            out.push(Problem::new("hysteresis", "must not be negative"));
        }
        let max = Dur::parse("400d").map(|d| d.0).unwrap_or_default();
        for (key, d) in [
            ("for", self.for_),
            ("within", self.within),
            ("interval", self.interval),
            ("cooldown", self.cooldown),
            ("margin", self.margin),
        ] {
            if let Some(d) = d
                && d.0 > max
            {
                out.push(Problem::new(key, "must be at most 400d"));
            }
        }
        if let Some(p) = self.prealarm
            && (p.0 < std::time::Duration::from_secs(5)
                || p.0 > std::time::Duration::from_secs(600))
        {
            out.push(Problem::new(
                "prealarm",
                "must be between 5s and 10m (how long a local warning may be cancelled)",
            ));
        }
        if self.kind == RuleType::Dwell
            && self.kinds.0.iter().any(|k| {
                !matches!(
                    k,
                    Kind::Motion | Kind::Occupancy | Kind::Contact | Kind::Bed | Kind::Chair
                )
            })
        {
            out.push(Problem::new(
                "kinds",
                "only motion, occupancy, contact, bed and chair say where she is",
            ));
        }
        if matches!(self.kind, RuleType::Inactivity | RuleType::Dwell)
            && self.for_.is_some_and(|d| d.0.is_zero())
        {
            out.push(Problem::new("for", "must be above zero"));
        }
        if self.within.is_some_and(|d| d.0.is_zero())
            || self.interval.is_some_and(|d| d.0.is_zero())
        {
            out.push(Problem::new("within", "durations here must be above zero"));
        }
        for (k, d) in &self.intervals {
            if d.0.is_zero() || d.0 > max {
                out.push(Problem::new(
                    format!("intervals.{k}"),
                    "must be between 1ms and 400d",
                ));
            }
        }
        if let Some(e) = self.escalate
            && (e.0 < std::time::Duration::from_secs(60) || e.0 > max)
        {
            out.push(Problem::new("escalate", "must be between 1m and 400d"));
        }
        if self.escalate_max.is_some() && self.escalate.is_none() {
            out.push(Problem::new(
                "escalate_max",
                "needs escalate (how long to wait before each re-send, e.g. \"10m\")",
            ));
        }
        if self.escalate_max.is_some_and(|n| n == 0 || n > 20) {
            out.push(Problem::new("escalate_max", "must be between 1 and 20"));
        }
        if self.resolve == Some(Resolve::Inside)
            && self
                .kinds
                .0
                .iter()
                .any(|k| matches!(k, Kind::Motion | Kind::Occupancy))
        {
            out.push(Problem::new(
                "resolve",
                "\"inside\" waits for motion indoors: not for rules on motion or occupancy",
            ));
        }
        if let Some(p) = self.percentile
            && !(p > 0.0 && p <= 100.0)
        {
            out.push(Problem::new(
                "percentile",
                "must be above 0 and at most 100",
            ));
        }
        let days = self.days.unwrap_or(DEFAULT_DAYS);
        if days == 0 || days > 366 {
            out.push(Problem::new("days", "must be between 1 and 366"));
        }
        if self.min_days.is_some_and(|m| m == 0 || m > days) {
            out.push(Problem::new(
                "min_days",
                format!("must be between 1 and days ({days})"),
            ));
        }
        if self.kind == RuleType::Sequence
            && let Some(s) = &self.start
            && s.state == Some(Want::Any)
            && s.kinds.0.is_empty()
        {
            out.push(Problem::new(
                "start",
                "a start step that matches every reading needs kinds",
            ));
        }
        out
    }
}

/// Routine rules: days of history kept, by default.
pub const DEFAULT_DAYS: u16 = 14;
/// Routine rules: days learnt before the rule arms, by default.
pub const DEFAULT_MIN_DAYS: u16 = 7;

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
struct File {
    rule: Vec<RuleSpec>,
}

/// A validated rule set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleSet {
    pub rules: Vec<RuleSpec>,
}

impl RuleSet {
    /// Parses and validates rules text; `path` is only used in messages.
    pub fn parse(text: &str, path: &str) -> Result<RuleSet, RulesError> {
        let file: File = toml::from_str(text).map_err(|e| parse_error(text, path, &e))?;
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        for (i, r) in file.rule.iter().enumerate() {
            if !seen.insert(&*r.id) {
                problems.push((
                    i,
                    Problem::new("id", format!("duplicate rule id {:?}", r.id)),
                ));
            }
            problems.extend(r.problems().into_iter().map(|p| (i, p)));
        }
        if problems.is_empty() {
            return Ok(RuleSet { rules: file.rule });
        }
        Err(ConfigError::Invalid {
            path: path.to_string(),
            problems: problems
                .into_iter()
                .map(|(i, p)| {
                    let line = locate(text, i, &p.key);
                    let id = &file.rule[i].id;
                    (
                        line,
                        Problem::new(
                            format!("rule[{i}].{}", p.key),
                            format!("({id}) {}", p.reason),
                        ),
                    )
                })
                .collect(),
        }
        .into())
    }
}

#[cfg(test)]
mod tests;
