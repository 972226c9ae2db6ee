//! The carebridge line protocol spoken by serial sensor boards: the
//! `[[serial]]` config section, the pure parser and the line splitter.
//! The port reader is the shell's `ingest::line`.
//!
//! # The line protocol
//!
//! One reading per line, ASCII, fields separated by spaces or tabs, lines
//! ending in `\n` (a preceding `\r` is ignored):
//!
//! ```text
//! <device_id> <kind> <value>[ <time>][*<XX>]
//! hall-pir motion 1
//! kitchen-t temperature 21.5 1763805600000
//! bed-mat bed on 2026-11-22T10:00:00Z*4B
//! # a comment; blank lines are ignored too
//! ```
//!
//! - `device_id`: 1–64 characters of `A-Z a-z 0-9 . _ : -` (as everywhere in carebridge);
//! - `kind`: a reading kind name (`motion`, `contact`, `temperature`, … see `model::Kind`);
//! - `value`: a decimal number; binary kinds also accept `on`/`off`,
//!   `true`/`false`, `open`/`closed`, `yes`/`no`;
//! - `time` (optional): Unix milliseconds, or RFC 3339; absent = time of receipt;
//! - `*XX` (optional unless `checksum = true`): two hex digits, the XOR of every
//!   byte of the line before the `*` (NMEA style), directly after the last field.
//!
//! Lines longer than [`MAX_LINE`] bytes are rejected whole. A bad line is
//! counted, logged with its text, and reported in the link status; the port
//! keeps being read. When the port vanishes it is reopened every
//! `reopen_interval` until it comes back.
//!
//! Invariant: the parser is pure and never panics.

use serde::{Deserialize, Serialize};

use crate::model::{DeviceId, Kind, Reading, Time};
use crate::setting::{Dur, Problem};

/// Longest accepted line, in bytes, without the line ending.
pub const MAX_LINE: usize = 256;

/// `[[serial]]`: one sensor board on one serial port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SerialBoardConfig {
    /// A name for status pages; empty = the port path.
    pub name: String,
    pub port: String,
    pub baud: u32,
    /// Reject lines without a valid `*XX` checksum.
    pub checksum: bool,
    /// How often to try reopening a vanished port.
    pub reopen_interval: Dur,
}

impl Default for SerialBoardConfig {
    fn default() -> Self {
        SerialBoardConfig {
            name: String::new(),
            port: "/dev/ttyUSB0".into(),
            baud: 115_200,
            checksum: false,
            reopen_interval: Dur::secs(2),
        }
    }
}

impl SerialBoardConfig {
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.baud == 0 {
            out.push(Problem::new("baud", "must be above zero"));
        }
        if self.port.trim().is_empty() {
            out.push(Problem::new("port", "must name a serial device"));
        }
        if self.reopen_interval.0.is_zero() {
            out.push(Problem::new("reopen_interval", "must be above zero"));
        }
        out
    }

    /// The link name used in status: `serial:<name or port>`.
    pub fn link_name(&self) -> String {
        let n = if self.name.is_empty() {
            &self.port
        } else {
            &self.name
        };
        format!("serial:{n}")
    }
}

/// Why a line was rejected; each names the field.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LineError {
    #[error("line is {len} bytes, longer than the {MAX_LINE}-byte limit")]
    TooLong { len: usize },
    #[error("line is not valid UTF-8")]
    NotUtf8,
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    #[error("field `device_id`: {0:?} is not 1-64 characters of A-Z a-z 0-9 . _ : -")]
    DeviceId(String),
    #[error("field `kind`: unknown kind {0:?}")]
    Kind(String),
    #[error("field `value`: {0:?} is not a finite number (or on/off for binary kinds)")]
    Value(String),
    #[error("field `time`: {0:?} is neither Unix milliseconds nor RFC 3339")]
    Time(String),
    #[error("field `checksum`: {0:?} is not two hex digits")]
    ChecksumSyntax(String),
    #[error("field `checksum`: line says {got:02X}, bytes XOR to {want:02X}")]
    Checksum { got: u8, want: u8 },
    #[error("field `checksum`: required but absent")]
    ChecksumMissing,
    #[error("unexpected extra field {0:?}")]
    Extra(String),
}

fn binary_word(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "open" | "yes" => Some(1.0),
        "off" | "false" | "closed" | "no" => Some(0.0),
        _ => None,
    }
}

/// Parses one line (without its ending). `Ok(None)` for blank and comment lines.
pub fn parse_line(
    line: &str,
    received: Time,
    checksum_required: bool,
) -> Result<Option<Reading>, LineError> {
    let line = line.trim_end_matches('\r');
    if line.len() > MAX_LINE {
        return Err(LineError::TooLong { len: line.len() });
    }
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    let body = match line.rfind('*') {
        Some(star) => {
            let (body, sum) = (&line[..star], line[star + 1..].trim());
            let got = (sum.len() == 2)
                .then(|| u8::from_str_radix(sum, 16).ok())
                .flatten()
                .ok_or_else(|| LineError::ChecksumSyntax(sum.chars().take(16).collect()))?;
            let want = body.bytes().fold(0u8, |a, b| a ^ b);
            if got != want {
                return Err(LineError::Checksum { got, want });
            }
            body
        }
        None if checksum_required => return Err(LineError::ChecksumMissing),
        None => line,
    };
    let mut f = body.split_ascii_whitespace();
    let dev = f.next().ok_or(LineError::Missing("device_id"))?;
    let device =
        DeviceId::new(dev).map_err(|_| LineError::DeviceId(dev.chars().take(80).collect()))?;
    let k = f.next().ok_or(LineError::Missing("kind"))?;
    let kind: Kind = k
        .parse()
        .map_err(|_| LineError::Kind(k.chars().take(40).collect()))?;
    let v = f.next().ok_or(LineError::Missing("value"))?;
    let value = match v.parse::<f64>() {
        Ok(x) if x.is_finite() => x,
        _ => kind
            .is_binary()
            .then(|| binary_word(v))
            .flatten()
            .ok_or_else(|| LineError::Value(v.chars().take(40).collect()))?,
    };
    let at = match f.next() {
        None => received,
        Some(ts) => match ts.parse::<i64>() {
            Ok(ms) => Time::from_millis(ms),
            Err(_) => Time::parse_rfc3339(ts)
                .map_err(|_| LineError::Time(ts.chars().take(40).collect()))?,
        },
    };
    if let Some(extra) = f.next() {
        return Err(LineError::Extra(extra.chars().take(40).collect()));
    }
    Reading::new(device, kind, value, at)
        .map(Some)
        .map_err(|_| LineError::Value(v.into()))
}

/// Splits a byte stream into lines; an overlong line is returned as
/// `Err(TooLong)` once, and its remainder skipped up to the next newline.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    overlong: Option<usize>,
}

impl LineSplitter {
    pub fn push(&mut self, bytes: &[u8], mut each: impl FnMut(Result<&[u8], LineError>)) {
        for &b in bytes {
            if b == b'\n' {
                match self.overlong.take() {
                    Some(len) => each(Err(LineError::TooLong { len })),
                    None => each(Ok(&self.buf)),
                }
                self.buf.clear();
            } else if let Some(n) = &mut self.overlong {
                *n += 1;
            } else if self.buf.len() > MAX_LINE {
                // +1 leaves room for a '\r' that trim removes.
                self.overlong = Some(self.buf.len() + 1);
                self.buf.clear();
            } else {
                self.buf.push(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Result<Option<Reading>, LineError> {
        parse_line(s, Time(1000), false)
    }

    #[test]
    fn parses_value_time_and_binary_words() {
        let r = p("hall-pir motion on").unwrap().unwrap();
        assert_eq!(
            (r.device.as_str(), r.kind, r.value, r.at),
            ("hall-pir", Kind::Motion, 1.0, Time(1000))
        );
        let r = p("kitchen-t temperature -2.5 1763805600000\r")
            .unwrap()
            .unwrap();
        assert_eq!((r.value, r.at), (-2.5, Time(1_763_805_600_000)));
        let r = p("door contact closed 2026-11-22T10:00:00Z")
            .unwrap()
            .unwrap();
        assert_eq!(r.at, Time::parse_rfc3339("2026-11-22T10:00:00Z").unwrap());
    }

    #[test]
    fn comments_and_blank_lines_are_not_readings() {
        assert_eq!(p("# board v2 booted"), Ok(None));
        assert_eq!(p("   "), Ok(None));
    }

    #[test]
    fn checksum_is_xor_of_bytes_before_star() {
        let body = "bed-mat bed 1";
        let x = body.bytes().fold(0u8, |a, b| a ^ b);
        assert!(
            parse_line(&format!("{body}*{x:02X}"), Time(0), true)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            parse_line(&format!("{body}*{:02X}", x ^ 1), Time(0), false),
            Err(LineError::Checksum {
                got: x ^ 1,
                want: x
            })
        );
        assert_eq!(
            parse_line(body, Time(0), true),
            Err(LineError::ChecksumMissing)
        );
        assert_eq!(
            p("a motion 1*G1"),
            Err(LineError::ChecksumSyntax("G1".into()))
        );
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(p("a/b motion 1"), Err(LineError::DeviceId("a/b".into())));
        assert_eq!(p("a teleport 1"), Err(LineError::Kind("teleport".into())));
        assert_eq!(
            p("a temperature warm"),
            Err(LineError::Value("warm".into()))
        );
        assert_eq!(p("a temperature NaN"), Err(LineError::Value("NaN".into())));
        assert_eq!(p("a motion"), Err(LineError::Missing("value")));
        assert_eq!(
            p("a motion 1 yesterday"),
            Err(LineError::Time("yesterday".into()))
        );
        assert_eq!(p("a motion 1 5 x"), Err(LineError::Extra("x".into())));
        assert!(
            p("a motion 1 yesterday")
                .unwrap_err()
                .to_string()
                .contains("`time`")
        );
    }

    #[test]
    fn splitter_rejects_overlong_lines_once_and_keeps_going() {
        let mut s = LineSplitter::default();
        let mut got = Vec::new();
        let mut input = vec![b'x'; 400];
        input.extend_from_slice(b"\na motion 1\n");
        s.push(&input, |l| got.push(l.map(|b| b.to_vec())));
        assert_eq!(
            got,
            vec![
                Err(LineError::TooLong { len: 400 }),
                Ok(b"a motion 1".to_vec())
            ]
        );
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "\\PC{0,300}") {
            let _ = parse_line(&s, Time(0), false);
        }

        #[test]
        fn formatted_readings_round_trip(v in -1e6f64..1e6, ms in 0i64..4_000_000_000_000, k in 0usize..22) {
            let kind = Kind::ALL[k % Kind::ALL.len()];
            let line = format!("dev-1 {kind} {v} {ms}");
            let sum = line.bytes().fold(0u8, |a, b| a ^ b);
            let r = parse_line(&format!("{line}*{sum:02x}"), Time(0), true).unwrap().unwrap();
            prop_assert_eq!((r.kind, r.value, r.at), (kind, v, Time(ms)));
        }
    }
}
