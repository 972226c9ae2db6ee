//! Tuya data-point decoding never panics; what decodes re-encodes to the
//! same bytes' meaning; readings through a Tuya definition are finite.
#![no_main]
use carebridge::model::Time;
use carebridge::zigbee::library::{Library, apply, tuya};
use carebridge::zigbee::{zcl, zcl_map};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((seq, dps)) = tuya::decode(data) {
        let again = tuya::encode(seq, &dps);
        assert_eq!(tuya::decode(&again), Ok((seq, dps)));
    }
    let _ = tuya::time_sync_response(data, i64::from(data.len() as u32), 0, data.len() % 2 == 0);
    let lib = Library::builtin();
    let def = lib.find(Some("_TZE200_ztc6ggyl"), Some("TS0601"));
    let mut frame = vec![0x09, 0x01, data.first().copied().unwrap_or(2)];
    frame.extend_from_slice(data);
    if let Ok((h, m)) = zcl::decode(tuya::CLUSTER, &frame) {
        let dev = zcl_map::device_id(1);
        let d = apply::decode(def, &dev, tuya::CLUSTER, &frame, &h, &m, None, true, Time(0));
        assert!(d.readings.iter().all(|r| r.value.is_finite()));
    }
});
