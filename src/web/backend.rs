//! What the web UI needs from the rest of the gateway, as one trait, and
//! its implementation over the real store, hub and status function.
//!
//! The UI never touches the store or hub directly: tests swap in
//! [`crate::web::memory::MemoryBackend`]. Methods return boxed futures so the
//! trait stays object-safe (`Arc<dyn Backend>`).

use std::future::Future;
use std::pin::Pin;

use tokio::sync::{broadcast, mpsc};

use crate::hub::{HubCommand, Live};
use crate::model::{DeviceId, DeviceInfo, Reading, Time};
use crate::rules::active::Rules;
use crate::store::{Store, Write};
use crate::uplink::mqtt::StatusFn;

/// A boxed, sendable future (keeps [`Backend`] object-safe).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why the backend could not do something; maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    /// The part is not configured or not running (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// Not built yet in this version (HTTP 501).
    #[error("{0}")]
    Unsupported(String),
    /// Something failed (HTTP 500).
    #[error("{0}")]
    Failed(String),
}

/// Everything the UI reads from and writes to the gateway.
pub trait Backend: Send + Sync + 'static {
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
    fn history(
        &self,
        since: Time,
        until: Time,
        limit: usize,
    ) -> BoxFut<'_, Result<Vec<Reading>, BackendError>>;
    fn kv_get(&self, key: String) -> BoxFut<'_, Result<Option<Vec<u8>>, BackendError>>;
    /// Stores (`Some`) or deletes (`None`) a value, durably before returning.
    fn kv_put(&self, key: String, value: Option<Vec<u8>>) -> BoxFut<'_, Result<(), BackendError>>;
    /// Deletes the reading history (factory reset).
    fn wipe_history(&self) -> BoxFut<'_, Result<(), BackendError>>;
    /// Opens the Zigbee network for joining for `seconds`.
    fn permit_join(&self, seconds: u16) -> BoxFut<'_, Result<(), BackendError>>;
    /// The gateway status document (uplinks, coordinator, backlog, …).
    fn status(&self) -> crate::status::Status;
    /// Read-only uplink settings (no secrets) for the Uplinks page.
    fn uplink_settings(&self) -> serde_json::Value;
    /// A new subscription to the live event stream.
    fn subscribe(&self) -> broadcast::Receiver<Live>;
    /// Each device's newest reading since `since` (commissioning report).
    /// The default reads the history window (fine for small stand-ins).
    fn latest_readings(&self, since: Time) -> BoxFut<'_, Result<Vec<Reading>, BackendError>> {
        Box::pin(async move {
            let all = self
                .history(
                    since,
                    Time::now().saturating_add(std::time::Duration::from_secs(60)),
                    usize::MAX,
                )
                .await?;
            let mut last: std::collections::BTreeMap<DeviceId, Reading> = Default::default();
            for r in all {
                last.insert(r.device.clone(), r);
            }
            Ok(last.into_values().collect())
        })
    }
    /// The delivery records (path, time) of the alerts with these UUIDs;
    /// an alert not listed has not been delivered (or its record aged out).
    fn deliveries(
        &self,
        uids: Vec<String>,
    ) -> BoxFut<'_, Result<Vec<crate::store::AlertDelivery>, BackendError>> {
        let _ = uids;
        Box::pin(async move { Ok(Vec::new()) })
    }
    /// Acknowledges the open alerts of `rule` on `device` in the rule
    /// engine (the hub). `Ok(false)`: the engine had no open alert to ack.
    fn ack_alert(&self, rule: String, device: DeviceId) -> BoxFut<'_, Result<bool, BackendError>> {
        let _ = (rule, device);
        Box::pin(async move { Ok(true) })
    }
    /// The active-rules handle, when the rule engine is wired.
    fn rules(&self) -> Option<Rules> {
        None
    }
    /// The running configuration as TOML (for backups), when known.
    fn config_toml(&self) -> Option<String> {
        None
    }
    /// The `[ota]` settings (defaults when the section is absent).
    fn ota_config(&self) -> crate::ota::OtaConfig {
        crate::ota::OtaConfig::default()
    }
    /// The upstream MQTT settings and gateway id ("test connection").
    fn mqtt_uplink(&self) -> Option<(crate::config::MqttUplinkConfig, String)> {
        None
    }
}

/// The real backend: the store, the hub's command channel, the live
/// broadcast and the status function, as built by `app`.
pub struct StoreBackend {
    pub store: Store,
    pub hub: mpsc::Sender<HubCommand>,
    pub live: broadcast::Sender<Live>,
    pub status: StatusFn,
    /// Uplink settings to show (built by `app`, secrets left out), e.g.
    /// `{"mqtt": {"url": …, "topic_prefix": …}, "lorawan": null}`.
    pub uplinks: serde_json::Value,
    /// Whether a Zigbee coordinator is configured (and wired for joining).
    pub zigbee: bool,
    /// The active rules (view, edit, rollback from the Rules page).
    pub rules: Rules,
    /// The configuration the gateway runs with (backups, OTA, MQTT test).
    pub config: crate::config::Config,
    /// The coordinator's command channel (`app` sets it with
    /// [`StoreBackend::with_zigbee`] when `[zigbee]` is configured).
    pub zigbee_tx: Option<mpsc::Sender<crate::zigbee::ZigbeeCommand>>,
    /// The configuration overlay: device edits become versioned local
    /// fragments (reported upstream as drift). Without it (tests) edits go
    /// to the hub directly.
    pub config_state: Option<crate::remote_config::ConfigState>,
}

impl std::fmt::Debug for StoreBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBackend").finish_non_exhaustive()
    }
}

impl StoreBackend {
    /// The backend `app` builds: uplink settings and the Zigbee flag are
    /// taken from `cfg` (secrets are never copied, only whether they are set).
    pub fn new(
        store: Store,
        hub: mpsc::Sender<HubCommand>,
        live: broadcast::Sender<Live>,
        status: StatusFn,
        cfg: &crate::config::Config,
        rules: Rules,
    ) -> StoreBackend {
        StoreBackend {
            store,
            hub,
            live,
            status,
            uplinks: uplink_settings(cfg),
            zigbee: cfg.zigbee.is_some(),
            rules,
            config: cfg.clone(),
            zigbee_tx: None,
            config_state: None,
        }
    }

    /// Wires `permit_join` to the coordinator task's command channel.
    pub fn with_zigbee(
        mut self,
        tx: Option<mpsc::Sender<crate::zigbee::ZigbeeCommand>>,
    ) -> StoreBackend {
        self.zigbee_tx = tx;
        self
    }

    /// Routes device edits through the configuration overlay (versioned).
    pub fn with_config_state(mut self, c: crate::remote_config::ConfigState) -> StoreBackend {
        self.config_state = Some(c);
        self
    }
}

/// The Uplinks page's read-only view of the configuration, without secrets.
pub fn uplink_settings(cfg: &crate::config::Config) -> serde_json::Value {
    let mqtt = cfg.uplink.mqtt.as_ref().map(|m| {
        serde_json::json!({
            "url": m.url,
            "topic_prefix": m.topic_prefix,
            "client_id": m.client_id.clone().unwrap_or_else(|| cfg.gateway.id.clone()),
            "keepalive": m.keepalive.to_string(),
            "heartbeat": m.heartbeat.to_string(),
            "telemetry": m.telemetry,
            "inflight": m.inflight,
            "username": m.username,
            "password": if m.password_file.is_some() { "set (file)" } else { "not set" },
            "ca_file": m.ca_file.as_ref().map(|p| p.display().to_string()),
            "client_certificate": m.cert_file.is_some(),
        })
    });
    let lorawan = cfg.lorawan.as_ref().map(|l| {
        serde_json::json!({
            "port": l.port, "modem": l.modem, "region": l.region,
            "dev_eui": l.dev_eui, "join_eui": l.join_eui,
            "app_key": if l.app_key_file.is_empty() { "not set" } else { "set (file)" },
            "data_rate": l.data_rate,
            "daily_airtime": l.daily_airtime.to_string(),
        })
    });
    serde_json::json!({ "gateway": cfg.gateway.id, "mqtt": mqtt, "lorawan": lorawan })
}

fn failed(e: crate::store::StoreError) -> BackendError {
    BackendError::Failed(format!("store: {e}"))
}

impl Backend for StoreBackend {
    fn devices(&self) -> BoxFut<'_, Result<Vec<DeviceInfo>, BackendError>> {
        Box::pin(async move { self.store.devices().await.map_err(failed) })
    }
    fn device(&self, id: DeviceId) -> BoxFut<'_, Result<Option<DeviceInfo>, BackendError>> {
        Box::pin(async move { self.store.device(&id).await.map_err(failed) })
    }
    fn update_devices(
        &self,
        infos: Vec<DeviceInfo>,
        by: String,
    ) -> BoxFut<'_, Result<(), BackendError>> {
        Box::pin(async move {
            if let Some(c) = &self.config_state {
                return c
                    .edit_devices(&infos, &by, Time::now())
                    .await
                    .map(|_| ())
                    .map_err(|e| BackendError::Failed(e.to_string()));
            }
            for info in infos {
                self.hub
                    .send(HubCommand::Device(info))
                    .await
                    .map_err(|_| BackendError::Unavailable("the hub is not running".into()))?;
            }
            Ok(())
        })
    }
    fn remove_device(&self, id: DeviceId, by: String) -> BoxFut<'_, Result<(), BackendError>> {
        Box::pin(async move {
            self.store
                .submit(Write::RemoveDevice(id.clone()))
                .await
                .map_err(failed)?;
            self.store.flush().await.map_err(failed)?;
            if let Some(c) = &self.config_state {
                c.forget_device(&id, &by, Time::now())
                    .await
                    .map_err(|e| BackendError::Failed(e.to_string()))?;
            }
            Ok(())
        })
    }
    fn deliveries(
        &self,
        uids: Vec<String>,
    ) -> BoxFut<'_, Result<Vec<crate::store::AlertDelivery>, BackendError>> {
        Box::pin(async move { self.store.alert_deliveries_of(uids).await.map_err(failed) })
    }
    fn latest_readings(&self, since: Time) -> BoxFut<'_, Result<Vec<Reading>, BackendError>> {
        Box::pin(async move { self.store.latest_per_device(since).await.map_err(failed) })
    }
    fn history(
        &self,
        since: Time,
        until: Time,
        limit: usize,
    ) -> BoxFut<'_, Result<Vec<Reading>, BackendError>> {
        Box::pin(async move {
            self.store
                .history(since, until, limit)
                .await
                .map_err(failed)
        })
    }
    fn kv_get(&self, key: String) -> BoxFut<'_, Result<Option<Vec<u8>>, BackendError>> {
        Box::pin(async move { self.store.kv_get(&key).await.map_err(failed) })
    }
    fn kv_put(&self, key: String, value: Option<Vec<u8>>) -> BoxFut<'_, Result<(), BackendError>> {
        Box::pin(async move {
            self.store
                .submit(Write::Kv(key, value))
                .await
                .map_err(failed)?;
            self.store.flush().await.map_err(failed)
        })
    }
    fn wipe_history(&self) -> BoxFut<'_, Result<(), BackendError>> {
        Box::pin(async move {
            self.store
                .submit(crate::store::Write::WipeHistory)
                .await
                .map_err(failed)?;
            self.store.flush().await.map_err(failed)
        })
    }
    fn permit_join(&self, seconds: u16) -> BoxFut<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let Some(tx) = &self.zigbee_tx else {
                return Err(BackendError::Unavailable(if self.zigbee {
                    "Zigbee pairing is not wired to the coordinator".into()
                } else {
                    "Zigbee coordinator not configured".into()
                }));
            };
            // Z-Stack takes at most 254 s (255 would mean "for ever").
            let secs = seconds.min(254);
            tx.send(crate::zigbee::ZigbeeCommand::PermitJoin { secs })
                .await
                .map_err(|_| {
                    BackendError::Unavailable("the Zigbee coordinator task stopped".into())
                })
        })
    }
    fn status(&self) -> crate::status::Status {
        (self.status)()
    }
    fn uplink_settings(&self) -> serde_json::Value {
        self.uplinks.clone()
    }
    fn subscribe(&self) -> broadcast::Receiver<Live> {
        self.live.subscribe()
    }
    fn ack_alert(&self, rule: String, device: DeviceId) -> BoxFut<'_, Result<bool, BackendError>> {
        Box::pin(async move {
            let (reply, rx) = tokio::sync::oneshot::channel();
            let gone = || BackendError::Unavailable("the hub is not running".into());
            self.hub
                .send(HubCommand::Ack {
                    rule,
                    device: Some(device),
                    reply,
                })
                .await
                .map_err(|_| gone())?;
            rx.await.map_err(|_| gone())
        })
    }
    fn rules(&self) -> Option<Rules> {
        Some(self.rules.clone())
    }
    fn config_toml(&self) -> Option<String> {
        toml::to_string(&self.config).ok()
    }
    fn ota_config(&self) -> crate::ota::OtaConfig {
        self.config.ota.clone().unwrap_or_default()
    }
    fn mqtt_uplink(&self) -> Option<(crate::config::MqttUplinkConfig, String)> {
        let m = self.config.uplink.mqtt.clone()?;
        Some((m, self.config.gateway.id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uplink_settings_show_where_but_never_secrets() {
        let mut cfg = crate::config::Config::default();
        cfg.uplink.mqtt = Some(crate::config::MqttUplinkConfig {
            url: "mqtts://broker.example.org:8883".into(),
            password_file: Some("/etc/carebridge/secret-pw".into()),
            ..Default::default()
        });
        let v = uplink_settings(&cfg);
        assert_eq!(v["mqtt"]["url"], "mqtts://broker.example.org:8883");
        assert_eq!(v["mqtt"]["client_id"], "home-0001");
        assert_eq!(v["lorawan"], serde_json::Value::Null);
        assert!(!v.to_string().contains("secret-pw"));
    }

    fn backend(cfg: &crate::config::Config) -> (StoreBackend, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), &Default::default()).unwrap();
        let (hub, _) = mpsc::channel(1);
        let (live, _) = broadcast::channel(1);
        let status: StatusFn = std::sync::Arc::new(crate::status::Status::default);
        let base = crate::rules::active::Version {
            version: 0,
            source: "built-in".into(),
            applied_at: 0,
            text: crate::rules::MINIMAL_RULES.into(),
        };
        let rules = Rules::new(store.clone(), hub.clone(), base);
        (StoreBackend::new(store, hub, live, status, cfg, rules), dir)
    }

    #[tokio::test]
    async fn permit_join_reaches_the_coordinator_capped_at_254_seconds() {
        let cfg = crate::config::Config {
            zigbee: Some(Default::default()),
            ..Default::default()
        };
        let (tx, mut rx) = mpsc::channel(4);
        let (b, _dir) = backend(&cfg);
        let b = b.with_zigbee(Some(tx));
        b.permit_join(60).await.unwrap();
        b.permit_join(300).await.unwrap();
        use crate::zigbee::ZigbeeCommand::PermitJoin;
        assert_eq!(rx.recv().await, Some(PermitJoin { secs: 60 }));
        assert_eq!(rx.recv().await, Some(PermitJoin { secs: 254 }));
        drop(rx);
        assert!(matches!(
            b.permit_join(10).await,
            Err(BackendError::Unavailable(m)) if m.contains("stopped")
        ));
    }

    #[tokio::test]
    async fn permit_join_without_a_coordinator_is_unavailable() {
        let (b, _dir) = backend(&crate::config::Config::default());
        assert_eq!(
            b.permit_join(60).await,
            Err(BackendError::Unavailable(
                "Zigbee coordinator not configured".into()
            ))
        );
    }
}
