//! The domain model every other module speaks: devices, readings, alerts.
//!
//! This module depends on nothing else in the crate. Its numeric codes
//! (`Kind as u8`, `Severity as u8`, `Class as u8`) are part of the wire
//! formats (the LoRaWAN compact codec, the outbox schema): **never renumber
//! them**, only append.
//!
//! Conventions for `Reading::value`:
//! - binary kinds (motion, contact, panic, …) use `1.0` for the active state
//!   (motion seen, door **open**, button pressed, leak detected, bed occupied)
//!   and `0.0` for the idle state;
//! - analogue kinds use the unit given by [`Kind::unit`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The topic root Wi-Fi devices publish readings under on the local broker
/// (`carebridge/in/<device_id>`): an external interface, never rename it.
pub const INGEST_TOPIC_ROOT: &str = "carebridge/in/";

/// Milliseconds since the Unix epoch, UTC. The clock is read only at the
/// edges (the shell crate's `wall::now`) and passed in everywhere else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub i64);

impl Time {
    pub const fn from_millis(ms: i64) -> Self {
        Time(ms)
    }
    pub const fn from_secs(s: i64) -> Self {
        Time(s.saturating_mul(1000))
    }
    pub const fn as_millis(self) -> i64 {
        self.0
    }
    pub fn saturating_add(self, d: std::time::Duration) -> Self {
        Time(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
    /// `self - earlier`, clamped at zero.
    pub fn since(self, earlier: Time) -> std::time::Duration {
        std::time::Duration::from_millis(u64::try_from(self.0 - earlier.0).unwrap_or(0))
    }
    /// RFC 3339 in UTC, e.g. `2026-11-22T10:00:00Z` (milliseconds only when non-zero).
    pub fn to_rfc3339(self) -> String {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(ts) => ts.to_string(),
            Err(_) => String::from("invalid-time"),
        }
    }
    /// Parses RFC 3339 (`2026-11-22T10:00:00Z`, `…+01:00`, fractional seconds).
    pub fn parse_rfc3339(s: &str) -> Result<Self, ModelError> {
        let ts: jiff::Timestamp = s
            .parse()
            .map_err(|_| ModelError::BadTime(truncate(s, 64)))?;
        Ok(Time(ts.as_millisecond()))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Time {
    /// The same text as [`Time::to_rfc3339`], written straight into the
    /// output (`collect_str`: no `String` per timestamp; every alert
    /// document has one).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(ts) => s.collect_str(&ts),
            Err(_) => s.serialize_str("invalid-time"),
        }
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Time::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// Errors from validating model values that come from outside.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("invalid device id {0:?}: use 1 to 64 characters from A-Z a-z 0-9 . _ : -")]
    BadDeviceId(String),
    #[error("unknown reading kind {0:?} (known: {known})", known = Kind::names())]
    UnknownKind(String),
    #[error("unknown severity {0:?} (use urgent, warning or info)")]
    UnknownSeverity(String),
    #[error("invalid RFC 3339 time {0:?}")]
    BadTime(String),
    #[error("value {0} is not a finite number")]
    NotFinite(f64),
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// A device identifier: 1–64 characters of `[A-Za-z0-9._:-]`.
/// Cheap to clone (shared string).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(Arc<str>);

impl DeviceId {
    pub const MAX_LEN: usize = 64;

    pub fn new(s: &str) -> Result<Self, ModelError> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(DeviceId(Arc::from(s)))
        } else {
            Err(ModelError::BadDeviceId(truncate(s, 80)))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DeviceId {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeviceId::new(s)
    }
}

impl Serialize for DeviceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DeviceId::new(&s).map_err(serde::de::Error::custom)
    }
}

macro_rules! kinds {
    ($( $(#[$m:meta])* $var:ident = $code:literal, $name:literal, $unit:literal, $binary:literal; )*) => {
        /// What a reading measures. The numeric code is a wire format: append only.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Kind {
            $( $(#[$m])* $var = $code, )*
        }

        impl Kind {
            /// Every kind, in code order.
            pub const ALL: &'static [Kind] = &[$(Kind::$var),*];

            /// The lower-case name used in JSON, topics and config (`water_leak`).
            pub const fn as_str(self) -> &'static str {
                match self { $(Kind::$var => $name,)* }
            }
            /// The unit of `Reading::value` (empty for binary and counting kinds).
            pub const fn unit(self) -> &'static str {
                match self { $(Kind::$var => $unit,)* }
            }
            /// `true` for on/off kinds (value 1.0 = active, 0.0 = idle).
            pub const fn is_binary(self) -> bool {
                match self { $(Kind::$var => $binary,)* }
            }
            /// The stable numeric code.
            pub const fn code(self) -> u8 {
                self as u8
            }
            pub fn from_code(code: u8) -> Option<Kind> {
                match code { $($code => Some(Kind::$var),)* _ => None }
            }
        }

        impl FromStr for Kind {
            type Err = ModelError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Kind::$var),)*
                    _ => Err(ModelError::UnknownKind(truncate(s, 64))),
                }
            }
        }
    };
}

kinds! {
    /// PIR motion: 1 = motion seen.
    Motion = 0, "motion", "", true;
    /// Occupancy (presence) sensor: 1 = occupied.
    Occupancy = 1, "occupancy", "", true;
    /// Door/window contact: 1 = open, 0 = closed.
    Contact = 2, "contact", "", true;
    /// Air temperature in °C.
    Temperature = 3, "temperature", "°C", false;
    /// Relative humidity in %.
    Humidity = 4, "humidity", "%", false;
    /// Illuminance in lux.
    Illuminance = 5, "illuminance", "lx", false;
    /// Personal emergency / panic button: 1 = pressed.
    Panic = 6, "panic", "", true;
    /// Fall detector (or vibration sensor configured as one): 1 = fall.
    Fall = 7, "fall", "", true;
    /// Smoke / fire: 1 = alarm.
    Smoke = 8, "smoke", "", true;
    /// Carbon monoxide: 1 = alarm.
    CarbonMonoxide = 9, "co", "", true;
    /// Water leak: 1 = leak.
    WaterLeak = 10, "water_leak", "", true;
    /// Bed pressure mat: 1 = in bed.
    Bed = 11, "bed", "", true;
    /// Chair pressure mat: 1 = seated.
    Chair = 12, "chair", "", true;
    /// Instantaneous power in W (e.g. a kettle plug).
    Power = 13, "power", "W", false;
    /// Cumulative energy in kWh.
    Energy = 14, "energy", "kWh", false;
    /// Battery level in %.
    Battery = 15, "battery", "%", false;
    /// Battery-low flag reported by the device: 1 = low.
    BatteryLow = 16, "battery_low", "", true;
    /// Supply or battery voltage in V.
    Voltage = 17, "voltage", "V", false;
    /// Tamper switch: 1 = tampered (cover open).
    Tamper = 18, "tamper", "", true;
    /// Vibration: 1 = vibration detected.
    Vibration = 19, "vibration", "", true;
    /// A plain switch or plug state: 1 = on.
    Switch = 20, "switch", "", true;
    /// Atmospheric pressure in hPa.
    Pressure = 21, "pressure", "hPa", false;
    /// A button press: 1 = single ("I'm OK"), 2 = double, 3 = long.
    Button = 22, "button", "", false;
}

impl Kind {
    /// Comma-separated list of every kind name, for error messages.
    pub fn names() -> String {
        Kind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One observation from one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub device: DeviceId,
    pub kind: Kind,
    pub value: f64,
    pub at: Time,
}

impl Reading {
    pub fn new(device: DeviceId, kind: Kind, value: f64, at: Time) -> Result<Self, ModelError> {
        if !value.is_finite() {
            return Err(ModelError::NotFinite(value));
        }
        Ok(Reading {
            device,
            kind,
            value,
            at,
        })
    }
    /// For binary kinds: is this the active state?
    pub fn is_active(&self) -> bool {
        self.value >= 0.5
    }
}

/// How urgently a human must act. Ordered: `Urgent > Warning > Info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Severity {
    Info = 0,
    Warning = 1,
    Urgent = 2,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Urgent => "urgent",
        }
    }
    pub const fn from_code(code: u8) -> Option<Severity> {
        match code {
            0 => Some(Severity::Info),
            1 => Some(Severity::Warning),
            2 => Some(Severity::Urgent),
            _ => None,
        }
    }
}

impl FromStr for Severity {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "urgent" => Ok(Severity::Urgent),
            _ => Err(ModelError::UnknownSeverity(truncate(s, 32))),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Severity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether an alert starts or ends a situation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum AlertState {
    Raised = 0,
    Cleared = 1,
}

impl AlertState {
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertState::Raised => "raised",
            AlertState::Cleared => "cleared",
        }
    }
}

/// An alert as decided by the rules, before the store gives it `seq`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The UUID it travels upstream under (`id` in the MQTT payload), set by
    /// whoever raises it into the gateway (the hub) so the UI can follow it
    /// to its delivery; `None` from the pure engine (replay output stays
    /// deterministic). The store assigns one when it is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The rule's id (from the rule set). Shared: an engine firing 100 k
    /// timers at once clones it 100 k times.
    pub rule: Arc<str>,
    pub severity: Severity,
    pub state: AlertState,
    pub device: DeviceId,
    /// The room of the device, when known.
    pub room: Option<String>,
    /// When the condition happened (not when it was sent).
    pub at: Time,
    /// A human sentence, e.g. "Panic button pressed in the hall".
    pub message: String,
    /// The reading value that triggered it, where one did.
    pub value: Option<f64>,
    /// The reading kind involved, where one is.
    pub kind: Option<Kind>,
    /// `false` when the gateway's clock was not trusted (not synchronised,
    /// no hardware RTC) as it was raised: `at` may be off. Upstream and in
    /// the UI only when `false`.
    #[serde(default = "trusted", skip_serializing_if = "is_trusted")]
    pub time_trusted: bool,
    /// Which situation this alert is about (`instance`) and which send of
    /// it (`attempt`): every alert the rule engine raises has one; its
    /// clear, acknowledgement and escalated re-sends name the same
    /// instance, so receivers close alerts by it. Flattened in JSON.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub instance: Option<Instance>,
}

impl Alert {
    /// A `warning` the gateway raises about itself (a coordinator outage, a
    /// full disk, readings shed, log-in guessing, a refusing modem): no
    /// reading value or kind, no rule-engine instance. `None` only if
    /// `device` is not a valid device id (the callers pass constants).
    /// `time_trusted` starts `true`: the store marks it `false` when the
    /// gateway's clock is not trusted as the warning is stored.
    pub fn gateway(
        rule: &str,
        device: &str,
        state: AlertState,
        message: String,
        at: Time,
    ) -> Option<Alert> {
        Some(Alert {
            uid: None,
            rule: rule.into(),
            severity: Severity::Warning,
            state,
            device: DeviceId::new(device).ok()?,
            room: None,
            at,
            message,
            value: None,
            kind: None,
            time_trusted: true,
            instance: None,
        })
    }
}

fn trusted() -> bool {
    true
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn is_trusted(t: &bool) -> bool {
    *t
}

/// The situation an alert belongs to (see [`Alert::instance`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// `RULE/SUBJECT/RAISED_MS`: unique per situation, stable across
    /// restarts; opaque to receivers.
    pub instance: Arc<str>,
    /// 1 for the first raise, 2, 3, … for escalated re-sends of an
    /// unacknowledged alert (a clear carries the last attempt).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
}

fn first_attempt() -> u32 {
    1
}

/// The outbox's priority classes, highest priority first (lower code = sent first).
/// The code is stored in the database: append only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Class {
    Alert = 0,
    Status = 1,
    Telemetry = 2,
}

impl Class {
    pub const ALL: [Class; 3] = [Class::Alert, Class::Status, Class::Telemetry];
    pub const fn as_str(self) -> &'static str {
        match self {
            Class::Alert => "alert",
            Class::Status => "status",
            Class::Telemetry => "telemetry",
        }
    }
    pub const fn from_code(code: u8) -> Option<Class> {
        match code {
            0 => Some(Class::Alert),
            1 => Some(Class::Status),
            2 => Some(Class::Telemetry),
            _ => None,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the gateway knows about one device (the registry row).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub id: Option<DeviceId>,
    /// Human name ("Front door").
    pub name: Option<String>,
    /// Room ("hall", "kitchen").
    pub room: Option<String>,
    /// Role in the care plan ("front_door", "fridge_door", "bed"), free text.
    pub role: Option<String>,
    /// Zigbee IEEE address, `0x00124b0012345678`.
    pub ieee: Option<String>,
    /// Zigbee network (short) address.
    pub nwk: Option<u16>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub last_seen: Option<Time>,
    /// Battery in %.
    pub battery: Option<f64>,
    /// Link quality (0–255).
    pub lqi: Option<u8>,
    /// How often the device reports at the least when nothing happens
    /// (seconds; from the Zigbee device library): the silence rule never
    /// expects it more often than twice this. Not stored: the coordinator
    /// announces it at each start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkin_s: Option<u32>,
}

/// What the I/O shells (Zigbee coordinator, serial boards, local MQTT,
/// simulator) send to the hub, over one bounded channel.
#[derive(Clone, Debug, PartialEq)]
pub enum Ingest {
    /// A sensor observation.
    Reading(Reading),
    /// A device joined, was interviewed, or its registry facts changed
    /// (only the `Some` fields are merged into the registry).
    Device(DeviceInfo),
    /// A link (coordinator, serial board, modem) went up or down.
    Link(LinkStatus),
}

/// The state of one input or output link, for status and the UI.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkStatus {
    /// Which link: `"zigbee"`, `"serial:/dev/ttyUSB0"`, `"lorawan"`, `"mqtt"`.
    pub link: String,
    pub up: bool,
    /// A short human explanation ("coordinator answered ping", "port vanished").
    pub detail: String,
    pub at: Time,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_and_codes_round_trip() {
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(usize::from(k.code()), i, "codes are dense and in order");
            assert_eq!(Kind::from_code(k.code()), Some(*k));
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), *k);
        }
        assert!("teleport".parse::<Kind>().is_err());
    }

    #[test]
    fn device_ids_reject_topic_wildcards_and_paths() {
        assert!(DeviceId::new("hall-motion_1").is_ok());
        assert!(DeviceId::new("zb:00124b0012345678").is_ok());
        for bad in ["", "a/b", "+", "#", "a b", "é", &"x".repeat(65)] {
            assert!(DeviceId::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn time_formats_and_parses_rfc3339() {
        let t = Time::parse_rfc3339("2026-11-22T10:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T10:00:00Z");
        let t2 = Time::parse_rfc3339("2026-11-22T11:00:00.250+01:00").unwrap();
        assert_eq!(t2.as_millis() - t.as_millis(), 250);
        assert!(Time::parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn serialised_times_are_the_rfc3339_text_and_out_of_range_says_so() {
        for ms in [0, 1_764_000_000_250, -86_400_000, 253_000_000_000_000] {
            let t = Time::from_millis(ms);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.to_rfc3339()), "{ms}");
            let back: Time = serde_json::from_str(&json).unwrap();
            assert_eq!(back, t);
        }
        let far = serde_json::to_string(&Time::from_millis(i64::MAX)).unwrap();
        assert_eq!(far, "\"invalid-time\"");
    }

    #[test]
    fn severity_orders_urgent_highest() {
        assert!(Severity::Urgent > Severity::Warning && Severity::Warning > Severity::Info);
    }
}
