//! The TOML configuration: sections, defaults, validation with errors that
//! name the file, line and key.
//!
//! Rules of the house:
//! - every section is `#[serde(default, deny_unknown_fields)]` with an explicit
//!   `Default`, so a typo is an error, not a silently ignored key;
//! - a section that is absent turns its part off (no `[zigbee]`: no
//!   coordinator is opened); the parts that always run (`gateway`, `store`,
//!   `rules`) have defaults;
//! - durations are strings like `"30s"`, `"5m"`, `"2h"`, `"7d"` ([`Dur`]);
//! - secrets are never inline when a `*_file` key exists for them; the file is
//!   read by the part that uses it, at start-up;
//! - this module does no I/O: the shell crate's `config::load` reads the file.
//!
//! Here: the sections of its own, loading, validation and fragments;
//! [`BrokerUrl`] (`broker_url`); [`Dur`], [`Problem`], [`ConfigError`] and
//! where a problem is in the text come from [`crate::setting`] and the commented defaults (`defaults`, rendered from the
//! types' `Default`s with the comments in `notes`).
//!
//! Sections of the pure modules (`[rules]`, `[zigbee]`, `[lorawan]`,
//! `[[serial]]`) are declared with them; the sections of shell parts
//! (`[web]`, `[store]`, `[ota]`, `[simulator]`, `[remote]`,
//! `[homeassistant]`, `[metrics]`) have a file each here, so the whole file
//! is validated without I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::DeviceId;
pub use crate::setting::{ConfigError, Dur, Problem, error_at, format_invalid, line_of};
use crate::setting::{locate_key, parse_error};

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub gateway: GatewayConfig,
    pub local_broker: Option<LocalBrokerConfig>,
    pub uplink: UplinkConfig,
    pub web: Option<WebConfig>,
    pub store: StoreConfig,
    pub rules: crate::rules::RulesConfig,
    pub zigbee: Option<crate::zigbee::ZigbeeConfig>,
    pub lorawan: Option<crate::uplink::lorawan::LorawanConfig>,
    /// The alarm receiving centre (SIA DC-09).
    pub arc: Option<ArcConfig>,
    /// Serial sensor boards speaking the line protocol, one table per port.
    pub serial: Vec<crate::line::SerialBoardConfig>,
    pub ota: Option<OtaConfig>,
    /// The simulated home (used by `carebridge demo`, or for soak tests).
    pub simulator: Option<SimConfig>,
    /// Facts about devices the installer knows: `[devices.hall-motion] room = "hall"`.
    pub devices: BTreeMap<String, DeviceConfig>,
    pub log: LogConfig,
    // Remote configuration, Home Assistant, metrics.
    pub remote: RemoteConfig,
    pub homeassistant: HaConfig,
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Appears in every upstream topic; 1–64 of `[A-Za-z0-9._:-]`.
    pub id: String,
    pub data_dir: PathBuf,
    /// IANA zone for the rules' local-time windows.
    pub timezone: String,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            id: "home-0001".into(),
            data_dir: PathBuf::from("/var/lib/carebridge"),
            timezone: "Europe/London".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalBrokerConfig {
    /// Address the embedded broker listens on (loopback by default).
    pub listen: String,
    /// Deprecated: one user name shared by every client (the "legacy"
    /// account; use `device_credentials`)…
    pub username: Option<String>,
    /// …and the password read from this file.
    pub password_file: Option<PathBuf>,
    pub max_connections: usize,
    /// Largest accepted MQTT packet, in bytes.
    pub max_payload: usize,
    /// Unacknowledged QoS 1/2 publications per connection before the
    /// socket is no longer read. A reading's PUBACK waits for its commit,
    /// so this bounds how many readings of one bursting client share a
    /// commit (and its fsync).
    pub inflight: usize,
    /// Clients log in with a credential per device (made in the web UI or
    /// pushed by `cmd/config`); see `crate::devauth`.
    pub device_credentials: bool,
    /// Accept clients without a user name on a listener reachable from the
    /// network (off: a non-loopback listener needs authentication).
    pub allow_anonymous: bool,
    /// A TLS listener (the gateway's per-unit certificate), e.g. "0.0.0.0:8883".
    pub tls_listen: Option<String>,
    /// Connections open at once from one address (loopback not counted).
    pub max_connections_per_address: u32,
    /// Log-in failures from one address before it must wait (doubling).
    pub failures_before_backoff: u32,
    /// The longest wait after repeated log-in failures.
    pub backoff_max: Dur,
    /// Log-in failures within 10 minutes that raise a `warning` alert (0: never).
    pub alert_after_failures: u32,
}

impl Default for LocalBrokerConfig {
    fn default() -> Self {
        LocalBrokerConfig {
            listen: "127.0.0.1:1883".into(),
            username: None,
            password_file: None,
            max_connections: 256,
            max_payload: 64 * 1024,
            inflight: 256,
            device_credentials: false,
            allow_anonymous: false,
            tls_listen: None,
            max_connections_per_address: 16,
            failures_before_backoff: 3,
            backoff_max: Dur::mins(5),
            alert_after_failures: 10,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UplinkConfig {
    pub mqtt: Option<MqttUplinkConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttUplinkConfig {
    /// `mqtts://host:8883` (TLS) or `mqtt://host:1883` (plain TCP), or a
    /// list of them: the nodes of a clustered broker ([`BrokerUrls`]).
    pub url: BrokerUrls,
    pub topic_prefix: String,
    /// Defaults to the gateway id.
    pub client_id: Option<String>,
    pub keepalive: Dur,
    /// PEM CA bundle for the broker's certificate (TLS only; required for mqtts).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for brokers that authenticate by certificate.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// How often the retained status heartbeat is published.
    pub heartbeat: Dur,
    /// Send every reading upstream as telemetry (alerts are always sent).
    pub telemetry: bool,
    /// QoS 1 messages in flight before waiting for acknowledgements.
    pub inflight: u16,
    pub backoff_min: Dur,
    pub backoff_max: Dur,
}

impl Default for MqttUplinkConfig {
    fn default() -> Self {
        MqttUplinkConfig {
            url: "mqtts://broker.example.org:8883".into(),
            topic_prefix: "carebridge".into(),
            client_id: None,
            keepalive: Dur::secs(30),
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: None,
            password_file: None,
            heartbeat: Dur::mins(5),
            telemetry: true,
            inflight: 500,
            backoff_min: Dur::secs(1),
            backoff_max: Dur::secs(60),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfig {
    pub name: Option<String>,
    pub room: Option<String>,
    /// Role in the care plan, e.g. `front_door`, `fridge_door`, `bed`.
    pub role: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`; or a filter such as
    /// `info,carebridge::zigbee=debug`. `RUST_LOG` overrides it.
    pub level: String,
    /// Levels per module: `{ "carebridge::zigbee" = "debug" }`.
    pub modules: BTreeMap<String, String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            modules: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| parse_error(text, path, &e))?;
        cfg.validated(text, path)
    }

    /// `self` if valid, else every problem located in `text`.
    fn validated(self, text: &str, path: &str) -> Result<Config, ConfigError> {
        let problems = self.validate();
        if problems.is_empty() {
            return Ok(self);
        }
        Err(ConfigError::Invalid {
            path: path.to_string(),
            problems: problems
                .into_iter()
                .map(|p| (locate_key(text, &p.key), p))
                .collect(),
        })
    }

    /// Every semantic problem, each naming its key.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let g = &self.gateway;
        if DeviceId::new(&g.id).is_err() {
            out.push(Problem::new(
                "gateway.id",
                format!(
                    "{:?} is not a valid gateway id: use 1 to 64 characters from A-Z a-z 0-9 . _ : -",
                    g.id
                ),
            ));
        }
        if !g.data_dir.is_absolute() {
            out.push(Problem::new(
                "gateway.data_dir",
                format!("{} must be an absolute path", g.data_dir.display()),
            ));
        }
        if jiff::tz::TimeZone::get(&g.timezone).is_err() {
            out.push(Problem::new(
                "gateway.timezone",
                format!(
                    "{:?} is not a known IANA time zone (e.g. Europe/London)",
                    g.timezone
                ),
            ));
        }
        if let Some(b) = &self.local_broker {
            out.extend(b.validate().into_iter().map(|p| p.within("local_broker")));
        }
        if let Some(m) = &self.uplink.mqtt {
            validate_mqtt(m, &mut out);
        }
        for id in self.devices.keys() {
            if DeviceId::new(id).is_err() {
                out.push(Problem::new(
                    format!("devices.{id}"),
                    "not a valid device id: use 1 to 64 characters from A-Z a-z 0-9 . _ : -",
                ));
            }
        }
        if let Some(a) = &self.arc {
            out.extend(a.validate().into_iter().map(|p| p.within("arc")));
        }
        let sections: [(&str, Vec<Problem>); 7] = [
            ("store", self.store.validate()),
            ("rules", self.rules.validate()),
            (
                "zigbee",
                self.zigbee
                    .as_ref()
                    .map(|c| c.validate())
                    .unwrap_or_default(),
            ),
            (
                "lorawan",
                self.lorawan
                    .as_ref()
                    .map(|c| c.validate())
                    .unwrap_or_default(),
            ),
            (
                "web",
                self.web.as_ref().map(|c| c.validate()).unwrap_or_default(),
            ),
            (
                "ota",
                self.ota.as_ref().map(|c| c.validate()).unwrap_or_default(),
            ),
            (
                "simulator",
                self.simulator
                    .as_ref()
                    .map(|c| c.validate())
                    .unwrap_or_default(),
            ),
        ];
        for (name, problems) in sections {
            out.extend(problems.into_iter().map(|p| p.within(name)));
        }
        for (i, s) in self.serial.iter().enumerate() {
            out.extend(
                s.validate()
                    .into_iter()
                    .map(|p| p.within(&format!("serial[{i}]"))),
            );
        }
        out.extend(
            log::validate(&self.log)
                .into_iter()
                .map(|p| p.within("log")),
        );
        out.extend(
            self.remote
                .validate()
                .into_iter()
                .map(|p| p.within("remote")),
        );
        out.extend(
            self.homeassistant
                .validate()
                .into_iter()
                .map(|p| p.within("homeassistant")),
        );
        out.extend(
            self.metrics
                .validate()
                .into_iter()
                .map(|p| p.within("metrics")),
        );
        if self.homeassistant.enabled && self.local_broker.is_none() {
            out.push(Problem::new(
                "homeassistant.enabled",
                "Home Assistant discovery is published on the local broker: add [local_broker]",
            ));
        }
        out
    }

    /// The database file inside the data directory.
    pub fn db_path(&self) -> PathBuf {
        self.gateway.data_dir.join("carebridge.db")
    }
}

fn validate_mqtt(m: &MqttUplinkConfig, out: &mut Vec<Problem>) {
    let k = |s: &str| format!("uplink.mqtt.{s}");
    match m.url.parse_all() {
        Err((i, e)) => {
            // A list names the bad entry: `uplink.mqtt.url[1]`.
            let key = if m.url.as_slice().len() > 1 {
                format!("url[{i}]")
            } else {
                "url".into()
            };
            out.push(Problem::new(k(&key), e));
        }
        Ok(u) => {
            if u.first().is_some_and(|u| !u.tls) && (m.ca_file.is_some() || m.cert_file.is_some()) {
                out.push(Problem::new(
                    k("url"),
                    "ca_file/cert_file are set but the URL is plain mqtt://; use mqtts://",
                ));
            }
        }
    }
    if m.topic_prefix.is_empty()
        || m.topic_prefix.contains(['+', '#'])
        || m.topic_prefix.starts_with('/')
        || m.topic_prefix.ends_with('/')
    {
        out.push(Problem::new(
            k("topic_prefix"),
            format!(
                "{:?}: must be non-empty, without + or #, and not start or end with /",
                m.topic_prefix
            ),
        ));
    }
    if let Some(c) = &m.client_id
        && (c.is_empty() || c.len() > 128)
    {
        out.push(Problem::new(k("client_id"), "must be 1 to 128 characters"));
    }
    if m.keepalive.0 < Duration::from_secs(5) || m.keepalive.0 > Duration::from_secs(65535) {
        out.push(Problem::new(k("keepalive"), "must be between 5s and 18h"));
    }
    if m.cert_file.is_some() != m.key_file.is_some() {
        out.push(Problem::new(
            k("key_file"),
            "cert_file and key_file go together: set both or neither",
        ));
    }
    if m.password_file.is_some() && m.username.is_none() {
        out.push(Problem::new(
            k("username"),
            "password_file is set but username is not",
        ));
    }
    if m.heartbeat.0 < Duration::from_secs(1) {
        out.push(Problem::new(k("heartbeat"), "must be at least 1s"));
    }
    if m.inflight == 0 {
        out.push(Problem::new(k("inflight"), "must be at least 1"));
    }
    if m.backoff_min.0.is_zero() || m.backoff_min > m.backoff_max {
        out.push(Problem::new(
            k("backoff_min"),
            "must be above zero and not above backoff_max",
        ));
    }
}

/// Checks a configuration fragment (remote configuration) merged over
/// `base`, with the messages `config check` gives, lines and keys naming
/// the fragment. Returns the merged configuration.
pub fn check_fragment(base: &Config, fragment: &str, path: &str) -> Result<Config, ConfigError> {
    // The fragment alone must parse as a config (unknown keys, wrong types).
    let frag: toml::Table =
        toml::from_str(fragment).map_err(|e| parse_error(fragment, path, &e))?;
    toml::from_str::<Config>(fragment).map_err(|e| parse_error(fragment, path, &e))?;
    let mut merged = toml::Table::try_from(base).map_err(|e| ConfigError::Parse {
        path: path.to_string(),
        line: 1,
        column: 1,
        key: String::new(),
        message: format!("the running configuration cannot be merged: {e}"),
    })?;
    merge_tables(&mut merged, frag);
    let cfg: Config = merged
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.to_string(),
            line: 1,
            column: 1,
            key: String::new(),
            message: e.message().trim().to_string(),
        })?;
    cfg.validated(fragment, path)
}

/// Deep merge: tables merge key by key, anything else is replaced.
pub fn merge_tables(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge_tables(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

mod arc;
mod broker_url;
mod defaults;
mod ha;
mod http_url;
mod local_broker;
mod log;
mod metrics;
mod notes;
mod ota;
mod remote;
mod sim;
mod store;
#[cfg(test)]
mod tests;
mod web;

pub use arc::{ArcConfig, ArcTarget};
pub use broker_url::{BrokerUrl, BrokerUrls};
pub use defaults::defaults_toml;
pub use ha::HaConfig;
pub use http_url::Url as HttpUrl;
pub use log::{filter_ok as log_filter_ok, validate as validate_log};
pub use metrics::MetricsConfig;
pub use ota::{OtaConfig, OtaPaths};
pub use remote::RemoteConfig;
pub use sim::SimConfig;
pub use store::{StartupCheck, StoreConfig};
pub use web::WebConfig;
