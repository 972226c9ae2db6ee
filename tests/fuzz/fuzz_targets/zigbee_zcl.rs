//! ZCL decoding and mapping to readings never panic, and every reading is finite.
#![no_main]
use carebridge::model::Time;
use carebridge::zigbee::{zcl, zcl_map};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let cluster = u16::from_le_bytes([data[0], data[1]]);
    let zone = Some(u16::from(data[2]));
    if let Ok((_, m)) = zcl::decode(cluster, &data[3..]) {
        let dev = zcl_map::device_id(0x1234);
        for r in zcl_map::readings(&dev, cluster, &m, zone, true, Time(0)) {
            assert!(r.value.is_finite());
        }
    }
});
