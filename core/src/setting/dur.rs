//! [`Dur`]: durations in the configuration, written `"250ms"`, `"30s"`,
//! `"5m"`, `"2h"` or `"7d"` (jiff's friendly format, so `"1h30m"` and
//! `"2 hours"` too), printed back in the short form.

use std::fmt;
use std::time::Duration;

use jiff::SpanRelativeTo;
use jiff::fmt::friendly::SpanParser;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as `"250ms"`, `"30s"`, `"5m"`, `"2h"` or `"7d"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub const fn mins(m: u64) -> Self {
        Dur(Duration::from_secs(m * 60))
    }
    /// Parses jiff's friendly format (`"30s"`, `"5m"`, `"5min"`, `"2h"`,
    /// `"1h30m"`, `"2 hours"`, `"1.5h"`), which takes every spelling this
    /// type ever accepted. The error says what is expected; serde puts the
    /// key and line in front of it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let expected = "use a number and a unit, like \"250ms\", \"30s\", \"5m\", \"2h\" or \"7d\"";
        let span = PARSER
            .parse_span(s)
            .map_err(|_| format!("duration {s:?} is not a duration: {expected}"))?;
        if span.is_negative() {
            return Err(format!("duration {s:?} is negative: {expected}"));
        }
        // A config day is 24 hours ("7d" of history, a "1d" window), never a
        // calendar day: jiff's `SignedDuration` refuses days for that reason,
        // so the span is converted with days (and weeks) as fixed lengths.
        // Months and years stay refused: they have no fixed length.
        span.to_duration(SpanRelativeTo::days_are_24_hours())
            .ok()
            .and_then(|d| Duration::try_from(d).ok())
            .map(Dur)
            .ok_or_else(|| {
                format!("duration {s:?} is too large or uses months or years: {expected}")
            })
    }
}

static PARSER: SpanParser = SpanParser::new();

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let (n, u) = if ms == 0 {
            (0, "s")
        } else if ms.is_multiple_of(86_400_000) {
            (ms / 86_400_000, "d")
        } else if ms.is_multiple_of(3_600_000) {
            (ms / 3_600_000, "h")
        } else if ms.is_multiple_of(60_000) {
            (ms / 60_000, "m")
        } else if ms.is_multiple_of(1000) {
            (ms / 1000, "s")
        } else {
            (ms, "ms")
        };
        write!(f, "{n}{u}")
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Dur::parse(&s).map_err(serde::de::Error::custom)
    }
}
