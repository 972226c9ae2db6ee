//! The commented default configuration (`carebridge config defaults`),
//! assembled from each section's own commented defaults.

/// The commented default configuration file, as `carebridge config defaults` prints it.
pub fn defaults_toml() -> String {
    let mut s = String::from(DEFAULTS_HEAD);
    for part in [
        super::StoreConfig::DEFAULT_TOML,
        crate::rules::RulesConfig::DEFAULT_TOML,
        super::WebConfig::DEFAULT_TOML,
        crate::zigbee::ZigbeeConfig::DEFAULT_TOML,
        crate::line::SerialBoardConfig::DEFAULT_TOML,
        crate::uplink::lorawan::LorawanConfig::DEFAULT_TOML,
        super::OtaConfig::DEFAULT_TOML,
        super::RemoteConfig::DEFAULT_TOML,
        super::HaConfig::DEFAULT_TOML,
        super::MetricsConfig::DEFAULT_TOML,
        DEFAULTS_TAIL,
    ] {
        s.push('\n');
        s.push_str(part.trim_end());
        s.push('\n');
    }
    s
}

const DEFAULTS_HEAD: &str = r#"# carebridge configuration (/etc/carebridge/carebridge.toml)
#
# Every key shows its default. A section that is absent turns its part off;
# a misspelt key is an error (`carebridge config check FILE` says which).
# Durations: "250ms", "30s", "5m", "2h", "7d".

[gateway]
# Appears in every upstream topic: <prefix>/<id>/alert. 1-64 of A-Z a-z 0-9 . _ : -
id = "home-0001"
# Database, keys and state live here.
data_dir = "/var/lib/carebridge"
# IANA time zone for the rules' local-time windows.
timezone = "Europe/London"

# The embedded MQTT broker for Wi-Fi devices and sensor bridges. Devices
# publish JSON readings to carebridge/in/<device_id>, e.g.
#   {"kind":"temperature","value":21.5,"at":"2026-11-22T10:00:00Z"}
[local_broker]
listen = "127.0.0.1:1883"
# username = "sensors"
# password_file = "/etc/carebridge/broker.password"
max_connections = 256
max_payload = 65536

# The care organisation's MQTT broker. Remove the section to run without it.
[uplink.mqtt]
url = "mqtts://broker.example.org:8883"
topic_prefix = "carebridge"
# client_id = "home-0001"          # defaults to gateway.id
keepalive = "30s"                   # a link silent for 1.5 × this is dropped and redialled
# ca_file = "/etc/carebridge/ca.pem"
# cert_file = "/etc/carebridge/client.pem"
# key_file = "/etc/carebridge/client.key"
# username = "home-0001"
# password_file = "/etc/carebridge/uplink.password"
heartbeat = "5m"
telemetry = true
inflight = 500
backoff_min = "1s"
backoff_max = "60s"
"#;

const DEFAULTS_TAIL: &str = r#"# Facts the installer knows about devices, by device id.
# [devices.hall-motion]
# name = "Hall motion"
# room = "hall"
# role = "motion"

[log]
# error | warn | info | debug | trace, or e.g. "info,carebridge::zigbee=debug"
level = "info"
# Levels per module (RUST_LOG wins over both):
# modules = { "carebridge::zigbee" = "debug" }
"#;
