//! Coordinator start-up, as Z-Stack 3.x hosts do it: ping, version, our
//! IEEE and ZDO state, read the network from NV; form a network (NV writes +
//! BDB formation) when the stick is blank or holds a different network than
//! the one we stored; start it (`ZDO_STARTUP_FROM_APP`); register our
//! endpoints. Pure: driven by the session's responses and callbacks.
//!
//! Invariants: at most one request is outstanding; every wait has a
//! deadline; the outcome is taken once via [`Startup::take_result`].
//! The random material for a new network is passed in (`fresh`), never drawn here.

use std::collections::VecDeque;
use std::time::Duration;

use super::af::{self, RegisterReq};
use super::app_cnf::{
    self, BdbCommissioningNotification, BdbSetChannelReq, BdbStartCommissioningReq,
};
use super::frame::Frame;
use super::network::NetworkParams;
use super::session::RequestError;
use super::sys::{
    self, NvItemInitReq, NvReadReq, NvReadRsp, NvWriteReq, PingReq, ResetInd, ResetReq, VersionReq,
    VersionRsp, nv,
};
use super::util::{UtilGetDeviceInfoReq, UtilGetDeviceInfoRsp};
use super::wire::{Msg, PayloadError};
use super::zdo::{self, StartupFromAppReq, StateChangeInd};
use crate::model::Time;

#[derive(Clone, Debug)]
pub struct StartupConfig {
    /// Soft-reset the stick first (used when recovering a link).
    pub reset_first: bool,
    /// How long to wait for a callback (reset indication, formation, start).
    pub wait_timeout: Duration,
    pub endpoints: Vec<RegisterReq>,
}

/// What a successful start-up yields.
#[derive(Clone, Debug, PartialEq)]
pub struct Started {
    pub params: NetworkParams,
    pub coordinator_ieee: u64,
    pub version: VersionRsp,
    /// A network was formed (or restored from `stored`) during this start-up.
    pub formed: bool,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StartupError {
    #[error("start-up step {step}: {err}")]
    Request {
        step: &'static str,
        err: RequestError,
    },
    #[error("start-up step {step}: stick answered status {status:#04x}")]
    Status { step: &'static str, status: u8 },
    #[error("start-up step {step}: {err}")]
    Payload {
        step: &'static str,
        err: PayloadError,
    },
    #[error("start-up: no {what} within the timeout")]
    Timeout { what: &'static str },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Reset,
    Ping,
    Version,
    DevInfo,
    ReadConfigured,
    ReadNv(u16),
    Write(u16),
    InitMarker,
    SetChannel,
    Commission,
    StartupFromApp,
    Register,
}

impl Tag {
    fn name(self) -> &'static str {
        match self {
            Tag::Reset => "reset",
            Tag::Ping => "ping",
            Tag::Version => "version",
            Tag::DevInfo => "device info",
            Tag::ReadConfigured => "read configured marker",
            Tag::ReadNv(_) => "read NV item",
            Tag::Write(_) => "write NV item",
            Tag::InitMarker => "create configured marker",
            Tag::SetChannel => "set channel",
            Tag::Commission => "start formation",
            Tag::StartupFromApp => "startup from app",
            Tag::Register => "register endpoint",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// SYS_RESET_IND; optional (a stick that does not announce resets still works).
    ResetInd,
    Formed,
    CoordUp,
}

#[derive(Debug)]
enum Op {
    Send(Tag, Frame),
    Wait(Wait),
}

#[derive(Debug)]
enum State {
    Idle,
    Sent(Tag),
    Waiting(Wait, Time),
    Done,
}

#[derive(Debug)]
pub struct Startup {
    cfg: StartupConfig,
    stored: Option<NetworkParams>,
    fresh: NetworkParams,
    ops: VecDeque<Op>,
    state: State,
    coord_up: bool,
    formed_seen: bool,
    reset_seen: bool,
    version: VersionRsp,
    ieee: u64,
    current: NetworkParams,
    formed: bool,
    result: Option<Result<Started, StartupError>>,
}

fn nv_write(id: u16, value: Vec<u8>) -> Op {
    Op::Send(
        Tag::Write(id),
        NvWriteReq {
            id,
            offset: 0,
            value,
        }
        .to_frame(),
    )
}

impl Startup {
    pub fn new(cfg: StartupConfig, stored: Option<NetworkParams>, fresh: NetworkParams) -> Self {
        let mut ops = VecDeque::new();
        if cfg.reset_first {
            ops.push_back(Op::Send(Tag::Reset, ResetReq { kind: 1 }.to_frame()));
            ops.push_back(Op::Wait(Wait::ResetInd));
        }
        ops.push_back(Op::Send(Tag::Ping, PingReq {}.to_frame()));
        ops.push_back(Op::Send(Tag::Version, VersionReq {}.to_frame()));
        ops.push_back(Op::Send(Tag::DevInfo, UtilGetDeviceInfoReq {}.to_frame()));
        ops.push_back(Op::Send(
            Tag::ReadConfigured,
            NvReadReq {
                id: nv::HAS_CONFIGURED_ZSTACK3,
                offset: 0,
            }
            .to_frame(),
        ));
        let current = NetworkParams {
            devices: Vec::new(),
            ..fresh.clone()
        };
        Startup {
            cfg,
            stored,
            fresh,
            ops,
            state: State::Idle,
            coord_up: false,
            formed_seen: false,
            reset_seen: false,
            version: VersionRsp::default(),
            ieee: 0,
            current,
            formed: false,
            result: None,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The outcome, once (then `None`).
    pub fn take_result(&mut self) -> Option<Result<Started, StartupError>> {
        self.result.take()
    }

    fn fail(&mut self, e: StartupError) {
        self.state = State::Done;
        self.ops.clear();
        self.result = Some(Err(e));
    }

    /// The next request to submit, if start-up is idle and has one.
    pub fn poll_request(&mut self, now: Time) -> Option<Frame> {
        loop {
            if !matches!(self.state, State::Idle) {
                return None;
            }
            match self.ops.pop_front() {
                None => {
                    self.finish();
                    return None;
                }
                Some(Op::Send(tag, f)) => {
                    if tag == Tag::Reset {
                        self.reset_seen = false;
                        self.coord_up = false;
                    }
                    self.state = State::Sent(tag);
                    return Some(f);
                }
                Some(Op::Wait(w)) => {
                    if !self.satisfied(w) {
                        self.state = State::Waiting(w, now.saturating_add(self.cfg.wait_timeout));
                    }
                }
            }
        }
    }

    fn satisfied(&self, w: Wait) -> bool {
        match w {
            Wait::ResetInd => self.reset_seen,
            Wait::Formed => self.formed_seen,
            Wait::CoordUp => self.coord_up,
        }
    }

    fn finish(&mut self) {
        let mut params = self.current.clone();
        if let Some(s) = &self.stored
            && s.same_network(&params)
        {
            params.devices = s.devices.clone();
        }
        self.state = State::Done;
        self.result = Some(Ok(Started {
            params,
            coordinator_ieee: self.ieee,
            version: self.version.clone(),
            formed: self.formed,
        }));
    }

    pub fn handle_callback(&mut self, f: &Frame) {
        if ResetInd::matches(f) {
            self.reset_seen = true;
            self.coord_up = false;
        } else if let Ok(s) = StateChangeInd::from_frame(f) {
            if s.state == zdo::state::ZB_COORD {
                self.coord_up = true;
                self.formed_seen = true;
            }
        } else if let Ok(n) = BdbCommissioningNotification::from_frame(f)
            && n.mode & app_cnf::mode::FORMATION != 0
            && n.status == app_cnf::BDB_SUCCESS
        {
            self.formed_seen = true;
        }
        if let State::Waiting(w, _) = self.state
            && self.satisfied(w)
        {
            self.state = State::Idle;
        }
    }

    pub fn handle_timeout(&mut self, now: Time) {
        if let State::Waiting(w, deadline) = self.state
            && now >= deadline
        {
            match w {
                Wait::ResetInd => self.state = State::Idle,
                Wait::Formed => self.fail(StartupError::Timeout {
                    what: "network formation",
                }),
                Wait::CoordUp => self.fail(StartupError::Timeout {
                    what: "coordinator state",
                }),
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Time> {
        match self.state {
            State::Waiting(_, d) => Some(d),
            _ => None,
        }
    }

    pub fn handle_response(&mut self, result: Result<Frame, RequestError>) {
        let State::Sent(tag) = self.state else {
            return;
        };
        let step = tag.name();
        let f = match result {
            Ok(f) => f,
            Err(err) => return self.fail(StartupError::Request { step, err }),
        };
        self.state = State::Idle;
        if let Err(e) = self.on_response(tag, &f) {
            self.fail(e);
        }
    }

    fn on_response(&mut self, tag: Tag, f: &Frame) -> Result<(), StartupError> {
        let step = tag.name();
        let payload = |err| StartupError::Payload { step, err };
        let status_of = |f: &Frame| f.data.first().copied().unwrap_or(0xFF);
        match tag {
            Tag::Reset | Tag::Ping => {}
            Tag::Version => self.version = VersionRsp::from_frame(f).map_err(payload)?,
            Tag::DevInfo => {
                let d = UtilGetDeviceInfoRsp::from_frame(f).map_err(payload)?;
                self.ieee = d.ieee;
                if d.device_state == zdo::state::ZB_COORD {
                    self.coord_up = true;
                }
            }
            Tag::ReadConfigured => {
                let r = NvReadRsp::from_frame(f).map_err(payload)?;
                if r.status == 0 && r.value.first() == Some(&nv::CONFIGURED_MARKER) {
                    for id in [nv::PANID, nv::EXTENDED_PAN_ID, nv::CHANLIST, nv::PRECFGKEY] {
                        self.ops.push_back(Op::Send(
                            Tag::ReadNv(id),
                            NvReadReq { id, offset: 0 }.to_frame(),
                        ));
                    }
                } else {
                    let p = self.stored.clone().unwrap_or_else(|| self.fresh.clone());
                    self.plan_form(p);
                }
            }
            Tag::ReadNv(id) => {
                let r = NvReadRsp::from_frame(f).map_err(payload)?;
                if r.status != 0 {
                    return Err(StartupError::Status {
                        step,
                        status: r.status,
                    });
                }
                let v = &r.value;
                let le = |n: usize| {
                    v.iter()
                        .take(n)
                        .rev()
                        .fold(0u64, |a, &b| a << 8 | u64::from(b))
                };
                match id {
                    nv::PANID => self.current.pan_id = le(2) as u16,
                    nv::EXTENDED_PAN_ID => self.current.ext_pan_id = le(8),
                    nv::CHANLIST => {
                        self.current.channel = (le(4) as u32).trailing_zeros().min(26) as u8
                    }
                    _ => {
                        if v.len() >= 16 {
                            self.current.network_key.copy_from_slice(&v[..16]);
                        }
                        self.after_read_network();
                    }
                }
            }
            Tag::Write(_) | Tag::SetChannel | Tag::Commission => {
                if status_of(f) != 0 {
                    return Err(StartupError::Status {
                        step,
                        status: status_of(f),
                    });
                }
            }
            Tag::InitMarker => {
                let s = status_of(f);
                if s != 0 && s != sys::NV_ITEM_UNINIT {
                    return Err(StartupError::Status { step, status: s });
                }
            }
            Tag::StartupFromApp => {}
            Tag::Register => {
                let s = status_of(f);
                if s != 0 && s != af::STATUS_DUPLICATE {
                    return Err(StartupError::Status { step, status: s });
                }
            }
        }
        Ok(())
    }

    fn after_read_network(&mut self) {
        match self.stored.clone() {
            // A replaced (or re-flashed) stick holding another network: put ours back.
            Some(s) if !s.same_network(&self.current) => self.plan_form(s),
            _ => self.plan_start(),
        }
    }

    fn plan_form(&mut self, p: NetworkParams) {
        self.formed = true;
        self.formed_seen = false;
        let mask = p.channel_mask();
        let ops = [
            // Clear state and config on the next reset, so old NV does not leak in.
            nv_write(nv::STARTUP_OPTION, vec![0x03]),
            Op::Send(Tag::Reset, ResetReq { kind: 1 }.to_frame()),
            Op::Wait(Wait::ResetInd),
            nv_write(nv::LOGICAL_TYPE, vec![0x00]),
            nv_write(nv::PRECFGKEYS_ENABLE, vec![0x01]),
            nv_write(nv::ZDO_DIRECT_CB, vec![0x01]),
            nv_write(nv::CHANLIST, mask.to_le_bytes().to_vec()),
            nv_write(nv::PANID, p.pan_id.to_le_bytes().to_vec()),
            nv_write(nv::EXTENDED_PAN_ID, p.ext_pan_id.to_le_bytes().to_vec()),
            nv_write(nv::PRECFGKEY, p.network_key.to_vec()),
            Op::Send(
                Tag::SetChannel,
                BdbSetChannelReq {
                    is_primary: 1,
                    channels: mask,
                }
                .to_frame(),
            ),
            Op::Send(
                Tag::SetChannel,
                BdbSetChannelReq {
                    is_primary: 0,
                    channels: 0,
                }
                .to_frame(),
            ),
            Op::Send(
                Tag::Commission,
                BdbStartCommissioningReq {
                    mode: app_cnf::mode::FORMATION,
                }
                .to_frame(),
            ),
            Op::Wait(Wait::Formed),
            Op::Send(
                Tag::InitMarker,
                NvItemInitReq {
                    id: nv::HAS_CONFIGURED_ZSTACK3,
                    item_len: 1,
                    value: vec![nv::CONFIGURED_MARKER],
                }
                .to_frame(),
            ),
            nv_write(nv::HAS_CONFIGURED_ZSTACK3, vec![nv::CONFIGURED_MARKER]),
        ];
        self.ops.extend(ops);
        self.current = NetworkParams {
            devices: Vec::new(),
            ..p
        };
        self.plan_start();
    }

    fn plan_start(&mut self) {
        self.ops.push_back(Op::Send(
            Tag::StartupFromApp,
            StartupFromAppReq { start_delay: 100 }.to_frame(),
        ));
        self.ops.push_back(Op::Wait(Wait::CoordUp));
        for ep in self.cfg.endpoints.clone() {
            self.ops.push_back(Op::Send(Tag::Register, ep.to_frame()));
        }
    }
}
