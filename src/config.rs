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
//! - this module does no I/O beyond reading the config file itself.
//!
//! Sections owned by other modules (`[store]`, `[rules]`, `[zigbee]`,
//! `[lorawan]`, `[[serial]]`, `[web]`, `[ota]`) are declared there and only
//! embedded here.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::DeviceId;

/// One thing wrong with a configuration, naming the dotted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key relative to the file root, e.g. `uplink.mqtt.url`.
    pub key: String,
    pub reason: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            reason: reason.into(),
        }
    }
    /// Prefixes the key with a section name (`channel` → `zigbee.channel`).
    pub fn within(mut self, section: &str) -> Self {
        self.key = if self.key.is_empty() {
            section.to_string()
        } else {
            format!("{section}.{}", self.key)
        };
        self
    }
}

/// Why a config file was refused. `Display` is the message users see.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {key}{message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        /// `"key: "` when the key could be located, else empty.
        key: String,
        message: String,
    },
    #[error("{}", format_invalid(path, problems))]
    Invalid {
        path: String,
        /// (line if found, problem)
        problems: Vec<(Option<usize>, Problem)>,
    },
}

fn format_invalid(path: &str, problems: &[(Option<usize>, Problem)]) -> String {
    problems
        .iter()
        .map(|(line, p)| match line {
            Some(l) => format!("{path}:{l}: {}: {}", p.key, p.reason),
            None => format!("{path}: {}: {}", p.key, p.reason),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A duration written as `"250ms"`, `"30s"`, `"5m"`, `"2h"` or `"7d"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub const fn mins(m: u64) -> Self {
        Dur(Duration::from_secs(m * 60))
    }
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("duration {s:?} has no unit (use ms, s, m, h or d)"))?;
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("duration {s:?} must start with a whole number"))?;
        let ms_per = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(format!(
                    "duration {s:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
                ));
            }
        };
        n.checked_mul(ms_per)
            .map(|ms| Dur(Duration::from_millis(ms)))
            .ok_or_else(|| format!("duration {s:?} is too large"))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let (n, u) = if ms == 0 {
            (0, "s")
        } else if ms.is_multiple_of(86_400_000) {
            (ms / 86_400_000, "d")
        } else if ms.is_multiple_of(3_600_000) {
            (ms / 3_600_000, "h")
        } else if ms.is_multiple_of(60_000) {
            (ms / 60_000, "m")
        } else if ms.is_multiple_of(1000) {
            (ms / 1000, "s")
        } else {
            (ms, "ms")
        };
        write!(f, "{n}{u}")
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Dur::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub gateway: GatewayConfig,
    pub local_broker: Option<LocalBrokerConfig>,
    pub uplink: UplinkConfig,
    pub web: Option<crate::web::WebConfig>,
    pub store: crate::store::StoreConfig,
    pub rules: crate::rules::RulesConfig,
    pub zigbee: Option<crate::zigbee::ZigbeeConfig>,
    pub lorawan: Option<crate::uplink::lorawan::LorawanConfig>,
    /// Serial sensor boards speaking the line protocol, one table per port.
    pub serial: Vec<crate::ingest::line::SerialBoardConfig>,
    pub ota: Option<crate::ota::OtaConfig>,
    /// The simulated home (used by `carebridge demo`, or for soak tests).
    pub simulator: Option<crate::ingest::sim::SimConfig>,
    /// Facts about devices the installer knows: `[devices.hall-motion] room = "hall"`.
    pub devices: BTreeMap<String, DeviceConfig>,
    pub log: LogConfig,
    // --- fleet (issue 9): remote config, Home Assistant, metrics ---
    pub remote: crate::remote_config::RemoteConfig,
    pub homeassistant: crate::ha::HaConfig,
    pub metrics: crate::metrics::MetricsConfig,
    // --- end fleet ---
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
    /// Optional: when set, clients must log in with this user name…
    pub username: Option<String>,
    /// …and the password read from this file.
    pub password_file: Option<PathBuf>,
    pub max_connections: usize,
    /// Largest accepted MQTT packet, in bytes.
    pub max_payload: usize,
}

impl Default for LocalBrokerConfig {
    fn default() -> Self {
        LocalBrokerConfig {
            listen: "127.0.0.1:1883".into(),
            username: None,
            password_file: None,
            max_connections: 256,
            max_payload: 64 * 1024,
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
    /// `mqtts://host:8883` (TLS) or `mqtt://host:1883` (plain TCP).
    pub url: String,
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

/// A parsed `mqtt://` or `mqtts://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    pub fn parse(s: &str) -> Result<BrokerUrl, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!(
                "{s:?} is not an MQTT URL: use mqtts://host:port (TLS) or mqtt://host:port"
            ));
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.contains('?') {
            return Err(format!(
                "{s:?}: only scheme, host and port are allowed (put credentials in username / password_file)"
            ));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let end = v6
                .find(']')
                .ok_or_else(|| format!("{s:?}: unterminated [IPv6] host"))?;
            let host = &v6[..end];
            let after = &v6[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("{s:?}: junk after the [IPv6] host")),
            };
            (host.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        let port = match port {
            None => {
                if tls {
                    8883
                } else {
                    1883
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("{s:?}: port {p:?} is not a number from 1 to 65535")),
            },
        };
        Ok(BrokerUrl { tls, host, port })
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
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Config::parse(&text, &shown)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| parse_error(text, path, &e))?;
        let problems = cfg.validate();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_string(),
                problems: problems
                    .into_iter()
                    .map(|p| (locate_key(text, &p.key), p))
                    .collect(),
            })
        }
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
            if b.listen.parse::<std::net::SocketAddr>().is_err() {
                out.push(Problem::new(
                    "local_broker.listen",
                    format!("{:?} is not an address like 127.0.0.1:1883", b.listen),
                ));
            }
            if b.username.is_some() != b.password_file.is_some() {
                out.push(Problem::new(
                    "local_broker.password_file",
                    "username and password_file go together: set both or neither",
                ));
            }
            if b.max_connections == 0 {
                out.push(Problem::new(
                    "local_broker.max_connections",
                    "must be at least 1",
                ));
            }
            if !(256..=16 * 1024 * 1024).contains(&b.max_payload) {
                out.push(Problem::new(
                    "local_broker.max_payload",
                    "must be between 256 bytes and 16 MiB",
                ));
            }
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
            crate::logging::validate(&self.log)
                .into_iter()
                .map(|p| p.within("log")),
        );
        // --- fleet (issue 9) ---
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
        // --- end fleet ---
        out
    }

    /// The database file inside the data directory.
    pub fn db_path(&self) -> PathBuf {
        self.gateway.data_dir.join("carebridge.db")
    }
}

fn validate_mqtt(m: &MqttUplinkConfig, out: &mut Vec<Problem>) {
    let k = |s: &str| format!("uplink.mqtt.{s}");
    match BrokerUrl::parse(&m.url) {
        Err(e) => out.push(Problem::new(k("url"), e)),
        Ok(u) => {
            if !u.tls && (m.ca_file.is_some() || m.cert_file.is_some()) {
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
    let problems = cfg.validate();
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigError::Invalid {
            path: path.to_string(),
            problems: problems
                .into_iter()
                .map(|p| (locate_key(fragment, &p.key), p))
                .collect(),
        })
    }
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

/// Turns a TOML/serde error into `file:line:col: key: message`.
fn parse_error(text: &str, path: &str, e: &toml::de::Error) -> ConfigError {
    let (line, column, key) = match e.span() {
        Some(span) => {
            let (l, c) = line_col(text, span.start);
            (l, c, key_at(text, span.start).map(|k| format!("{k}: ")))
        }
        None => (1, 1, None),
    };
    ConfigError::Parse {
        path: path.to_string(),
        line,
        column,
        key: key.unwrap_or_default(),
        message: e.message().trim().to_string(),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The dotted key of the `key = value` line containing `offset`, using the
/// nearest `[section]` header above it.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();
    let section = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    if line.starts_with('[') {
        return Some(
            line.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string(),
        );
    }
    let key = line.split('=').next()?.trim().trim_matches('"');
    if key.is_empty() {
        return section;
    }
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    })
}

/// The 1-based line where a dotted key is set, if it appears in the text.
fn locate_key(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = match dotted.rsplit_once('.') {
        Some((s, k)) => (Some(s.split('[').next().unwrap_or(s)), k),
        None => (None, dotted),
    };
    let mut current: Option<String> = None;
    let mut section_line = None;
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.starts_with('[') {
            let name = l.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            if Some(name.as_str()) == section {
                section_line = Some(i + 1);
            }
            current = Some(name);
            continue;
        }
        let in_section = current.as_deref() == section;
        if in_section
            && let Some((k, _)) = l.split_once('=')
            && k.trim().trim_matches('"') == key
        {
            return Some(i + 1);
        }
    }
    section_line
}

/// The commented default configuration file, as `carebridge config defaults` prints it.
pub fn defaults_toml() -> String {
    let mut s = String::from(DEFAULTS_HEAD);
    for part in [
        crate::store::StoreConfig::DEFAULT_TOML,
        crate::rules::RulesConfig::DEFAULT_TOML,
        crate::web::WebConfig::DEFAULT_TOML,
        crate::zigbee::ZigbeeConfig::DEFAULT_TOML,
        crate::ingest::line::SerialBoardConfig::DEFAULT_TOML,
        crate::uplink::lorawan::LorawanConfig::DEFAULT_TOML,
        crate::ota::OtaConfig::DEFAULT_TOML,
        crate::remote_config::RemoteConfig::DEFAULT_TOML,
        crate::ha::HaConfig::DEFAULT_TOML,
        crate::metrics::MetricsConfig::DEFAULT_TOML,
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
keepalive = "30s"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(Dur::parse("30s").unwrap(), Dur::secs(30));
        assert_eq!(Dur::parse("5m").unwrap(), Dur::mins(5));
        assert_eq!(Dur::parse("250ms").unwrap().0, Duration::from_millis(250));
        assert_eq!(Dur::parse("2h").unwrap().to_string(), "2h");
        assert!(Dur::parse("30").is_err());
        assert!(Dur::parse("5 parsecs").is_err());
        assert!(Dur::parse("99999999999999999999d").is_err());
    }

    #[test]
    fn broker_urls() {
        let u = BrokerUrl::parse("mqtts://broker.example.org").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (true, "broker.example.org", 8883)
        );
        let u = BrokerUrl::parse("mqtt://127.0.0.1:1884").unwrap();
        assert_eq!((u.tls, u.port), (false, 1884));
        let u = BrokerUrl::parse("mqtt://[::1]:1884").unwrap();
        assert_eq!(u.host, "::1");
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:70000",
            "mqtt://u:p@h",
            "mqtt://h/t",
        ] {
            assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_file_parses_and_validates() {
        let text = defaults_toml();
        let cfg = Config::parse(&text, "defaults").unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.local_broker.is_some());
        assert!(cfg.uplink.mqtt.is_some());
    }

    #[test]
    fn an_empty_file_turns_optional_parts_off() {
        let cfg = Config::parse("", "empty").unwrap();
        assert!(cfg.local_broker.is_none() && cfg.uplink.mqtt.is_none() && cfg.zigbee.is_none());
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text =
            "[gateway]\nid = \"a\"\n\n[uplink.mqtt]\nurl = \"mqtt://h\"\nkeepalve = \"30s\"\n";
        let e = Config::parse(text, "/etc/c.toml").unwrap_err().to_string();
        assert!(e.starts_with("/etc/c.toml:6:"), "{e}");
        assert!(e.contains("uplink.mqtt.keepalve"), "{e}");
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let text = "[local_broker]\nmax_connections = \"many\"\n";
        let e = Config::parse(text, "c.toml").unwrap_err().to_string();
        assert!(e.starts_with("c.toml:2:"), "{e}");
        assert!(e.contains("local_broker.max_connections"), "{e}");
    }

    #[test]
    fn bad_url_is_reported_with_its_line() {
        let text = "[uplink.mqtt]\ntopic_prefix = \"x\"\nurl = \"http://example.org\"\n";
        let e = Config::parse(text, "c.toml").unwrap_err().to_string();
        assert!(e.contains("c.toml:3: uplink.mqtt.url"), "{e}");
    }

    #[test]
    fn bad_time_zone_and_gateway_id() {
        let text = "[gateway]\nid = \"a/b\"\ntimezone = \"Mars/Olympus\"\n";
        let e = Config::parse(text, "c.toml").unwrap_err().to_string();
        assert!(e.contains("c.toml:2: gateway.id"), "{e}");
        assert!(e.contains("c.toml:3: gateway.timezone"), "{e}");
    }
}
