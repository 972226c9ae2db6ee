//! The ZNP request/response session: framing in, one outstanding SREQ at a
//! time, SRSP matching with timeouts, AREQ callbacks as events.
//!
//! Pure and clock-free (quinn-proto style): the caller feeds bytes with
//! [`Session::handle_bytes`], calls [`Session::handle_timeout`] at
//! [`Session::next_deadline`], and drains [`Session::poll_transmit`] and
//! [`Session::poll_event`].
//!
//! Invariants:
//! - at most one SREQ is on the wire; the rest wait in FIFO order;
//! - every submitted SREQ produces exactly one [`Event::Response`] (an SRSP,
//!   an RPC error or a timeout);
//! - an SRSP that matches no outstanding SREQ is counted, never delivered
//!   as the answer to a different request.

use std::collections::VecDeque;
use std::time::Duration;

use super::frame::{CmdType, Decoder, DecoderStats, Frame};
use crate::model::Time;

/// Identifies one submitted request.
pub type Token = u64;

/// Why a request got no normal answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("no SRSP to {subsystem:02x}:{cmd:02x} within the timeout")]
    Timeout { subsystem: u8, cmd: u8 },
    #[error("stick refused {subsystem:02x}:{cmd:02x} with MT RPC error {code:#04x}")]
    Rpc { subsystem: u8, cmd: u8, code: u8 },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The answer to request `token`.
    Response {
        token: Token,
        result: Result<Frame, RequestError>,
    },
    /// An AREQ from the stick.
    Callback(Frame),
}

/// Counters for status pages and supervision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub framing: DecoderStats,
    pub timeouts: u64,
    pub rpc_errors: u64,
    pub unmatched_srsp: u64,
}

#[derive(Debug)]
struct Outstanding {
    token: Token,
    subsystem: u8,
    cmd: u8,
    deadline: Time,
}

#[derive(Debug)]
pub struct Session {
    srsp_timeout: Duration,
    /// After this much silence, a half-received frame is declared corrupt.
    stall_timeout: Duration,
    decoder: Decoder,
    waiting: VecDeque<(Token, Frame)>,
    outstanding: Option<Outstanding>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    next_token: Token,
    last_rx: Time,
    stats: SessionStats,
}

/// RES0 subsystem SRSP command 0x00: MT_RPC_ERROR (code, cmd0, cmd1).
const RPC_ERROR: (u8, u8) = (0x00, 0x00);

impl Session {
    pub fn new(srsp_timeout: Duration, stall_timeout: Duration) -> Self {
        Session {
            srsp_timeout,
            stall_timeout,
            decoder: Decoder::new(),
            waiting: VecDeque::new(),
            outstanding: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            next_token: 1,
            last_rx: Time(0),
            stats: SessionStats::default(),
        }
    }

    pub fn stats(&self) -> SessionStats {
        SessionStats {
            framing: self.decoder.stats(),
            ..self.stats
        }
    }

    /// Submits a frame. SREQs are queued behind the outstanding one; AREQs
    /// (e.g. a reset request) go out at once and get a `Response` with an
    /// empty frame immediately, so every token is answered.
    pub fn request(&mut self, frame: Frame, now: Time) -> Token {
        let token = self.next_token;
        self.next_token += 1;
        if frame.ty == CmdType::Sreq {
            self.waiting.push_back((token, frame));
            self.pump(now);
        } else {
            self.transmit.push_back(frame.to_bytes());
            self.events.push_back(Event::Response {
                token,
                result: Ok(Frame::new(frame.ty, frame.subsystem, frame.cmd, Vec::new())),
            });
        }
        token
    }

    /// Requests queued or on the wire.
    pub fn in_flight(&self) -> usize {
        self.waiting.len() + usize::from(self.outstanding.is_some())
    }

    fn pump(&mut self, now: Time) {
        if self.outstanding.is_some() {
            return;
        }
        if let Some((token, f)) = self.waiting.pop_front() {
            self.transmit.push_back(f.to_bytes());
            self.outstanding = Some(Outstanding {
                token,
                subsystem: f.subsystem,
                cmd: f.cmd,
                deadline: now.saturating_add(self.srsp_timeout),
            });
        }
    }

    pub fn handle_bytes(&mut self, bytes: &[u8], now: Time) {
        if bytes.is_empty() {
            return;
        }
        self.last_rx = now;
        self.decoder.push(bytes);
        self.drain_frames(now);
    }

    fn drain_frames(&mut self, now: Time) {
        while let Some(f) = self.decoder.next_frame() {
            self.handle_frame(f, now);
        }
    }

    fn handle_frame(&mut self, f: Frame, now: Time) {
        match f.ty {
            CmdType::Areq => self.events.push_back(Event::Callback(f)),
            CmdType::Sreq => self.stats.unmatched_srsp += 1,
            CmdType::Srsp => {
                let Some(o) = &self.outstanding else {
                    self.stats.unmatched_srsp += 1;
                    return;
                };
                let result = if f.id() == (o.subsystem, o.cmd) {
                    Ok(f)
                } else if f.id() == RPC_ERROR
                    && f.data.get(1).map(|c| c & 0x1f) == Some(o.subsystem)
                    && f.data.get(2) == Some(&o.cmd)
                {
                    self.stats.rpc_errors += 1;
                    Err(RequestError::Rpc {
                        subsystem: o.subsystem,
                        cmd: o.cmd,
                        code: f.data.first().copied().unwrap_or(0),
                    })
                } else {
                    self.stats.unmatched_srsp += 1;
                    return;
                };
                let token = o.token;
                self.outstanding = None;
                self.events.push_back(Event::Response { token, result });
                self.pump(now);
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Time) {
        if let Some(o) = &self.outstanding
            && now >= o.deadline
        {
            self.stats.timeouts += 1;
            let ev = Event::Response {
                token: o.token,
                result: Err(RequestError::Timeout {
                    subsystem: o.subsystem,
                    cmd: o.cmd,
                }),
            };
            self.outstanding = None;
            self.events.push_back(ev);
            self.pump(now);
        }
        if self.decoder.pending() > 0 && now >= self.last_rx.saturating_add(self.stall_timeout) {
            // Keep giving up on stuck headers until a frame decodes or the
            // buffer is empty; each step advances by at least one byte.
            while self.decoder.pending() > 0 {
                self.decoder.skip_stalled();
                self.drain_frames(now);
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Time> {
        let stall =
            (self.decoder.pending() > 0).then(|| self.last_rx.saturating_add(self.stall_timeout));
        match (self.outstanding.as_ref().map(|o| o.deadline), stall) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next bytes to write to the port.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zigbee::sys::{PingReq, PingRsp, VersionReq};
    use crate::zigbee::wire::Msg;

    fn s() -> Session {
        Session::new(Duration::from_millis(1000), Duration::from_millis(50))
    }

    #[test]
    fn sends_one_sreq_at_a_time_and_matches_srsp() {
        let mut s = s();
        let a = s.request(PingReq {}.to_frame(), Time(0));
        let b = s.request(VersionReq {}.to_frame(), Time(0));
        assert_eq!(s.poll_transmit(), Some(PingReq {}.to_frame().to_bytes()));
        assert_eq!(s.poll_transmit(), None, "second SREQ waits");
        s.handle_bytes(
            &PingRsp {
                capabilities: 0x179,
            }
            .to_frame()
            .to_bytes(),
            Time(5),
        );
        let Some(Event::Response {
            token,
            result: Ok(f),
        }) = s.poll_event()
        else {
            panic!()
        };
        assert_eq!(token, a);
        assert_eq!(PingRsp::from_frame(&f).unwrap().capabilities, 0x179);
        assert_eq!(s.poll_transmit(), Some(VersionReq {}.to_frame().to_bytes()));
        s.handle_timeout(Time(1004));
        assert!(s.poll_event().is_none());
        s.handle_timeout(Time(1005));
        assert!(
            matches!(s.poll_event(), Some(Event::Response { token, result: Err(RequestError::Timeout { .. }) }) if token == b)
        );
        assert_eq!(s.stats().timeouts, 1);
    }

    #[test]
    fn srsp_for_another_command_is_not_taken_as_the_answer() {
        let mut s = s();
        s.request(VersionReq {}.to_frame(), Time(0));
        s.handle_bytes(&PingRsp { capabilities: 1 }.to_frame().to_bytes(), Time(1));
        assert!(s.poll_event().is_none());
        assert_eq!(s.stats().unmatched_srsp, 1);
    }

    #[test]
    fn rpc_error_answers_the_outstanding_request() {
        let mut s = s();
        let t = s.request(VersionReq {}.to_frame(), Time(0));
        s.handle_bytes(
            &Frame::new(CmdType::Srsp, 0, 0, vec![0x02, 0x21, 0x02]).to_bytes(),
            Time(1),
        );
        assert!(
            matches!(s.poll_event(), Some(Event::Response { token, result: Err(RequestError::Rpc { code: 2, .. }) }) if token == t)
        );
    }

    #[test]
    fn stalled_corrupt_header_is_skipped_and_the_frame_behind_it_decoded() {
        let mut s = s();
        let mut bytes = vec![0xFE, 0x40, 0x45, 0xC0]; // header claiming 64 bytes, never completed
        bytes.extend(Frame::new(CmdType::Areq, 5, 0xC0, vec![9]).to_bytes());
        s.handle_bytes(&bytes, Time(0));
        assert!(s.poll_event().is_none());
        assert_eq!(s.next_deadline(), Some(Time(50)));
        s.handle_timeout(Time(50));
        assert!(matches!(s.poll_event(), Some(Event::Callback(f)) if f.data == vec![9]));
    }
}
