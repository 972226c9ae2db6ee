//! The stored form of an alert row (schema v11): the alert's fields in a
//! compact binary body, made into the published JSON document when the row
//! is read ([`alert_doc`]).
//!
//! Why: in a burst the outbox's alert rows were the largest part of every
//! commit — ~330-byte JSON documents (keys, the RFC 3339 time, the row's
//! own `id` and `seq` repeated), ~20 of the ~43 pages a commit of ~190
//! alerts wrote to the WAL, written again at the checkpoint and then
//! emptied by the uplink's acknowledgement. The body holds the same
//! facts in ~120 bytes.
//!
//! Format 1 (all integers little-endian; a string is its UTF-8 length —
//! one byte below 255, else `0xff` and four bytes — then its bytes):
//!
//! ```text
//! 0x01 rule severity:u8 state:u8 device room? at:i64(ms) message flags:u8
//!      [kind:u8] [value:f64] [instance attempt:u32]
//! ```
//!
//! `room?` is `0x00` (none) or `0x01` and the string; `flags` bit 0: a
//! kind follows, bit 1: a value, bit 2: the clock was not trusted, bit 3:
//! an instance and its attempt. The encoding is canonical (one body per
//! alert): decoding rejects unknown codes and flags, a long length form for
//! a short string, and bytes after the end.
//!
//! Invariants: `alert_doc(id, seq, at, alert_body(a)) ==
//! alert_payload(id, seq, a)` for every alert (property-tested); a row
//! stored whole by an older release (it starts with `{`) is published as
//! stored; a body that does not decode (a damaged file) still publishes an
//! urgent alert naming the byte, never nothing.

use super::payload::{alert_doc_of, alert_payload};
use crate::model::{Alert, AlertState, Kind, Severity, Time};

/// The first byte of a format 1 body (a stored JSON document starts with `{`).
pub const FORMAT: u8 = 1;

const KIND: u8 = 1;
const VALUE: u8 = 2;
const UNTRUSTED: u8 = 4;
const INSTANCE: u8 = 8;

fn put_str(out: &mut Vec<u8>, s: &str) {
    match u8::try_from(s.len()) {
        Ok(n) if n < 0xff => out.push(n),
        _ => {
            out.push(0xff);
            out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
        }
    }
    out.extend_from_slice(s.as_bytes());
}

fn severity_code(s: Severity) -> u8 {
    match s {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Urgent => 2,
    }
}

fn state_code(s: AlertState) -> u8 {
    match s {
        AlertState::Raised => 0,
        AlertState::Cleared => 1,
    }
}

/// What an outbox alert row stores. Strings of 4 GiB or more (never
/// produced: rule texts and ids are bounded far below) would not fit a
/// body: the JSON document is stored instead, as older releases did.
pub fn alert_body(id: &str, seq: u64, a: &Alert) -> Result<Vec<u8>, serde_json::Error> {
    encode(&Body::of(a)).map_or_else(|| alert_payload(id, seq, a), Ok)
}

/// The body's bytes (`None`: a string of 4 GiB or more).
pub fn encode(b: &Body<'_>) -> Option<Vec<u8>> {
    let strings = [
        Some(b.rule),
        Some(b.device),
        b.room,
        Some(b.message),
        b.instance.map(|(i, _)| i),
    ];
    if strings
        .iter()
        .flatten()
        .any(|s| u32::try_from(s.len()).is_err())
    {
        return None;
    }
    let len: usize = strings.iter().flatten().map(|s| s.len() + 5).sum();
    let mut out = Vec::with_capacity(32 + len);
    out.push(FORMAT);
    put_str(&mut out, b.rule);
    out.push(severity_code(b.severity));
    out.push(state_code(b.state));
    put_str(&mut out, b.device);
    match b.room {
        None => out.push(0),
        Some(r) => {
            out.push(1);
            put_str(&mut out, r);
        }
    }
    out.extend_from_slice(&b.at.as_millis().to_le_bytes());
    put_str(&mut out, b.message);
    let mut flags = 0;
    if b.kind.is_some() {
        flags |= KIND;
    }
    if b.value.is_some() {
        flags |= VALUE;
    }
    if !b.time_trusted {
        flags |= UNTRUSTED;
    }
    if b.instance.is_some() {
        flags |= INSTANCE;
    }
    out.push(flags);
    if let Some(k) = b.kind {
        out.push(k.code());
    }
    if let Some(v) = b.value {
        out.extend_from_slice(&v.to_le_bytes());
    }
    if let Some((i, attempt)) = b.instance {
        put_str(&mut out, i);
        out.extend_from_slice(&attempt.to_le_bytes());
    }
    Some(out)
}

/// Why a stored body does not decode: the byte it stopped at and what was
/// wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte {at}: {what}")]
pub struct BodyError {
    pub at: usize,
    pub what: &'static str,
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, what: &'static str) -> Result<T, BodyError> {
        Err(BodyError { at: self.at, what })
    }

    /// Fails at the byte just read (a code that is not one).
    fn refuse<T>(&mut self, what: &'static str) -> Result<T, BodyError> {
        self.at = self.at.saturating_sub(1);
        self.fail(what)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], BodyError> {
        let Some(s) = self
            .at
            .checked_add(n)
            .and_then(|end| self.b.get(self.at..end))
        else {
            return self.fail(what);
        };
        self.at += n;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, BodyError> {
        Ok(self.take(1, what)?[0])
    }

    fn arr<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], BodyError> {
        let s = self.take(N, what)?;
        let mut a = [0; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn str(&mut self, what: &'static str) -> Result<&'a str, BodyError> {
        let n = match self.u8(what)? {
            0xff => {
                let n = u32::from_le_bytes(self.arr(what)?);
                if n < 0xff {
                    self.at -= 4;
                    return self.fail("long length form for a short string");
                }
                usize::try_from(n).unwrap_or(usize::MAX)
            }
            n => usize::from(n),
        };
        let start = self.at;
        let bytes = self.take(n, what)?;
        std::str::from_utf8(bytes).or_else(|e| {
            self.at = start + e.valid_up_to();
            self.fail("not UTF-8")
        })
    }
}

/// A decoded body (borrowing the stored bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct Body<'a> {
    pub rule: &'a str,
    pub severity: Severity,
    pub state: AlertState,
    pub device: &'a str,
    pub room: Option<&'a str>,
    pub at: Time,
    pub message: &'a str,
    pub kind: Option<Kind>,
    pub value: Option<f64>,
    pub time_trusted: bool,
    pub instance: Option<(&'a str, u32)>,
}

impl<'a> Body<'a> {
    /// The fields of an alert.
    pub fn of(a: &'a Alert) -> Body<'a> {
        Body {
            rule: &a.rule,
            severity: a.severity,
            state: a.state,
            device: a.device.as_str(),
            room: a.room.as_deref(),
            at: a.at,
            message: &a.message,
            kind: a.kind,
            value: a.value,
            time_trusted: a.time_trusted,
            instance: a.instance.as_ref().map(|i| (&*i.instance, i.attempt)),
        }
    }
}

/// Decodes a format 1 body.
pub fn decode(b: &[u8]) -> Result<Body<'_>, BodyError> {
    let mut r = Reader { b, at: 0 };
    if r.u8("empty")? != FORMAT {
        return r.refuse("unknown format");
    }
    let rule = r.str("rule")?;
    let severity = match r.u8("severity")? {
        0 => Severity::Info,
        1 => Severity::Warning,
        2 => Severity::Urgent,
        _ => return r.refuse("unknown severity"),
    };
    let state = match r.u8("state")? {
        0 => AlertState::Raised,
        1 => AlertState::Cleared,
        _ => return r.refuse("unknown state"),
    };
    let device = r.str("device")?;
    let room = match r.u8("room")? {
        0 => None,
        1 => Some(r.str("room")?),
        _ => return r.refuse("room is neither absent nor present"),
    };
    let at = Time::from_millis(i64::from_le_bytes(r.arr("at")?));
    let message = r.str("message")?;
    let flags = r.u8("flags")?;
    if flags & !(KIND | VALUE | UNTRUSTED | INSTANCE) != 0 {
        return r.refuse("unknown flags");
    }
    let kind = if flags & KIND != 0 {
        match Kind::from_code(r.u8("kind")?) {
            Some(k) => Some(k),
            None => return r.refuse("unknown kind"),
        }
    } else {
        None
    };
    let value = if flags & VALUE != 0 {
        Some(f64::from_le_bytes(r.arr("value")?))
    } else {
        None
    };
    let instance = if flags & INSTANCE != 0 {
        let i = r.str("instance")?;
        Some((i, u32::from_le_bytes(r.arr("attempt")?)))
    } else {
        None
    };
    if r.at != b.len() {
        return r.fail("bytes after the end");
    }
    Ok(Body {
        rule,
        severity,
        state,
        device,
        room,
        at,
        message,
        kind,
        value,
        time_trusted: flags & UNTRUSTED == 0,
        instance,
    })
}

/// The published document of a stored alert row (see the module doc):
/// a body made whole with the row's `id` and `seq`; a row stored whole
/// (before schema v11) as it is; a body that does not decode as an urgent
/// alert saying so, at the row's time `at`.
pub fn alert_doc(id: &str, seq: u64, at: Time, stored: Vec<u8>) -> Vec<u8> {
    if stored.first() == Some(&b'{') {
        return stored;
    }
    let b = match decode(&stored) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(seq, error = %e, "stored alert body does not decode");
            let message = format!("stored alert unreadable ({e})");
            return alert_doc_of(
                id,
                seq,
                &Body {
                    rule: "unreadable",
                    severity: Severity::Urgent,
                    state: AlertState::Raised,
                    device: "gateway",
                    room: None,
                    at,
                    message: &message,
                    kind: None,
                    value: None,
                    time_trusted: true,
                    instance: None,
                },
            )
            .unwrap_or_else(|_| stored.clone());
        }
    };
    alert_doc_of(id, seq, &b).unwrap_or(stored)
}

#[cfg(test)]
#[path = "alert_body_tests.rs"]
mod tests;
