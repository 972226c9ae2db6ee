//! Readings from Wi-Fi devices and sensor bridges, as the front door
//! ([`crate::frontdoor`]) receives them.
//!
//! Contract (DESIGN.md, "Local MQTT ingest"): a device publishes to
//! `carebridge/in/<device_id>` a JSON object
//! `{"kind":"temperature","value":21.5,"at":"2026-11-22T10:00:00Z"}`;
//! `value` may be a number or a boolean (binary kinds), `at` is optional
//! (the gateway's clock is used when it is absent). A malformed publication
//! is counted and logged with its topic and the reason; nothing crashes and
//! the next publication is read as usual.
//!
//! [`parse`] is the pure core; the front door calls it for every
//! publication to `carebridge/in/<id>`, counts in [`IngestStats`] and logs
//! through [`LogLimiter`]. (Readings used to be read from an in-process
//! rumqttd link, which rumqttd skipped ahead when it fell behind: 27 % of a
//! 50 k burst lost after PUBACK, issue 14.)

use std::sync::atomic::AtomicU64;

use serde::Deserialize;

use crate::model::{DeviceId, Kind, ModelError, Reading, Time};

/// The topic filter devices publish under.
pub const TOPIC_ROOT: &str = crate::model::INGEST_TOPIC_ROOT;

/// How far in the future a device clock may be before a reading is refused.
const MAX_FUTURE_MS: i64 = 10 * 60 * 1000;

/// Why a publication was not turned into a reading.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestError {
    #[error("topic is not carebridge/in/<device_id>")]
    Topic,
    #[error("topic: {0}")]
    Device(ModelError),
    #[error("payload is not a JSON reading: {0}")]
    Json(String),
    #[error("field kind: {0}")]
    Kind(ModelError),
    #[error("field value: must be a finite number or a boolean")]
    Value,
    #[error("field at: {0}")]
    At(String),
}

/// Borrowed from the packet where the JSON has no escapes (no allocation
/// per reading for its kind).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload<'a> {
    #[serde(borrow)]
    kind: std::borrow::Cow<'a, str>,
    value: serde_json::Value,
    #[serde(default, borrow)]
    at: Option<std::borrow::Cow<'a, str>>,
}

/// Parses one publication into a reading. `now` is used when `at` is absent
/// and to refuse timestamps far in the future.
pub fn parse(topic: &[u8], payload: &[u8], now: Time) -> Result<Reading, IngestError> {
    let topic = std::str::from_utf8(topic).map_err(|_| IngestError::Topic)?;
    let id = topic.strip_prefix(TOPIC_ROOT).ok_or(IngestError::Topic)?;
    let device = DeviceId::new(id).map_err(IngestError::Device)?;
    let p: Payload =
        serde_json::from_slice(payload).map_err(|e| IngestError::Json(e.to_string()))?;
    let kind: Kind = p.kind.parse().map_err(IngestError::Kind)?;
    let value = match p.value {
        serde_json::Value::Bool(b) => f64::from(u8::from(b)),
        serde_json::Value::Number(n) => n.as_f64().ok_or(IngestError::Value)?,
        _ => return Err(IngestError::Value),
    };
    let at = match p.at {
        None => now,
        Some(s) => {
            let t = Time::parse_rfc3339(&s).map_err(|e| IngestError::At(e.to_string()))?;
            if t.as_millis() - now.as_millis() > MAX_FUTURE_MS {
                return Err(IngestError::At(format!(
                    "{s} is more than 10 minutes ahead of the gateway clock"
                )));
            }
            t
        }
    };
    Reading::new(device, kind, value, at).map_err(|_| IngestError::Value)
}

/// Counters for the status heartbeat, `/metrics` and the UI; each only grows.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub accepted: AtomicU64,
    pub malformed: AtomicU64,
    /// QoS 0 readings shed because the hub's queue was full.
    pub shed_qos0: AtomicU64,
    /// QoS 0 messages from the embedded broker that a slow local
    /// subscriber could not take, dropped.
    pub shed_subscriber: AtomicU64,
    /// Publications the access policy refused (dropped, acknowledged).
    pub refused: AtomicU64,
    /// Skips the embedded broker reported ("jumping to head": a subscriber
    /// fell behind its in-memory log), counted from its log by
    /// [`crate::logging`].
    pub broker_skipped: std::sync::Arc<AtomicU64>,
}

/// At most 20 log lines a minute about malformed input: a babbling device
/// must not flood the journal; the counter keeps the full tally.
#[derive(Debug, Default)]
pub struct LogLimiter {
    window_start: i64,
    count: u32,
}

impl LogLimiter {
    pub fn allow(&mut self, now: Time) -> bool {
        if now.as_millis() - self.window_start > 60_000 {
            self.window_start = now.as_millis();
            self.count = 0;
        }
        self.count += 1;
        self.count <= 20
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: Time = Time(1_795_348_800_000); // 2026-11-22T12:00:00Z

    #[test]
    fn parses_a_temperature_with_time() {
        let r = parse(
            b"carebridge/in/living-temp",
            br#"{"kind":"temperature","value":21.5,"at":"2026-11-22T10:00:00Z"}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(r.device.as_str(), "living-temp");
        assert_eq!(r.kind, Kind::Temperature);
        assert_eq!(r.value, 21.5);
        assert_eq!(r.at.to_rfc3339(), "2026-11-22T10:00:00Z");
    }

    #[test]
    fn boolean_values_and_missing_time_use_gateway_clock() {
        let r = parse(
            b"carebridge/in/btn",
            br#"{"kind":"panic","value":true}"#,
            NOW,
        )
        .unwrap();
        assert_eq!((r.value, r.at), (1.0, NOW));
    }

    #[test]
    fn escaped_strings_in_the_payload_are_read_like_plain_ones() {
        let r = parse(
            b"carebridge/in/btn",
            br#"{"kind":"pa\u006eic","value":1,"at":"2026-11-22T10:00:00\u005a"}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(r.kind, Kind::Panic);
        assert_eq!(r.at.to_rfc3339(), "2026-11-22T10:00:00Z");
    }

    #[test]
    fn each_mistake_names_its_field() {
        let cases: [(&[u8], &[u8], &str); 7] = [
            (b"other/x", br#"{"kind":"panic","value":1}"#, "topic"),
            (
                b"carebridge/in/a/b",
                br#"{"kind":"panic","value":1}"#,
                "topic",
            ),
            (b"carebridge/in/x", b"not json", "JSON"),
            (
                b"carebridge/in/x",
                br#"{"kind":"warp","value":1}"#,
                "field kind",
            ),
            (
                b"carebridge/in/x",
                br#"{"kind":"panic","value":"yes"}"#,
                "field value",
            ),
            (
                b"carebridge/in/x",
                br#"{"kind":"panic","value":1,"at":"noon"}"#,
                "field at",
            ),
            (
                b"carebridge/in/x",
                br#"{"kind":"panic","value":1,"at":"2099-01-01T00:00:00Z"}"#,
                "field at",
            ),
        ];
        for (topic, payload, want) in cases {
            let e = parse(topic, payload, NOW).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} should mention {want}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_so_typos_show() {
        let e = parse(b"carebridge/in/x", br#"{"kind":"panic","valeu":1}"#, NOW).unwrap_err();
        assert!(matches!(e, IngestError::Json(_)));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_input(topic in proptest::collection::vec(any::<u8>(), 0..64),
                                           payload in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse(&topic, &payload, NOW);
        }

        #[test]
        fn well_formed_readings_round_trip(v in -1.0e6f64..1.0e6, k in 0usize..Kind::ALL.len()) {
            let kind = Kind::ALL[k];
            let payload = serde_json::json!({"kind": kind.as_str(), "value": v}).to_string();
            let r = parse(b"carebridge/in/dev-1", payload.as_bytes(), NOW).unwrap();
            prop_assert_eq!(r.kind, kind);
            prop_assert_eq!(r.value, v);
        }
    }
}
