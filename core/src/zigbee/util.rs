//! MT UTIL subsystem (0x07): device information (our IEEE and ZDO state).

use super::wire::msg;

msg! {
    UtilGetDeviceInfoReq: Sreq UTIL 0x00 {}
    /// `associated` is the count-prefixed list of child short addresses.
    UtilGetDeviceInfoRsp: Srsp UTIL 0x00 {
        status: u8, ieee: u64, nwk: u16, device_type: u8, device_state: u8, associated: Vec<u16>,
    }
}
