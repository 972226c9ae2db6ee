//! AT modem output: line framing and typed lines for both modem dialects.
//!
//! Owns: turning the modem's byte stream into lines ([`LineFramer`]) and each
//! line into an [`AtLine`] ([`parse_rak3172`] for RAKwireless RUI3 firmware,
//! [`parse_wio_e5`] for Seeed Wio-E5 / LoRa-E5 firmware).
//!
//! Invariants:
//! - pure: no I/O, no clock; any byte sequence is accepted without panicking
//!   (fuzzed by `tests/fuzz/fuzz_targets/lorawan_at.rs`);
//! - a line longer than [`MAX_LINE`] is cut and reported as
//!   [`Framed::Overlong`] so a babbling modem cannot grow memory;
//! - unknown lines are kept as [`AtLine::Other`], never dropped silently, so
//!   the driver can log them.

use std::fmt;

/// Longest line kept. RUI3 downlink events carry up to 242 payload bytes as
/// hex (484 chars) plus ~40 chars of header.
pub const MAX_LINE: usize = 640;

/// What the framer yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    /// One complete line, without CR/LF, lossily decoded as UTF-8.
    Line(String),
    /// A line that exceeded [`MAX_LINE`]; its first bytes are kept.
    Overlong(String),
}

/// Splits modem output on CR and/or LF. Empty lines are skipped (both
/// dialects frame status codes with blank lines).
#[derive(Debug, Default)]
pub struct LineFramer {
    buf: Vec<u8>,
    overlong: bool,
}

impl LineFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the lines they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Framed> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                if self.overlong {
                    out.push(Framed::Overlong(String::from_utf8_lossy(&self.buf).into()));
                } else if !self.buf.is_empty() {
                    let s = String::from_utf8_lossy(&self.buf).trim().to_string();
                    if !s.is_empty() {
                        out.push(Framed::Line(s));
                    }
                }
                self.buf.clear();
                self.overlong = false;
            } else if self.buf.len() < MAX_LINE {
                self.buf.push(b);
            } else {
                self.overlong = true;
            }
        }
        out
    }

    /// Bytes held for an unfinished line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Ends the unfinished line as if a line ending had come: the caller
    /// calls it when the modem has been quiet for a while, so a reply that
    /// lost its CR LF (line noise) is read now rather than glued to the next.
    pub fn flush(&mut self) -> Option<Framed> {
        if self.buf.is_empty() {
            self.overlong = false;
            return None;
        }
        let f = self.push(b"\n");
        f.into_iter().next()
    }
}

/// Splits a RUI3 line that holds several replies glued together (one lost
/// its line ending): before every `+EVT:`, `AT_` and `AT+` after the
/// start, and after a leading `OK` or before a trailing `OK` (but not
/// `…_OK`, which ends `+EVT:SEND_CONFIRMED_OK`). Hex payloads never hold
/// these letters, so a clean line always comes back whole.
pub fn split_rak3172(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("OK")
            && !r.is_empty()
        {
            out.push("OK");
            rest = r.trim_start();
            continue;
        }
        let cut = ["+EVT:", "AT_", "AT+"]
            .iter()
            .filter_map(|t| rest.get(1..)?.find(t).map(|i| i + 1))
            .min();
        let (head, tail) = match cut {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        match head.strip_suffix("OK") {
            Some(h) if !h.is_empty() && !h.ends_with('_') => {
                out.push(h.trim_end());
                out.push("OK");
            }
            _ => out.push(head.trim_end()),
        }
        rest = tail;
    }
    out.retain(|l| !l.is_empty());
    out
}

/// Splits a Wio-E5 line that holds several replies glued together: every
/// reply starts with `+NAME:` (upper-case letters), which never occurs
/// inside one (payloads are quoted hex, EUIs use `:` without `+`).
pub fn split_wio_e5(line: &str) -> Vec<&str> {
    let b = line.as_bytes();
    let mut starts = vec![0];
    for i in 1..b.len() {
        if b[i] != b'+' {
            continue;
        }
        let name = b[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_uppercase())
            .count();
        if name > 0 && b.get(i + 1 + name) == Some(&b':') {
            starts.push(i);
        }
    }
    starts.push(b.len());
    starts
        .windows(2)
        .filter_map(|w| line.get(w[0]..w[1]))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Why the modem refused or failed a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtError {
    /// The modem is busy with a previous transaction (RUI3 `AT_BUSY_ERROR`,
    /// Wio-E5 `LoRaWAN modem is busy`).
    Busy,
    /// Not joined yet (`AT_NO_NETWORK_JOINED`, `Please join network first`).
    NotJoined,
    /// Duty cycle forbids sending now; Wio-E5 says for how long.
    DutyCycle { wait_ms: Option<u64> },
    /// No channel free (all in off time).
    NoFreeChannel,
    /// The data rate cannot carry this payload or is invalid.
    DataRate,
    /// Payload too long for the current data rate.
    Length,
    /// A parameter was refused (`AT_PARAM_ERROR`, `+AT: ERROR(-1)`…).
    Param,
    /// Anything else, with the modem's words.
    Other(String),
}

impl fmt::Display for AtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AtError::Busy => f.write_str("modem busy"),
            AtError::NotJoined => f.write_str("not joined"),
            AtError::DutyCycle { wait_ms: Some(ms) } => write!(f, "duty cycle: wait {ms} ms"),
            AtError::DutyCycle { wait_ms: None } => f.write_str("duty cycle restricted"),
            AtError::NoFreeChannel => f.write_str("no free channel"),
            AtError::DataRate => f.write_str("data rate error"),
            AtError::Length => f.write_str("payload too long for data rate"),
            AtError::Param => f.write_str("parameter refused"),
            AtError::Other(s) => write!(f, "modem error: {s}"),
        }
    }
}

/// A downlink delivered by the modem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxFrame {
    pub port: u8,
    pub data: Vec<u8>,
    pub rssi: Option<i16>,
    pub snr: Option<i16>,
}

/// One typed line of modem output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtLine {
    /// The command was accepted (`OK`, `+MODE: LWOTAA`, `+JOIN: Start`…).
    Ok,
    /// A query answer: `AT+DEVEUI=…` (RUI3) or `+ID: DevEui, …` (Wio-E5).
    Value {
        key: String,
        value: String,
    },
    /// The command failed.
    Error(AtError),
    Joined,
    JoinFailed(String),
    /// An unconfirmed uplink left the radio (RUI3 `+EVT:TX_DONE`).
    TxDone,
    /// A confirmed uplink was acknowledged.
    Acked,
    /// A confirmed uplink got no acknowledgement (RUI3 `SEND_CONFIRMED_FAILED`).
    NotAcked,
    Downlink(RxFrame),
    /// Wio-E5 end of a transaction (`+MSGHEX: Done`, `+JOIN: Done`), naming the command.
    Done(String),
    /// Output printed at boot or after a reset.
    Boot,
    /// A line this parser does not give meaning to.
    Other(String),
}

/// Parses one RAK3172 RUI3 line.
pub fn parse_rak3172(line: &str) -> AtLine {
    let l = line.trim();
    match l {
        "OK" => return AtLine::Ok,
        "AT_BUSY_ERROR" => return AtLine::Error(AtError::Busy),
        "AT_NO_NETWORK_JOINED" => return AtLine::Error(AtError::NotJoined),
        "AT_PARAM_ERROR" => return AtLine::Error(AtError::Param),
        "AT_DUTYCYCLE_RESTRICTED" => return AtLine::Error(AtError::DutyCycle { wait_ms: None }),
        "AT_NO_CLASSB_ENABLE"
        | "AT_ERROR"
        | "AT_TEST_PARAM_OVERFLOW"
        | "AT_RX_ERROR"
        | "AT_COMMAND_NOT_FOUND"
        | "AT_MODE_NO_SUPPORT"
        | "AT_LENGTH_ERROR" => {
            return AtLine::Error(match l {
                "AT_LENGTH_ERROR" => AtError::Length,
                _ => AtError::Other(l.to_string()),
            });
        }
        _ => {}
    }
    if let Some(ev) = l.strip_prefix("+EVT:") {
        return parse_rak_event(ev);
    }
    if l.starts_with("RAKwireless") || l.starts_with("Current Work Mode") || l.starts_with("----") {
        return AtLine::Boot;
    }
    // Query answers echo the command: `AT+DEVEUI=ac1f09fffe000001`.
    if let Some(rest) = l.strip_prefix("AT+")
        && let Some((k, v)) = rest.split_once('=')
    {
        return AtLine::Value {
            key: k.to_string(),
            value: v.to_string(),
        };
    }
    AtLine::Other(l.to_string())
}

fn parse_rak_event(ev: &str) -> AtLine {
    match ev {
        "JOINED" => AtLine::Joined,
        "TX_DONE" => AtLine::TxDone,
        "SEND_CONFIRMED_OK" => AtLine::Acked,
        _ if ev.starts_with("SEND_CONFIRMED_FAILED") => AtLine::NotAcked,
        _ if ev.starts_with("JOIN_FAILED") => {
            AtLine::JoinFailed(ev.trim_start_matches("JOIN_FAILED_").to_string())
        }
        _ if ev.starts_with("RX_") => parse_rak_rx(ev).unwrap_or(AtLine::Other(ev.to_string())),
        _ => AtLine::Other(ev.to_string()),
    }
}

/// `RX_1:-70:8:UNICAST:2:1234` (window, RSSI, SNR, kind, port, hex payload).
fn parse_rak_rx(ev: &str) -> Option<AtLine> {
    let mut it = ev.split(':');
    let _window = it.next()?;
    let rssi = it.next()?.parse().ok();
    let snr = it.next()?.parse().ok();
    let _cast = it.next()?;
    let port = it.next()?.parse().ok()?;
    let data = hex::decode(it.next().unwrap_or("")).ok()?;
    if it.next().is_some() {
        return None;
    }
    Some(AtLine::Downlink(RxFrame {
        port,
        data,
        rssi,
        snr,
    }))
}

/// Parses one Seeed Wio-E5 / LoRa-E5 line.
pub fn parse_wio_e5(line: &str) -> AtLine {
    let l = line.trim();
    let Some(rest) = l.strip_prefix('+') else {
        return AtLine::Other(l.to_string());
    };
    let Some((cmd, body)) = rest.split_once(':') else {
        return AtLine::Other(l.to_string());
    };
    let body = body.trim();
    if body.starts_with("ERROR(") {
        // `+AT: ERROR(-1)` unknown command, -2 parameter, -10 busy ...
        return AtLine::Error(match body {
            "ERROR(-10)" => AtError::Busy,
            "ERROR(-1)" | "ERROR(-2)" | "ERROR(-3)" => AtError::Param,
            _ => AtError::Other(body.to_string()),
        });
    }
    match cmd {
        "AT" | "RESET" if body == "OK" => AtLine::Ok,
        "JOIN" => match body {
            "Start" | "NORMAL" | "FORCE" => AtLine::Ok,
            "Network joined" | "Joined already" => AtLine::Joined,
            "Done" => AtLine::Done(cmd.to_string()),
            _ if body.starts_with("Join failed") => AtLine::JoinFailed(body.to_string()),
            _ => wio_common(cmd, body).unwrap_or(AtLine::Other(l.to_string())),
        },
        "MSGHEX" | "CMSGHEX" | "MSG" | "CMSG" => match body {
            "Start" => AtLine::Ok,
            "Done" => AtLine::Done(cmd.to_string()),
            "ACK Received" => AtLine::Acked,
            _ if body.starts_with("PORT:") => {
                parse_wio_rx(body).unwrap_or(AtLine::Other(l.to_string()))
            }
            _ => wio_common(cmd, body).unwrap_or(AtLine::Other(l.to_string())),
        },
        "ID" | "KEY" | "MODE" | "DR" | "ADR" | "PORT" | "CLASS" | "VER" | "LW" | "POWER"
        | "RETRY" | "REPT" => match body.split_once(',') {
            Some((k, v)) => AtLine::Value {
                key: format!("{cmd}.{}", k.trim()),
                value: v.trim().to_string(),
            },
            None if body.contains("ERROR") => AtLine::Error(AtError::Other(body.to_string())),
            None => AtLine::Value {
                key: cmd.to_string(),
                value: body.to_string(),
            },
        },
        _ if body.starts_with("LoRaWAN modem is busy") => AtLine::Error(AtError::Busy),
        _ => AtLine::Other(l.to_string()),
    }
}

fn wio_common(_cmd: &str, body: &str) -> Option<AtLine> {
    let e = if body.starts_with("No free channel") {
        AtError::NoFreeChannel
    } else if body.starts_with("DR error") {
        AtError::DataRate
    } else if body.starts_with("Please join network first") {
        AtError::NotJoined
    } else if body.starts_with("LoRaWAN modem is busy") {
        AtError::Busy
    } else if body.starts_with("Length error") {
        AtError::Length
    } else if let Some(r) = body.strip_prefix("No band in ") {
        // `No band in 13469ms`: duty cycle off time left.
        let ms = r.trim_end_matches("ms").trim().parse().ok();
        AtError::DutyCycle { wait_ms: ms }
    } else if body.starts_with("Duty cycle") || body.starts_with("DutyCycle") {
        AtError::DutyCycle { wait_ms: None }
    } else if body.starts_with("Wait ACK")
        || body.starts_with("FPENDING")
        || body.starts_with("RXWIN")
        || body.starts_with("TX ")
        || body.starts_with("NetID")
    {
        return Some(AtLine::Other(body.to_string()));
    } else {
        return None;
    };
    Some(AtLine::Error(e))
}

/// `PORT: 1; RX: "12AB"` (RSSI/SNR come on a separate RXWIN line).
fn parse_wio_rx(body: &str) -> Option<AtLine> {
    let (p, rx) = body.split_once(';')?;
    let port = p.trim().strip_prefix("PORT:")?.trim().parse().ok()?;
    let rx = rx.trim().strip_prefix("RX:")?.trim();
    let hex = rx.strip_prefix('"')?.strip_suffix('"')?;
    let compact: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
    Some(AtLine::Downlink(RxFrame {
        port,
        data: hex::decode(&compact).ok()?,
        rssi: None,
        snr: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(f: Vec<Framed>) -> Vec<String> {
        f.into_iter()
            .map(|x| match x {
                Framed::Line(s) | Framed::Overlong(s) => s,
            })
            .collect()
    }

    #[test]
    fn framer_splits_crlf_and_skips_blank_status_padding() {
        let mut f = LineFramer::new();
        assert_eq!(lines(f.push(b"\r\nOK\r")), vec!["OK"]);
        assert_eq!(lines(f.push(b"\n+EVT:JOI")), Vec::<String>::new());
        assert_eq!(f.pending(), 8);
        assert_eq!(lines(f.push(b"NED\r\n")), vec!["+EVT:JOINED"]);
    }

    #[test]
    fn framer_cuts_an_endless_line_and_recovers_on_the_next() {
        let mut f = LineFramer::new();
        let junk = vec![b'x'; MAX_LINE * 3];
        assert!(f.push(&junk).is_empty());
        assert_eq!(f.pending(), MAX_LINE);
        let out = f.push(b"\nOK\n");
        assert!(matches!(&out[0], Framed::Overlong(s) if s.len() == MAX_LINE));
        assert_eq!(out[1], Framed::Line("OK".into()));
    }

    #[test]
    fn framer_flush_ends_a_reply_that_lost_its_line_ending() {
        let mut f = LineFramer::new();
        assert!(f.push(b"+EVT:TX_DONE").is_empty());
        assert_eq!(f.flush(), Some(Framed::Line("+EVT:TX_DONE".into())));
        assert_eq!(f.flush(), None);
        assert_eq!(lines(f.push(b"OK\r\n")), vec!["OK"]);
    }

    #[test]
    fn glued_rak_replies_are_split_and_clean_ones_left_whole() {
        assert_eq!(split_rak3172("OK+EVT:TX_DONE"), vec!["OK", "+EVT:TX_DONE"]);
        assert_eq!(split_rak3172("OKOK"), vec!["OK", "OK"]);
        assert_eq!(split_rak3172("AT+NJS=1OK"), vec!["AT+NJS=1", "OK"]);
        assert_eq!(
            split_rak3172("OKAT_BUSY_ERROR"),
            vec!["OK", "AT_BUSY_ERROR"]
        );
        assert_eq!(
            split_rak3172("+EVT:SEND_CONFIRMED_OK"),
            vec!["+EVT:SEND_CONFIRMED_OK"]
        );
        assert_eq!(
            split_rak3172("+EVT:RX_1:-70:8:UNICAST:2:3012AB+EVT:SEND_CONFIRMED_OK"),
            vec!["+EVT:RX_1:-70:8:UNICAST:2:3012AB", "+EVT:SEND_CONFIRMED_OK"]
        );
        assert_eq!(
            split_rak3172("AT+DEVEUI=AC1F09FFFE000001"),
            vec!["AT+DEVEUI=AC1F09FFFE000001"]
        );
    }

    #[test]
    fn glued_wio_replies_are_split_at_each_plus_name_colon() {
        assert_eq!(
            split_wio_e5("+MSGHEX: Start+MSGHEX: Done"),
            vec!["+MSGHEX: Start", "+MSGHEX: Done"]
        );
        assert_eq!(
            split_wio_e5("+ID: DevEui, 2C:F7:F1:20:24:90:03:63"),
            vec!["+ID: DevEui, 2C:F7:F1:20:24:90:03:63"]
        );
        assert_eq!(
            split_wio_e5("+CMSGHEX: PORT: 5; RX: \"14\"+CMSGHEX: Done"),
            vec!["+CMSGHEX: PORT: 5; RX: \"14\"", "+CMSGHEX: Done"]
        );
    }

    #[test]
    fn rak_status_codes_and_events_are_typed() {
        assert_eq!(parse_rak3172("OK"), AtLine::Ok);
        assert_eq!(parse_rak3172("AT_BUSY_ERROR"), AtLine::Error(AtError::Busy));
        assert_eq!(
            parse_rak3172("AT_NO_NETWORK_JOINED"),
            AtLine::Error(AtError::NotJoined)
        );
        assert_eq!(parse_rak3172("+EVT:JOINED"), AtLine::Joined);
        assert_eq!(
            parse_rak3172("+EVT:JOIN_FAILED_RX_TIMEOUT"),
            AtLine::JoinFailed("RX_TIMEOUT".into())
        );
        assert_eq!(parse_rak3172("+EVT:TX_DONE"), AtLine::TxDone);
        assert_eq!(parse_rak3172("+EVT:SEND_CONFIRMED_OK"), AtLine::Acked);
        assert_eq!(
            parse_rak3172("+EVT:SEND_CONFIRMED_FAILED(4)"),
            AtLine::NotAcked
        );
        assert_eq!(
            parse_rak3172("AT+DEVEUI=ac1f09fffe000001"),
            AtLine::Value {
                key: "DEVEUI".into(),
                value: "ac1f09fffe000001".into()
            }
        );
        assert_eq!(parse_rak3172("RAKwireless RAK3172 Example"), AtLine::Boot);
    }

    #[test]
    fn rak_downlink_event_carries_port_payload_and_signal() {
        assert_eq!(
            parse_rak3172("+EVT:RX_1:-70:8:UNICAST:2:3012AB"),
            AtLine::Downlink(RxFrame {
                port: 2,
                data: vec![0x30, 0x12, 0xab],
                rssi: Some(-70),
                snr: Some(8)
            })
        );
        // An empty downlink (ack only) has no payload field content.
        assert!(matches!(
            parse_rak3172("+EVT:RX_2:-99:-3:UNICAST:0:"),
            AtLine::Downlink(RxFrame { port: 0, ref data, .. }) if data.is_empty()
        ));
        assert!(matches!(
            parse_rak3172("+EVT:RX_1:-70:8:UNICAST:2:3G"),
            AtLine::Other(_)
        ));
    }

    #[test]
    fn wio_join_send_and_error_lines_are_typed() {
        assert_eq!(parse_wio_e5("+AT: OK"), AtLine::Ok);
        assert_eq!(parse_wio_e5("+JOIN: Start"), AtLine::Ok);
        assert_eq!(parse_wio_e5("+JOIN: Network joined"), AtLine::Joined);
        assert_eq!(
            parse_wio_e5("+JOIN: Join failed"),
            AtLine::JoinFailed("Join failed".into())
        );
        assert_eq!(parse_wio_e5("+JOIN: Done"), AtLine::Done("JOIN".into()));
        assert_eq!(parse_wio_e5("+CMSGHEX: ACK Received"), AtLine::Acked);
        assert_eq!(parse_wio_e5("+MSGHEX: Done"), AtLine::Done("MSGHEX".into()));
        assert_eq!(
            parse_wio_e5("+MSGHEX: No free channel"),
            AtLine::Error(AtError::NoFreeChannel)
        );
        assert_eq!(
            parse_wio_e5("+CMSGHEX: No band in 13469ms"),
            AtLine::Error(AtError::DutyCycle {
                wait_ms: Some(13469)
            })
        );
        assert_eq!(
            parse_wio_e5("+MSGHEX: Please join network first"),
            AtLine::Error(AtError::NotJoined)
        );
        assert_eq!(
            parse_wio_e5("+MSGHEX: DR error"),
            AtLine::Error(AtError::DataRate)
        );
        assert_eq!(
            parse_wio_e5("+AT: ERROR(-1)"),
            AtLine::Error(AtError::Param)
        );
        assert_eq!(
            parse_wio_e5("+ID: DevEui, 2C:F7:F1:20:24:90:03:63"),
            AtLine::Value {
                key: "ID.DevEui".into(),
                value: "2C:F7:F1:20:24:90:03:63".into()
            }
        );
    }

    #[test]
    fn wio_downlink_line_decodes_spaced_or_compact_hex() {
        assert_eq!(
            parse_wio_e5("+CMSGHEX: PORT: 15; RX: \"48656C6C6F\""),
            AtLine::Downlink(RxFrame {
                port: 15,
                data: b"Hello".to_vec(),
                rssi: None,
                snr: None
            })
        );
        assert!(matches!(
            parse_wio_e5("+MSGHEX: PORT: 5; RX: \"14 54 54\""),
            AtLine::Downlink(RxFrame { port: 5, .. })
        ));
    }

    proptest! {
        #[test]
        fn framing_does_not_depend_on_how_bytes_are_chunked(
            data in proptest::collection::vec(any::<u8>(), 0..400),
            cut in 0usize..400,
        ) {
            let mut a = LineFramer::new();
            let whole = a.push(&data);
            let mut b = LineFramer::new();
            let cut = cut.min(data.len());
            let mut parts = b.push(&data[..cut]);
            parts.extend(b.push(&data[cut..]));
            prop_assert_eq!(whole, parts);
        }

        #[test]
        fn parsers_accept_any_text(s in ".{0,200}") {
            let _ = parse_rak3172(&s);
            let _ = parse_wio_e5(&s);
            let _ = split_rak3172(&s);
            let _ = split_wio_e5(&s);
        }
    }
}
