//! What the web UI needs from the rest of the gateway, as small role
//! traits, and [`Roles`]: one handle per role, which the server is built on.
//!
//! Every implementor implements every method of each role it takes: there
//! are no default methods. Something a backend cannot do right now is a
//! typed [`BackendError`] (the HTTP layer maps it to 503/501/500); a role a
//! backend does not have at all is `None` in [`Roles`] (the HTTP layer
//! answers 501 for it). Methods return boxed futures so the traits stay
//! object-safe (`Arc<dyn Registry>`).
//!
//! Implementations: [`super::backend::StoreBackend`] (the store, hub and rule
//! engine) and [`super::memory::MemoryBackend`] (the API tests).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::hub::Live;
use crate::model::{DeviceId, DeviceInfo, Reading, Time};
use crate::rules::active::{Applied, ApplyError, History as RulesHistory, Version};
use crate::store::AlertDelivery;

/// A boxed, sendable future (keeps the role traits object-safe).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a role could not do something; maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    /// The part is not configured or not running (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// This server does not have that part at all (HTTP 501).
    #[error("{0}")]
    Unsupported(String),
    /// Something failed (HTTP 500).
    #[error("{0}")]
    Failed(String),
}

/// The device registry.
pub trait Registry: Send + Sync {
    fn devices(&self) -> BoxFut<'_, Result<Vec<DeviceInfo>, BackendError>>;
    fn device(&self, id: DeviceId) -> BoxFut<'_, Result<Option<DeviceInfo>, BackendError>>;
    /// Merges the `Some` fields into the registry (through the hub, so the
    /// rules see the new room/name too), as one change made `by` (an
    /// audit/version source such as `ui:ann`).
    fn update_devices(
        &self,
        infos: Vec<DeviceInfo>,
        by: String,
    ) -> BoxFut<'_, Result<(), BackendError>>;
    fn remove_device(&self, id: DeviceId, by: String) -> BoxFut<'_, Result<(), BackendError>>;
}

/// The reading history.
pub trait History: Send + Sync {
    /// The newest `limit` readings in `[since, until)`, oldest first.
    fn history(
        &self,
        since: Time,
        until: Time,
        limit: usize,
    ) -> BoxFut<'_, Result<Vec<Reading>, BackendError>>;
    /// Each device's newest reading of each kind since `since` (the
    /// commissioning page: the last event, and the baseline of a test).
    fn latest_readings(&self, since: Time) -> BoxFut<'_, Result<Vec<Reading>, BackendError>>;
    /// Deletes the reading history (factory reset).
    fn wipe_history(&self) -> BoxFut<'_, Result<(), BackendError>>;
}

/// The rule engine's open alerts and their delivery upstream.
pub trait Alerting: Send + Sync {
    /// Acknowledges the open alerts of `rule` on `device` in the rule
    /// engine. `Ok(false)`: the engine had no open alert to acknowledge.
    fn ack_alert(&self, rule: String, device: DeviceId) -> BoxFut<'_, Result<bool, BackendError>>;
    /// Acknowledges one alert by its instance id (stops its escalation);
    /// by default, as [`Alerting::ack_alert`] of its rule and device.
    fn ack_instance(
        &self,
        _instance: String,
        rule: String,
        device: DeviceId,
    ) -> BoxFut<'_, Result<bool, BackendError>> {
        self.ack_alert(rule, device)
    }
    /// Sets the household's mode (away, visitor, home; `until` optional):
    /// the mode now, or why it was refused (`until: …`). By default the
    /// server has no rule engine to set it in.
    fn set_mode(
        &self,
        _mode: crate::rules::mode::Mode,
        _until: Option<crate::model::Time>,
        _source: String,
    ) -> BoxFut<'_, Result<Result<crate::rules::mode::ModeState, String>, BackendError>> {
        Box::pin(async {
            Err(BackendError::Unsupported(
                "modes are not available here".into(),
            ))
        })
    }
    /// The delivery records (path, time) of the alerts with these UUIDs;
    /// an alert not listed has not been delivered (or its record aged out).
    fn deliveries(&self, uids: Vec<String>)
    -> BoxFut<'_, Result<Vec<AlertDelivery>, BackendError>>;
}

/// Zigbee pairing.
pub trait Pairing: Send + Sync {
    /// Opens the Zigbee network for joining for `seconds`.
    fn permit_join(&self, seconds: u16) -> BoxFut<'_, Result<(), BackendError>>;
    /// Sends ZCL Identify to the Zigbee device `ieee` (it blinks/beeps for
    /// `seconds`), through the coordinator.
    fn identify(&self, ieee: u64, seconds: u16) -> BoxFut<'_, Result<(), BackendError>>;
}

/// The gateway's status document and its live event stream.
pub trait Watch: Send + Sync {
    /// The gateway status document (uplinks, coordinator, backlog, …).
    fn status(&self) -> crate::status::Status;
    /// A new subscription to the live event stream.
    fn subscribe(&self) -> broadcast::Receiver<Live>;
}

/// View, change and roll back the active alert rules.
pub trait RulesAdmin: Send + Sync {
    /// The active version: the stored one, or the base (config / built-in).
    fn active(&self) -> BoxFut<'_, Result<Version, BackendError>>;
    /// The stored versions (empty when only the base applies).
    fn versions(&self) -> BoxFut<'_, Result<RulesHistory, BackendError>>;
    /// Validates `text` completely, keeps it, then switches the engine.
    fn apply(
        &self,
        text: String,
        source: String,
        now: Time,
    ) -> BoxFut<'_, Result<Applied, ApplyError>>;
    /// Brings back the previous version.
    fn rollback(&self) -> BoxFut<'_, Result<Applied, ApplyError>>;
    /// Forgets the stored versions: the base rules apply (factory reset).
    fn reset(&self) -> BoxFut<'_, Result<Applied, ApplyError>>;
}

/// The uplink settings an installer edits in the UI: saved as a versioned
/// configuration overlay (rollback like device edits), run after a restart.
pub trait UplinkAdmin: Send + Sync {
    /// What a restart would run with (config file + saved overlay) and the
    /// overlay's version.
    fn saved(&self) -> BoxFut<'_, (crate::config::Config, crate::status::Active)>;
    /// Checks `fragment` like `config check` (merged over the saved
    /// configuration) and saves it as a new version made `by`.
    fn save(
        &self,
        fragment: String,
        by: String,
        now: Time,
    ) -> BoxFut<'_, Result<u64, crate::remote_config::RemoteError>>;
    /// Brings back the previous version.
    fn rollback(&self) -> BoxFut<'_, Result<u64, crate::remote_config::RemoteError>>;
}

/// The sections the Uplinks page may change (applied at the next start).
pub const UPLINK_SECTIONS: &[&str] = &["gateway", "uplink", "lorawan"];

impl UplinkAdmin for crate::remote_config::ConfigState {
    fn saved(&self) -> BoxFut<'_, (crate::config::Config, crate::status::Active)> {
        Box::pin(async move { (self.effective().await, self.watch().borrow().clone()) })
    }
    fn save(
        &self,
        fragment: String,
        by: String,
        now: Time,
    ) -> BoxFut<'_, Result<u64, crate::remote_config::RemoteError>> {
        Box::pin(async move {
            self.apply_sections(&fragment, &by, None, now, UPLINK_SECTIONS)
                .await
                .map(|a| a.version)
        })
    }
    fn rollback(&self) -> BoxFut<'_, Result<u64, crate::remote_config::RemoteError>> {
        Box::pin(async move {
            crate::remote_config::ConfigState::rollback(self)
                .await
                .map(|a| a.version)
        })
    }
}

/// Credentials of Wi-Fi devices on the local broker (`crate::devauth`).
pub trait DeviceCredentials: Send + Sync + std::fmt::Debug {
    /// The stored credentials (never a secret) and the broker's settings.
    fn overview(&self) -> BoxFut<'_, Result<CredentialsOverview, BackendError>>;
    /// Makes a credential for `holder`; the secret is returned once.
    fn create(
        &self,
        holder: crate::devauth::record::Holder,
        by: String,
    ) -> BoxFut<'_, Result<String, CreateError>>;
    /// Removes the credential of `username`; whether there was one.
    fn revoke(&self, username: String) -> BoxFut<'_, Result<bool, BackendError>>;
}

/// Why a credential was not made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CreateError {
    /// The holder has one already (HTTP 409).
    #[error("{0} already has a credential: revoke it first")]
    Exists(String),
    #[error("{0}")]
    Backend(#[from] BackendError),
}

/// What the credentials page shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CredentialsOverview {
    pub credentials: Vec<crate::devauth::record::Credential>,
    /// `[local_broker] device_credentials`: devices log in with these.
    pub enabled: bool,
    pub listen: String,
    pub tls_listen: Option<String>,
    /// SHA-256 of the TLS listener's certificate (for pinning).
    pub tls_sha256: Option<String>,
    pub warnings: Vec<String>,
}

/// The records the web UI keeps about itself (serialised by the UI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Record {
    /// The accounts (names, roles, password hashes).
    Accounts,
    /// The hash of the one-time setup code.
    SetupCode,
    /// The audit log of configuration changes.
    Audit,
    /// The recent-alerts list with acknowledgements.
    RecentAlerts,
    /// The Zigbee network and its interviewed devices (written by the
    /// Zigbee task; the UI only reads it for the devices' clusters).
    ZigbeeNetwork,
    /// Signed-off commissioning reports (newest first).
    Commissioning,
    /// Versions of the uplink settings edited in the UI (newest last).
    Uplinks,
}

impl Record {
    /// The store key (kept from the first version: stored data stays readable).
    pub const fn key(self) -> &'static str {
        match self {
            Record::Accounts => "web/accounts",
            Record::SetupCode => "web/setup",
            Record::Audit => "web/audit",
            Record::RecentAlerts => "web/alerts",
            Record::ZigbeeNetwork => "zigbee.network",
            Record::Commissioning => "web/commissioning",
            Record::Uplinks => "web/uplinks",
        }
    }
}

/// Durable storage of the web UI's own [`Record`]s.
pub trait WebState: Send + Sync {
    fn load(&self, record: Record) -> BoxFut<'_, Result<Option<Vec<u8>>, BackendError>>;
    /// Stores (`Some`) or deletes (`None`) a record, durably before returning.
    fn save(&self, record: Record, value: Option<Vec<u8>>) -> BoxFut<'_, Result<(), BackendError>>;
    /// Queues a status document for the upstream broker (through the
    /// outbox: kept until the uplink acknowledges it), e.g. a signed-off
    /// commissioning report.
    fn send_upstream(
        &self,
        doc: serde_json::Map<String, serde_json::Value>,
    ) -> BoxFut<'_, Result<(), BackendError>>;
}

/// Settings the UI shows or uses, fixed for the life of the server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Read-only uplink settings (no secrets) for the Uplinks page.
    pub uplinks: serde_json::Value,
    /// The running configuration as TOML (for backups), when known.
    pub config_toml: Option<String>,
    /// The `[ota]` settings (defaults when the section is absent).
    pub ota: crate::ota::OtaConfig,
    /// The upstream MQTT settings and gateway id ("test connection").
    pub mqtt: Option<(crate::config::MqttUplinkConfig, String)>,
    /// `[gateway] id`, which an uploaded bundle's `gateways` must name
    /// (when it names any).
    pub gateway: String,
    /// `[rules] life_safety`: the kinds a rule set may not leave without an
    /// alert unless the change is confirmed ([`crate::life_safety`]).
    pub life_safety: Vec<crate::model::Kind>,
    /// The alarm receiving centre's test signal, when `[arc]` is running.
    pub arc: Option<crate::uplink::arc::ArcHandle>,
    /// The Zigbee device library (built in, plus `[zigbee] devices_file`).
    pub devices: Arc<crate::zigbee::library::Library>,
    /// The gateway's clock (the one readings, rules and alerts are stamped
    /// by; simulated in the demo). `None`: the wall clock.
    pub clock: Option<Arc<dyn crate::clock::Clock>>,
}

impl Settings {
    /// What the UI takes from the gateway's configuration (no secrets are
    /// copied into `uplinks`, only whether they are set).
    pub fn from_config(cfg: &crate::config::Config) -> Settings {
        Settings {
            uplinks: super::backend::uplink_settings(cfg),
            config_toml: toml::to_string(cfg).ok(),
            ota: cfg.ota.clone().unwrap_or_default(),
            mqtt: cfg.uplink.mqtt.clone().map(|m| (m, cfg.gateway.id.clone())),
            gateway: cfg.gateway.id.clone(),
            life_safety: cfg.rules.life_safety(),
            arc: None,
            devices: cfg
                .zigbee
                .as_ref()
                .and_then(|z| crate::zigbee::load_library(z).ok())
                .unwrap_or_else(crate::zigbee::library::Library::builtin),
            clock: None,
        }
    }

    /// The gateway's time now: what the commissioning walk-through compares
    /// readings with, so it must be the clock that stamps them.
    pub fn now(&self) -> crate::model::Time {
        match &self.clock {
            Some(c) => c.now(),
            None => crate::wall::now(),
        }
    }
}

/// The parts of the gateway the web server uses, one handle per role.
#[derive(Clone)]
pub struct Roles {
    pub registry: Arc<dyn Registry>,
    pub history: Arc<dyn History>,
    pub alerting: Arc<dyn Alerting>,
    pub pairing: Arc<dyn Pairing>,
    pub watch: Arc<dyn Watch>,
    pub state: Arc<dyn WebState>,
    /// `None`: this server has no rule engine (the Rules page says so).
    pub rules: Option<Arc<dyn RulesAdmin>>,
    /// `None`: no local broker here (the credentials page says so).
    pub credentials: Option<Arc<dyn DeviceCredentials>>,
    /// `None`: uplink settings are read-only here (no configuration overlay).
    pub uplinks: Option<Arc<dyn UplinkAdmin>>,
    pub settings: Settings,
}

impl std::fmt::Debug for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roles")
            .field("rules", &self.rules.is_some())
            .finish_non_exhaustive()
    }
}

impl Roles {
    /// The device credentials, or the 501 that says this server has none.
    pub fn credentials(&self) -> Result<&Arc<dyn DeviceCredentials>, BackendError> {
        self.credentials.as_ref().ok_or_else(|| {
            BackendError::Unsupported(
                "no local broker: add [local_broker] to the configuration".into(),
            )
        })
    }

    /// The uplink settings editor, or the 501 that says they are read-only here.
    pub fn uplinks(&self) -> Result<&Arc<dyn UplinkAdmin>, BackendError> {
        self.uplinks.as_ref().ok_or_else(|| {
            BackendError::Unsupported(
                "uplink settings are read-only in this server (no configuration store)".into(),
            )
        })
    }

    /// The rule engine, or the 501 that says this server has none.
    pub fn rules(&self) -> Result<&Arc<dyn RulesAdmin>, BackendError> {
        self.rules.as_ref().ok_or_else(|| {
            BackendError::Unsupported("the rule engine is not wired in this server".into())
        })
    }
}
