//! Replies from the receiver (DC-09 §5.5): `ACK`, `NAK`, `DUH` (and `RSP`,
//! an ACK with data), what each means for the message waiting for it, and
//! the timestamp rule of a NAK.
//!
//! - `ACK` with our sequence number: delivered (the receiver has it; a
//!   repeat of the same sequence is recognised there as a duplicate).
//! - `NAK`: refused. It carries the receiver's clock; when ours differs by
//!   more than the tolerance the refusal was the timestamp, so the sender
//!   takes the receiver's time ([`nak_action`]) and sends again at once.
//!   Otherwise (wrong key, unknown account, garbled) it is counted and
//!   retried after the retry interval like a timeout.
//! - `DUH`: the receiver does not understand this message (an event code
//!   it does not know): never repeat it unchanged.
//! - An empty frame (`LF CR`, pysiaalarm's answer to a CRC it could not
//!   match) or no answer: retry.

use super::cipher::Key;
use super::frame::{FrameError, decode, parse_timestamp};
use crate::model::Time;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Ack,
    Nak,
    Duh,
    /// An ACK that carries data for the sender.
    Rsp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: ReplyKind,
    /// The sequence it answers (`None` when not four digits: a NAK says 0000).
    pub seq: Option<u16>,
    pub account: Option<String>,
    pub encrypted: bool,
    /// The receiver's clock, when it sent one (NAKs do).
    pub at: Option<Time>,
}

/// Decodes one reply from the start of `buf`: `Ok((None, used))` is the
/// empty reply. An ID token that is not a reply is `Malformed`.
pub fn decode_reply(buf: &[u8], key: Option<&Key>) -> Result<(Option<Reply>, usize), FrameError> {
    let (frame, used) = decode(buf, |_| key)?;
    let Some(f) = frame else {
        return Ok((None, used));
    };
    let kind = match f.id.as_str() {
        "ACK" => ReplyKind::Ack,
        "NAK" => ReplyKind::Nak,
        "DUH" => ReplyKind::Duh,
        "RSP" => ReplyKind::Rsp,
        _ => {
            return Err(FrameError::Malformed {
                at: 1,
                what: "not a reply (ACK, NAK, DUH, RSP)",
            });
        }
    };
    let at = f
        .timestamp
        .as_deref()
        .and_then(|t| parse_timestamp(t.as_bytes()));
    Ok((
        Some(Reply {
            kind,
            seq: f.seq,
            account: f.account,
            encrypted: f.encrypted,
            at,
        }),
        used,
    ))
}

/// What to do about a NAK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NakAction {
    /// Our clock is off by this many ms (receiver − ours): add it to every
    /// timestamp from now on and send again at once.
    Resync(i64),
    /// Not the clock: a refusal (wrong key, unknown account, garbled).
    Refused,
}

/// Decides a NAK by its timestamp: skew beyond `tolerance_ms` is a clock
/// problem to correct (DC-09 §5.5.2.1), anything else a refusal.
pub fn nak_action(
    nak: &Reply,
    our_now: Time,
    current_offset_ms: i64,
    tolerance_ms: i64,
) -> NakAction {
    match nak.at {
        Some(theirs) => {
            let ours = our_now.as_millis().saturating_add(current_offset_ms);
            let skew = theirs.as_millis().saturating_sub(ours);
            if skew.abs() > tolerance_ms {
                NakAction::Resync(current_offset_ms.saturating_add(skew))
            } else {
                NakAction::Refused
            }
        }
        None => NakAction::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pysiaalarms_ack_with_none_for_the_receiver_is_an_ack_of_that_seq() {
        // Verbatim reply recorded from pysiaalarm 3.2.2 (see TOOLCHAIN.md).
        let body = br#""ACK"0001NoneL0#AAA[]"#;
        let mut buf =
            format!("\n{:04X}{:04X}", super::super::crc::crc16(body), body.len()).into_bytes();
        buf.extend_from_slice(body);
        buf.push(b'\r');
        let (r, used) = decode_reply(&buf, None).unwrap();
        let r = r.unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(
            (r.kind, r.seq, r.account.as_deref()),
            (ReplyKind::Ack, Some(1), Some("AAA"))
        );
    }

    #[test]
    fn a_nak_carries_the_receivers_clock_and_a_large_skew_is_resynced() {
        let body = br#""NAK"0000R0L0A0[]_10:00:30,12-04-2026"#;
        let mut buf =
            format!("\n{:04X}{:04X}", super::super::crc::crc16(body), body.len()).into_bytes();
        buf.extend_from_slice(body);
        buf.push(b'\r');
        let r = decode_reply(&buf, None).unwrap().0.unwrap();
        assert_eq!(r.kind, ReplyKind::Nak);
        let theirs = Time::parse_rfc3339("2026-12-04T10:00:30Z").unwrap();
        assert_eq!(r.at, Some(theirs));
        let ours = Time::parse_rfc3339("2026-12-04T09:00:30Z").unwrap();
        assert_eq!(
            nak_action(&r, ours, 0, 20_000),
            NakAction::Resync(3_600_000)
        );
        // Same clock: the NAK was a refusal.
        assert_eq!(nak_action(&r, theirs, 0, 20_000), NakAction::Refused);
        // Already corrected: refusal too.
        assert_eq!(nak_action(&r, ours, 3_600_000, 20_000), NakAction::Refused);
    }

    #[test]
    fn the_empty_reply_is_no_reply_and_other_tokens_are_refused() {
        assert_eq!(decode_reply(b"\n\r", None).unwrap(), (None, 2));
        let body = br#""ADM-CID"0001R0L0#AAA[]"#;
        let mut buf =
            format!("\n{:04X}{:04X}", super::super::crc::crc16(body), body.len()).into_bytes();
        buf.extend_from_slice(body);
        buf.push(b'\r');
        assert!(matches!(
            decode_reply(&buf, None),
            Err(FrameError::Malformed { .. })
        ));
        assert_eq!(decode_reply(b"\n802E00", None), Err(FrameError::Incomplete));
    }
}
