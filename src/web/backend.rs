//! The web UI's roles over the real gateway: the store, the hub's command
//! channel, the live broadcast, the status function and the active-rules
//! handle, as built by `app` ([`StoreBackend`]), turned into [`Roles`].

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use super::roles::{
    Alerting, BackendError, BoxFut, History, Pairing, Record, Registry, Roles, RulesAdmin,
    Settings, Watch, WebState,
};
use crate::hub::{HubCommand, Live};
use crate::model::{DeviceId, DeviceInfo, Reading, Time};
use crate::rules::active::{Applied, ApplyError, Rules};
use crate::store::{Store, Write};
use crate::uplink::mqtt::StatusFn;

/// The real backend: the store, the hub's command channel, the live
/// broadcast and the status function, as built by `app`.
pub struct StoreBackend {
    pub store: Store,
    pub hub: mpsc::Sender<HubCommand>,
    pub live: broadcast::Sender<Live>,
    pub status: StatusFn,
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
    /// Wi-Fi device credentials (with `[local_broker]`).
    pub credentials: Option<Arc<dyn super::roles::DeviceCredentials>>,
    /// The alarm receiving centre's test signal (with `[arc]`).
    pub arc: Option<crate::uplink::arc::ArcHandle>,
    /// The gateway's clock ([`StoreBackend::with_clock`]); `None`: the wall clock.
    pub clock: Option<Arc<dyn crate::clock::Clock>>,
}

impl std::fmt::Debug for StoreBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBackend").finish_non_exhaustive()
    }
}

impl StoreBackend {
    /// The backend `app` builds; the UI's [`Settings`] and the Zigbee flag
    /// are taken from `cfg` (secrets are never copied, only whether they are set).
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
            zigbee: cfg.zigbee.is_some(),
            rules,
            config: cfg.clone(),
            zigbee_tx: None,
            config_state: None,
            credentials: None,
            arc: None,
            clock: None,
        }
    }

    /// The gateway's clock (readings are stamped by it; see [`Settings::clock`]).
    pub fn with_clock(mut self, clock: Arc<dyn crate::clock::Clock>) -> StoreBackend {
        self.clock = Some(clock);
        self
    }

    /// Wires the Uplinks page's "send test signal" to the ARC task.
    pub fn with_arc(mut self, arc: Option<crate::uplink::arc::ArcHandle>) -> StoreBackend {
        self.arc = arc;
        self
    }

    /// Wires `permit_join` to the coordinator task's command channel.
    pub fn with_zigbee(
        mut self,
        tx: Option<mpsc::Sender<crate::zigbee::ZigbeeCommand>>,
    ) -> StoreBackend {
        self.zigbee_tx = tx;
        self
    }

    /// Serves the Wi-Fi device credentials page from the local broker's policy.
    pub fn with_credentials(
        mut self,
        c: Option<Arc<dyn super::roles::DeviceCredentials>>,
    ) -> StoreBackend {
        self.credentials = c;
        self
    }

    /// Routes device edits through the configuration overlay (versioned).
    pub fn with_config_state(mut self, c: crate::remote_config::ConfigState) -> StoreBackend {
        self.config_state = Some(c);
        self
    }
}

/// The Uplinks page's read-only view of the configuration, without secrets,
/// e.g. `{"mqtt": {"url": …, "topic_prefix": …}, "lorawan": null}`.
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
    let arc = cfg.arc.as_ref().map(|a| {
        serde_json::json!({
            "primary": a.primary, "secondary": a.secondary, "account": a.account,
            "receiver": a.receiver, "line": a.line, "format": a.format,
            "encryption": if a.encryption == "none" { "none (plain)" } else { "AES (key file set)" },
            "supervision": a.supervision.to_string(),
        })
    });
    serde_json::json!({ "gateway": cfg.gateway.id, "mqtt": mqtt, "lorawan": lorawan, "arc": arc })
}

impl StoreBackend {
    /// With commit grouping (`[store] commit_delay`), readings nobody waits
    /// for may sit uncommitted for up to the delay: a page that reads the
    /// history or the registry first has them committed, so it never shows
    /// a state older than the live stream (a device that just reported, a
    /// commissioning event). One commit per page load.
    async fn fresh(&self) -> Result<(), BackendError> {
        if self.config.store.commit_delay.0.is_zero() {
            return Ok(());
        }
        self.store.flush().await.map_err(failed)
    }
}

fn failed(e: crate::store::StoreError) -> BackendError {
    BackendError::Failed(format!("store: {e}"))
}

impl From<Arc<StoreBackend>> for Roles {
    fn from(b: Arc<StoreBackend>) -> Roles {
        Roles {
            registry: b.clone(),
            history: b.clone(),
            alerting: b.clone(),
            pairing: b.clone(),
            watch: b.clone(),
            state: b.clone(),
            rules: Some(Arc::new(b.rules.clone())),
            credentials: b.credentials.clone(),
            uplinks: b
                .config_state
                .clone()
                .map(|c| Arc::new(c) as Arc<dyn super::roles::UplinkAdmin>),
            settings: Settings {
                arc: b.arc.clone(),
                clock: b.clock.clone(),
                ..Settings::from_config(&b.config)
            },
        }
    }
}

impl Registry for StoreBackend {
    fn devices(&self) -> BoxFut<'_, Result<Vec<DeviceInfo>, BackendError>> {
        Box::pin(async move {
            self.fresh().await?;
            self.store.devices().await.map_err(failed)
        })
    }
    fn device(&self, id: DeviceId) -> BoxFut<'_, Result<Option<DeviceInfo>, BackendError>> {
        Box::pin(async move {
            self.fresh().await?;
            self.store.device(&id).await.map_err(failed)
        })
    }
    fn update_devices(
        &self,
        infos: Vec<DeviceInfo>,
        by: String,
    ) -> BoxFut<'_, Result<(), BackendError>> {
        Box::pin(async move {
            if let Some(c) = &self.config_state {
                return c
                    .edit_devices(&infos, &by, crate::wall::now())
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
                c.forget_device(&id, &by, crate::wall::now())
                    .await
                    .map_err(|e| BackendError::Failed(e.to_string()))?;
            }
            Ok(())
        })
    }
}

impl History for StoreBackend {
    fn history(
        &self,
        since: Time,
        until: Time,
        limit: usize,
    ) -> BoxFut<'_, Result<Vec<Reading>, BackendError>> {
        Box::pin(async move {
            self.fresh().await?;
            self.store
                .history(since, until, limit)
                .await
                .map_err(failed)
        })
    }
    fn latest_readings(&self, since: Time) -> BoxFut<'_, Result<Vec<Reading>, BackendError>> {
        Box::pin(async move {
            self.fresh().await?;
            self.store.latest_per_device(since).await.map_err(failed)
        })
    }
    fn wipe_history(&self) -> BoxFut<'_, Result<(), BackendError>> {
        Box::pin(async move {
            self.store
                .submit(Write::WipeHistory)
                .await
                .map_err(failed)?;
            self.store.flush().await.map_err(failed)
        })
    }
}

impl Alerting for StoreBackend {
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
    fn set_mode(
        &self,
        mode: crate::rules::mode::Mode,
        until: Option<crate::model::Time>,
        source: String,
    ) -> BoxFut<'_, Result<Result<crate::rules::mode::ModeState, String>, BackendError>> {
        Box::pin(async move {
            let (reply, rx) = tokio::sync::oneshot::channel();
            let gone = || BackendError::Unavailable("the hub is not running".into());
            self.hub
                .send(HubCommand::Mode {
                    mode,
                    until,
                    source,
                    reply,
                })
                .await
                .map_err(|_| gone())?;
            rx.await.map_err(|_| gone())
        })
    }

    fn ack_instance(
        &self,
        instance: String,
        _rule: String,
        _device: DeviceId,
    ) -> BoxFut<'_, Result<bool, BackendError>> {
        Box::pin(async move {
            let (reply, rx) = tokio::sync::oneshot::channel();
            let gone = || BackendError::Unavailable("the hub is not running".into());
            self.hub
                .send(HubCommand::AckInstance { instance, reply })
                .await
                .map_err(|_| gone())?;
            rx.await.map_err(|_| gone())
        })
    }
    fn deliveries(
        &self,
        uids: Vec<String>,
    ) -> BoxFut<'_, Result<Vec<crate::store::AlertDelivery>, BackendError>> {
        Box::pin(async move { self.store.alert_deliveries_of(uids).await.map_err(failed) })
    }
}

impl StoreBackend {
    /// The coordinator's command channel, or why there is none.
    fn zigbee_tx(&self) -> Result<&mpsc::Sender<crate::zigbee::ZigbeeCommand>, BackendError> {
        self.zigbee_tx.as_ref().ok_or_else(|| {
            BackendError::Unavailable(if self.zigbee {
                "Zigbee pairing is not wired to the coordinator".into()
            } else {
                "Zigbee coordinator not configured".into()
            })
        })
    }
}

impl Pairing for StoreBackend {
    fn permit_join(&self, seconds: u16) -> BoxFut<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let tx = self.zigbee_tx()?;
            // Z-Stack takes at most 254 s (255 would mean "for ever").
            let secs = seconds.min(254);
            tx.send(crate::zigbee::ZigbeeCommand::PermitJoin { secs })
                .await
                .map_err(|_| {
                    BackendError::Unavailable("the Zigbee coordinator task stopped".into())
                })
        })
    }
    fn identify(&self, ieee: u64, seconds: u16) -> BoxFut<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let tx = self.zigbee_tx()?;
            let secs = seconds.min(crate::zigbee::identify::MAX_SECS);
            tx.send(crate::zigbee::ZigbeeCommand::Identify { ieee, secs })
                .await
                .map_err(|_| {
                    BackendError::Unavailable("the Zigbee coordinator task stopped".into())
                })
        })
    }
}

impl Watch for StoreBackend {
    fn status(&self) -> crate::status::Status {
        (self.status)()
    }
    fn subscribe(&self) -> broadcast::Receiver<Live> {
        self.live.subscribe()
    }
}

impl WebState for StoreBackend {
    fn load(&self, record: Record) -> BoxFut<'_, Result<Option<Vec<u8>>, BackendError>> {
        Box::pin(async move { self.store.kv_get(record.key()).await.map_err(failed) })
    }
    fn save(&self, record: Record, value: Option<Vec<u8>>) -> BoxFut<'_, Result<(), BackendError>> {
        Box::pin(async move {
            self.store
                .submit(Write::Kv(record.key().to_string(), value))
                .await
                .map_err(failed)?;
            self.store.flush().await.map_err(failed)
        })
    }
    fn send_upstream(
        &self,
        doc: serde_json::Map<String, serde_json::Value>,
    ) -> BoxFut<'_, Result<(), BackendError>> {
        Box::pin(async move {
            self.store
                .submit(Write::Status(doc))
                .await
                .map_err(failed)?;
            self.store.flush().await.map_err(failed)
        })
    }
}

/// The active-rules handle is the rules role of the real gateway.
impl RulesAdmin for Rules {
    fn active(&self) -> BoxFut<'_, Result<crate::rules::active::Version, BackendError>> {
        Box::pin(async move { Rules::active(self).await.map_err(failed) })
    }
    fn versions(&self) -> BoxFut<'_, Result<crate::rules::active::History, BackendError>> {
        Box::pin(async move { Rules::history(self).await.map_err(failed) })
    }
    fn apply(
        &self,
        text: String,
        source: String,
        now: Time,
    ) -> BoxFut<'_, Result<Applied, ApplyError>> {
        Box::pin(async move { Rules::apply(self, &text, &source, None, now).await })
    }
    fn rollback(&self) -> BoxFut<'_, Result<Applied, ApplyError>> {
        Box::pin(async move { Rules::rollback(self).await })
    }
    fn reset(&self) -> BoxFut<'_, Result<Applied, ApplyError>> {
        Box::pin(async move { Rules::reset(self).await })
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
    async fn identify_reaches_the_coordinator_capped_at_five_minutes() {
        let cfg = crate::config::Config {
            zigbee: Some(Default::default()),
            ..Default::default()
        };
        let (tx, mut rx) = mpsc::channel(4);
        let (b, _dir) = backend(&cfg);
        let b = b.with_zigbee(Some(tx));
        b.identify(0x00158d0000000001, 10).await.unwrap();
        b.identify(7, 3600).await.unwrap();
        use crate::zigbee::ZigbeeCommand::Identify;
        assert_eq!(
            rx.recv().await,
            Some(Identify {
                ieee: 0x00158d0000000001,
                secs: 10
            })
        );
        assert_eq!(rx.recv().await, Some(Identify { ieee: 7, secs: 300 }));
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
