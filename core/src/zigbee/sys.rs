//! MT SYS subsystem (0x01): reset, ping, version, OSAL NV items.
//!
//! Field layouts follow the Z-Stack Monitor-and-Test specification; byte
//! fixtures are cross-checked against zigpy-znp in `tests/fixtures/znp`.

use super::wire::msg;

/// NV item ids (Z-Stack 3.x `ZCD_NV_*`).
pub mod nv {
    /// Start-up options; bit 1 clears network state on the next reset.
    pub const STARTUP_OPTION: u16 = 0x0003;
    pub const EXTENDED_PAN_ID: u16 = 0x002D;
    /// The marker Zigbee2MQTT and carebridge write once a stick is formed (value 0x55).
    pub const HAS_CONFIGURED_ZSTACK3: u16 = 0x0060;
    pub const PRECFGKEY: u16 = 0x0062;
    pub const PRECFGKEYS_ENABLE: u16 = 0x0063;
    pub const PANID: u16 = 0x0083;
    pub const CHANLIST: u16 = 0x0084;
    pub const LOGICAL_TYPE: u16 = 0x0087;
    /// Deliver ZDO responses as callbacks (ZDO_*_RSP AREQs) to the host.
    pub const ZDO_DIRECT_CB: u16 = 0x008F;
    /// Value written to [`HAS_CONFIGURED_ZSTACK3`].
    pub const CONFIGURED_MARKER: u8 = 0x55;
}

msg! {
    /// SYS_RESET_REQ (AREQ): kind 0 = hard (watchdog), 1 = soft.
    ResetReq: Areq SYS 0x00 { kind: u8 }
    /// SYS_RESET_IND: the stick (re)started.
    ResetInd: Areq SYS 0x80 {
        reason: u8, transport_rev: u8, product_id: u8, major: u8, minor: u8, maint: u8,
    }
    /// SYS_PING request.
    PingReq: Sreq SYS 0x01 {}
    /// SYS_PING response: MT capabilities bitmap.
    PingRsp: Srsp SYS 0x01 { capabilities: u16 }
    VersionReq: Sreq SYS 0x02 {}
    /// SYS_VERSION response; `product_id` 1 = Z-Stack 3.0.x, 2 = Z-Stack 3.x.0.
    VersionRsp: Srsp SYS 0x02 {
        transport_rev: u8, product_id: u8, major: u8, minor: u8, maint: u8,
        /// Build date as YYYYMMDD on Z-Stack 3.x (absent on old firmware).
        code_revision: Option<u32>,
        /// 0 = no bootloader, 1 = built for the bootloader.
        bootloader_type: Option<u8>,
        bootloader_revision: Option<u32>,
    }
    GetExtAddrReq: Sreq SYS 0x04 {}
    GetExtAddrRsp: Srsp SYS 0x04 { ieee: u64 }
    NvItemInitReq: Sreq SYS 0x07 { id: u16, item_len: u16, value: Vec<u8> }
    /// Status 0x00 = created, 0x09 = already existed (both fine).
    NvItemInitRsp: Srsp SYS 0x07 { status: u8 }
    NvReadReq: Sreq SYS 0x08 { id: u16, offset: u8 }
    NvReadRsp: Srsp SYS 0x08 { status: u8, value: Vec<u8> }
    NvWriteReq: Sreq SYS 0x09 { id: u16, offset: u8, value: Vec<u8> }
    NvWriteRsp: Srsp SYS 0x09 { status: u8 }
}

/// NV status: item did not exist and was created by `NvItemInit`.
pub const NV_ITEM_UNINIT: u8 = 0x09;
