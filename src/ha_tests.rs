use super::*;
use crate::model::{Alert, Severity, Time};

fn dev(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

fn reading(d: &str, kind: Kind, value: f64) -> Live {
    Live::Reading(Reading::new(dev(d), kind, value, Time(0)).unwrap())
}

fn mirror() -> Mirror {
    Mirror::new(Topics::new(&HaConfig::default(), "home-1"))
}

#[test]
fn a_first_reading_announces_its_entity_then_sets_its_state() {
    let mut m = mirror();
    let mut out = Vec::new();
    m.on_live(&reading("hall-pir", Kind::Motion, 1.0), &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0].topic,
        "homeassistant/binary_sensor/carebridge_home-1/hall-pir_motion/config"
    );
    let doc: serde_json::Value = serde_json::from_str(&out[0].payload).unwrap();
    assert_eq!(doc["device_class"], "motion");
    assert_eq!(doc["state_topic"], "carebridge/ha/home-1/hall-pir/motion");
    assert_eq!(
        doc["availability"][0]["topic"],
        "carebridge/ha/home-1/availability"
    );
    assert_eq!(doc["device"]["identifiers"][0], "carebridge_hall-pir");
    assert_eq!(doc["device"]["via_device"], "carebridge_bridge_home-1");
    assert_eq!(doc["payload_on"], "ON");
    assert!(out.iter().all(|m| m.retain));
    assert_eq!(out[1].payload, "ON");
    out.clear();
    m.on_live(&reading("hall-pir", Kind::Motion, 0.0), &mut out);
    assert_eq!(out.len(), 1, "announced once");
    assert_eq!(out[0].payload, "OFF");
}

#[test]
fn numeric_kinds_are_sensors_with_units() {
    let mut m = mirror();
    let mut out = Vec::new();
    m.on_live(&reading("lounge", Kind::Temperature, 21.5), &mut out);
    assert!(out[0].topic.starts_with("homeassistant/sensor/"));
    let doc: serde_json::Value = serde_json::from_str(&out[0].payload).unwrap();
    assert_eq!(doc["unit_of_measurement"], "°C");
    assert_eq!(doc["state_class"], "measurement");
    assert_eq!(out[1].payload, "21.5");
}

#[test]
fn every_kind_maps_to_a_component() {
    for k in Kind::ALL {
        let (c, _, unit) = entity(*k);
        assert!(c == "sensor" || c == "binary_sensor");
        assert_eq!(c == "binary_sensor", k.is_binary(), "{k}");
        // Button: a press code (1 single, 2 double, 3 long), no unit.
        assert_eq!(unit.is_some(), !k.is_binary() && *k != Kind::Button, "{k}");
    }
}

#[test]
fn a_renamed_device_is_reannounced_and_a_removed_one_cleared() {
    let mut m = mirror();
    let mut out = Vec::new();
    m.on_live(&reading("door", Kind::Contact, 1.0), &mut out);
    m.on_live(&reading("door", Kind::Battery, 80.0), &mut out);
    out.clear();
    let info = DeviceInfo {
        id: Some(dev("door")),
        name: Some("Front door".into()),
        ..Default::default()
    };
    m.on_live(&Live::Device(info.clone()), &mut out);
    assert_eq!(out.len(), 2);
    assert!(out[0].payload.contains("Front door"));
    out.clear();
    m.on_registry(&[info], &mut out);
    assert!(out.is_empty(), "nothing changed");
    m.on_registry(&[], &mut out);
    let cleared: Vec<&str> = out
        .iter()
        .filter(|m| m.payload.is_empty() && m.topic.ends_with("/config"))
        .map(|m| m.topic.as_str())
        .collect();
    assert_eq!(cleared.len(), 2, "{out:?}");
    assert!(m.announced(&dev("door")).is_none());
}

#[test]
fn open_alerts_are_counted_on_the_gateway_sensor() {
    let mut m = mirror();
    let mut out = Vec::new();
    let mut a = Alert {
        uid: None,
        rule: "panic".into(),
        severity: Severity::Urgent,
        state: AlertState::Raised,
        device: dev("pendant"),
        room: None,
        at: Time(0),
        message: "Panic".into(),
        value: None,
        kind: None,
        time_trusted: true,
        instance: None,
    };
    m.on_live(&Live::Alert(a.clone()), &mut out);
    assert_eq!(out[0].topic, "carebridge/ha/home-1/alerts");
    assert_eq!(out[0].payload, "1");
    assert!(out[1].payload.contains("\"rule\":\"panic\""));
    out.clear();
    a.state = AlertState::Cleared;
    m.on_live(&Live::Alert(a), &mut out);
    assert_eq!(out[0].payload, "0");
}

#[test]
fn a_clear_closes_the_open_alert_of_its_instance_whatever_its_device() {
    let mut m = mirror();
    let mut out = Vec::new();
    let inst = |i: &str| {
        Some(crate::model::Instance {
            instance: i.into(),
            attempt: 1,
        })
    };
    let mut a = Alert {
        uid: None,
        rule: "quiet".into(),
        severity: Severity::Warning,
        state: AlertState::Raised,
        device: dev("bathroom-pir"),
        room: None,
        at: Time(0),
        message: "No activity for 4 h".into(),
        value: None,
        kind: None,
        time_trusted: true,
        instance: inst("quiet/home/0"),
    };
    m.on_live(&Live::Alert(a.clone()), &mut out);
    assert!(
        out[1].payload.contains("\"instance\":\"quiet/home/0\""),
        "{out:?}"
    );
    out.clear();
    // The clear is named after the raised device but came with movement
    // elsewhere; a stray clear of another instance closes nothing.
    a.state = AlertState::Cleared;
    a.instance = inst("quiet/home/-1");
    m.on_live(&Live::Alert(a.clone()), &mut out);
    assert_eq!(out[0].payload, "1");
    out.clear();
    a.instance = inst("quiet/home/0");
    a.device = dev("hall-pir");
    m.on_live(&Live::Alert(a), &mut out);
    assert_eq!(out[0].payload, "0");
}

#[test]
fn prefixes_are_checked() {
    let c = HaConfig {
        state_prefix: "carebridge/in/x".into(),
        discovery_prefix: "ha/#".into(),
        ..Default::default()
    };
    let keys: Vec<String> = c.validate().into_iter().map(|p| p.key).collect();
    assert!(keys.contains(&"state_prefix".to_string()));
    assert!(keys.contains(&"discovery_prefix".to_string()));
}
