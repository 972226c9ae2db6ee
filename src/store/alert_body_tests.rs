//! Tests of the stored alert body: every alert round-trips to exactly the
//! document `alert_payload` publishes; bad bodies name their byte.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::model::{DeviceId, Instance};

fn alert() -> Alert {
    Alert {
        uid: None,
        rule: "panic".into(),
        severity: Severity::Urgent,
        state: AlertState::Raised,
        device: DeviceId::new("pendant-004711").unwrap(),
        room: Some("hall".into()),
        at: Time::from_millis(1_795_860_000_123),
        message: "Panic button pressed in the hall (Pendant)".into(),
        value: Some(1.0),
        kind: Some(Kind::Panic),
        time_trusted: true,
        instance: Some(Instance {
            instance: "panic/pendant-004711/1795860000123".into(),
            attempt: 1,
        }),
    }
}

#[test]
fn a_body_is_a_third_of_the_document_and_publishes_as_it() {
    let a = alert();
    let id = "3f2b8c1e-4d5a-4b6c-8d7e-9f0a1b2c3d4e";
    let body = alert_body(id, 12_345, &a).unwrap();
    let doc = alert_payload(id, 12_345, &a).unwrap();
    assert_eq!(body[0], FORMAT);
    assert!(
        body.len() * 2 < doc.len(),
        "{} vs {}",
        body.len(),
        doc.len()
    );
    assert_eq!(alert_doc(id, 12_345, a.at, body), doc);
}

#[test]
fn a_row_stored_whole_is_published_as_stored() {
    let doc = alert_payload("u-1", 7, &alert()).unwrap();
    assert_eq!(alert_doc("u-1", 7, Time(0), doc.clone()), doc);
}

#[test]
fn a_damaged_body_still_publishes_an_urgent_alert_naming_the_byte() {
    let a = alert();
    let mut body = alert_body("u", 9, &a).unwrap();
    // The severity code: after the format byte and "panic" (1 + 5).
    body[7] = 9;
    assert_eq!(
        decode(&body).unwrap_err(),
        BodyError {
            at: 7,
            what: "unknown severity"
        }
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&alert_doc("u", 9, Time(5_000), body)).unwrap();
    assert_eq!(doc["id"], "u");
    assert_eq!(doc["seq"], 9);
    assert_eq!(doc["severity"], "urgent");
    assert_eq!(doc["state"], "raised");
    assert_eq!(doc["at"], "1970-01-01T00:00:05Z");
    let message = doc["message"].as_str().unwrap();
    assert!(message.contains("byte 7: unknown severity"), "{message}");
}

#[test]
fn bad_bodies_are_refused_with_the_byte_and_the_reason() {
    let good = alert_body("u", 1, &alert()).unwrap();
    let err = |b: &[u8]| decode(b).unwrap_err();
    assert_eq!(err(&[]).what, "empty");
    assert_eq!(err(&[7]).what, "unknown format");
    let cut = &good[..good.len() - 1];
    assert_eq!(err(cut).what, "attempt");
    let mut long = good.clone();
    long.push(0);
    assert_eq!(
        err(&long),
        BodyError {
            at: good.len(),
            what: "bytes after the end"
        }
    );
    // The long length form for a 5-byte rule: not canonical.
    let mut b = vec![FORMAT, 0xff, 5, 0, 0, 0];
    b.extend_from_slice(b"panic");
    assert_eq!(
        err(&b),
        BodyError {
            at: 2,
            what: "long length form for a short string"
        }
    );
    // Invalid UTF-8 in the rule, at its second byte.
    let b = [FORMAT, 2, b'a', 0xc3];
    assert_eq!(
        err(&b),
        BodyError {
            at: 3,
            what: "not UTF-8"
        }
    );
}

#[test]
fn a_string_of_255_bytes_or_more_takes_the_long_form_and_round_trips() {
    let mut a = alert();
    a.message = "m".repeat(255);
    let body = alert_body("u", 1, &a).unwrap();
    assert_eq!(
        alert_doc("u", 1, a.at, body),
        alert_payload("u", 1, &a).unwrap()
    );
    a.message = "m".repeat(254);
    let short = alert_body("u", 1, &a).unwrap();
    assert_eq!(
        alert_doc("u", 1, a.at, short),
        alert_payload("u", 1, &a).unwrap()
    );
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9 ./-]{0,40}",
        "\\PC{0,20}",
        (250usize..300).prop_map(|n| "é".repeat(n / 2)),
    ]
}

fn any_alert() -> impl Strategy<Value = Alert> {
    (
        (any_text(), 0u8..3, any::<bool>(), "[a-z0-9._:-]{1,64}"),
        (proptest::option::of(any_text()), any::<i64>(), any_text()),
        (
            proptest::option::of(0u8..40),
            proptest::option::of(any::<f64>()),
            any::<bool>(),
            proptest::option::of((any_text(), any::<u32>())),
        ),
    )
        .prop_map(
            |((rule, sev, cleared, dev), (room, at, message), (kind, value, trusted, inst))| {
                Alert {
                    uid: None,
                    rule: Arc::from(rule.as_str()),
                    severity: match sev {
                        0 => Severity::Info,
                        1 => Severity::Warning,
                        _ => Severity::Urgent,
                    },
                    state: if cleared {
                        AlertState::Cleared
                    } else {
                        AlertState::Raised
                    },
                    device: DeviceId::new(&dev).unwrap(),
                    room,
                    at: Time::from_millis(at),
                    message,
                    value,
                    kind: kind.and_then(Kind::from_code),
                    time_trusted: trusted,
                    instance: inst.map(|(i, attempt)| Instance {
                        instance: i.into(),
                        attempt,
                    }),
                }
            },
        )
}

proptest! {
    #[test]
    fn every_alert_round_trips_to_the_published_document(a in any_alert(), seq in any::<u64>(), id in "[0-9a-f-]{0,36}") {
        let body = alert_body(&id, seq, &a).unwrap();
        prop_assert_eq!(body[0], FORMAT);
        let d = decode(&body).unwrap();
        prop_assert_eq!(d.device, a.device.as_str());
        prop_assert_eq!(d.at, a.at);
        let again = encode(&d);
        prop_assert_eq!(again.as_ref(), Some(&body));
        prop_assert_eq!(alert_doc(&id, seq, Time(0), body), alert_payload(&id, seq, &a).unwrap());
    }

    #[test]
    fn any_bytes_decode_or_name_a_byte_inside_them(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        match decode(&b) {
            // Canonical: one body per alert.
            Ok(d) => prop_assert_eq!(encode(&d), Some(b.clone())),
            Err(e) => prop_assert!(e.at <= b.len(), "{e} for {} bytes", b.len()),
        }
        if b.first() != Some(&b'{') {
            let doc: serde_json::Value = serde_json::from_slice(&alert_doc("u", 1, Time(0), b)).unwrap();
            prop_assert_eq!(&doc["id"], "u");
        }
    }
}
