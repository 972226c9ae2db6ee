//! Unit and property tests of the compact codec (kept apart to keep codec.rs short).

use super::*;
use proptest::prelude::*;

fn enc(m: &Uplink) -> Vec<u8> {
    let mut v = Vec::new();
    encode(m, &mut v).unwrap();
    v
}

fn panic_alert() -> AlertMsg {
    AlertMsg {
        kind: Some(Kind::Panic),
        severity: Severity::Urgent,
        state: AlertState::Raised,
        device_index: 3,
        age_min: 0,
        value: None,
    }
}

#[test]
fn panic_alert_is_four_literal_bytes() {
    let b = enc(&Uplink::Alert(panic_alert()));
    // 0x21 = v1 type 1; kind 6 << 3 | urgent 2 << 1 | raised = 0x34; age 0; index 3.
    assert_eq!(b, vec![0x21, 0x34, 0x00, 0x03]);
    assert_eq!(decode(&b).unwrap(), (Uplink::Alert(panic_alert()), 4));
}

#[test]
fn widest_alert_with_value_is_seven_bytes() {
    let a = AlertMsg {
        kind: Some(Kind::Temperature),
        severity: Severity::Warning,
        state: AlertState::Cleared,
        device_index: 0x1234,
        age_min: 90,
        value: Some(145),
    };
    let b = enc(&Uplink::Alert(a.clone()));
    assert_eq!(b, vec![0x24, 0x1b, 62, 0x12, 0x34, 0x00, 145]);
    assert_eq!(decode(&b).unwrap().0, Uplink::Alert(a));
}

#[test]
fn truncated_alert_reports_how_many_bytes_are_missing() {
    let b = enc(&Uplink::Alert(panic_alert()));
    assert_eq!(decode(&b[..2]), Err(CodecError::Incomplete { needed: 1 }));
    assert_eq!(decode(&[]), Err(CodecError::Incomplete { needed: 1 }));
}

#[test]
fn foreign_version_type_kind_and_severity_are_named() {
    assert_eq!(decode(&[0x41, 0, 0, 0]), Err(CodecError::Version(2)));
    assert_eq!(decode(&[0x3f]), Err(CodecError::Type(31)));
    // kind code 30 is unknown.
    assert_eq!(
        decode(&[0x21, 30 << 3, 0, 0]),
        Err(CodecError::Kind { at: 1, code: 30 })
    );
    assert_eq!(
        decode(&[0x21, 0b110, 0, 0]),
        Err(CodecError::Severity { at: 1, code: 3 })
    );
    assert_eq!(decode_downlink(&[0x21]), Err(CodecError::Type(1)));
}

#[test]
fn a_full_summary_fits_dr0() {
    let s = Summary {
        period_h: 24,
        temp_min_half_c: Some(29),
        temp_max_half_c: Some(44),
        battery_low: 2,
        backlog: 300,
        rooms: (0..MAX_ROOMS as u8)
            .map(|i| RoomActivity {
                room_index: i,
                active_slots: 96,
            })
            .collect(),
    };
    let b = enc(&Uplink::Summary(s.clone()));
    assert!(b.len() <= MAX_SUMMARY, "{}", b.len());
    assert_eq!(decode(&b).unwrap().0, Uplink::Summary(s.clone()));
    let mut too_many = s;
    too_many.rooms.push(RoomActivity {
        room_index: 99,
        active_slots: 1,
    });
    assert_eq!(
        encode(&Uplink::Summary(too_many), &mut Vec::new()),
        Err(CodecError::TooManyRooms(MAX_ROOMS + 1))
    );
}

#[test]
fn downlink_commands_have_literal_bytes() {
    let mut b = Vec::new();
    encode_downlink(&Downlink::PermitJoin { secs: 120 }, &mut b);
    assert_eq!(b, vec![0x33, 0x00, 120]);
    assert_eq!(
        decode_downlink(&b).unwrap(),
        (Downlink::PermitJoin { secs: 120 }, 3)
    );
    b.clear();
    encode_downlink(&Downlink::AckSeq { seq: 0x0102_0304 }, &mut b);
    assert_eq!(b, vec![0x31, 1, 2, 3, 4]);
}

#[test]
fn age_is_exact_below_an_hour_and_quarter_hours_after() {
    assert_eq!(decode_age(encode_age(59)), 59);
    assert_eq!(decode_age(encode_age(74)), 60);
    assert_eq!(decode_age(encode_age(75)), 75);
    assert_eq!(decode_age(encode_age(u16::MAX)), 60 + 195 * 15);
}

#[test]
fn alert_from_the_rules_keeps_age_and_scaled_value() {
    let a = crate::model::Alert {
        uid: None,
        rule: "cold-home".into(),
        severity: Severity::Warning,
        state: AlertState::Raised,
        device: crate::model::DeviceId::new("lounge-temp").unwrap(),
        room: Some("lounge".into()),
        at: Time::from_secs(1_000),
        message: "Lounge is cold".into(),
        value: Some(14.54),
        kind: Some(Kind::Temperature),
        time_trusted: true,
        instance: None,
    };
    let m = AlertMsg::from_alert(&a, 7, Time::from_secs(1_000 + 125));
    assert_eq!((m.age_min, m.value, m.device_index), (2, Some(145), 7));
    let b = enc(&Uplink::Alert(m));
    assert_eq!(b.len(), 6);
}

// --- CayenneLPP comparison --------------------------------------------------

/// CayenneLPP record sizes: channel + type + data.
fn lpp_digital() -> usize {
    3
}
fn lpp_analog() -> usize {
    4
}
fn lpp_temperature() -> usize {
    4
}

/// The same facts as a compact alert, in CayenneLPP: state, severity and
/// kind as digital inputs, age as an analog input, plus the value.
fn lpp_alert(a: &AlertMsg) -> usize {
    3 * lpp_digital() + lpp_analog() + a.value.map_or(0, |_| lpp_temperature())
}

fn lpp_summary(s: &Summary) -> usize {
    s.rooms.len() * lpp_digital() + 2 * lpp_temperature() + lpp_digital() + lpp_analog()
}

#[test]
fn cayenne_comparison_table_matches_the_doc() {
    let panic = Uplink::Alert(panic_alert());
    let cold_a = AlertMsg {
        kind: Some(Kind::Temperature),
        value: Some(145),
        severity: Severity::Warning,
        ..panic_alert()
    };
    let cold = Uplink::Alert(cold_a.clone());
    let summary = Summary {
        period_h: 24,
        temp_min_half_c: Some(30),
        temp_max_half_c: Some(42),
        battery_low: 1,
        backlog: 0,
        rooms: (0..6)
            .map(|i| RoomActivity {
                room_index: i,
                active_slots: 10,
            })
            .collect(),
    };
    let tel: Vec<TelemetryRec> = (0..8)
        .map(|i| TelemetryRec {
            device_index: i,
            kind: Kind::Temperature,
            age_min: 0,
            value: 200,
        })
        .collect();
    let rows = [
        (
            "alert (panic, no value)",
            enc(&panic).len(),
            lpp_alert(&panic_alert()),
        ),
        (
            "alert (cold home, 14.5 °C)",
            enc(&cold).len(),
            lpp_alert(&cold_a),
        ),
        (
            "summary, 6 rooms",
            enc(&Uplink::Summary(summary.clone())).len(),
            lpp_summary(&summary),
        ),
        (
            "telemetry, 8 readings",
            enc(&Uplink::Telemetry(tel)).len(),
            8 * lpp_temperature(),
        ),
    ];
    let doc = include_str!("codec.rs");
    for (name, ours, lpp) in rows {
        let row = format!("//! | {name} | {ours} | {lpp} |");
        assert!(doc.contains(&row), "doc table lacks {row:?}");
    }
}

// --- properties --------------------------------------------------------------

fn kind() -> impl Strategy<Value = Kind> {
    (0..Kind::ALL.len()).prop_map(|i| Kind::ALL[i])
}

fn age() -> impl Strategy<Value = u16> {
    // Only representable ages round-trip exactly.
    any::<u8>().prop_map(decode_age)
}

pub(crate) fn arb_uplink() -> impl Strategy<Value = Uplink> {
    let alert = (
        proptest::option::of(kind()),
        0u8..3,
        any::<bool>(),
        any::<u16>(),
        age(),
        proptest::option::of(any::<i16>()),
    )
        .prop_map(|(kind, sev, cleared, device_index, age_min, value)| {
            Uplink::Alert(AlertMsg {
                kind,
                severity: Severity::from_code(sev).unwrap_or(Severity::Info),
                state: if cleared {
                    AlertState::Cleared
                } else {
                    AlertState::Raised
                },
                device_index,
                age_min,
                value,
            })
        });
    let rec = (any::<u8>(), kind(), age(), any::<i16>()).prop_map(|(d, k, a, v)| TelemetryRec {
        device_index: d,
        kind: k,
        age_min: a,
        value: v,
    });
    let tel = proptest::collection::vec(rec, 0..=MAX_BATCH).prop_map(Uplink::Telemetry);
    let half = proptest::option::of(-127i8..=127);
    let room = (any::<u8>(), 0u8..=96).prop_map(|(room_index, active_slots)| RoomActivity {
        room_index,
        active_slots,
    });
    let sum = (
        any::<u8>(),
        half.clone(),
        half,
        any::<u8>(),
        any::<u16>(),
        proptest::collection::vec(room, 0..=MAX_ROOMS),
    )
        .prop_map(|(period_h, tmin, tmax, battery_low, backlog, rooms)| {
            Uplink::Summary(Summary {
                period_h,
                temp_min_half_c: tmin,
                temp_max_half_c: tmax,
                battery_low,
                backlog,
                rooms,
            })
        });
    prop_oneof![alert, tel, sum]
}

pub(crate) fn arb_downlink() -> impl Strategy<Value = Downlink> {
    prop_oneof![
        (any::<u16>(), proptest::option::of(kind()))
            .prop_map(|(device_index, kind)| Downlink::AckIndex { device_index, kind }),
        any::<u32>().prop_map(|seq| Downlink::AckSeq { seq }),
        any::<u8>().prop_map(|token| Downlink::Ping { token }),
        any::<u16>().prop_map(|secs| Downlink::PermitJoin { secs }),
    ]
}

proptest! {
    #[test]
    fn every_uplink_round_trips_and_alerts_stay_within_seven_bytes(m in arb_uplink()) {
        let b = enc(&m);
        prop_assert!(b.len() <= MAX_SUMMARY);
        if matches!(m, Uplink::Alert(_)) {
            prop_assert!(b.len() <= 7);
        }
        prop_assert_eq!(decode(&b).unwrap(), (m, b.len()));
    }

    #[test]
    fn every_downlink_round_trips(d in arb_downlink()) {
        let mut b = Vec::new();
        encode_downlink(&d, &mut b);
        prop_assert_eq!(decode_downlink(&b).unwrap(), (d, b.len()));
    }

    #[test]
    fn decoders_never_panic_and_what_they_accept_round_trips(
        b in proptest::collection::vec(any::<u8>(), 0..64)
    ) {
        if let Ok((m, used)) = decode(&b) {
            prop_assert!(used <= b.len());
            prop_assert_eq!(decode(&enc(&m)).unwrap().0, m);
        }
        let _ = decode_downlink(&b);
    }
}
