//! Tests of the exposition text and of who may read it.

use super::*;
use crate::model::LinkStatus;
use crate::status::ZigbeeStatus;
use crate::status::{Active, ByClass, ConfigVersions, Counters, UplinkState, Uplinks};

fn inputs() -> Inputs {
    let mut store = StoreStats::default();
    store.alert.rows = 3;
    store.commit_latency.observe(700);
    store.commit_latency.observe(30_000);
    let zigbee_up = LinkStatus {
        link: "zigbee".into(),
        up: true,
        detail: String::new(),
        at: crate::model::Time(0),
    };
    Inputs {
        status: Status {
            uptime_s: 12,
            oldest_age_s: ByClass {
                alert: 5,
                status: 0,
                telemetry: 9,
            },
            uplinks: Uplinks {
                mqtt: UplinkState {
                    state: "connected",
                    connects: 3,
                    delivered: 40,
                    node: Some("node-b:1883".into()),
                    failovers: 1,
                    ..UplinkState::off()
                },
                lorawan: None,
                arc: None,
            },
            links: [("zigbee".to_string(), zigbee_up)].into(),
            zigbee: Some(ZigbeeStatus {
                frames: 120,
                frame_errors: 3,
                timeouts: 1,
                restarts: 2,
                resets: 1,
                ..ZigbeeStatus::default()
            }),
            counters: Counters {
                mqtt_accepted: 7,
                mqtt_malformed: 1,
                ..Counters::default()
            },
            config_version: ConfigVersions {
                rules: Active {
                    version: 4,
                    source: "remote".into(),
                },
                ..ConfigVersions::default()
            },
            clock: crate::clock::ClockState {
                trusted: false,
                source: "none",
                steps: 1,
                last_step: Some(crate::clock::Step {
                    delta_ms: -7_200_000,
                    at: crate::model::Time(1_780_000_000_000),
                }),
                ..Default::default()
            },
            ..Status::default()
        },
        store,
        by_kind: vec![(Kind::Temperature, 10), (Kind::Panic, 1)],
        by_rule: vec![(("panic".into(), "urgent", "raised"), 1)],
        link_downs: vec![("zigbee".into(), 2)],
        rss: Some(4096),
    }
}

#[test]
fn every_series_family_is_typed_and_samples_follow() {
    let t = render(&inputs());
    for needle in [
        "# TYPE carebridge_readings_total counter",
        "carebridge_readings_total{kind=\"temperature\"} 10",
        "carebridge_clock_trusted{source=\"none\"} 0",
        "carebridge_clock_steps_total 1",
        "carebridge_clock_last_step_seconds -7200",
        "carebridge_clock_last_step_timestamp_seconds 1780000000",
        "carebridge_alerts_total{rule=\"panic\",severity=\"urgent\",state=\"raised\"} 1",
        "carebridge_outbox_rows{class=\"alert\"} 3",
        "carebridge_outbox_oldest_age_seconds{class=\"telemetry\"} 9",
        "carebridge_uplink_up{uplink=\"mqtt\"} 1",
        "carebridge_uplink_reconnects_total{uplink=\"mqtt\"} 2",
        "carebridge_uplink_failovers_total{uplink=\"mqtt\"} 1",
        "carebridge_uplink_node_info{uplink=\"mqtt\",node=\"node-b:1883\"} 1",
        "carebridge_link_up{link=\"zigbee\"} 1",
        "carebridge_link_down_total{link=\"zigbee\"} 2",
        "# TYPE carebridge_zigbee_frame_errors_total counter",
        "carebridge_zigbee_frame_errors_total 3",
        "carebridge_zigbee_coordinator_resets_total 1",
        "carebridge_zigbee_coordinator_restarts_total 2",
        "carebridge_store_commit_seconds_bucket{le=\"0.001\"} 1",
        "carebridge_store_commit_seconds_bucket{le=\"+Inf\"} 2",
        "carebridge_store_commit_seconds_count 2",
        "carebridge_config_version{part=\"rules\"} 4",
        "process_resident_memory_bytes 4096",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in\n{t}");
    }
}

#[test]
fn a_joined_lorawan_uplink_is_up_and_counts_its_radio_deliveries() {
    let mut i = inputs();
    i.status.uplinks.lorawan = Some(crate::status::LoraStatus {
        state: "joined".into(),
        ..Default::default()
    });
    i.status.delivered.lorawan = 4;
    let t = render(&i);
    assert!(
        t.contains("carebridge_uplink_up{uplink=\"lorawan\"} 1"),
        "{t}"
    );
    i.status.uplinks.lorawan = Some(crate::status::LoraStatus {
        state: "joining".into(),
        ..Default::default()
    });
    let t = render(&i);
    assert!(
        t.contains("carebridge_uplink_up{uplink=\"lorawan\"} 0"),
        "{t}"
    );
    assert!(t.contains("uplink=\"lorawan\"} 4"), "{t}");
    i.status.uplinks.lorawan = Some(crate::status::LoraStatus {
        state: "joined".into(),
        downlinks_24h: 3,
        data_rate: 2,
        joins: 1,
        info_dropped: 5,
        ..Default::default()
    });
    let t = render(&i);
    for needle in [
        "carebridge_lorawan_downlinks_24h 3",
        "carebridge_lorawan_data_rate 2",
        "carebridge_lorawan_joins_total 1",
        "carebridge_lorawan_info_dropped_total 5",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in\n{t}");
    }
}

#[test]
fn life_safety_kinds_without_a_rule_are_counted() {
    let mut i = inputs();
    assert!(render(&i).contains("carebridge_rules_life_safety_off 0"));
    i.status.life_safety_off = vec![Kind::Panic, Kind::Smoke];
    let t = render(&i);
    assert!(t.contains("carebridge_rules_life_safety_off 2"), "{t}");
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

#[test]
fn only_loopback_sessions_or_public_may_read() {
    let lo: SocketAddr = "127.0.0.1:5".parse().unwrap();
    let lo6: SocketAddr = "[::ffff:127.0.0.1]:5".parse().unwrap();
    let far: SocketAddr = "192.0.2.1:5".parse().unwrap();
    assert!(allowed(lo, false, false));
    assert!(allowed(lo6, false, false));
    assert!(!allowed(far, false, false));
    assert!(allowed(far, false, true));
    assert!(allowed(far, true, false));
}

#[test]
fn a_public_listener_must_be_asked_for() {
    let c = MetricsConfig {
        listen: Some("0.0.0.0:9464".into()),
        public: false,
    };
    assert_eq!(c.validate()[0].key, "listen");
    let c = MetricsConfig {
        listen: Some("127.0.0.1:9464".into()),
        public: false,
    };
    assert!(c.validate().is_empty());
}
