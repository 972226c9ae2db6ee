//! Xiaomi 0xFF01 structure decoding never panics; readings through an Aqara
//! definition are finite, also when the structure rides in a report.
#![no_main]
use carebridge::model::Time;
use carebridge::zigbee::library::{Library, apply, xiaomi};
use carebridge::zigbee::{zcl, zcl_map};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = xiaomi::decode(data) {
        let again = xiaomi::encode(&entries);
        assert!(xiaomi::decode(&again).is_ok());
    }
    let lib = Library::builtin();
    let def = lib.find(Some("LUMI"), Some("lumi.weather"));
    let mut frame = vec![0x1C, 0x5F, 0x11, 0x01, 0x0A, 0x01, 0xFF, 0x42];
    frame.push(data.len().min(254) as u8);
    frame.extend_from_slice(data);
    if let Ok((h, m)) = zcl::decode(0x0000, &frame) {
        let dev = zcl_map::device_id(1);
        let d = apply::decode(def, &dev, 0x0000, &frame, &h, &m, None, true, Time(0));
        assert!(d.readings.iter().all(|r| r.value.is_finite()));
    }
});
