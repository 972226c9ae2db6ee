//! Interview of a newly joined device: active endpoints, simple descriptors,
//! Basic cluster (manufacturer, model), bindings and reporting for the
//! clusters carebridge uses, IAS zone enrolment (CIE address, zone type),
//! battery. Pure: the coordinator routes SRSPs and callbacks here.
//!
//! Invariants: one step in flight per device; every step has a deadline and
//! is retried once, then skipped (sleepy devices miss requests; a partial
//! interview still yields a usable device); the interview always ends.

use std::collections::VecDeque;
use std::time::Duration;

use super::af::{self, DataRequest};
use super::frame::Frame;
use super::library::{Definition, table::Report};
use super::wire::Msg;
use super::zcl::{self, Header, Message, Value, ty};
use super::zcl_map::cluster;
use super::zdo::{self, ActiveEpReq, BindReq, BindTarget, SimpleDescReq};
use crate::model::Time;

/// Our endpoint on the coordinator (HA profile).
pub const COORD_ENDPOINT: u8 = 1;

/// (cluster, attribute, type, min s, max s, reportable change)
type Reporting = (u16, u16, u8, u16, u16, Option<Value>);

/// Clusters bound and configured for reporting, with their main attribute.
pub fn reporting_table() -> Vec<Reporting> {
    vec![
        (
            cluster::TEMPERATURE,
            0x0000,
            ty::I16,
            10,
            600,
            Some(Value::Int(10)),
        ),
        (
            cluster::HUMIDITY,
            0x0000,
            ty::U16,
            10,
            600,
            Some(Value::Uint(100)),
        ),
        (
            cluster::PRESSURE,
            0x0000,
            ty::I16,
            10,
            600,
            Some(Value::Int(1)),
        ),
        (cluster::OCCUPANCY, 0x0000, ty::BITMAP8, 0, 600, None),
        (cluster::ON_OFF, 0x0000, ty::BOOL, 0, 600, None),
        (
            cluster::POWER_CFG,
            0x0021,
            ty::U8,
            3600,
            21600,
            Some(Value::Uint(2)),
        ),
        (
            cluster::ILLUMINANCE,
            0x0000,
            ty::U16,
            10,
            600,
            Some(Value::Uint(500)),
        ),
        (
            cluster::ELECTRICAL,
            0x050B,
            ty::I16,
            5,
            600,
            Some(Value::Int(5)),
        ),
        (cluster::METERING, 0x0400, 0x2A, 5, 600, Some(Value::Int(5))),
    ]
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    ActiveEp,
    SimpleDesc(u8),
    ReadBasic(u8),
    Bind(u8, u16),
    Configure(u8, usize),
    /// Reporting from the device's definition (replacing the generic set).
    ConfigureDef(u8, Report),
    WriteCie(u8),
    ReadZoneType(u8),
    ReadBattery(u8),
}

#[derive(Debug)]
struct Current {
    step: Step,
    deadline: Time,
    attempt: u8,
    /// Waiting for the SRSP (true) or for the device's answer (false).
    srsp: bool,
    zcl_seq: Option<u8>,
}

/// What an interview found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Findings {
    pub ieee: u64,
    pub nwk: u16,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub battery: Option<f64>,
    pub zone_type: Option<u16>,
    pub zone_endpoint: Option<u8>,
    pub endpoints: Vec<zdo::SimpleDescriptor>,
    /// Steps given up after retries.
    pub skipped: usize,
}

#[derive(Debug)]
pub struct Interview {
    coordinator_ieee: u64,
    timeout: Duration,
    steps: VecDeque<Step>,
    current: Option<Current>,
    pub found: Findings,
    done: bool,
    /// The device library was consulted (after the Basic cluster answered).
    identified: bool,
}

impl Interview {
    pub fn new(ieee: u64, nwk: u16, coordinator_ieee: u64, step_timeout: Duration) -> Self {
        Interview {
            coordinator_ieee,
            timeout: step_timeout,
            steps: VecDeque::from([Step::ActiveEp]),
            current: None,
            found: Findings {
                ieee,
                nwk,
                ..Findings::default()
            },
            done: false,
            identified: false,
        }
    }

    pub fn nwk(&self) -> u16 {
        self.found.nwk
    }
    pub fn is_done(&self) -> bool {
        self.done
    }
    pub fn is_idle(&self) -> bool {
        self.current.is_none()
    }

    /// The next request to submit; `seq` is the shared ZCL/AF sequence counter.
    pub fn poll_request(&mut self, now: Time, seq: &mut u8) -> Option<Frame> {
        if self.current.is_some() || self.done {
            return None;
        }
        let Some(step) = self.steps.pop_front() else {
            self.done = true;
            return None;
        };
        Some(self.send(step, 0, now, seq))
    }

    fn send(&mut self, step: Step, attempt: u8, now: Time, seq: &mut u8) -> Frame {
        let nwk = self.found.nwk;
        let mut zcl_seq = None;
        let mut af = |cl: u16, ep: u8, data: Vec<u8>, s: u8| {
            zcl_seq = Some(s);
            DataRequest {
                dst: nwk,
                dst_endpoint: ep,
                src_endpoint: COORD_ENDPOINT,
                cluster: cl,
                tsn: s,
                options: af::options::ACK_REQUEST,
                radius: af::DEFAULT_RADIUS,
                data,
            }
            .to_frame()
        };
        *seq = seq.wrapping_add(1);
        let s = *seq;
        let frame = match &step {
            Step::ActiveEp => ActiveEpReq {
                dst: nwk,
                nwk_of_interest: nwk,
            }
            .to_frame(),
            Step::SimpleDesc(ep) => SimpleDescReq {
                dst: nwk,
                nwk_of_interest: nwk,
                endpoint: *ep,
            }
            .to_frame(),
            Step::ReadBasic(ep) => af(
                cluster::BASIC,
                *ep,
                // Manufacturer and model, and (Zigbee2MQTT's "magic
                // packet") the rest that Tuya TS0601 firmwares want read
                // before they start reporting; others skip what they lack.
                zcl::read_attributes(s, &[0x0004, 0x0000, 0x0001, 0x0005, 0x0007, 0xFFFE]),
                s,
            ),
            Step::ReadZoneType(ep) => af(
                cluster::IAS_ZONE,
                *ep,
                zcl::read_attributes(s, &[0x0001]),
                s,
            ),
            Step::ReadBattery(ep) => af(
                cluster::POWER_CFG,
                *ep,
                zcl::read_attributes(s, &[0x0021]),
                s,
            ),
            Step::WriteCie(ep) => af(
                cluster::IAS_ZONE,
                *ep,
                zcl::write_attribute(s, 0x0010, ty::IEEE, &Value::Uint(self.coordinator_ieee)),
                s,
            ),
            Step::Bind(ep, cl) => BindReq {
                dst: nwk,
                src_ieee: self.found.ieee,
                src_endpoint: *ep,
                cluster: *cl,
                target: BindTarget::Endpoint {
                    ieee: self.coordinator_ieee,
                    endpoint: COORD_ENDPOINT,
                },
            }
            .to_frame(),
            Step::ConfigureDef(ep, r) => af(
                r.cluster,
                *ep,
                zcl::configure_reporting(
                    s,
                    r.attr,
                    r.ty,
                    r.min,
                    r.max,
                    r.change.map(Value::Int).as_ref(),
                ),
                s,
            ),
            Step::Configure(ep, i) => {
                let t = reporting_table();
                let (cl, attr, typ, min, max, change) =
                    t.get(*i).cloned().unwrap_or((0, 0, 0, 0, 0, None));
                af(
                    cl,
                    *ep,
                    zcl::configure_reporting(s, attr, typ, min, max, change.as_ref()),
                    s,
                )
            }
        };
        self.current = Some(Current {
            step,
            deadline: now.saturating_add(self.timeout),
            attempt,
            srsp: true,
            zcl_seq,
        });
        frame
    }

    /// The SRSP status for the request this interview submitted.
    pub fn handle_srsp(&mut self, ok: bool) {
        if let Some(c) = &mut self.current {
            if ok {
                c.srsp = false;
            } else {
                self.found.skipped += 1;
                self.current = None;
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Time, seq: &mut u8) -> Option<Frame> {
        let c = self.current.take_if(|c| now >= c.deadline)?;
        if c.attempt == 0 {
            Some(self.send(c.step, 1, now, seq))
        } else {
            self.found.skipped += 1;
            None
        }
    }

    pub fn next_deadline(&self) -> Option<Time> {
        self.current.as_ref().map(|c| c.deadline)
    }

    /// A ZDO callback about this device.
    pub fn handle_zdo(&mut self, f: &Frame) {
        let Some(c) = &self.current else { return };
        match &c.step {
            Step::ActiveEp => {
                if let Ok(r) = zdo::ActiveEpRsp::from_frame(f) {
                    for ep in &r.endpoints {
                        self.steps.push_back(Step::SimpleDesc(*ep));
                    }
                    self.current = None;
                }
            }
            Step::SimpleDesc(ep) => {
                let ep = *ep;
                if let Ok(r) = zdo::SimpleDescRsp::from_frame(f) {
                    if let Some(d) = r.descriptor.0.filter(|d| d.endpoint == ep) {
                        self.plan_endpoint(&d);
                        self.found.endpoints.push(d);
                    }
                    self.current = None;
                }
            }
            Step::Bind(..) if zdo::BindRsp::matches(f) => self.current = None,
            _ => {}
        }
    }

    fn plan_endpoint(&mut self, d: &zdo::SimpleDescriptor) {
        let ep = d.endpoint;
        let has = |c: u16| d.in_clusters.contains(&c);
        if has(cluster::BASIC)
            && self.found.model.is_none()
            && !self.steps.iter().any(|s| matches!(s, Step::ReadBasic(_)))
        {
            self.steps.push_back(Step::ReadBasic(ep));
        }
        for (i, r) in reporting_table().iter().enumerate() {
            if has(r.0) {
                self.steps.push_back(Step::Bind(ep, r.0));
                self.steps.push_back(Step::Configure(ep, i));
            }
        }
        // Remotes and buttons send commands from their client clusters:
        // bound so they reach the coordinator.
        for c in [cluster::ON_OFF, cluster::LEVEL, cluster::IAS_ACE] {
            if d.out_clusters.contains(&c) && !has(c) {
                self.steps.push_back(Step::Bind(ep, c));
            }
        }
        if has(cluster::IAS_ZONE) {
            self.found.zone_endpoint = Some(ep);
            self.steps.push_back(Step::WriteCie(ep));
            self.steps.push_back(Step::ReadZoneType(ep));
        }
        if has(cluster::POWER_CFG) {
            self.steps.push_back(Step::ReadBattery(ep));
        }
    }

    /// Whether the device library still has to be consulted: the model
    /// is known and it was not yet (no model: no definition to find).
    pub fn needs_identifying(&self) -> bool {
        !self.identified && self.found.model.is_some()
    }

    /// Applies the device's definition (if any) to the steps still to do:
    /// its `reporting` list replaces the generic bindings and reporting
    /// configuration (an empty list: none — Xiaomi devices refuse them and
    /// sleep through the attempts).
    pub fn identified(&mut self, def: Option<&Definition>) {
        self.identified = true;
        let Some(reports) = def.and_then(|d| d.reporting.as_ref()) else {
            return;
        };
        self.steps
            .retain(|s| !matches!(s, Step::Bind(..) | Step::Configure(..)));
        for r in reports {
            let ep = self
                .found
                .endpoints
                .iter()
                .find(|d| d.in_clusters.contains(&r.cluster))
                .or(self.found.endpoints.first())
                .map_or(1, |d| d.endpoint);
            self.steps.push_back(Step::Bind(ep, r.cluster));
            self.steps.push_back(Step::ConfigureDef(ep, r.clone()));
        }
    }

    /// A ZCL frame from this device; returns true when it answered our step.
    pub fn handle_zcl(&mut self, h: &Header, m: &Message) -> bool {
        let Some(c) = &self.current else { return false };
        // Reports carry the device's own sequence numbers: never an answer.
        let is_report = matches!(m, Message::Attributes { report: true, .. });
        if c.zcl_seq != Some(h.seq) || h.cluster_specific || is_report {
            return false;
        }
        if let Message::Attributes {
            report: false,
            attrs,
        } = m
        {
            for a in attrs {
                match (&c.step, a.id, &a.value) {
                    (Step::ReadBasic(_), 0x0004, Value::String(s)) => {
                        self.found.manufacturer = Some(s.clone())
                    }
                    (Step::ReadBasic(_), 0x0005, Value::String(s)) => {
                        self.found.model = Some(s.clone())
                    }
                    (Step::ReadZoneType(_), 0x0001, v) => {
                        self.found.zone_type = v.as_u64().map(|z| z as u16)
                    }
                    (Step::ReadBattery(_), 0x0021, v) => {
                        self.found.battery = v.as_f64().filter(|b| *b <= 200.0).map(|b| b / 2.0)
                    }
                    _ => {}
                }
            }
        }
        self.current = None;
        true
    }
}
