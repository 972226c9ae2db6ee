//! MT AF subsystem (0x04): endpoint registration and application data.

use super::wire::msg;

/// Options for `AF_DATA_REQUEST`.
pub mod options {
    /// Request an APS acknowledgement from the destination (as zigpy does
    /// for unicasts): `AF_DATA_CONFIRM` then reports real delivery.
    pub const ACK_REQUEST: u8 = 0x10;
    /// Z-Stack 3.x: *suppress* route discovery (older stacks called 0x20
    /// `DISCV_ROUTE`; it now means the opposite, so never set it blindly).
    pub const SUPPRESS_ROUTE_DISC_NETWORK: u8 = 0x20;
}

/// Home Automation profile id.
pub const PROFILE_HA: u16 = 0x0104;
/// Default radius for unicasts.
pub const DEFAULT_RADIUS: u8 = 30;

msg! {
    /// AF_REGISTER: declare one of the coordinator's endpoints.
    RegisterReq: Sreq AF 0x00 {
        endpoint: u8, profile: u16, device_id: u16, device_version: u8, latency: u8,
        in_clusters: Vec<u16>, out_clusters: Vec<u16>,
    }
    /// Status 0 = ok, 0xB8 = endpoint already registered (fine after a restart).
    RegisterRsp: Srsp AF 0x00 { status: u8 }
    DataRequest: Sreq AF 0x01 {
        dst: u16, dst_endpoint: u8, src_endpoint: u8, cluster: u16, tsn: u8, options: u8,
        radius: u8, data: Vec<u8>,
    }
    DataRequestRsp: Srsp AF 0x01 { status: u8 }
    DataConfirm: Areq AF 0x80 { status: u8, endpoint: u8, tsn: u8 }
    /// AF_INCOMING_MSG: an application frame (ZCL) from a device.
    IncomingMsg: Areq AF 0x81 {
        group: u16, cluster: u16, src: u16, src_endpoint: u8, dst_endpoint: u8,
        was_broadcast: u8, lqi: u8, security_use: u8, timestamp: u32, tsn: u8, data: Vec<u8>,
        mac_src: Option<u16>, radius: Option<u8>,
    }
}

/// AF status: endpoint already registered.
pub const STATUS_DUPLICATE: u8 = 0xB8;
