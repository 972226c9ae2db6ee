//! The outbox's documents, built once at enqueue, exactly as published
//! upstream (key order and omissions: see the "Payloads" section of
//! `outbox`).

use serde::Serialize;

use super::alert_body::Body;
use crate::model::{Alert, DeviceId, Kind, Reading, Time};

/// The published alert document (also built from a stored body, see
/// `alert_body`).
#[derive(Serialize)]
struct AlertDoc<'a> {
    id: &'a str,
    seq: u64,
    rule: &'a str,
    severity: &'static str,
    state: &'static str,
    device: &'a str,
    room: Option<&'a str>,
    at: Time,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<Kind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
    /// Only `false` is sent: the gateway's clock was not trusted.
    #[serde(skip_serializing_if = "Option::is_none")]
    time_trusted: Option<bool>,

    /// The situation (see `model::Instance`): receivers close alerts by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<&'a str>,
    /// 1 for the first raise, 2, 3, … for escalated re-sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
}

/// The alert document, exactly as published.
pub fn alert_payload(id: &str, seq: u64, a: &Alert) -> Result<Vec<u8>, serde_json::Error> {
    alert_doc_of(id, seq, &Body::of(a))
}

/// The published document of an alert's fields (from an [`Alert`] or a
/// stored body).
pub(super) fn alert_doc_of(id: &str, seq: u64, b: &Body<'_>) -> Result<Vec<u8>, serde_json::Error> {
    // Sized once: the fixed keys and values take ~250 bytes (`to_vec`
    // starts at 128 and doubled twice per alert).
    let len = b.rule.len() + b.device.len() + b.message.len() + b.room.map_or(0, str::len);
    let mut out = Vec::with_capacity(256 + len);
    serde_json::to_writer(
        &mut out,
        &AlertDoc {
            id,
            seq,
            rule: b.rule,
            severity: b.severity.as_str(),
            state: b.state.as_str(),
            device: b.device,
            room: b.room,
            at: b.at,
            message: b.message,
            kind: b.kind,
            value: b.value,
            time_trusted: (!b.time_trusted).then_some(false),
            instance: b.instance.map(|(i, _)| i),
            attempt: b.instance.map(|(_, n)| n),
        },
    )?;
    Ok(out)
}

/// A telemetry row's stored body: the document without `id` and `seq`,
/// which are the row's own columns (`id`, `seq`) and are put back when the
/// row is read ([`telemetry_doc`]). SD-card wear: a home's grouped commit
/// inserts ~20 telemetry rows and deletes the ~20 acknowledged since the
/// last one; without the 55 bytes each document repeated, they fit in one
/// outbox page, so the commit no longer splits and merges pages (which
/// also wrote the freelist trunk and the header page every time).
#[derive(Serialize)]
struct TelemetryBody<'a> {
    device: &'a DeviceId,
    kind: Kind,
    value: f64,
    at: Time,
    /// Present (`false`) only when the clock was not trusted.
    #[serde(skip_serializing_if = "Option::is_none")]
    time_trusted: Option<bool>,
}

/// What a telemetry row stores: `{"device","kind","value","at"[,"time_trusted":false]}`;
/// `trusted`: whether the gateway's clock was trusted when the reading
/// arrived.
pub fn telemetry_body(r: &Reading, trusted: bool) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&TelemetryBody {
        device: &r.device,
        kind: r.kind,
        value: r.value,
        at: r.at,
        time_trusted: (!trusted).then_some(false),
    })
}

/// The published document of a stored telemetry row: `{"id","seq"` and
/// then the body's keys. Rows stored whole (schema v7 and before, whose
/// payload starts with `{"id":`) and anything that is not a JSON object
/// are returned unchanged.
pub fn telemetry_doc(id: &str, seq: u64, stored: Vec<u8>) -> Vec<u8> {
    if stored.starts_with(br#"{"id":"#) || stored.first() != Some(&b'{') {
        return stored;
    }
    let mut out = Vec::with_capacity(stored.len() + id.len() + 32);
    out.extend_from_slice(br#"{"id":"#);
    if serde_json::to_writer(&mut out, id).is_err() {
        return stored;
    }
    out.extend_from_slice(br#","seq":"#);
    out.extend_from_slice(seq.to_string().as_bytes());
    // `{}` (or `{ }`) has no keys to follow.
    let empty = stored[1..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    if !empty {
        out.push(b',');
        out.extend_from_slice(&stored[1..]);
    } else {
        out.push(b'}');
    }
    out
}

/// The telemetry document, exactly as published (the stored body with its
/// row's `id` and `seq`).
pub fn telemetry_payload(
    id: &str,
    seq: u64,
    r: &Reading,
    trusted: bool,
) -> Result<Vec<u8>, serde_json::Error> {
    Ok(telemetry_doc(id, seq, telemetry_body(r, trusted)?))
}

/// The status document: `id` and `seq` first, then the caller's keys.
pub fn status_payload(
    id: &str,
    seq: u64,
    m: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(64 + m.len() * 24);
    out.extend_from_slice(b"{\"id\":");
    serde_json::to_writer(&mut out, id)?;
    out.extend_from_slice(b",\"seq\":");
    serde_json::to_writer(&mut out, &seq)?;
    for (k, v) in m
        .iter()
        .filter(|(k, _)| k.as_str() != "id" && k.as_str() != "seq")
    {
        out.push(b',');
        serde_json::to_writer(&mut out, k)?;
        out.push(b':');
        serde_json::to_writer(&mut out, v)?;
    }
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AlertState, Severity};
    use proptest::prelude::*;

    fn dev(s: &str) -> DeviceId {
        DeviceId::new(s).unwrap()
    }

    #[test]
    fn alert_payload_has_keys_in_published_order_and_omits_absent_kind_and_value() {
        let a = Alert {
            uid: None,
            rule: "panic".into(),
            severity: Severity::Urgent,
            state: AlertState::Raised,
            device: dev("hall-panic"),
            room: None,
            at: Time::from_secs(1_795_860_000),
            message: "Panic button pressed".into(),
            value: None,
            kind: None,
            time_trusted: true,
            instance: None,
        };
        let p = alert_payload("u-1", 7, &a).unwrap();
        assert_eq!(
            std::str::from_utf8(&p).unwrap(),
            r#"{"id":"u-1","seq":7,"rule":"panic","severity":"urgent","state":"raised","device":"hall-panic","room":null,"at":"2026-11-28T10:00:00Z","message":"Panic button pressed"}"#
        );
        let a2 = Alert {
            room: Some("hall".into()),
            kind: Some(Kind::Panic),
            value: Some(1.0),
            state: AlertState::Cleared,
            ..a
        };
        let p2 = alert_payload("u-2", 8, &a2).unwrap();
        assert!(
            std::str::from_utf8(&p2)
                .unwrap()
                .ends_with(r#""state":"cleared","device":"hall-panic","room":"hall","at":"2026-11-28T10:00:00Z","message":"Panic button pressed","kind":"panic","value":1.0}"#)
        );
        // Taken while the clock was not trusted: says so, last.
        let a3 = Alert {
            time_trusted: false,
            ..a2
        };
        let p3 = alert_payload("u-3", 9, &a3).unwrap();
        assert!(
            std::str::from_utf8(&p3)
                .unwrap()
                .ends_with(r#""value":1.0,"time_trusted":false}"#)
        );
    }

    #[test]
    fn telemetry_payload_matches_the_upstream_contract() {
        let r = Reading::new(
            dev("k-temp"),
            Kind::Temperature,
            21.5,
            Time::from_secs(1_795_860_000),
        )
        .unwrap();
        let p = telemetry_payload("u", 1, &r, true).unwrap();
        assert_eq!(
            std::str::from_utf8(&p).unwrap(),
            r#"{"id":"u","seq":1,"device":"k-temp","kind":"temperature","value":21.5,"at":"2026-11-28T10:00:00Z"}"#
        );
        let p = telemetry_payload("u", 1, &r, false).unwrap();
        assert!(
            std::str::from_utf8(&p)
                .unwrap()
                .ends_with(r#""at":"2026-11-28T10:00:00Z","time_trusted":false}"#)
        );
    }

    #[test]
    fn status_payload_puts_id_and_seq_first_and_drops_caller_copies() {
        let mut m = serde_json::Map::new();
        m.insert("uptime".into(), serde_json::json!(12));
        m.insert("id".into(), serde_json::json!("forged"));
        m.insert("backlog".into(), serde_json::json!({"alert": 0}));
        let p = status_payload("u", 3, &m).unwrap();
        assert_eq!(
            std::str::from_utf8(&p).unwrap(),
            r#"{"id":"u","seq":3,"backlog":{"alert":0},"uptime":12}"#
        );
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(v["id"], "u");
    }

    /// The telemetry document as releases up to schema v7 built and stored it.
    #[derive(serde::Serialize)]
    struct WholeDoc<'a> {
        id: &'a str,
        seq: u64,
        device: &'a DeviceId,
        kind: Kind,
        value: f64,
        at: Time,
    }

    #[test]
    fn a_telemetry_body_gets_its_rows_id_and_seq_back_and_odd_bodies_stay_valid() {
        assert_eq!(
            telemetry_doc("u", 7, b"{}".to_vec()),
            br#"{"id":"u","seq":7}"#.to_vec()
        );
        assert_eq!(
            telemetry_doc("u\"x", 7, br#"{"a":1}"#.to_vec()),
            br#"{"id":"u\"x","seq":7,"a":1}"#.to_vec()
        );
        // Not an object: published as stored, never made into bad JSON.
        assert_eq!(telemetry_doc("u", 7, b"[1]".to_vec()), b"[1]".to_vec());
        assert_eq!(telemetry_doc("u", 7, Vec::new()), Vec::<u8>::new());
    }

    proptest! {
        #[test]
        fn payloads_are_valid_json_that_round_trips_every_field(
            dev_id in "[A-Za-z0-9._:-]{1,64}",
            kind in 0u8..22,
            value in -1e9f64..1e9,
            at in 0i64..4_102_444_800_000,
            seq in 1u64..u64::MAX / 2,
            message in any::<String>(),
            room in proptest::option::of(any::<String>()),
            extra in proptest::collection::btree_map("[a-z]{1,8}", any::<i64>(), 0..6),
        ) {
            let device = DeviceId::new(&dev_id).unwrap();
            let kind = Kind::from_code(kind).unwrap();
            let r = Reading::new(device.clone(), kind, value, Time(at)).unwrap();
            let bytes = telemetry_payload("id-1", seq, &r, true).unwrap();
            let t: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            // serde_json's default float parser is lossy; std's is exact.
            let text = std::str::from_utf8(&bytes).unwrap();
            let raw = text.split("\"value\":").nth(1).unwrap().split(',').next().unwrap();
            prop_assert_eq!(raw.parse::<f64>().unwrap(), value, "the value is written exactly");
            prop_assert_eq!(&t["device"], dev_id.as_str());
            prop_assert_eq!(&t["kind"], kind.as_str());
            prop_assert_eq!(Time::parse_rfc3339(t["at"].as_str().unwrap()).unwrap(), Time(at));
            prop_assert_eq!(t["seq"].as_u64(), Some(seq));
            prop_assert_eq!(t["id"].as_str(), Some("id-1"));
            // The stored body and its row's id and seq give back exactly
            // the whole document releases before schema v8 stored (and a
            // whole document read back is left as it is).
            let whole = serde_json::to_vec(&WholeDoc {
                id: "id-1", seq, device: &r.device, kind, value, at: Time(at),
            }).unwrap();
            let body = telemetry_body(&r, true).unwrap();
            prop_assert_eq!(telemetry_doc("id-1", seq, body), whole.clone());
            prop_assert_eq!(telemetry_doc("other", seq + 1, whole.clone()), whole);

            let a = Alert {
                uid: None,
                rule: "r".into(),
                severity: Severity::Info,
                state: AlertState::Cleared,
                device,
                room: room.clone(),
                at: Time(at),
                message: message.clone(),
                value: None,
                kind: Some(kind),
                time_trusted: true,
                instance: None,
            };
            let bytes = alert_payload("id-2", seq, &a).unwrap();
            let head: &[u8] = b"{\"id\":\"id-2\",\"seq\":";
            prop_assert!(bytes.starts_with(head), "id and seq come first");
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(&v["message"], message.as_str());
            prop_assert_eq!(v["room"].as_str(), room.as_deref());
            prop_assert!(v.get("value").is_none());

            let m: serde_json::Map<String, serde_json::Value> =
                extra.iter().map(|(k, n)| (k.clone(), serde_json::json!(n))).collect();
            let bytes = status_payload("id-3", seq, &m).unwrap();
            let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(v.len(), m.len() + usize::from(!m.contains_key("id")) + usize::from(!m.contains_key("seq")));
            for (k, n) in &extra {
                if k != "id" && k != "seq" {
                    prop_assert_eq!(v[k].as_i64(), Some(*n));
                }
            }
        }
    }
}
