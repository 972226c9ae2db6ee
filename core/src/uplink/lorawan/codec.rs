//! The compact LoRaWAN payload codec (format version 1).
//!
//! Owns: the bytes of every uplink ([`Uplink`]) and downlink ([`Downlink`])
//! application payload. `decoder.js` (next to this file) is the network
//! server's copy of the same format; `tests/lorawan_js.rs` checks that both
//! agree on random messages.
//!
//! Layout (all integers big-endian). Byte 0 is `version << 5 | type`:
//!
//! | type | message | bytes |
//! |---|---|---|
//! | 1/2 | alert, device index u8/u16, no value | 4 / 5 |
//! | 3/4 | alert, device index u8/u16, with value | 6 / 7 |
//! | 5 | telemetry batch: count, then per reading idx u8, kind u8, age u8, value i16 | 2 + 5·n |
//! | 6 | daily summary | 8 + 2·rooms (≤ 51) |
//! | 16 | downlink: ack alert by device index and kind | 4 |
//! | 17 | downlink: ack alert by outbox seq (u32) | 5 |
//! | 18 | downlink: ping (token u8) | 2 |
//! | 19 | downlink: permit join (seconds u16) | 3 |
//!
//! Alert byte 1 is `kind << 3 | severity << 1 | state` (kind 31 = none),
//! byte 2 the age ([`encode_age`]: exact minutes below an hour, then
//! quarter-hours up to 50 h). Values are `i16` in kind-specific units
//! ([`value_scale`]: 0.1 °C, 0.1 %, W, 0.01 V …), saturating.
//!
//! An uplink alert does not carry the outbox seq (that would cost a byte
//! past 7): a LoRaWAN-only cloud acks by (device index, kind); a dual-path
//! cloud that saw the seq over MQTT acks by seq.
//!
//! Size against CayenneLPP (the same facts; computed by
//! `tests::cayenne_comparison_table_matches_the_doc`):
//!
//! | message | compact | CayenneLPP |
//! |---|---|---|
//! | alert (panic, no value) | 4 | 13 |
//! | alert (cold home, 14.5 °C) | 6 | 17 |
//! | summary, 6 rooms | 20 | 33 |
//! | telemetry, 8 readings | 42 | 32 |
//!
//! CayenneLPP cannot say kind, severity, state or age without one record per
//! field; for plain telemetry it is comparable (it lacks the per-reading age).
//!
//! Invariants: `decode` never panics on any input (fuzzed by
//! `tests/fuzz/fuzz_targets/lorawan_codec.rs`); `decode(encode(m)) == m` for
//! every message `encode` accepts (proptest).

use serde_json::{Value, json};

use crate::model::{Alert, AlertState, Kind, Severity, Time};

pub const VERSION: u8 = 1;
/// A summary must fit the smallest EU868 payload (DR0–DR2).
pub const MAX_SUMMARY: usize = 51;
/// Rooms that fit a summary.
pub const MAX_ROOMS: usize = (MAX_SUMMARY - 8) / 2;
/// Readings that fit a 51-byte telemetry batch.
pub const MAX_BATCH: usize = (MAX_SUMMARY - 2) / 5;
const KIND_NONE: u8 = 31;

/// Typed codec errors naming the byte or field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("payload incomplete: {needed} more byte(s) needed")]
    Incomplete { needed: usize },
    #[error("byte 0: format version {0} not supported (this gateway speaks {VERSION})")]
    Version(u8),
    #[error("byte 0: unknown message type {0}")]
    Type(u8),
    #[error("byte {at}: unknown kind code {code}")]
    Kind { at: usize, code: u8 },
    #[error("byte {at}: unknown severity code {code}")]
    Severity { at: usize, code: u8 },
    #[error("field rooms: {0} rooms exceed the {MAX_ROOMS} that fit 51 bytes")]
    TooManyRooms(usize),
    #[error("field readings: {0} readings exceed the {MAX_BATCH} that fit 51 bytes")]
    TooManyReadings(usize),
}

/// One alert, compact.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertMsg {
    pub kind: Option<Kind>,
    pub severity: Severity,
    pub state: AlertState,
    pub device_index: u16,
    /// Minutes between the condition and the send (quantised by [`encode_age`]).
    pub age_min: u16,
    /// The value in [`value_scale`] units.
    pub value: Option<i16>,
}

/// One reading in a telemetry batch.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryRec {
    pub device_index: u8,
    pub kind: Kind,
    pub age_min: u16,
    pub value: i16,
}

/// One room's activity in a summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomActivity {
    pub room_index: u8,
    /// Quarter-hours (0–96) with activity.
    pub active_slots: u8,
}

/// A day's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Hours covered (normally 24).
    pub period_h: u8,
    /// Minimum/maximum temperature in half degrees (−127..=127, i.e. ±63.5 °C).
    pub temp_min_half_c: Option<i8>,
    pub temp_max_half_c: Option<i8>,
    pub battery_low: u8,
    /// Messages waiting in the outbox.
    pub backlog: u16,
    pub rooms: Vec<RoomActivity>,
}

/// Gateway → network server.
#[derive(Debug, Clone, PartialEq)]
pub enum Uplink {
    Alert(AlertMsg),
    Telemetry(Vec<TelemetryRec>),
    Summary(Summary),
}

/// Network server → gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Downlink {
    AckIndex {
        device_index: u16,
        kind: Option<Kind>,
    },
    AckSeq {
        seq: u32,
    },
    Ping {
        token: u8,
    },
    PermitJoin {
        secs: u16,
    },
}

impl AlertMsg {
    /// The compact form of an alert from the rules, sent at `now`. The
    /// device index is the integrator's (e.g. the registry row number).
    pub fn from_alert(a: &Alert, device_index: u16, now: Time) -> AlertMsg {
        let age = now.since(a.at).as_secs() / 60;
        AlertMsg {
            kind: a.kind,
            severity: a.severity,
            state: a.state,
            device_index,
            age_min: u16::try_from(age).unwrap_or(u16::MAX),
            value: a
                .value
                .filter(|v| v.is_finite())
                .map(|v| scale_value(a.kind, v)),
        }
    }
}

/// Units of the `i16` value per kind (value = raw / scale).
pub fn value_scale(kind: Option<Kind>) -> f64 {
    match kind {
        Some(Kind::Temperature | Kind::Humidity | Kind::Energy) => 10.0,
        Some(Kind::Voltage) => 100.0,
        _ => 1.0,
    }
}

/// Scales a reading value to the wire unit, saturating.
pub fn scale_value(kind: Option<Kind>, v: f64) -> i16 {
    let x = (v * value_scale(kind)).round();
    if x.is_nan() {
        0
    } else {
        // `as` saturates for floats, which is what we want here.
        x.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
    }
}

/// Age in minutes to one byte: 0–59 exact, then quarter-hours (rounded
/// down) up to 3000 min (50 h), saturating.
pub fn encode_age(min: u16) -> u8 {
    if min < 60 {
        min as u8
    } else {
        u8::try_from(60 + (u32::from(min) - 60) / 15).unwrap_or(u8::MAX)
    }
}

pub fn decode_age(b: u8) -> u16 {
    if b < 60 {
        u16::from(b)
    } else {
        60 + (u16::from(b) - 60) * 15
    }
}

fn hdr(t: u8) -> u8 {
    VERSION << 5 | t
}

fn kind_code(k: Option<Kind>) -> u8 {
    k.map_or(KIND_NONE, |k| k.code() & 0x1f)
}

fn half_c(v: Option<i8>) -> u8 {
    v.map_or(0x80, |x| x.max(-127) as u8)
}

/// Encodes an uplink. Fails only on a batch or room list that cannot fit.
pub fn encode(m: &Uplink, out: &mut Vec<u8>) -> Result<(), CodecError> {
    match m {
        Uplink::Alert(a) => {
            let wide = a.device_index > 0xff;
            let t = match (wide, a.value.is_some()) {
                (false, false) => 1,
                (true, false) => 2,
                (false, true) => 3,
                (true, true) => 4,
            };
            out.push(hdr(t));
            out.push(kind_code(a.kind) << 3 | (a.severity as u8) << 1 | a.state as u8);
            out.push(encode_age(a.age_min));
            if wide {
                out.extend_from_slice(&a.device_index.to_be_bytes());
            } else {
                out.push(a.device_index as u8);
            }
            if let Some(v) = a.value {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        Uplink::Telemetry(recs) => {
            if recs.len() > MAX_BATCH {
                return Err(CodecError::TooManyReadings(recs.len()));
            }
            out.push(hdr(5));
            out.push(recs.len() as u8);
            for r in recs {
                out.push(r.device_index);
                out.push(r.kind.code());
                out.push(encode_age(r.age_min));
                out.extend_from_slice(&r.value.to_be_bytes());
            }
        }
        Uplink::Summary(s) => {
            if s.rooms.len() > MAX_ROOMS {
                return Err(CodecError::TooManyRooms(s.rooms.len()));
            }
            out.push(hdr(6));
            out.push(s.period_h);
            out.push(half_c(s.temp_min_half_c));
            out.push(half_c(s.temp_max_half_c));
            out.push(s.battery_low);
            out.extend_from_slice(&s.backlog.to_be_bytes());
            out.push(s.rooms.len() as u8);
            for r in &s.rooms {
                out.push(r.room_index);
                out.push(r.active_slots);
            }
        }
    }
    Ok(())
}

pub fn encode_downlink(d: &Downlink, out: &mut Vec<u8>) {
    match d {
        Downlink::AckIndex { device_index, kind } => {
            out.push(hdr(16));
            out.extend_from_slice(&device_index.to_be_bytes());
            out.push(kind_code(*kind));
        }
        Downlink::AckSeq { seq } => {
            out.push(hdr(17));
            out.extend_from_slice(&seq.to_be_bytes());
        }
        Downlink::Ping { token } => out.extend_from_slice(&[hdr(18), *token]),
        Downlink::PermitJoin { secs } => {
            out.push(hdr(19));
            out.extend_from_slice(&secs.to_be_bytes());
        }
    }
}

/// A bounds-checked reader that reports how many bytes were missing.
struct Rd<'a> {
    b: &'a [u8],
    at: usize,
}

impl Rd<'_> {
    fn need(&self, n: usize) -> Result<(), CodecError> {
        let have = self.b.len().saturating_sub(self.at);
        if have < n {
            Err(CodecError::Incomplete { needed: n - have })
        } else {
            Ok(())
        }
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        self.need(1)?;
        let v = self.b[self.at];
        self.at += 1;
        Ok(v)
    }
    fn u16(&mut self) -> Result<u16, CodecError> {
        self.need(2)?;
        let v = u16::from_be_bytes([self.b[self.at], self.b[self.at + 1]]);
        self.at += 2;
        Ok(v)
    }
    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from(self.u16()?) << 16 | u32::from(self.u16()?))
    }
    fn kind(&mut self, code: u8) -> Result<Option<Kind>, CodecError> {
        if code == KIND_NONE {
            return Ok(None);
        }
        Kind::from_code(code).map(Some).ok_or(CodecError::Kind {
            at: self.at - 1,
            code,
        })
    }
}

fn header(r: &mut Rd<'_>) -> Result<u8, CodecError> {
    let h = r.u8()?;
    if h >> 5 != VERSION {
        return Err(CodecError::Version(h >> 5));
    }
    Ok(h & 0x1f)
}

fn opt_half_c(b: u8) -> Option<i8> {
    (b != 0x80).then_some(b as i8)
}

/// Decodes one uplink; returns it and the bytes used.
pub fn decode(b: &[u8]) -> Result<(Uplink, usize), CodecError> {
    let mut r = Rd { b, at: 0 };
    let t = header(&mut r)?;
    let m = match t {
        1..=4 => {
            let ksv = r.u8()?;
            let kind = r.kind(ksv >> 3)?;
            let sev = (ksv >> 1) & 3;
            let severity =
                Severity::from_code(sev).ok_or(CodecError::Severity { at: 1, code: sev })?;
            let state = if ksv & 1 == 1 {
                AlertState::Cleared
            } else {
                AlertState::Raised
            };
            let age_min = decode_age(r.u8()?);
            let device_index = if t % 2 == 0 {
                r.u16()?
            } else {
                u16::from(r.u8()?)
            };
            let value = if t >= 3 { Some(r.u16()? as i16) } else { None };
            Uplink::Alert(AlertMsg {
                kind,
                severity,
                state,
                device_index,
                age_min,
                value,
            })
        }
        5 => {
            let n = r.u8()?;
            r.need(usize::from(n) * 5)?;
            let mut recs = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                let device_index = r.u8()?;
                let code = r.u8()?;
                let kind = Kind::from_code(code).ok_or(CodecError::Kind { at: r.at - 1, code })?;
                let age_min = decode_age(r.u8()?);
                let value = r.u16()? as i16;
                recs.push(TelemetryRec {
                    device_index,
                    kind,
                    age_min,
                    value,
                });
            }
            Uplink::Telemetry(recs)
        }
        6 => {
            let period_h = r.u8()?;
            let temp_min_half_c = opt_half_c(r.u8()?);
            let temp_max_half_c = opt_half_c(r.u8()?);
            let battery_low = r.u8()?;
            let backlog = r.u16()?;
            let n = r.u8()?;
            if usize::from(n) > MAX_ROOMS {
                return Err(CodecError::TooManyRooms(usize::from(n)));
            }
            r.need(usize::from(n) * 2)?;
            let mut rooms = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                rooms.push(RoomActivity {
                    room_index: r.u8()?,
                    active_slots: r.u8()?,
                });
            }
            Uplink::Summary(Summary {
                period_h,
                temp_min_half_c,
                temp_max_half_c,
                battery_low,
                backlog,
                rooms,
            })
        }
        _ => return Err(CodecError::Type(t)),
    };
    Ok((m, r.at))
}

/// Decodes one downlink command; returns it and the bytes used.
pub fn decode_downlink(b: &[u8]) -> Result<(Downlink, usize), CodecError> {
    let mut r = Rd { b, at: 0 };
    let d = match header(&mut r)? {
        16 => {
            let device_index = r.u16()?;
            let code = r.u8()?;
            Downlink::AckIndex {
                device_index,
                kind: r.kind(code)?,
            }
        }
        17 => Downlink::AckSeq { seq: r.u32()? },
        18 => Downlink::Ping { token: r.u8()? },
        19 => Downlink::PermitJoin { secs: r.u16()? },
        t => return Err(CodecError::Type(t)),
    };
    Ok((d, r.at))
}

fn kind_json(k: Option<Kind>) -> Value {
    k.map_or(Value::Null, |k| Value::from(k.as_str()))
}

impl Uplink {
    /// The JSON object `decoder.js` returns as `data` for these bytes.
    pub fn to_json(&self) -> Value {
        match self {
            Uplink::Alert(a) => json!({
                "type": "alert",
                "kind": kind_json(a.kind),
                "severity": a.severity.as_str(),
                "state": a.state.as_str(),
                "device_index": a.device_index,
                "age_min": decode_age(encode_age(a.age_min)),
                "value": a.value.map(|v| f64::from(v) / value_scale(a.kind)),
            }),
            Uplink::Telemetry(recs) => json!({
                "type": "telemetry",
                "readings": recs.iter().map(|r| json!({
                    "device_index": r.device_index,
                    "kind": r.kind.as_str(),
                    "age_min": decode_age(encode_age(r.age_min)),
                    "value": f64::from(r.value) / value_scale(Some(r.kind)),
                })).collect::<Vec<_>>(),
            }),
            Uplink::Summary(s) => json!({
                "type": "summary",
                "period_h": s.period_h,
                "temp_min_c": s.temp_min_half_c.map(|t| f64::from(t.max(-127)) / 2.0),
                "temp_max_c": s.temp_max_half_c.map(|t| f64::from(t.max(-127)) / 2.0),
                "battery_low": s.battery_low,
                "backlog": s.backlog,
                "rooms": s.rooms.iter().map(|r| json!({
                    "room_index": r.room_index, "active_slots": r.active_slots,
                })).collect::<Vec<_>>(),
            }),
        }
    }
}

impl Downlink {
    /// The JSON object `decoder.js` uses for this command (`encodeDownlink` input).
    pub fn to_json(&self) -> Value {
        match self {
            Downlink::AckIndex { device_index, kind } => json!({
                "command": "ack", "device_index": device_index, "kind": kind_json(*kind),
            }),
            Downlink::AckSeq { seq } => json!({"command": "ack_seq", "seq": seq}),
            Downlink::Ping { token } => json!({"command": "ping", "token": token}),
            Downlink::PermitJoin { secs } => json!({"command": "permit_join", "secs": secs}),
        }
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
