//! The simulated Z-Stack 3.x coordinator's behaviour, without I/O: NV items,
//! reset, BDB formation, start-up, endpoint registration, permit join, and
//! simulated end devices that join, answer interviews (ZDO and ZCL) and
//! send reports. Used by [`super::sim`] over a pseudo-terminal.
//!
//! Invariant: every SREQ gets exactly one SRSP (or an MT RPC error for an
//! unknown command); callbacks follow the SRSP, as on a real stick.

use std::collections::{HashMap, HashSet};

use super::af::{self, DataConfirm, DataRequest, RegisterReq};
use super::app_cnf::{BdbCommissioningNotification, BdbSetChannelReq, BdbStartCommissioningReq};
use super::frame::{CmdType, Frame};
use super::sys::{
    self, NvItemInitReq, NvReadReq, NvWriteReq, PingRsp, ResetInd, ResetReq, VersionRsp, nv,
};
use super::util::UtilGetDeviceInfoRsp;
use super::wire::Msg;
use super::zdo::{self, BindTarget, SimpleDescriptor, SizedDescriptor};

/// The simulated coordinator's IEEE address.
pub const COORD_IEEE: u64 = 0x0012_4B00_CAFE_0001;

mod device;
mod quirky;
pub use device::{SimDevice, SimDeviceKind, SirenLog};

/// Counters the tests look at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StickStats {
    pub requests: u64,
    pub resets: u64,
    pub formations: u64,
    pub enroll_responses: u64,
    /// Payloads of the Tuya time-sync answers the host sent.
    pub time_sync_answers: Vec<Vec<u8>>,
    /// ZCL Identify commands the devices received (and acknowledged).
    pub identifies: u64,
    /// IAS WD commands sirens received (and answered).
    pub warnings: u64,
}

#[derive(Debug)]
pub struct Stick {
    nv: HashMap<u16, Vec<u8>>,
    up: bool,
    registered: HashSet<u8>,
    /// Permit join remaining, in ticks of the caller's clock (ms deadline).
    permit_until: u64,
    pub devices: Vec<SimDevice>,
    next_nwk: u16,
    pub stats: StickStats,
    /// Answer every SREQ with an MT RPC error (fault injection).
    pub rpc_errors: bool,
    /// The devices were paired before (a replaced stick restored from the
    /// gateway's backup): whenever the stick runs a network they are in it.
    pub auto_pair: bool,
}

fn blank_nv() -> HashMap<u16, Vec<u8>> {
    HashMap::from([
        (nv::STARTUP_OPTION, vec![0]),
        (nv::LOGICAL_TYPE, vec![0]),
        (nv::PANID, vec![0xFF, 0xFF]),
        (nv::EXTENDED_PAN_ID, vec![0xDD; 8]),
        (nv::CHANLIST, 0x0000_0800u32.to_le_bytes().to_vec()),
        (nv::PRECFGKEY, vec![0x01; 16]),
        (nv::PRECFGKEYS_ENABLE, vec![0]),
        (nv::ZDO_DIRECT_CB, vec![0]),
    ])
}

impl Default for Stick {
    fn default() -> Self {
        Self::new()
    }
}

impl Stick {
    /// A blank stick, fresh out of the box.
    pub fn new() -> Self {
        Stick {
            nv: blank_nv(),
            up: false,
            registered: HashSet::new(),
            permit_until: 0,
            devices: Vec::new(),
            next_nwk: 0x1A2B,
            stats: StickStats::default(),
            rpc_errors: false,
            auto_pair: false,
        }
    }

    /// The network in NV, if formed: (pan, ext pan, channel, key).
    pub fn network(&self) -> Option<(u16, u64, u8, [u8; 16])> {
        if self.nv.get(&nv::HAS_CONFIGURED_ZSTACK3)?.first() != Some(&nv::CONFIGURED_MARKER) {
            return None;
        }
        let le = |id: u16| {
            self.nv
                .get(&id)
                .map(|v| v.iter().rev().fold(0u64, |a, &b| a << 8 | u64::from(b)))
                .unwrap_or(0)
        };
        let mut key = [0u8; 16];
        if let Some(k) = self.nv.get(&nv::PRECFGKEY).filter(|k| k.len() == 16) {
            key.copy_from_slice(k);
        }
        Some((
            le(nv::PANID) as u16,
            le(nv::EXTENDED_PAN_ID),
            (le(nv::CHANLIST) as u32).trailing_zeros() as u8,
            key,
        ))
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Answers one frame from the host.
    pub fn handle(&mut self, f: &Frame, now_ms: u64) -> Vec<Frame> {
        let mut out = Vec::new();
        if f.ty == CmdType::Sreq {
            self.stats.requests += 1;
            if self.rpc_errors {
                out.push(Frame::new(CmdType::Srsp, 0, 0, vec![0x01, f.cmd0(), f.cmd]));
                return out;
            }
        }
        let srsp = |f: &Frame, data: Vec<u8>| Frame::new(CmdType::Srsp, f.subsystem, f.cmd, data);
        if ResetReq::matches(f) {
            self.reset(&mut out);
        } else if f.id() == (0x01, 0x01) {
            out.push(
                PingRsp {
                    capabilities: 0x0179,
                }
                .to_frame(),
            );
        } else if f.id() == (0x01, 0x02) {
            out.push(
                VersionRsp {
                    transport_rev: 2,
                    product_id: 1,
                    major: 2,
                    minor: 7,
                    maint: 1,
                    code_revision: Some(20_230_507),
                    bootloader_type: Some(0),
                    bootloader_revision: Some(u32::MAX),
                }
                .to_frame(),
            );
        } else if f.id() == (0x07, 0x00) {
            let state = if self.up {
                zdo::state::ZB_COORD
            } else {
                zdo::state::HOLD
            };
            out.push(
                UtilGetDeviceInfoRsp {
                    status: 0,
                    ieee: COORD_IEEE,
                    nwk: 0,
                    device_type: 7,
                    device_state: state,
                    associated: vec![],
                }
                .to_frame(),
            );
        } else if let Ok(r) = NvReadReq::from_frame(f) {
            let (status, value) = match self.nv.get(&r.id) {
                Some(v) => (0, v.get(usize::from(r.offset)..).unwrap_or(&[]).to_vec()),
                None => (0x02, vec![]),
            };
            out.push(srsp(
                f,
                vec![status]
                    .into_iter()
                    .chain(std::iter::once(value.len() as u8))
                    .chain(value)
                    .collect(),
            ));
        } else if let Ok(w) = NvWriteReq::from_frame(f) {
            let status = match self.nv.get_mut(&w.id) {
                Some(v) => {
                    *v = w.value;
                    0
                }
                None => 0x0A,
            };
            out.push(srsp(f, vec![status]));
        } else if let Ok(i) = NvItemInitReq::from_frame(f) {
            let status = match self.nv.entry(i.id) {
                std::collections::hash_map::Entry::Occupied(_) => 0,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(i.value);
                    sys::NV_ITEM_UNINIT
                }
            };
            out.push(srsp(f, vec![status]));
        } else if BdbSetChannelReq::matches(f) {
            out.push(srsp(f, vec![0]));
        } else if let Ok(c) = BdbStartCommissioningReq::from_frame(f) {
            out.push(srsp(f, vec![0]));
            if c.mode & 0x04 != 0 {
                self.stats.formations += 1;
                let n = |status, remaining| {
                    BdbCommissioningNotification {
                        status,
                        mode: 0x04,
                        remaining_modes: remaining,
                    }
                    .to_frame()
                };
                out.push(n(0x01, 0x04));
                out.push(
                    zdo::StateChangeInd {
                        state: zdo::state::COORD_STARTING,
                    }
                    .to_frame(),
                );
                out.push(
                    zdo::StateChangeInd {
                        state: zdo::state::ZB_COORD,
                    }
                    .to_frame(),
                );
                out.push(n(0x00, 0x00));
                self.came_up();
            }
        } else if f.id() == (0x05, 0x40) {
            let formed = self
                .nv
                .get(&nv::PANID)
                .is_some_and(|p| p != &vec![0xFF, 0xFF]);
            out.push(srsp(
                f,
                vec![if formed {
                    zdo::startup::RESTORED
                } else {
                    zdo::startup::NOT_STARTED
                }],
            ));
            if formed && !self.up {
                self.came_up();
                out.push(
                    zdo::StateChangeInd {
                        state: zdo::state::ZB_COORD,
                    }
                    .to_frame(),
                );
            }
        } else if let Ok(r) = RegisterReq::from_frame(f) {
            let dup = !self.registered.insert(r.endpoint);
            out.push(srsp(f, vec![if dup { af::STATUS_DUPLICATE } else { 0 }]));
        } else if let Ok(p) = zdo::MgmtPermitJoinReq::from_frame(f) {
            out.push(srsp(f, vec![0]));
            out.push(zdo::MgmtPermitJoinRsp { src: 0, status: 0 }.to_frame());
            self.permit_until = now_ms + u64::from(p.duration) * 1000;
        } else if let Ok(r) = zdo::ActiveEpReq::from_frame(f) {
            out.push(srsp(f, vec![0]));
            if self.device(r.nwk_of_interest).is_some() {
                out.push(
                    zdo::ActiveEpRsp {
                        src: r.dst,
                        status: 0,
                        nwk: r.nwk_of_interest,
                        endpoints: vec![1],
                    }
                    .to_frame(),
                );
            }
        } else if let Ok(r) = zdo::SimpleDescReq::from_frame(f) {
            out.push(srsp(f, vec![0]));
            if let Some(d) = self.device(r.nwk_of_interest) {
                let desc = SimpleDescriptor {
                    endpoint: r.endpoint,
                    profile: af::PROFILE_HA,
                    device_type: 0x0402,
                    device_version: 0,
                    in_clusters: d.clusters(),
                    out_clusters: vec![],
                };
                out.push(
                    zdo::SimpleDescRsp {
                        src: r.dst,
                        status: 0,
                        nwk: r.nwk_of_interest,
                        descriptor: SizedDescriptor(Some(desc)),
                    }
                    .to_frame(),
                );
            }
        } else if let Ok(b) = zdo::BindReq::from_frame(f) {
            out.push(srsp(f, vec![0]));
            if let Some(d) = self.device_mut(b.dst)
                && matches!(b.target, BindTarget::Endpoint { .. })
            {
                d.bound.insert(b.cluster);
                out.push(
                    zdo::BindRsp {
                        src: b.dst,
                        status: 0,
                    }
                    .to_frame(),
                );
            }
        } else if let Ok(r) = zdo::IeeeAddrReq::from_frame(f) {
            out.push(srsp(f, vec![0]));
            if let Some(d) = self.device(r.nwk) {
                out.push(
                    zdo::IeeeAddrRsp {
                        status: 0,
                        ieee: d.ieee,
                        nwk: r.nwk,
                        num_assoc: 0,
                        start_index: 0,
                        devices: zdo::RestU16(vec![]),
                    }
                    .to_frame(),
                );
            }
        } else if let Ok(d) = DataRequest::from_frame(f) {
            out.push(srsp(f, vec![0]));
            out.push(
                DataConfirm {
                    status: 0,
                    endpoint: d.dst_endpoint,
                    tsn: d.tsn,
                }
                .to_frame(),
            );
            self.device_zcl(&d, &mut out);
        } else if f.ty == CmdType::Sreq {
            out.push(Frame::new(CmdType::Srsp, 0, 0, vec![0x02, f.cmd0(), f.cmd]));
        }
        out
    }

    /// Power loss: the network stays in NV, the running state does not.
    pub fn power_cycle(&mut self) {
        self.up = false;
        self.registered.clear();
        self.permit_until = 0;
    }

    fn reset(&mut self, out: &mut Vec<Frame>) {
        self.stats.resets += 1;
        let opt = self
            .nv
            .get(&nv::STARTUP_OPTION)
            .and_then(|v| v.first().copied())
            .unwrap_or(0);
        if opt & 0x01 != 0 {
            self.nv = blank_nv();
        }
        if opt & 0x02 != 0 {
            self.devices.iter_mut().for_each(|d| d.nwk = None);
        }
        if let Some(v) = self.nv.get_mut(&nv::STARTUP_OPTION) {
            *v = vec![0];
        }
        self.up = false;
        self.registered.clear();
        self.permit_until = 0;
        out.push(
            ResetInd {
                reason: 0,
                transport_rev: 2,
                product_id: 1,
                major: 2,
                minor: 7,
                maint: 1,
            }
            .to_frame(),
        );
    }

    fn device(&self, nwk: u16) -> Option<&SimDevice> {
        self.devices.iter().find(|d| d.nwk == Some(nwk))
    }
    fn device_mut(&mut self, nwk: u16) -> Option<&mut SimDevice> {
        self.devices.iter_mut().find(|d| d.nwk == Some(nwk))
    }

    /// Adds a device that will join when permit join is open.
    pub fn add_device(&mut self, kind: SimDeviceKind) -> u64 {
        let ieee = 0x0015_8D00_0000_0000 | (self.devices.len() as u64 + 1);
        self.devices.push(SimDevice {
            ieee,
            kind,
            nwk: None,
            cie: None,
            enrolled: false,
            bound: HashSet::new(),
            configured: HashSet::new(),
            seq: 0,
            identify_secs: None,
            siren: SirenLog::default(),
        });
        ieee
    }

    /// Puts every waiting device into the network at once, with the network
    /// address it would get by joining (assigned in order, as [`Stick::tick`]
    /// does), but without announcing it: devices that were paired before a
    /// stick was replaced or a simulator restarted stay in the network, as
    /// on a real Zigbee network restored from a backup.
    pub fn pair_all(&mut self) {
        for d in self.devices.iter_mut().filter(|d| d.nwk.is_none()) {
            d.nwk = Some(self.next_nwk);
            self.next_nwk = self.next_nwk.wrapping_add(0x111);
        }
    }

    fn came_up(&mut self) {
        self.up = true;
        if self.auto_pair {
            self.pair_all();
        }
    }

    /// Joins waiting devices while permit join is open.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Frame> {
        let mut out = Vec::new();
        if !self.up || now_ms >= self.permit_until {
            return out;
        }
        for i in 0..self.devices.len() {
            if self.devices[i].nwk.is_none() {
                let nwk = self.next_nwk;
                self.next_nwk = self.next_nwk.wrapping_add(0x111);
                let d = &mut self.devices[i];
                d.nwk = Some(nwk);
                out.push(
                    zdo::TcDevInd {
                        nwk,
                        ieee: d.ieee,
                        parent: 0,
                    }
                    .to_frame(),
                );
                out.push(
                    zdo::EndDeviceAnnceInd {
                        src: nwk,
                        nwk,
                        ieee: d.ieee,
                        capabilities: 0x80,
                    }
                    .to_frame(),
                );
            }
        }
        out
    }
}
