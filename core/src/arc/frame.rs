//! DC-09 framing (ANSI/SIA DC-09), both ways, as pure functions over bytes.
//!
//! A message on the wire:
//!
//! ```text
//! LF CRC 0LLL "[*]ID" SEQ Rrcvr Lline #acct [data] [x-data] _HH:MM:SS,MM-DD-YYYY CR
//! ```
//!
//! - `CRC`: four upper-case hex digits, CRC-16/ARC ([`super::crc`]) of the
//!   bytes from the opening `"` to the last byte before CR;
//! - `0LLL`: the same bytes' count, four upper-case hex digits;
//! - `ID`: `SIA-DCS`, `ADM-CID`, `NULL` (and in replies `ACK`, `NAK`,
//!   `DUH`, `RSP`); `*` in front when the rest is encrypted;
//! - `SEQ`: four decimal digits, 0001–9999 then 0001 again: the receiver
//!   de-duplicates a repeated message by it;
//! - `R`/`L`: receiver and line numbers, 1–6 hex digits; `#acct`: 3–16 hex;
//! - plain: `[data]` then the timestamp (UTC);
//! - encrypted: `[` then the hex of AES-CBC (zero IV) over
//!   `pad|data]_timestamp`, where `pad` is 0–15 characters (never `|`, `[`
//!   or `]`) that bring the plaintext to a multiple of 16 bytes. The caller
//!   supplies the pad characters (random in the shell) so this stays pure.
//!
//! Decoding is lenient where real receivers are sloppy (pysiaalarm writes
//! `None` for a missing receiver number, pads with `0` and omits the `|`),
//! strict where it matters: CRC and length must match, encrypted content
//! must be hex of whole blocks.

use super::cipher::Key;
use super::crc::crc16;
use crate::model::Time;

/// The ID token of a message we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgType {
    SiaDcs,
    AdmCid,
    /// Link test (supervision).
    Null,
}

impl MsgType {
    pub fn token(self) -> &'static str {
        match self {
            MsgType::SiaDcs => "SIA-DCS",
            MsgType::AdmCid => "ADM-CID",
            MsgType::Null => "NULL",
        }
    }
}

/// Who the message is from and for (from `[arc]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// 3–16 hex digits.
    pub account: String,
    /// 1–6 hex digits.
    pub receiver: String,
    /// 1–6 hex digits.
    pub line: String,
}

/// One message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: MsgType,
    /// 1–9999.
    pub seq: u16,
    /// What goes between `[` and `]` (empty for `NULL`).
    pub data: String,
    /// Written as the DC-09 timestamp (UTC).
    pub at: Time,
}

/// The sequence number after `seq` (9999 wraps to 1; 0 is never used).
pub fn next_seq(seq: u16) -> u16 {
    if seq >= 9999 { 1 } else { seq + 1 }
}

/// `_HH:MM:SS,MM-DD-YYYY` in UTC.
pub fn timestamp(at: Time) -> String {
    match jiff::Timestamp::from_millisecond(at.as_millis()) {
        Ok(ts) => ts.strftime("_%H:%M:%S,%m-%d-%Y").to_string(),
        Err(_) => "_00:00:00,01-01-1970".to_string(),
    }
}

/// Parses `HH:MM:SS,MM-DD-YYYY` (UTC, no leading `_`).
pub fn parse_timestamp(s: &[u8]) -> Option<Time> {
    let s = std::str::from_utf8(s).ok()?;
    let dt = jiff::civil::DateTime::strptime("%H:%M:%S,%m-%d-%Y", s).ok()?;
    let ts = dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(Time::from_millis(ts.as_millisecond()))
}

/// Bytes allowed as padding (mapped from the caller's random bytes).
const PAD_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Appends the framed message to `out`. With a key the message is
/// encrypted and `pad` supplies up to 15 random bytes for the padding
/// (fewer are repeated; none gives `0`s).
pub fn encode(msg: &Message, ids: &Ids, key: Option<&Key>, pad: &[u8], out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(96);
    body.push(b'"');
    if key.is_some() {
        body.push(b'*');
    }
    body.extend_from_slice(msg.kind.token().as_bytes());
    body.push(b'"');
    body.extend_from_slice(format!("{:04}", msg.seq.min(9999)).as_bytes());
    body.push(b'R');
    body.extend_from_slice(ids.receiver.as_bytes());
    body.push(b'L');
    body.extend_from_slice(ids.line.as_bytes());
    body.push(b'#');
    body.extend_from_slice(ids.account.as_bytes());
    body.push(b'[');
    let rest = format!("{}]{}", msg.data, timestamp(msg.at));
    match key {
        None => body.extend_from_slice(rest.as_bytes()),
        Some(k) => {
            let n = (16 - (rest.len() + 1) % 16) % 16;
            let mut plain = Vec::with_capacity(n + 1 + rest.len());
            for i in 0..n {
                let r = if pad.is_empty() {
                    0
                } else {
                    pad[i % pad.len()]
                };
                plain.push(if pad.is_empty() {
                    b'0'
                } else {
                    PAD_CHARS[usize::from(r) % PAD_CHARS.len()]
                });
            }
            plain.push(b'|');
            plain.extend_from_slice(rest.as_bytes());
            // Always a multiple of 16 by construction.
            let _ = k.encrypt(&mut plain);
            body.extend_from_slice(hex::encode_upper(&plain).as_bytes());
        }
    }
    out.push(b'\n');
    out.extend_from_slice(format!("{:04X}{:04X}", crc16(&body), body.len().min(0xFFFF)).as_bytes());
    out.extend_from_slice(&body);
    out.push(b'\r');
}

/// What was wrong with a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// No CR yet: read more.
    #[error("incomplete frame")]
    Incomplete,
    #[error("byte {at}: {what}")]
    Malformed { at: usize, what: &'static str },
    #[error("CRC mismatch: frame says {said:04X}, content gives {calc:04X}")]
    Crc { said: u16, calc: u16 },
    #[error("length mismatch: frame says {said}, content is {len} bytes")]
    Length { said: usize, len: usize },
    #[error("encrypted content but no key for account {0:?}")]
    NoKey(String),
    #[error("encrypted content is not hex of whole AES blocks")]
    BadCipherText,
}

/// A decoded frame (a message or a reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub encrypted: bool,
    /// The ID token without quotes or `*` (`ADM-CID`, `ACK`, …).
    pub id: String,
    /// The sequence number, `None` when it is not four digits.
    pub seq: Option<u16>,
    pub receiver: Option<String>,
    pub line: Option<String>,
    pub account: Option<String>,
    /// Between `[` and `]` (decrypted, padding removed).
    pub data: String,
    /// `[…]` blocks after the data, without brackets.
    pub extended: Vec<String>,
    /// The raw timestamp (without `_`), when present.
    pub timestamp: Option<String>,
}

fn hex4(b: &[u8], at: usize) -> Result<u16, FrameError> {
    let s = std::str::from_utf8(b).map_err(|_| FrameError::Malformed {
        at,
        what: "not hex",
    })?;
    u16::from_str_radix(s, 16).map_err(|_| FrameError::Malformed {
        at,
        what: "not hex",
    })
}

/// Decodes one frame from the start of `buf`: the frame and the bytes it
/// used (LF … CR). `Ok(None, used)` is the empty reply `LF CR` (a receiver
/// that discarded what it got). `key` is asked for the account's key when
/// the content is encrypted.
pub fn decode<'k>(
    buf: &[u8],
    key: impl Fn(Option<&str>) -> Option<&'k Key>,
) -> Result<(Option<Frame>, usize), FrameError> {
    let Some(start) = buf.iter().position(|&b| b == b'\n') else {
        return Err(if buf.iter().all(|b| b.is_ascii_whitespace()) {
            FrameError::Incomplete
        } else {
            FrameError::Malformed {
                at: 0,
                what: "no LF before the frame",
            }
        });
    };
    if buf[..start].iter().any(|b| !b.is_ascii_whitespace()) {
        return Err(FrameError::Malformed {
            at: 0,
            what: "bytes before LF",
        });
    }
    let Some(end) = buf[start..]
        .iter()
        .position(|&b| b == b'\r')
        .map(|e| e + start)
    else {
        return Err(FrameError::Incomplete);
    };
    let used = end + 1;
    let f = &buf[start + 1..end];
    if f.is_empty() {
        return Ok((None, used));
    }
    let base = start + 1;
    if f.len() < 9 {
        return Err(FrameError::Malformed {
            at: base,
            what: "frame shorter than its header",
        });
    }
    let said_crc = hex4(&f[0..4], base)?;
    let said_len = usize::from(hex4(&f[4..8], base + 4)?);
    let body = &f[8..];
    let calc = crc16(body);
    if calc != said_crc {
        return Err(FrameError::Crc {
            said: said_crc,
            calc,
        });
    }
    if said_len != body.len() {
        return Err(FrameError::Length {
            said: said_len,
            len: body.len(),
        });
    }
    parse_body(body, base + 8, key).map(|fr| (Some(fr), used))
}

fn parse_body<'k>(
    b: &[u8],
    base: usize,
    key: impl Fn(Option<&str>) -> Option<&'k Key>,
) -> Result<Frame, FrameError> {
    let bad = |at: usize, what| FrameError::Malformed {
        at: base + at,
        what,
    };
    if b.first() != Some(&b'"') {
        return Err(bad(0, "expected '\"' before the ID token"));
    }
    let close = b[1..]
        .iter()
        .position(|&c| c == b'"')
        .map(|p| p + 1)
        .ok_or(bad(0, "ID token not closed"))?;
    let mut tok = &b[1..close];
    let encrypted = tok.first() == Some(&b'*');
    if encrypted {
        tok = &tok[1..];
    }
    if tok.is_empty() || !tok.iter().all(|c| c.is_ascii_uppercase() || *c == b'-') {
        return Err(bad(1, "ID token is not upper-case letters"));
    }
    let id = String::from_utf8_lossy(tok).into_owned();
    let mut i = close + 1;
    let seq_end = (i + 4).min(b.len());
    let seq_b = &b[i..seq_end];
    let seq = (seq_b.len() == 4 && seq_b.iter().all(u8::is_ascii_digit))
        .then(|| seq_b.iter().fold(0u16, |a, d| a * 10 + u16::from(d - b'0')));
    if seq.is_some() {
        i = seq_end;
    }
    let lb = b[i..]
        .iter()
        .position(|&c| c == b'[')
        .map(|p| p + i)
        .ok_or(bad(i, "no '[' before the data"))?;
    // Header fields between the sequence and '[': R…, L…, #…, A… (lenient:
    // anything else is skipped, as pysiaalarm writes `None` for a missing R).
    let (mut receiver, mut line, mut account) = (None, None, None);
    let head = &b[i..lb];
    let mut j = 0;
    while j < head.len() {
        let c = head[j];
        let run = head[j + 1..]
            .iter()
            .take_while(|x| x.is_ascii_hexdigit())
            .count();
        let val = || String::from_utf8_lossy(&head[j + 1..j + 1 + run]).into_owned();
        match c {
            b'R' if run > 0 => receiver = Some(val()),
            b'L' if run > 0 => line = Some(val()),
            b'#' if run > 0 => account = Some(val()),
            _ => {
                j += 1;
                continue;
            }
        }
        j += 1 + run;
    }
    let after = &b[lb + 1..];
    let plain: Vec<u8>;
    let content: &[u8] = if encrypted {
        let hex_len = after.iter().take_while(|c| c.is_ascii_hexdigit()).count();
        let mut bytes = hex::decode(&after[..hex_len]).map_err(|_| FrameError::BadCipherText)?;
        if bytes.is_empty() && hex_len == 0 {
            return Err(FrameError::BadCipherText);
        }
        let k = key(account.as_deref())
            .ok_or_else(|| FrameError::NoKey(account.clone().unwrap_or_default()))?;
        k.decrypt(&mut bytes).ok_or(FrameError::BadCipherText)?;
        // Padding: anything but | [ ], then an optional '|'.
        let p = bytes
            .iter()
            .take_while(|c| !matches!(c, b'|' | b'[' | b']'))
            .count();
        let p = if bytes.get(p) == Some(&b'|') {
            p + 1
        } else {
            p
        };
        plain = bytes[p..].to_vec();
        &plain
    } else {
        after
    };
    // Data up to the first ']' (data never contains brackets).
    let rb = content
        .iter()
        .position(|&c| c == b']')
        .ok_or(bad(lb, "data not closed by ']'"))?;
    let data = String::from_utf8_lossy(&content[..rb]).into_owned();
    let mut rest = &content[rb + 1..];
    let mut extended = Vec::new();
    while rest.first() == Some(&b'[') {
        let e = rest
            .iter()
            .position(|&c| c == b']')
            .ok_or(bad(lb, "extended data not closed by ']'"))?;
        extended.push(String::from_utf8_lossy(&rest[1..e]).into_owned());
        rest = &rest[e + 1..];
    }
    let timestamp = match rest.first() {
        Some(b'_') => Some(String::from_utf8_lossy(&rest[1..]).into_owned()),
        _ => None,
    };
    Ok(Frame {
        encrypted,
        id,
        seq,
        receiver,
        line,
        account,
        data,
        extended,
        timestamp,
    })
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
