//! MT ZDO subsystem (0x05): start-up, permit join, device announce,
//! descriptors, bindings, address look-up.
//!
//! With NV `ZDO_DIRECT_CB` set, Z-Stack answers each ZDO request with a
//! status SRSP and later delivers the remote device's answer as an AREQ
//! (`*Rsp` here); both are modelled.

use super::wire::{Field, PayloadError, Reader, msg};

/// ZDO device states (`ZDO_STATE_CHANGE_IND`).
pub mod state {
    pub const HOLD: u8 = 0x00;
    pub const COORD_STARTING: u8 = 0x08;
    /// Started as the Zigbee coordinator: the network is up.
    pub const ZB_COORD: u8 = 0x09;
}

/// `ZDO_STARTUP_FROM_APP` outcomes.
pub mod startup {
    pub const RESTORED: u8 = 0x00;
    pub const NEW_NETWORK: u8 = 0x01;
    pub const NOT_STARTED: u8 = 0x02;
}

/// A simple descriptor, preceded on the wire by its length (0 = none).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SimpleDescriptor {
    pub endpoint: u8,
    pub profile: u16,
    pub device_type: u16,
    pub device_version: u8,
    pub in_clusters: Vec<u16>,
    pub out_clusters: Vec<u16>,
}

/// `Option<SimpleDescriptor>` with its size prefix (a failed request carries length 0).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SizedDescriptor(pub Option<SimpleDescriptor>);

impl Field for SizedDescriptor {
    fn put(&self, out: &mut Vec<u8>) {
        let Some(d) = &self.0 else {
            out.push(0);
            return;
        };
        let mut body = Vec::new();
        d.endpoint.put(&mut body);
        d.profile.put(&mut body);
        d.device_type.put(&mut body);
        d.device_version.put(&mut body);
        d.in_clusters.put(&mut body);
        d.out_clusters.put(&mut body);
        body.put(out);
    }
    fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, PayloadError> {
        let body = Vec::<u8>::get(r, field)?;
        if body.is_empty() {
            return Ok(SizedDescriptor(None));
        }
        let mut b = Reader::new(&body, r.msg);
        Ok(SizedDescriptor(Some(SimpleDescriptor {
            endpoint: u8::get(&mut b, "endpoint")?,
            profile: u16::get(&mut b, "profile")?,
            device_type: u16::get(&mut b, "device_type")?,
            device_version: u8::get(&mut b, "device_version")?,
            in_clusters: Vec::<u16>::get(&mut b, "in_clusters")?,
            out_clusters: Vec::<u16>::get(&mut b, "out_clusters")?,
        })))
    }
}

/// Destination of a binding: a device endpoint (mode 3) or a group (mode 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindTarget {
    Group(u16),
    Endpoint { ieee: u64, endpoint: u8 },
}

impl Default for BindTarget {
    fn default() -> Self {
        BindTarget::Group(0)
    }
}

impl Field for BindTarget {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            BindTarget::Group(g) => {
                out.push(0x01);
                g.put(out);
            }
            BindTarget::Endpoint { ieee, endpoint } => {
                out.push(0x03);
                ieee.put(out);
                out.push(*endpoint);
            }
        }
    }
    fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, PayloadError> {
        match u8::get(r, field)? {
            0x01 => Ok(BindTarget::Group(u16::get(r, field)?)),
            0x03 => Ok(BindTarget::Endpoint {
                ieee: u64::get(r, field)?,
                endpoint: u8::get(r, field)?,
            }),
            m => Err(PayloadError::Invalid {
                msg: r.msg,
                field,
                value: u64::from(m),
            }),
        }
    }
}

/// A list of u16 that runs to the end of the payload (no count prefix).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RestU16(pub Vec<u16>);

impl Field for RestU16 {
    fn put(&self, out: &mut Vec<u8>) {
        for v in &self.0 {
            v.put(out);
        }
    }
    fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, PayloadError> {
        let mut v = Vec::new();
        while !r.is_empty() {
            v.push(u16::get(r, field)?);
        }
        Ok(RestU16(v))
    }
}

msg! {
    StartupFromAppReq: Sreq ZDO 0x40 { start_delay: u16 }
    /// See [`startup`] for the values.
    StartupFromAppRsp: Srsp ZDO 0x40 { state: u8 }
    StateChangeInd: Areq ZDO 0xC0 { state: u8 }
    /// Address mode 0x02 = short address, 0x0F = broadcast; `dst` 0xFFFC = all routers.
    MgmtPermitJoinReq: Sreq ZDO 0x36 { addr_mode: u8, dst: u16, duration: u8, tc_significance: u8 }
    MgmtPermitJoinSrsp: Srsp ZDO 0x36 { status: u8 }
    MgmtPermitJoinRsp: Areq ZDO 0xB6 { src: u16, status: u8 }
    EndDeviceAnnceInd: Areq ZDO 0xC1 { src: u16, nwk: u16, ieee: u64, capabilities: u8 }
    /// Trust-centre device indication: a device joined (sent before the announce).
    TcDevInd: Areq ZDO 0xCA { nwk: u16, ieee: u64, parent: u16 }
    ActiveEpReq: Sreq ZDO 0x05 { dst: u16, nwk_of_interest: u16 }
    ActiveEpSrsp: Srsp ZDO 0x05 { status: u8 }
    ActiveEpRsp: Areq ZDO 0x85 { src: u16, status: u8, nwk: u16, endpoints: Vec<u8> }
    SimpleDescReq: Sreq ZDO 0x04 { dst: u16, nwk_of_interest: u16, endpoint: u8 }
    SimpleDescSrsp: Srsp ZDO 0x04 { status: u8 }
    SimpleDescRsp: Areq ZDO 0x84 { src: u16, status: u8, nwk: u16, descriptor: SizedDescriptor }
    BindReq: Sreq ZDO 0x21 { dst: u16, src_ieee: u64, src_endpoint: u8, cluster: u16, target: BindTarget }
    BindSrsp: Srsp ZDO 0x21 { status: u8 }
    BindRsp: Areq ZDO 0xA1 { src: u16, status: u8 }
    /// `req_type` 0 = single device; `start_index` for the associated list.
    IeeeAddrReq: Sreq ZDO 0x01 { nwk: u16, req_type: u8, start_index: u8 }
    IeeeAddrSrsp: Srsp ZDO 0x01 { status: u8 }
    IeeeAddrRsp: Areq ZDO 0x81 {
        status: u8, ieee: u64, nwk: u16, num_assoc: u8, start_index: u8, devices: RestU16,
    }
    LeaveInd: Areq ZDO 0xC9 { nwk: u16, ieee: u64, request: u8, remove: u8, rejoin: u8 }
}
