//! The status document: what the gateway says about itself, as one typed
//! value built once per tick and serialised once at the edge (the retained
//! heartbeat on `<prefix>/<gateway>/status`, the web API, diagnostics).
//! `/metrics` and the web UI read its fields, never string keys.
//!
//! Pure: serde only, no I/O, no clock (the builder in the shell passes the
//! time in).
//!
//! Wire format (a contract with the cloud and the UI): a JSON object whose
//! keys are the field names below, in sorted order (the shells serialise it
//! through `serde_json::Value`, whose maps sort their keys). `zigbee` and
//! `uplinks.lorawan` are left out when that part is not configured, and
//! `disk_full` when the disk is not full, `life_safety_off` when every
//! life-safety kind has its rule;
//! `store_error` and the optional times are `null` when absent.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::model::{LinkStatus, Time};
use crate::uplink::router::RouterStats;

/// Builds the status document now (called at every connect for the birth
/// message, by the heartbeat, and by every reader).
pub type StatusFn = Arc<dyn Fn() -> Status + Send + Sync>;

/// The whole document.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Status {
    /// `"online"` (the last will says `offline`).
    pub state: &'static str,
    pub gateway: String,
    /// The running carebridge version.
    pub version: String,
    /// The gateway's clock when the document was built (runs fast in a demo).
    pub at: Time,
    pub uptime_s: u64,
    pub timezone: String,
    pub config_version: ConfigVersions,
    /// Outbox rows waiting, by class.
    pub backlog: ByClass,
    pub backlog_bytes: ByClass,
    /// Age of the oldest waiting row, by class (0 when empty).
    pub oldest_age_s: ByClass,
    /// Rows evicted by the outbox cap since the database was created.
    pub evicted: ByClass,
    /// The store's last error, if it is failing.
    pub store_error: Option<String>,
    /// Present during a disk-full episode: what was freed, what is held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_full: Option<DiskFull>,
    pub coordinator: Coordinator,
    /// The coordinator link's counters (only with `[zigbee]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zigbee: Option<ZigbeeStatus>,
    pub uplinks: Uplinks,
    /// Input and output links by name (`zigbee`, `serial:/dev/…`, `lorawan`).
    pub links: BTreeMap<String, LinkStatus>,
    pub counters: Counters,
    /// Alerts delivered per uplink path.
    pub delivered: DeliveredStats,
    /// Whether the clock is trusted (NTP or an RTC), and its last step.
    pub clock: crate::clock::ClockState,
    /// Who may use the local broker, and what it refused (only with
    /// `[local_broker]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_broker: Option<LocalBrokerStatus>,
    /// Life-safety kinds (`[rules] life_safety`) the active rules raise no
    /// alert for; left out when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub life_safety_off: Vec<crate::model::Kind>,
    /// The household's mode (home, away, visitor, or the inferred out),
    /// since when, until when and who set it (`rules::mode`).
    #[serde(default)]
    pub mode: crate::rules::mode::ModeState,
}

/// The local broker's access policy as the status shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LocalBrokerStatus {
    /// Anyone on the network may connect without a credential
    /// (`allow_anonymous = true` on a listener that is not loopback).
    pub anonymous_on_network: bool,
    /// Standing warnings for the UI (empty when all is well).
    pub warnings: Vec<String>,
    /// Per-device credentials are accepted.
    pub device_credentials: bool,
    /// Credentials stored (devices and service accounts).
    pub credentials: u64,
    /// SHA-256 of the TLS listener's certificate, when `tls_listen` is set.
    pub tls_sha256: Option<String>,
    /// Successful log-ins since start.
    pub logins: u64,
    /// Refusals since start by cause (`anonymous`, `unknown_user`,
    /// `bad_password`, `revoked`, `throttled`, `too_many_connections`,
    /// `publish`, `subscribe`).
    pub refused: BTreeMap<&'static str, u64>,
}

/// The disk is full: what the store freed so far and what it holds in
/// memory (alerts are still sent; readings are shed only when nothing more
/// can be freed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DiskFull {
    pub history_evicted: u64,
    pub telemetry_evicted: u64,
    pub status_evicted: u64,
    pub wal_freed_bytes: u64,
    pub files_removed: u64,
    pub readings_shed: u64,
    /// Alerts held in memory (sent upstream, not yet written).
    pub held_alerts: u64,
}

/// One number per outbox class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ByClass {
    pub alert: u64,
    pub status: u64,
    pub telemetry: u64,
}

impl ByClass {
    /// The classes with their wire names, alerts first.
    pub fn iter(&self) -> [(&'static str, u64); 3] {
        [
            ("alert", self.alert),
            ("status", self.status),
            ("telemetry", self.telemetry),
        ]
    }
}

/// The coordinator link in one word.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Coordinator {
    Up,
    Down,
    /// Configured, not reported yet.
    Starting,
    /// No `[zigbee]` section.
    #[default]
    Off,
}

impl Coordinator {
    /// From the `zigbee` link (if it reported) and whether one is configured.
    pub fn from_link(link: Option<&LinkStatus>, configured: bool) -> Coordinator {
        match link {
            Some(l) if l.up => Coordinator::Up,
            Some(_) => Coordinator::Down,
            None if configured => Coordinator::Starting,
            None => Coordinator::Off,
        }
    }
}

/// Counters of the coordinator link (see `zigbee::ZigbeeCounters`); each
/// only grows for the life of the process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ZigbeeStatus {
    pub frames: u64,
    pub frame_errors: u64,
    pub skipped_bytes: u64,
    pub timeouts: u64,
    pub rpc_errors: u64,
    pub restarts: u64,
    pub resets: u64,
}

/// The uplinks, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Uplinks {
    /// Always present (`"off"` without `[uplink.mqtt]`).
    pub mqtt: UplinkState,
    /// Only with `[lorawan]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lorawan: Option<LoraStatus>,
    /// Only with `[arc]`: the alarm receiving centre path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arc: Option<crate::arc::ArcStatus>,
}

/// Connection state of one uplink (defined with the uplinks).
pub use crate::uplink::UplinkState;

/// The LoRaWAN side as the heartbeat and the UI show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoraStatus {
    /// `"joined"`, `"joining"`, `"port down"` or `"starting"`.
    pub state: String,
    pub detail: String,
    pub airtime_24h_ms: u64,
    pub airtime_limit_ms: u64,
    pub downlinks_24h: u32,
    /// The data rate the modem reports (ADR moves it).
    pub data_rate: u8,
    /// Join accepts since start (each one a downlink).
    pub joins: u64,
    /// Start-ups that found the modem still joined.
    pub sessions_kept: u64,
    /// Info alerts the radio dropped under budget pressure since start.
    pub info_dropped: u64,
    pub router: RouterStats,
    /// Device id → index in compact alerts.
    pub device_index: BTreeMap<String, u16>,
    /// Room name → index in compact summaries (rooms sorted by name).
    pub room_index: BTreeMap<String, u8>,
    pub last_downlink: Option<String>,
}

/// Counters of the inputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Readings the hub received.
    pub readings: u64,
    /// Alerts raised and cleared.
    pub alerts: u64,
    /// Local MQTT ingest publications accepted and refused.
    pub mqtt_accepted: u64,
    pub mqtt_malformed: u64,
    /// Publications the front door's access policy refused (dropped).
    pub mqtt_refused: u64,
    /// What the front door dropped under load, by cause.
    pub mqtt_shed: Shed,
}

/// Messages the MQTT front door dropped, by cause; each only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Shed {
    /// QoS 0 readings shed because the hub's queue was full (a `warning`
    /// alert is raised while this grows).
    pub qos0_overload: u64,
    /// QoS 0 messages for a local subscriber that did not keep up (or a
    /// full queue to the embedded broker), dropped.
    pub subscriber_slow: u64,
    /// Skips the embedded broker reported: a local subscriber fell behind
    /// its in-memory log and missed messages.
    pub broker_skipped: u64,
}

/// The active versions of the rules and of the configuration overlay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigVersions {
    pub rules: Active,
    pub config: Active,
}

/// One active version, as the heartbeat and `<prefix>/<gw>/config` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Active {
    pub version: u64,
    pub source: String,
}

/// An uplink path (defined with the uplinks).
pub use crate::uplink::Via;

/// One alert and the path that delivered it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertDelivery {
    pub seq: u64,
    pub id: String,
    pub via: Via,
    pub queued_at: Time,
    pub delivered_at: Time,
}

/// Delivered alerts per path, for the heartbeat and the UI.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DeliveredStats {
    pub mqtt: u64,
    pub lorawan: u64,
    /// The most recent delivery.
    pub last: Option<AlertDelivery>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(up: bool) -> LinkStatus {
        LinkStatus {
            link: "zigbee".into(),
            up,
            detail: String::new(),
            at: Time(0),
        }
    }

    #[test]
    fn the_coordinator_word_follows_its_link_and_whether_one_is_configured() {
        assert_eq!(
            Coordinator::from_link(Some(&link(true)), true),
            Coordinator::Up
        );
        assert_eq!(
            Coordinator::from_link(Some(&link(false)), true),
            Coordinator::Down
        );
        assert_eq!(Coordinator::from_link(None, true), Coordinator::Starting);
        assert_eq!(Coordinator::from_link(None, false), Coordinator::Off);
    }

    #[test]
    fn the_document_keeps_its_field_names_and_leaves_out_parts_not_configured() {
        let s = Status {
            state: "online",
            gateway: "home-1".into(),
            at: Time(86_400_000),
            coordinator: Coordinator::Starting,
            ..Status::default()
        };
        let v = serde_json::to_value(&s).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "at",
                "backlog",
                "backlog_bytes",
                "clock",
                "config_version",
                "coordinator",
                "counters",
                "delivered",
                "evicted",
                "gateway",
                "links",
                "mode",
                "oldest_age_s",
                "state",
                "store_error",
                "timezone",
                "uplinks",
                "uptime_s",
                "version",
            ]
        );
        assert_eq!(v["at"], "1970-01-02T00:00:00Z");
        assert_eq!(v["coordinator"], "starting");
        assert_eq!(v["mode"]["mode"], "home");
        assert_eq!(v["store_error"], serde_json::Value::Null);
        assert_eq!(
            v["uplinks"],
            serde_json::json!({"mqtt": {"state": "off",
            "since": null, "connects": 0, "last_error": null, "delivered": 0, "failovers": 0}})
        );
        assert_eq!(
            v["config_version"]["rules"],
            serde_json::json!({"version": 0, "source": ""})
        );
    }

    #[test]
    fn configured_parts_appear_under_their_names() {
        let s = Status {
            zigbee: Some(ZigbeeStatus {
                frame_errors: 2,
                ..Default::default()
            }),
            uplinks: Uplinks {
                lorawan: Some(LoraStatus {
                    state: "joined".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Status::default()
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["zigbee"]["frame_errors"], 2);
        assert_eq!(v["uplinks"]["lorawan"]["state"], "joined");
        assert_eq!(v["uplinks"]["mqtt"]["state"], "off");
    }
}
