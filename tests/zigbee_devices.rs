//! A fixture per device-library definition: the frames such a device sends
//! (built byte by byte from the facts in zigbee-herdsman-converters, zigpy
//! quirks and vendors' manuals), wrapped in a Z-Stack `AF_INCOMING_MSG` MT
//! frame, go through the ZNP frame decoder and the coordinator's decoding
//! and come out as the right readings. Every built-in definition must have
//! one (a new definition without a fixture fails here).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::Duration;

use carebridge::model::{Kind, Time};
use carebridge::zigbee::coordinator::decoded_of;
use carebridge::zigbee::frame;
use carebridge::zigbee::library::Library;

use Kind::*;

const IEEE: u64 = 0x0015_8D00_0102_0304;
const AT: Time = Time(1_700_000_000_000);

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// An MT `AF_INCOMING_MSG` (AREQ, subsystem AF, command 0x81), byte by byte:
/// group, cluster, source address, endpoints, broadcast flag, LQI,
/// security, timestamp, transaction id, length, ZCL data, then Z-Stack 3's
/// MAC source and radius; SOF, length and the XOR check around it.
fn af_incoming(cluster: u16, zcl: &[u8]) -> Vec<u8> {
    let mut d = vec![0x00, 0x00];
    d.extend_from_slice(&cluster.to_le_bytes());
    d.extend_from_slice(&[0x2B, 0x1A, 0x01, 0x01, 0x00, 0x78, 0x00]);
    d.extend_from_slice(&[0x10, 0x27, 0x00, 0x00, 0x05]);
    d.push(zcl.len() as u8);
    d.extend_from_slice(zcl);
    d.extend_from_slice(&[0x2B, 0x1A, 0x00]);
    let mut f = vec![0xFE, d.len() as u8, 0x44, 0x81];
    f.extend_from_slice(&d);
    let fcs = f[1..].iter().fold(0u8, |a, b| a ^ b);
    f.push(fcs);
    f
}

struct Fixture {
    id: &'static str,
    cluster: u16,
    zcl: &'static str,
    zone_type: Option<u16>,
    want: &'static [(Kind, f64)],
}

const fn fx(
    id: &'static str,
    cluster: u16,
    zcl: &'static str,
    want: &'static [(Kind, f64)],
) -> Fixture {
    Fixture {
        id,
        cluster,
        zcl,
        zone_type: None,
        want,
    }
}

// ZCL headers used below: 18 = global, server→client, no default response;
// 1c = the same, manufacturer-specific (5f 11 = LUMI); 09 = cluster-specific
// server→client (IAS zone, Tuya); 01 = cluster-specific client→server (the
// commands buttons send).
const FIXTURES: &[Fixture] = &[
    // Aqara door: genOnOff attribute 0 = 1 (open); keep-alive 0xFF01 with
    // 3000 mV and state 0 (closed).
    fx(
        "aqara_door_mccgq11lm",
        0x0006,
        "18 01 0a 00 00 10 01",
        &[(Contact, 1.0)],
    ),
    fx(
        "aqara_door_mccgq11lm",
        0x0000,
        "1c 5f 11 02 0a 01 ff 42 0a 01 21 b8 0b 03 28 17 64 10 00",
        &[(Voltage, 3.0), (Battery, 100.0), (Contact, 0.0)],
    ),
    // Aqara motion: occupancy 1 (it never sends 0); illuminance in plain lux.
    fx(
        "aqara_motion_rtcgq11lm",
        0x0406,
        "18 03 0a 00 00 18 01",
        &[(Motion, 1.0)],
    ),
    fx(
        "aqara_motion_rtcgq11lm",
        0x0400,
        "18 04 0a 00 00 21 2c 01",
        &[(Illuminance, 300.0)],
    ),
    fx(
        "xiaomi_motion_rtcgq01lm",
        0x0406,
        "18 05 0a 00 00 18 01",
        &[(Motion, 1.0)],
    ),
    // Aqara leak: IAS zone status alarm1 (its zone type never read).
    fx(
        "aqara_leak_sjcgq11lm",
        0x0500,
        "09 06 00 01 00 00 01 00 00",
        &[(WaterLeak, 1.0), (Tamper, 0.0), (BatteryLow, 0.0)],
    ),
    // Aqara weather: 0xFF01 with 2950 mV, 0x64 = 2150 (21.50 °C), 0x65 = 4500 (45 %).
    fx(
        "aqara_th_wsdcgq11lm",
        0x0000,
        "1c 5f 11 07 0a 01 ff 42 0c 01 21 86 0b 64 29 66 08 65 21 94 11",
        &[
            (Voltage, 2.95),
            (Battery, 67.0),
            (Temperature, 21.5),
            (Humidity, 45.0),
        ],
    ),
    // Aqara mini switch: multistate present value 1 single, 2 double, 0 hold.
    fx(
        "aqara_button_wxkg11lm",
        0x0012,
        "18 08 0a 55 00 21 01 00",
        &[(Button, 1.0)],
    ),
    fx(
        "aqara_button_wxkg11lm",
        0x0012,
        "18 09 0a 55 00 21 02 00",
        &[(Button, 2.0)],
    ),
    fx(
        "aqara_button_wxkg11lm",
        0x0012,
        "18 0a 0a 55 00 21 00 00",
        &[(Button, 3.0), (Panic, 1.0)],
    ),
    // Tuya T/H: report (0x02), seq 0x0006, dp1 value 215, dp2 value 45, dp4 value 85.
    fx(
        "tuya_th_ts0601",
        0xEF00,
        "09 0b 02 00 06 01 02 00 04 00 00 00 d7 02 02 00 04 00 00 00 2d 04 02 00 04 00 00 00 55",
        &[(Temperature, 21.5), (Humidity, 45.0), (Battery, 85.0)],
    ),
    // Tuya door: dp1 bool 1 (open), dp2 value 90 %.
    fx(
        "tuya_door_ts0601",
        0xEF00,
        "09 0c 02 00 07 01 01 00 01 01 02 02 00 04 00 00 00 5a",
        &[(Contact, 1.0), (Battery, 90.0)],
    ),
    // Tuya PIR: dp1 enum 0 = motion, 1 = none; dp4 battery, dp12 lux.
    fx(
        "tuya_pir_zg204zl",
        0xEF00,
        "09 0d 02 00 08 01 04 00 01 00 04 02 00 04 00 00 00 50 0c 02 00 04 00 00 00 23",
        &[(Motion, 1.0), (Battery, 80.0), (Illuminance, 35.0)],
    ),
    fx(
        "tuya_pir_zg204zl",
        0xEF00,
        "09 0e 02 00 09 01 04 00 01 01",
        &[(Motion, 0.0)],
    ),
    // Tuya radar: dp1 bool 1 (present), dp9 distance 150 cm (no kind), dp104 320 lx.
    fx(
        "tuya_radar_ztc6ggyl",
        0xEF00,
        "09 0f 01 00 0a 01 01 00 01 01 09 02 00 04 00 00 00 96 68 02 00 04 00 00 01 40",
        &[(Occupancy, 1.0), (Illuminance, 320.0)],
    ),
    // Tuya SOS: IAS ACE emergency command (0x02) from the button.
    fx("tuya_sos_ts0215a", 0x0501, "01 10 02", &[(Panic, 1.0)]),
    // Sonoff button: toggle = single, on = double, off = long.
    fx("sonoff_snzb01", 0x0006, "01 11 02", &[(Button, 1.0)]),
    fx("sonoff_snzb01", 0x0006, "01 12 01", &[(Button, 2.0)]),
    fx(
        "sonoff_snzb01",
        0x0006,
        "01 13 00",
        &[(Button, 3.0), (Panic, 1.0)],
    ),
    // Sonoff T/H: standard clusters (the generic path), battery in half percent.
    fx(
        "sonoff_snzb02",
        0x0402,
        "18 14 0a 00 00 29 66 08",
        &[(Temperature, 21.5)],
    ),
    fx(
        "sonoff_snzb02",
        0x0001,
        "18 15 0a 21 00 20 c8",
        &[(Battery, 100.0)],
    ),
    fx(
        "sonoff_snzb03",
        0x0500,
        "09 16 00 01 00 00 01 00 00",
        &[(Motion, 1.0), (Tamper, 0.0), (BatteryLow, 0.0)],
    ),
    fx(
        "sonoff_snzb04",
        0x0500,
        "09 17 00 08 00 00 01 00 00",
        &[(Contact, 0.0), (Tamper, 0.0), (BatteryLow, 1.0)],
    ),
    // Frient SOS: the press on alarm2 (bit 1); the release says nothing of panic.
    fx(
        "frient_sos_soszb110",
        0x0500,
        "09 18 00 02 00 00 01 00 00",
        &[(Panic, 1.0), (Tamper, 0.0), (BatteryLow, 0.0)],
    ),
    fx(
        "frient_sos_soszb110",
        0x0500,
        "09 19 00 00 00 00 01 00 00",
        &[(Tamper, 0.0), (BatteryLow, 0.0)],
    ),
    fx(
        "frient_smoke_smszb120",
        0x0500,
        "09 1a 00 01 00 00 01 00 00",
        &[(Smoke, 1.0), (Tamper, 0.0), (BatteryLow, 0.0)],
    ),
    fx(
        "frient_leak_flszb110",
        0x0500,
        "09 1b 00 01 00 00 01 00 00",
        &[(WaterLeak, 1.0), (Tamper, 0.0), (BatteryLow, 0.0)],
    ),
    fx(
        "frient_motion_moszb140",
        0x0500,
        "09 1c 00 01 00 00 01 00 00",
        &[(Motion, 1.0), (Tamper, 0.0), (BatteryLow, 0.0)],
    ),
    fx(
        "frient_motion_moszb140",
        0x0402,
        "18 1d 0a 00 00 29 d2 07",
        &[(Temperature, 20.02)],
    ),
    fx(
        "heiman_smoke",
        0x0500,
        "09 1e 00 05 00 00 01 00 00",
        &[(Smoke, 1.0), (Tamper, 1.0), (BatteryLow, 0.0)],
    ),
    fx(
        "heiman_co",
        0x0500,
        "09 1f 00 01 00 00 01 00 00",
        &[(CarbonMonoxide, 1.0), (Tamper, 0.0), (BatteryLow, 0.0)],
    ),
    fx(
        "heiman_sos",
        0x0500,
        "09 20 00 01 00 00 01 00 00",
        &[(Panic, 1.0), (Tamper, 0.0), (BatteryLow, 0.0)],
    ),
    fx(
        "heiman_leak",
        0x0500,
        "09 21 00 01 00 00 01 00 00",
        &[(WaterLeak, 1.0), (Tamper, 0.0), (BatteryLow, 0.0)],
    ),
    // IKEA motion: On with timed off, on time 0x0708 = 1800 tenths (180 s);
    // battery in whole percent (87).
    fx(
        "ikea_motion_e1745",
        0x0006,
        "01 22 42 00 08 07 00 00",
        &[(Motion, 1.0)],
    ),
    fx(
        "ikea_motion_e1745",
        0x0001,
        "18 23 0a 21 00 20 57",
        &[(Battery, 87.0)],
    ),
    // IKEA on/off switch: on (I), off (O), move with on/off (hold I).
    fx("ikea_onoff_e1743", 0x0006, "01 24 01", &[(Button, 1.0)]),
    fx("ikea_onoff_e1743", 0x0006, "01 25 00", &[(Button, 2.0)]),
    fx(
        "ikea_onoff_e1743",
        0x0008,
        "01 26 05 00 53",
        &[(Button, 3.0), (Panic, 1.0)],
    ),
    fx("ikea_shortcut_e1812", 0x0006, "01 27 01", &[(Button, 1.0)]),
    fx(
        "ikea_shortcut_e1812",
        0x0008,
        "01 28 05 00 53",
        &[(Button, 3.0), (Panic, 1.0)],
    ),
];

fn run(
    lib: &Library,
    id: &str,
    cluster: u16,
    zcl: &[u8],
    zone_type: Option<u16>,
) -> carebridge::zigbee::library::Decoded {
    let def = lib
        .definitions()
        .iter()
        .find(|d| d.id == id)
        .unwrap_or_else(|| panic!("no definition {id}"));
    // The definition is the one its own identity finds.
    let m = &def.matches[0];
    assert_eq!(
        lib.find(m.manufacturer.as_deref(), Some(&m.model))
            .map(|d| d.id.as_str()),
        Some(id)
    );
    let bytes = af_incoming(cluster, zcl);
    let (f, used) = frame::decode(&bytes).expect("a well-formed MT frame");
    assert_eq!(used, bytes.len());
    decoded_of(&f, Some(def), IEEE, zone_type, AT)
}

#[test]
fn every_definitions_frames_become_the_right_readings() {
    let lib = Library::builtin();
    for fx in FIXTURES {
        let d = run(&lib, fx.id, fx.cluster, &hex(fx.zcl), fx.zone_type);
        let got: Vec<(Kind, f64)> = d.readings.iter().map(|r| (r.kind, r.value)).collect();
        assert_eq!(got, fx.want, "{} {}", fx.id, fx.zcl);
        assert!(
            d.readings
                .iter()
                .all(|r| r.device.as_str() == "zb-00158d0001020304" && r.at == AT)
        );
    }
}

#[test]
fn every_builtin_definition_has_a_fixture() {
    let covered: BTreeSet<&str> = FIXTURES.iter().map(|f| f.id).collect();
    let lib = Library::builtin();
    let all: BTreeSet<&str> = lib.definitions().iter().map(|d| d.id.as_str()).collect();
    let missing: Vec<_> = all.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "definitions without a fixture: {missing:?}"
    );
}

#[test]
fn motion_sensors_that_never_clear_ask_for_a_timed_clear() {
    let lib = Library::builtin();
    let d = run(
        &lib,
        "aqara_motion_rtcgq11lm",
        0x0406,
        &hex("18 03 0a 00 00 18 01"),
        None,
    );
    assert_eq!(d.clears, vec![(Motion, Duration::from_secs(90))]);
    // IKEA: the on time of the command itself (180 s here, 60 s there).
    let d = run(
        &lib,
        "ikea_motion_e1745",
        0x0006,
        &hex("01 22 42 00 08 07 00 00"),
        None,
    );
    assert_eq!(d.clears, vec![(Motion, Duration::from_secs(180))]);
    let d = run(
        &lib,
        "ikea_motion_e1745",
        0x0006,
        &hex("01 22 42 00 58 02 00 00"),
        None,
    );
    assert_eq!(d.clears, vec![(Motion, Duration::from_secs(60))]);
}

#[test]
fn a_tuya_time_request_is_answered_with_its_number_and_the_time() {
    let lib = Library::builtin();
    let d = run(&lib, "tuya_th_ts0601", 0xEF00, &hex("09 2a 24 00 2a"), None);
    assert!(d.readings.is_empty());
    // 11 = cluster-specific, client→server, no default response; same seq;
    // 0x24; the request's two bytes; 1_700_000_000 = 0x6553f100 twice.
    assert_eq!(
        d.reply.unwrap(),
        hex("11 2a 24 00 2a 65 53 f1 00 65 53 f1 00")
    );
    // A device whose definition does not ask for it gets no answer.
    let d = run(
        &lib,
        "tuya_sos_ts0215a",
        0xEF00,
        &hex("09 2a 24 00 2a"),
        None,
    );
    assert_eq!(d.reply, None);
}

#[test]
fn an_unknown_device_keeps_the_generic_zcl_path() {
    let bytes = af_incoming(0x0006, &hex("18 01 0a 00 00 10 01"));
    let (f, _) = frame::decode(&bytes).unwrap();
    let d = decoded_of(&f, None, IEEE, None, AT);
    let got: Vec<_> = d.readings.iter().map(|r| (r.kind, r.value)).collect();
    assert_eq!(got, vec![(Switch, 1.0)]);
    // Tuya data points mean nothing without a definition.
    let bytes = af_incoming(0xEF00, &hex("09 0f 01 00 0a 01 01 00 01 01"));
    let (f, _) = frame::decode(&bytes).unwrap();
    assert!(decoded_of(&f, None, IEEE, None, AT).readings.is_empty());
}

#[test]
fn truncated_and_corrupt_quirk_frames_give_nothing_rather_than_garbage() {
    let lib = Library::builtin();
    // A Tuya data point cut short, a Xiaomi structure with a bad type.
    let d = run(
        &lib,
        "tuya_radar_ztc6ggyl",
        0xEF00,
        &hex("09 0f 01 00 0a 01 01 00 04 01"),
        None,
    );
    assert!(d.readings.is_empty());
    let d = run(
        &lib,
        "aqara_door_mccgq11lm",
        0x0000,
        &hex("1c 5f 11 02 0a 01 ff 42 04 01 fe 00 00"),
        None,
    );
    assert!(d.readings.is_empty());
}
