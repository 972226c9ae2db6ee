//! The coordinator: session + start-up + interviews + ZCL → [`Output`]s.
//! Pure and clock-free; the shell in [`super::port`] feeds it bytes and time.
//!
//! Link supervision lives here as policy: a periodic SYS_PING once running;
//! any SRSP timeout (the stick itself did not answer), repeated MT RPC
//! errors, or an unexpected stick reset ends this coordinator with
//! [`Output::Failed`], and the shell starts a new one after a backoff.
//!
//! Invariants: requests are only submitted through the session (one SREQ on
//! the wire); every token is owned by exactly one part; after `Failed`
//! nothing else is output.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::af::{self, DataRequest, IncomingMsg, RegisterReq};
use super::frame::Frame;
use super::interview::{COORD_ENDPOINT, Interview};
use super::library::{Definition, Library, apply};
use super::network::{KnownDevice, NetworkParams};
use super::session::{Event, RequestError, Session, Token};
use super::startup::{Started, Startup, StartupConfig};
use super::sys::{PingReq, ResetInd};
use super::wire::Msg;
use super::zcl::{self, Message};
use super::zcl_map::{self, cluster, device_id};
use super::zdo::{EndDeviceAnnceInd, IeeeAddrReq, IeeeAddrRsp, LeaveInd, MgmtPermitJoinReq};
use crate::model::{DeviceInfo, Ingest, Kind, LinkStatus, Reading, Time};

/// Why a session failed when the stick reset by itself (counted apart).
pub const RESET_REASON: &str = "coordinator reset unexpectedly";

/// Timing and policy knobs (from `ZigbeeConfig`; tests shorten them).
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    pub channel: u8,
    pub srsp_timeout: Duration,
    pub stall_timeout: Duration,
    pub wait_timeout: Duration,
    pub interview_timeout: Duration,
    pub ping_interval: Duration,
    pub vibration_is_fall: bool,
}

/// What the coordinator asks of the shell.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Ingest(Ingest),
    /// Persist these parameters (via `NetworkStore::save`).
    Save(NetworkParams),
    /// The link is unusable; reset and re-initialise.
    Failed(String),
}

#[derive(Clone, Copy, Debug)]
enum Owner {
    Startup,
    Interview(u16),
    Ping,
    Other,
}

#[derive(Debug)]
pub struct Coordinator {
    cfg: CoordinatorConfig,
    session: Session,
    startup: Startup,
    started: Option<Started>,
    devices: HashMap<u16, KnownDevice>,
    interviews: HashMap<u16, Interview>,
    lqi: HashMap<u16, u8>,
    owners: HashMap<Token, Owner>,
    seq: u8,
    next_ping: Option<Time>,
    rpc_errors_in_a_row: u32,
    missed_in_a_row: u32,
    out: VecDeque<Output>,
    failed: bool,
    library: Arc<Library>,
    /// Definition index per device (IEEE), looked up once.
    defs: HashMap<u64, Option<usize>>,
    /// Binary readings to set back to 0 (devices that never clear), by
    /// (IEEE, kind code).
    clears: BTreeMap<(u64, u8), Time>,
}

/// The endpoint carebridge registers: HA profile, IAS CIE device, the
/// clusters it receives as a client.
pub fn default_endpoints() -> Vec<RegisterReq> {
    vec![RegisterReq {
        endpoint: COORD_ENDPOINT,
        profile: af::PROFILE_HA,
        device_id: 0x0400, // IAS Control and Indicating Equipment
        device_version: 0,
        latency: 0,
        in_clusters: vec![cluster::BASIC, cluster::IAS_ZONE],
        out_clusters: vec![
            cluster::BASIC,
            cluster::POWER_CFG,
            cluster::ON_OFF,
            cluster::IAS_ZONE,
            cluster::TEMPERATURE,
        ],
    }]
}

impl Coordinator {
    pub fn new(
        cfg: CoordinatorConfig,
        stored: Option<NetworkParams>,
        fresh: NetworkParams,
        reset_first: bool,
    ) -> Self {
        let startup = Startup::new(
            StartupConfig {
                reset_first,
                wait_timeout: cfg.wait_timeout,
                endpoints: default_endpoints(),
            },
            stored,
            fresh,
        );
        Coordinator {
            session: Session::new(cfg.srsp_timeout, cfg.stall_timeout),
            cfg,
            startup,
            started: None,
            devices: HashMap::new(),
            interviews: HashMap::new(),
            lqi: HashMap::new(),
            owners: HashMap::new(),
            seq: 0,
            next_ping: None,
            rpc_errors_in_a_row: 0,
            missed_in_a_row: 0,
            out: VecDeque::new(),
            failed: false,
            library: Library::builtin(),
            defs: HashMap::new(),
            clears: BTreeMap::new(),
        }
    }

    /// Uses this device library (default: the built-in one).
    pub fn with_library(mut self, library: Arc<Library>) -> Self {
        self.library = library;
        self.defs.clear();
        self
    }

    fn definition(
        &mut self,
        ieee: u64,
        manufacturer: Option<&str>,
        model: Option<&str>,
    ) -> Option<&Definition> {
        let lib = &self.library;
        let i = *self
            .defs
            .entry(ieee)
            .or_insert_with(|| lib.find_index(manufacturer, model));
        i.and_then(|i| self.library.get(i))
    }

    pub fn is_running(&self) -> bool {
        self.started.is_some() && !self.failed
    }
    pub fn started(&self) -> Option<&Started> {
        self.started.as_ref()
    }
    pub fn session_stats(&self) -> super::session::SessionStats {
        self.session.stats()
    }

    fn submit(&mut self, f: Frame, owner: Owner, now: Time) {
        let t = self.session.request(f, now);
        self.owners.insert(t, owner);
    }

    fn fail(&mut self, why: String) {
        if !self.failed {
            self.failed = true;
            self.out.push_back(Output::Failed(why));
        }
    }

    /// Opens joining for `secs` seconds (capped at 254; 0 closes).
    pub fn permit_join(&mut self, secs: u16, now: Time) {
        if !self.is_running() {
            return;
        }
        let duration = secs.min(254) as u8;
        let req = MgmtPermitJoinReq {
            addr_mode: 0x0F,
            dst: 0xFFFC,
            duration,
            tc_significance: 0,
        };
        self.submit(req.to_frame(), Owner::Other, now);
    }

    /// Sends ZCL Identify to the known device `ieee` (it blinks/beeps for
    /// `secs` seconds, capped at [`super::identify::MAX_SECS`]). `false`
    /// when not running or the device is not in this network.
    pub fn identify(&mut self, ieee: u64, secs: u16, now: Time) -> bool {
        self.send_zcl(ieee, super::identify::CLUSTER, now, |seq| {
            super::identify::identify(seq, secs)
        })
    }

    /// Sends the IAS WD command `cmd` ([`super::ias_wd`]) to the known
    /// device `ieee` (a siren warning for a pre-alarm). `false` when not
    /// running or the device is not in this network.
    pub fn warn(&mut self, ieee: u64, cmd: &super::ias_wd::Command, now: Time) -> bool {
        self.send_zcl(ieee, super::ias_wd::CLUSTER, now, |seq| {
            let mut data = Vec::with_capacity(8);
            super::ias_wd::encode(seq, cmd, &mut data);
            data
        })
    }

    /// A ZCL command (`frame` of the next sequence number) to the known
    /// device `ieee`, on its zone endpoint (else 1), APS ack requested.
    fn send_zcl(
        &mut self,
        ieee: u64,
        cluster: u16,
        now: Time,
        frame: impl FnOnce(u8) -> Vec<u8>,
    ) -> bool {
        if !self.is_running() {
            return false;
        }
        let Some(d) = self.devices.values().find(|d| d.ieee == ieee) else {
            return false;
        };
        let (nwk, endpoint) = (d.nwk, d.zone_endpoint.unwrap_or(1));
        self.seq = self.seq.wrapping_add(1);
        let req = DataRequest {
            dst: nwk,
            dst_endpoint: endpoint,
            src_endpoint: COORD_ENDPOINT,
            cluster,
            tsn: self.seq,
            options: af::options::ACK_REQUEST,
            radius: af::DEFAULT_RADIUS,
            data: frame(self.seq),
        };
        self.submit(req.to_frame(), Owner::Other, now);
        true
    }

    pub fn handle_bytes(&mut self, bytes: &[u8], now: Time) {
        self.session.handle_bytes(bytes, now);
        self.process(now);
    }

    pub fn handle_timeout(&mut self, now: Time) {
        self.session.handle_timeout(now);
        self.startup.handle_timeout(now);
        let mut seq = self.seq;
        let mut resend = Vec::new();
        for (nwk, i) in self.interviews.iter_mut() {
            if let Some(f) = i.handle_timeout(now, &mut seq) {
                resend.push((*nwk, f));
            }
        }
        self.seq = seq;
        for (nwk, f) in resend {
            self.submit(f, Owner::Interview(nwk), now);
        }
        while let Some((&(ieee, code), &due)) = self.clears.first_key_value()
            && due <= now
        {
            self.clears.remove(&(ieee, code));
            if let Some(kind) = Kind::from_code(code)
                && let Ok(r) = Reading::new(device_id(ieee), kind, 0.0, now)
            {
                self.out.push_back(Output::Ingest(Ingest::Reading(r)));
            }
        }
        if let Some(p) = self.next_ping
            && now >= p
            && self.is_running()
        {
            self.next_ping = None;
            self.submit(PingReq {}.to_frame(), Owner::Ping, now);
        }
        self.process(now);
    }

    pub fn next_deadline(&self) -> Option<Time> {
        [
            self.session.next_deadline(),
            self.startup.next_deadline(),
            self.next_ping,
            self.clears.values().min().copied(),
        ]
        .into_iter()
        .chain(self.interviews.values().map(|i| i.next_deadline()))
        .flatten()
        .min()
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.session.poll_transmit()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn process(&mut self, now: Time) {
        while let Some(ev) = self.session.poll_event() {
            if self.failed {
                continue;
            }
            match ev {
                Event::Response { token, result } => self.on_response(token, result, now),
                Event::Callback(f) => self.on_callback(&f, now),
            }
        }
        if self.failed {
            return;
        }
        if let Some(f) = self.startup.poll_request(now) {
            self.submit(f, Owner::Startup, now);
        }
        if let Some(r) = self.startup.take_result() {
            match r {
                Ok(s) => self.on_started(s, now),
                Err(e) => self.fail(e.to_string()),
            }
        }
        let mut seq = self.seq;
        let mut reqs = Vec::new();
        let mut finished = Vec::new();
        for (nwk, i) in self.interviews.iter_mut() {
            if let Some(f) = i.poll_request(now, &mut seq) {
                reqs.push((*nwk, f));
            }
            if i.is_done() {
                finished.push(*nwk);
            }
        }
        self.seq = seq;
        for (nwk, f) in reqs {
            self.submit(f, Owner::Interview(nwk), now);
        }
        for nwk in finished {
            if let Some(i) = self.interviews.remove(&nwk) {
                self.on_interviewed(i, now);
            }
        }
    }

    fn on_started(&mut self, s: Started, now: Time) {
        for d in &s.params.devices {
            self.devices.insert(d.nwk, d.clone());
            // The rules learn each known device's check-in period again
            // (it is not stored with the registry).
            if let Some(checkin_s) = self.checkin_s(d.manufacturer.as_deref(), d.model.as_deref()) {
                self.out
                    .push_back(Output::Ingest(Ingest::Device(DeviceInfo {
                        id: Some(device_id(d.ieee)),
                        checkin_s: Some(checkin_s),
                        ..DeviceInfo::default()
                    })));
            }
        }
        let detail = format!(
            "coordinator up: Z-Stack {}.{}.{}, PAN {:#06x}, channel {}{}",
            s.version.major,
            s.version.minor,
            s.version.maint,
            s.params.pan_id,
            s.params.channel,
            if s.formed { ", network formed" } else { "" }
        );
        self.out.push_back(Output::Save(s.params.clone()));
        self.out.push_back(Output::Ingest(Ingest::Link(LinkStatus {
            link: "zigbee".into(),
            up: true,
            detail,
            at: now,
        })));
        self.started = Some(s);
        self.next_ping = Some(now.saturating_add(self.cfg.ping_interval));
    }

    fn on_response(&mut self, token: Token, result: Result<Frame, RequestError>, now: Time) {
        let owner = self.owners.remove(&token).unwrap_or(Owner::Other);
        match &result {
            Err(e @ RequestError::Timeout { .. }) => {
                // One lost SRSP (a corrupted byte) is not a dead stick: ping
                // at once, and give up on the second miss in a row.
                self.missed_in_a_row += 1;
                if !self.is_running() || self.missed_in_a_row >= 2 {
                    return self.fail(format!("coordinator stopped answering: {e}"));
                }
                self.next_ping = None;
                self.submit(PingReq {}.to_frame(), Owner::Ping, now);
            }
            Err(RequestError::Rpc { .. }) => {
                self.rpc_errors_in_a_row += 1;
                if self.rpc_errors_in_a_row >= 3 {
                    return self.fail("coordinator returned repeated MT RPC errors".into());
                }
            }
            Ok(_) => {
                self.rpc_errors_in_a_row = 0;
                self.missed_in_a_row = 0;
            }
        }
        match owner {
            Owner::Startup => self.startup.handle_response(result),
            Owner::Ping => {
                if matches!(result, Err(RequestError::Rpc { .. })) {
                    self.fail("coordinator refused ping".into());
                } else {
                    self.next_ping = Some(now.saturating_add(self.cfg.ping_interval));
                }
            }
            Owner::Interview(nwk) => {
                let ok = matches!(&result, Ok(f) if f.data.first() == Some(&0));
                if let Some(i) = self.interviews.get_mut(&nwk) {
                    i.handle_srsp(ok);
                }
            }
            Owner::Other => {}
        }
    }

    fn on_callback(&mut self, f: &Frame, now: Time) {
        if !self.startup.is_done() {
            self.startup.handle_callback(f);
            return;
        }
        if ResetInd::matches(f) {
            return self.fail(RESET_REASON.into());
        }
        if let Ok(m) = IncomingMsg::from_frame(f) {
            return self.on_incoming(m, now);
        }
        if let Ok(a) = EndDeviceAnnceInd::from_frame(f) {
            return self.on_announce(a.ieee, a.nwk, now);
        }
        if let Ok(r) = IeeeAddrRsp::from_frame(f) {
            if r.status == 0 && !self.devices.contains_key(&r.nwk) {
                self.on_announce(r.ieee, r.nwk, now);
            }
            return;
        }
        if let Ok(l) = LeaveInd::from_frame(f) {
            if self.devices.remove(&l.nwk).is_some() {
                self.save();
            }
            return;
        }
        // ZDO answers for interviews carry the device's nwk at offset 0 (src).
        if f.subsystem == super::frame::subsystem::ZDO
            && let Some(src) = f.data.get(..2).map(|b| u16::from_le_bytes([b[0], b[1]]))
            && let Some(i) = self.interviews.get_mut(&src)
        {
            i.handle_zdo(f);
        }
    }

    fn on_announce(&mut self, ieee: u64, nwk: u16, _now: Time) {
        let Some(coord) = self.started.as_ref().map(|s| s.coordinator_ieee) else {
            return;
        };
        let prior = self.devices.values().find(|d| d.ieee == ieee).cloned();
        if let Some(p) = &prior {
            self.devices.remove(&p.nwk);
            // A known device rejoining (new nwk, battery swap): keep its facts.
            self.devices.insert(nwk, KnownDevice { nwk, ..p.clone() });
            self.save();
            return;
        }
        if !self.interviews.contains_key(&nwk) {
            self.interviews.insert(
                nwk,
                Interview::new(ieee, nwk, coord, self.cfg.interview_timeout),
            );
        }
    }

    fn on_interviewed(&mut self, i: Interview, now: Time) {
        let f = i.found;
        let mut clusters: Vec<u16> = f
            .endpoints
            .iter()
            .flat_map(|e| e.in_clusters.iter().copied())
            .collect();
        clusters.sort_unstable();
        clusters.dedup();
        let dev = KnownDevice {
            ieee: f.ieee,
            nwk: f.nwk,
            zone_type: f.zone_type,
            zone_endpoint: f.zone_endpoint,
            manufacturer: f.manufacturer.clone(),
            model: f.model.clone(),
            clusters,
        };
        let (dev_manufacturer, dev_model) = (dev.manufacturer.clone(), dev.model.clone());
        self.defs.remove(&f.ieee);
        self.devices.insert(f.nwk, dev);
        self.save();
        self.out
            .push_back(Output::Ingest(Ingest::Device(DeviceInfo {
                id: Some(device_id(f.ieee)),
                ieee: Some(format!("0x{:016x}", f.ieee)),
                nwk: Some(f.nwk),
                manufacturer: f.manufacturer,
                model: f.model,
                last_seen: Some(now),
                battery: f.battery,
                lqi: self.lqi.get(&f.nwk).copied(),
                checkin_s: self.checkin_s(dev_manufacturer.as_deref(), dev_model.as_deref()),
                ..DeviceInfo::default()
            })));
    }

    /// The device library's check-in period of a device, in seconds.
    fn checkin_s(&self, manufacturer: Option<&str>, model: Option<&str>) -> Option<u32> {
        self.library
            .checkin(manufacturer, model)
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
    }

    fn save(&mut self) {
        if let Some(s) = &mut self.started {
            let mut devs: Vec<_> = self.devices.values().cloned().collect();
            devs.sort_by_key(|d| d.ieee);
            s.params.devices = devs;
            self.out.push_back(Output::Save(s.params.clone()));
        }
    }

    fn on_incoming(&mut self, m: IncomingMsg, now: Time) {
        self.lqi.insert(m.src, m.lqi);
        let Ok((h, msg)) = zcl::decode(m.cluster, &m.data) else {
            return;
        };
        if let Some(i) = self.interviews.get_mut(&m.src)
            && i.handle_zcl(&h, &msg)
        {
            if i.needs_identifying() {
                let (ieee, mf, model) = (
                    i.found.ieee,
                    i.found.manufacturer.clone(),
                    i.found.model.clone(),
                );
                self.defs.remove(&ieee);
                let def = self
                    .definition(ieee, mf.as_deref(), model.as_deref())
                    .cloned();
                if let Some(i) = self.interviews.get_mut(&m.src) {
                    i.identified(def.as_ref());
                }
            }
            return;
        }
        if let Message::ZoneEnrollRequest { zone_type, .. } = msg {
            // Answer every enrol request (devices re-ask after a rejoin);
            // zone id 0x01..: one zone per device is enough for carebridge.
            let rsp = DataRequest {
                dst: m.src,
                dst_endpoint: m.src_endpoint,
                src_endpoint: COORD_ENDPOINT,
                cluster: zcl::CLUSTER_IAS_ZONE,
                tsn: h.seq,
                options: af::options::ACK_REQUEST,
                radius: af::DEFAULT_RADIUS,
                data: zcl::zone_enroll_response(h.seq, 0, 1),
            };
            self.submit(rsp.to_frame(), Owner::Other, now);
            if let Some(i) = self.interviews.get_mut(&m.src) {
                i.found.zone_type = Some(zone_type);
            } else if let Some(d) = self.devices.get_mut(&m.src)
                && d.zone_type != Some(zone_type)
            {
                d.zone_type = Some(zone_type);
                self.save();
            }
            return;
        }
        let known = self
            .devices
            .get(&m.src)
            .map(|d| (d.ieee, d.zone_type, d.manufacturer.clone(), d.model.clone()));
        let Some((ieee, zone_type, mf, model)) = known.or_else(|| {
            self.interviews.get(&m.src).map(|i| {
                let f = &i.found;
                (f.ieee, f.zone_type, f.manufacturer.clone(), f.model.clone())
            })
        }) else {
            // A device we do not know (e.g. joined while we were down): ask its IEEE.
            let req = IeeeAddrReq {
                nwk: m.src,
                req_type: 0,
                start_index: 0,
            };
            self.submit(req.to_frame(), Owner::Other, now);
            return;
        };
        let dev = device_id(ieee);
        let vib = self.cfg.vibration_is_fall;
        let def = self.definition(ieee, mf.as_deref(), model.as_deref());
        let d = apply::decode(def, &dev, m.cluster, &m.data, &h, &msg, zone_type, vib, now);
        for r in d.readings {
            let key = (ieee, r.kind.code());
            if r.kind.is_binary() && r.value < 0.5 {
                self.clears.remove(&key);
            }
            self.out.push_back(Output::Ingest(Ingest::Reading(r)));
        }
        for (kind, after) in d.clears {
            self.clears
                .insert((ieee, kind.code()), now.saturating_add(after));
        }
        if let Some(data) = d.reply {
            let rsp = DataRequest {
                dst: m.src,
                dst_endpoint: m.src_endpoint,
                src_endpoint: COORD_ENDPOINT,
                cluster: m.cluster,
                tsn: h.seq,
                options: af::options::ACK_REQUEST,
                radius: af::DEFAULT_RADIUS,
                data,
            };
            self.submit(rsp.to_frame(), Owner::Other, now);
        }
    }
}

/// Re-exported for tests: readings produced from one `AF_INCOMING_MSG` frame.
pub fn readings_of(frame: &Frame, ieee: u64, zone_type: Option<u16>, at: Time) -> Vec<Reading> {
    let Ok(m) = IncomingMsg::from_frame(frame) else {
        return Vec::new();
    };
    let Ok((_, msg)) = zcl::decode(m.cluster, &m.data) else {
        return Vec::new();
    };
    zcl_map::readings(&device_id(ieee), m.cluster, &msg, zone_type, true, at)
}

pub use super::library::apply::decode_frame as decoded_of;
