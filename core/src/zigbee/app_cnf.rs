//! MT APP_CNF subsystem (0x0F): Base Device Behaviour commissioning, used to
//! form a new network on Z-Stack 3.x.

use super::wire::msg;

/// BDB commissioning modes (bitmask).
pub mod mode {
    pub const STEERING: u8 = 0x02;
    pub const FORMATION: u8 = 0x04;
}

/// BDB commissioning status: success.
pub const BDB_SUCCESS: u8 = 0x00;
/// BDB commissioning status: network restored.
pub const BDB_NETWORK_RESTORED: u8 = 0x0A;

msg! {
    BdbStartCommissioningReq: Sreq APP_CNF 0x05 { mode: u8 }
    BdbStartCommissioningRsp: Srsp APP_CNF 0x05 { status: u8 }
    /// `channels` is a bitmask (bit n = channel n).
    BdbSetChannelReq: Sreq APP_CNF 0x08 { is_primary: u8, channels: u32 }
    BdbSetChannelRsp: Srsp APP_CNF 0x08 { status: u8 }
    BdbCommissioningNotification: Areq APP_CNF 0x80 { status: u8, mode: u8, remaining_modes: u8 }
}
