//! The installer's day, against the web server over the in-memory backend:
//! device identity and Identify, renaming with a configured room, uplink
//! settings and commissioning results (see also `tests/e2e/field.test.mjs`
//! for the same flows in Chromium at a phone viewport).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod web_common;

use carebridge::hub::Live;
use carebridge::model::{DeviceId, DeviceInfo};
use web_common::*;

#[tokio::test]
async fn renaming_a_device_whose_room_has_a_space_works() {
    let s = start().await;
    let c = setup(&s).await;
    // A room from the configuration file, not a machine word.
    s.backend.inject(Live::Device(DeviceInfo {
        id: Some(DeviceId::new("lounge-motion").unwrap()),
        room: Some("living room".into()),
        ..Default::default()
    }));
    // The edit form sends the unchanged room back with the new name.
    let r = c
        .call(
            &s,
            "PUT",
            "/api/v1/devices/lounge-motion",
            r#"{"name":"Sofa motion","room":"living room"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let d = s
        .backend
        .devices_now()
        .into_iter()
        .find(|d| d.id.as_ref().map(|i| i.as_str()) == Some("lounge-motion"))
        .unwrap();
    assert_eq!(d.name.as_deref(), Some("Sofa motion"));
    assert_eq!(d.room.as_deref(), Some("living room"));
    // A new room with a space is still refused, naming the field.
    let r = c
        .call(
            &s,
            "PUT",
            "/api/v1/devices/lounge-motion",
            r#"{"room":"dining room"}"#,
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["field"], "room");
}

#[tokio::test]
async fn identify_names_a_device_that_is_not_zigbee_and_says_when_no_coordinator_runs() {
    let s = start().await;
    let c = setup(&s).await;
    let r = c
        .call(
            &s,
            "POST",
            "/api/v1/devices/pendant/identify",
            r#"{"seconds":10}"#,
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["field"], "id");
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("not a Zigbee device")
    );
    s.backend.inject(Live::Device(DeviceInfo {
        id: Some(DeviceId::new("zb-00158d0000000001").unwrap()),
        model: Some("SIM-PIR".into()),
        manufacturer: Some("carebridge-sim".into()),
        ..Default::default()
    }));
    let r = c
        .call(
            &s,
            "POST",
            "/api/v1/devices/zb-00158d0000000001/identify",
            r#"{"seconds":999}"#,
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["field"], "seconds");
    let r = c
        .call(
            &s,
            "POST",
            "/api/v1/devices/zb-00158d0000000001/identify",
            "{}",
        )
        .await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("not configured")
    );
    let r = c
        .call(&s, "POST", "/api/v1/devices/nobody/identify", "{}")
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    // The device list carries what the interview found.
    let r = c.call(&s, "GET", "/api/v1/devices", "").await;
    let list = r.json()["devices"].as_array().unwrap().clone();
    let zb = list
        .iter()
        .find(|d| d["id"] == "zb-00158d0000000001")
        .unwrap();
    assert_eq!(zb["model"], "SIM-PIR");
    assert_eq!(zb["manufacturer"], "carebridge-sim");
}

fn reading(
    device: &str,
    kind: carebridge::model::Kind,
    value: f64,
    at: carebridge::model::Time,
) -> Live {
    Live::Reading(carebridge::model::Reading {
        device: DeviceId::new(device).unwrap(),
        kind,
        value,
        at,
    })
}

/// Waits until the server has seen `n` devices with reading kinds.
async fn kinds_known(s: &Server, c: &Client, n: usize) {
    for _ in 0..100 {
        let r = c.call(s, "GET", "/api/v1/devices", "").await;
        let with = r.json()["devices"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| !d["kinds"].as_array().unwrap().is_empty())
            .count();
        if with >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the server never saw the readings' kinds");
}

#[tokio::test]
async fn commissioning_counts_only_events_after_the_start_and_the_signed_report_goes_upstream() {
    use carebridge::model::{Kind, Time};
    let s = start().await;
    let c = setup(&s).await;
    let now = carebridge::wall::now().as_millis();
    // Before the walk-through: the door opened, the thermometer reported.
    s.backend.inject(reading(
        "front-door",
        Kind::Contact,
        1.0,
        Time(now - 60_000),
    ));
    s.backend.inject(reading(
        "lounge-temp",
        Kind::Temperature,
        20.0,
        Time(now - 60_000),
    ));
    s.backend
        .inject(reading("hall-pir", Kind::Motion, 1.0, Time(now - 60_000)));
    // A newer reading of another kind: the thermometer's baseline is still
    // its newest temperature.
    s.backend.inject(reading(
        "lounge-temp",
        Kind::Battery,
        87.0,
        Time(now - 30_000),
    ));
    kinds_known(&s, &c, 3).await;
    let r = c.call(&s, "GET", "/api/v1/commissioning", "").await;
    let lounge = r.json()["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|room| room["devices"].as_array().unwrap().clone())
        .find(|d| d["device"]["id"] == "lounge-temp")
        .unwrap();
    assert_eq!(lounge["last_event"]["kind"], "battery", "{lounge}");
    assert_eq!(lounge["test"]["kind"], "temperature", "{lounge}");
    assert_eq!(lounge["base"], 20.0, "{lounge}");
    let text = r.body.clone();
    assert!(text.contains("Open the door or window"), "{text}");
    assert!(text.contains("Breathe on the thermometer"), "{text}");
    let r = c.call(&s, "POST", "/api/v1/commissioning/start", "").await;
    assert_eq!(r.status, 200, "{r:?}");
    let started = r.json()["started"].as_str().unwrap().to_string();
    let t = Time::parse_rfc3339(&started).unwrap().as_millis();
    // After the start: a routine temperature report (no breath) and the
    // PIR walked past. The door is not touched.
    s.backend.inject(reading(
        "lounge-temp",
        Kind::Temperature,
        20.1,
        Time(t + 10),
    ));
    s.backend
        .inject(reading("hall-pir", Kind::Motion, 1.0, Time(t + 20)));
    let body = serde_json::json!({"installer": "Sam Fitter", "started": started, "notes": "hall PIR above the door"});
    let r = c
        .call(
            &s,
            "POST",
            "/api/v1/commissioning/signoff",
            &body.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rep = &r.json()["report"];
    assert_eq!(rep["installer"], "Sam Fitter");
    assert_eq!(rep["signed_by"], "admin");
    let passed = |id: &str| {
        rep["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .unwrap()["passed"]
            .as_bool()
            .unwrap()
    };
    assert!(passed("hall-pir"));
    // No [arc]: no ARC test on any row, and asking for one says why.
    assert!(
        rep["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["arc"].is_null()),
        "{rep}"
    );
    let r = c
        .call(
            &s,
            "POST",
            "/api/v1/commissioning/arc_test",
            r#"{"device":"hall-pir"}"#,
        )
        .await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.json()["error"].as_str().unwrap().contains("[arc]"));
    assert!(
        !passed("front-door"),
        "an opening before the start does not count"
    );
    assert!(
        !passed("lounge-temp"),
        "a routine report does not pass a thermometer"
    );
    // Kept in the gateway, and queued upstream as a status document.
    let r = c.call(&s, "GET", "/api/v1/commissioning/reports", "").await;
    assert_eq!(r.json()["reports"][0]["installer"], "Sam Fitter");
    let up = s.backend.upstream_now();
    assert_eq!(up.len(), 1);
    assert_eq!(up[0]["commissioning"]["installer"], "Sam Fitter");
    assert_eq!(up[0]["gateway"], "test-home");
    // A start time from another day is refused, naming the field.
    let old = serde_json::json!({"installer": "Sam", "started": "2020-01-01T00:00:00Z"});
    let r = c
        .call(
            &s,
            "POST",
            "/api/v1/commissioning/signoff",
            &old.to_string(),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "started");
    let bad = serde_json::json!({"installer": "<b>", "started": started});
    let r = c
        .call(
            &s,
            "POST",
            "/api/v1/commissioning/signoff",
            &bad.to_string(),
        )
        .await;
    assert_eq!(r.json()["field"], "installer");
    // A factory reset forgets this household's sign-offs.
    let r = c
        .call(
            &s,
            "POST",
            "/api/v1/system/factory-reset",
            r#"{"confirm":"RESET"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let c = setup(&s).await;
    let r = c.call(&s, "GET", "/api/v1/commissioning/reports", "").await;
    assert_eq!(r.json()["reports"], serde_json::json!([]), "{r:?}");
}
