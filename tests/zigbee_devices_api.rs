//! `/api/v1/devices` with the device library: a known device carries its
//! definition (the exact shape the Devices page renders), an unknown one
//! `definition: null` and the clusters its interview found (from the
//! Zigbee network record the coordinator keeps), a non-Zigbee device null.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod web_common;

use carebridge::hub::Live;
use carebridge::model::{DeviceId, DeviceInfo};
use carebridge::web::roles::{Record, WebState};
use carebridge::zigbee::{KnownDevice, NetworkParams};
use web_common::*;

fn zigbee(id: &str, ieee: u64, mf: Option<&str>, model: Option<&str>) -> DeviceInfo {
    DeviceInfo {
        id: Some(DeviceId::new(id).unwrap()),
        ieee: Some(format!("0x{ieee:016x}")),
        manufacturer: mf.map(Into::into),
        model: model.map(Into::into),
        ..Default::default()
    }
}

#[tokio::test]
async fn devices_carry_their_definition_or_their_clusters() {
    let s = start().await;
    let mut net = NetworkParams::from_random(15, &[7; 26]);
    let known = |ieee, mf: Option<&str>, model: Option<&str>, clusters: Vec<u16>| KnownDevice {
        ieee,
        nwk: 1,
        zone_type: None,
        zone_endpoint: None,
        manufacturer: mf.map(Into::into),
        model: model.map(Into::into),
        clusters,
    };
    net.devices = vec![
        known(
            1,
            Some("LUMI"),
            Some("lumi.sensor_magnet.aq2"),
            vec![0, 3, 6, 0xFFFF],
        ),
        known(2, Some("Acme"), Some("X1"), vec![0x0000, 0x0001, 0x0500]),
        // The registry lost its model (never answered there): the network
        // record still knows the device.
        known(3, Some("_TZE200_ztc6ggyl"), Some("TS0601"), vec![0, 0xEF00]),
    ];
    s.backend
        .save(Record::ZigbeeNetwork, Some(net.to_bytes()))
        .await
        .unwrap();
    s.backend.inject(Live::Device(zigbee(
        "door",
        1,
        Some("LUMI"),
        Some("lumi.sensor_magnet.aq2"),
    )));
    s.backend
        .inject(Live::Device(zigbee("odd", 2, Some("Acme"), Some("X1"))));
    s.backend
        .inject(Live::Device(zigbee("radar", 3, None, None)));
    let c = setup(&s).await;
    let r = c.call(&s, "GET", "/api/v1/devices", "").await;
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    let dev = |id: &str| {
        v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {v}"))
            .clone()
    };
    let door = dev("door");
    assert_eq!(door["manufacturer"], "LUMI");
    assert_eq!(door["model"], "lumi.sensor_magnet.aq2");
    let def = &door["definition"];
    let keys: Vec<_> = def.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        ["commissioning", "description", "model", "senses", "vendor"]
    );
    assert_eq!(def["vendor"], "Aqara");
    assert_eq!(def["model"], "MCCGQ11LM");
    assert_eq!(
        def["senses"],
        serde_json::json!(["contact", "battery", "voltage"])
    );
    assert!(
        def["commissioning"]
            .as_str()
            .unwrap()
            .contains("open and close the door")
    );
    assert!(door.get("clusters").is_none());

    let odd = dev("odd");
    assert_eq!(odd["definition"], serde_json::Value::Null);
    assert_eq!(
        odd["clusters"],
        serde_json::json!(["0x0000", "0x0001", "0x0500"])
    );
    assert_eq!(odd["model"], "X1");

    let radar = dev("radar");
    assert_eq!(radar["manufacturer"], "_TZE200_ztc6ggyl");
    assert_eq!(
        radar["definition"]["senses"],
        serde_json::json!(["occupancy", "illuminance"])
    );

    let pendant = dev("pendant");
    assert_eq!(pendant["manufacturer"], serde_json::Value::Null);
    assert_eq!(pendant["model"], serde_json::Value::Null);
    assert_eq!(pendant["definition"], serde_json::Value::Null);
    assert_eq!(pendant["clusters"], serde_json::json!([]));
}
