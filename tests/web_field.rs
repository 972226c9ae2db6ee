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
