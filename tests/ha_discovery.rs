//! Home Assistant discovery on the embedded broker, checked with a real
//! MQTT client (rumqttc): the running daemon announces a device's sensors
//! when their first readings arrive and keeps their states retained; the
//! mirror task clears every discovery topic (empty retained payload) when
//! the device leaves the registry.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};

type Seen = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// Subscribes to `filter` on the broker at `port`; records every payload by topic.
fn watch(port: u16, filter: &str) -> (Client, Seen) {
    let mut opts = MqttOptions::new(format!("ha-test-{}", free_port()), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = Client::new(opts, 64);
    let seen: Seen = Arc::default();
    let (sink, sub, filter) = (seen.clone(), client.clone(), filter.to_string());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = Some(tx);
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    let _ = sub.subscribe(filter.clone(), QoS::AtMostOnce);
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    if let Some(tx) = first.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    sink.lock()
                        .unwrap()
                        .entry(p.topic.clone())
                        .or_default()
                        .push(String::from_utf8_lossy(&p.payload).into_owned());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("subscribed");
    (client, seen)
}

fn last(seen: &Seen, topic: &str) -> Option<String> {
    seen.lock()
        .unwrap()
        .get(topic)
        .and_then(|v| v.last().cloned())
}

const CONFIG: &str = "homeassistant/binary_sensor/carebridge_gw-ha/hall-pir_motion/config";

#[test]
fn the_daemon_announces_sensors_and_keeps_their_states() {
    if !have("mosquitto") {
        assert!(!strict(), "mosquitto is required");
        return;
    }
    let up = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        dir.path(),
        "gw-ha",
        up.port,
        "\n[homeassistant]\nenabled = true\nresync = \"1s\"\n",
    );
    let (_c, seen) = watch(gw.broker_port, "#");
    assert!(eventually(Duration::from_secs(30), || last(
        &seen,
        "carebridge/ha/gw-ha/availability"
    )
    .as_deref()
        == Some("online")));
    let readings = vec![
        (
            "hall-pir".to_string(),
            serde_json::json!({"kind": "motion", "value": true}),
        ),
        (
            "lounge-t".to_string(),
            serde_json::json!({"kind": "temperature", "value": 21.5}),
        ),
    ];
    assert_eq!(publish(gw.broker_port, &readings), 2);
    assert!(
        eventually(Duration::from_secs(30), || last(&seen, CONFIG).is_some()
            && last(&seen, "carebridge/ha/gw-ha/lounge-t/temperature")
                .is_some()),
        "{:?}",
        seen.lock().unwrap().keys().collect::<Vec<_>>()
    );
    let doc: serde_json::Value = serde_json::from_str(&last(&seen, CONFIG).unwrap()).unwrap();
    assert_eq!(doc["device_class"], "motion");
    assert_eq!(doc["unique_id"], "carebridge_hall-pir_motion");
    assert_eq!(
        doc["availability"][0]["topic"],
        "carebridge/ha/gw-ha/availability"
    );
    assert_eq!(doc["device"]["via_device"], "carebridge_bridge_gw-ha");
    assert_eq!(
        last(&seen, "carebridge/ha/gw-ha/hall-pir/motion").as_deref(),
        Some("ON")
    );
    assert_eq!(
        last(&seen, "carebridge/ha/gw-ha/lounge-t/temperature").as_deref(),
        Some("21.5")
    );
    let t = last(
        &seen,
        "homeassistant/sensor/carebridge_gw-ha/lounge-t_temperature/config",
    )
    .unwrap();
    assert!(t.contains("\"unit_of_measurement\":\"°C\""), "{t}");
    // The per-gateway alerts sensor exists; a panic makes it count one.
    assert!(last(&seen, "homeassistant/sensor/carebridge_gw-ha/alerts/config").is_some());
    assert_eq!(publish(gw.broker_port, &panics("pendant", 1)), 1);
    assert!(
        eventually(Duration::from_secs(30), || last(
            &seen,
            "carebridge/ha/gw-ha/alerts"
        )
        .as_deref()
            == Some("1")),
        "{:?}",
        last(&seen, "carebridge/ha/gw-ha/alerts")
    );
    // A client that connects later gets the retained discovery documents.
    let (_c2, late) = watch(gw.broker_port, "homeassistant/#");
    assert!(eventually(Duration::from_secs(30), || last(&late, CONFIG).is_some()));
}

#[test]
fn removing_a_device_clears_its_retained_discovery_topics() {
    use carebridge::model::{DeviceId, DeviceInfo, Kind, Reading};
    use carebridge::store::{Store, StoreConfig, Write};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bcfg = carebridge::config::LocalBrokerConfig {
        listen: format!("127.0.0.1:{port}"),
        ..Default::default()
    };
    let mut broker =
        carebridge::broker::Broker::start_with_links(&bcfg, None, &["carebridge-ha"]).unwrap();
    let (_, link, _rx) = broker.links.pop().unwrap();
    let (_c, seen) = watch(port, "#");
    let store = Store::open(&dir.path().join("db"), &StoreConfig::default()).unwrap();
    let (live, _) = tokio::sync::broadcast::channel(64);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let cfg = carebridge::ha::HaConfig {
        enabled: true,
        resync: carebridge::config::Dur::secs(1),
        ..Default::default()
    };
    let door = DeviceId::new("door").unwrap();
    rt.block_on(async {
        let info = DeviceInfo {
            id: Some(door.clone()),
            name: Some("Front door".into()),
            ..Default::default()
        };
        store.submit(Write::Device(Box::new(info))).await.unwrap();
        store.flush().await.unwrap();
    });
    let task = rt.spawn(carebridge::ha::run(
        cfg,
        "gw".into(),
        link,
        store.clone(),
        live.subscribe(),
        shutdown.clone(),
    ));
    std::thread::sleep(Duration::from_millis(300));
    for (kind, v) in [(Kind::Contact, 1.0), (Kind::Battery, 90.0)] {
        let r = Reading::new(door.clone(), kind, v, carebridge::wall::now()).unwrap();
        let _ = live.send(carebridge::hub::Live::Reading(r));
    }
    let contact = "homeassistant/binary_sensor/carebridge_gw/door_contact/config";
    let battery = "homeassistant/sensor/carebridge_gw/door_battery/config";
    assert!(
        eventually(Duration::from_secs(30), || last(&seen, contact)
            .is_some_and(|p| p.contains("Front door"))
            && last(&seen, battery).is_some()),
        "{:?}",
        seen.lock().unwrap()
    );
    rt.block_on(async {
        store
            .submit(Write::RemoveDevice(door.clone()))
            .await
            .unwrap();
        store.flush().await.unwrap();
    });
    assert!(
        eventually(Duration::from_secs(30), || last(&seen, contact).as_deref()
            == Some("")
            && last(&seen, battery).as_deref() == Some("")),
        "{:?}",
        seen.lock().unwrap()
    );
    // Gone for good: a new client gets no retained discovery for it.
    let (_c2, late) = watch(port, "homeassistant/#");
    // (retained topics arrive together after the subscription)
    assert!(eventually(Duration::from_secs(30), || last(
        &late,
        "homeassistant/sensor/carebridge_gw/alerts/config"
    )
    .is_some()));
    std::thread::sleep(Duration::from_millis(300));
    assert!(last(&late, contact).is_none(), "{:?}", late.lock().unwrap());
    shutdown.cancel();
    rt.block_on(async {
        task.await.unwrap().unwrap();
    });
    assert!(eventually(Duration::from_secs(30), || last(
        &seen,
        "carebridge/ha/gw/availability"
    )
    .as_deref()
        == Some("offline")));
}
