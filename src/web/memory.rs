//! The web UI's roles in memory, for the web API tests (the e2e tests run
//! the real daemon). Nothing in the gateway itself uses it.
//!
//! [`MemoryBackend::inject`] plays the hub: it merges device facts and
//! readings into the registry and history, keeps the open alerts (which
//! [`Alerting::ack_alert`] acknowledges), and broadcasts the live event.
//! [`MemoryBackend::with_rules`] adds a rules role over a real rule engine
//! ([`MemoryRules`]); without it the server has no rules role.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::roles::{
    Alerting, BackendError, BoxFut, History, Pairing, Record, Registry, Roles, RulesAdmin,
    Settings, Watch, WebState,
};
use crate::hub::Live;
use crate::model::{AlertState, DeviceId, DeviceInfo, Reading, Time};
use crate::rules::active::{Applied, ApplyError, Decision, History as RulesHistory, Version};
use crate::rules::{Engine, RuleSet};
use crate::status::{ByClass, Coordinator, Status, UplinkState, Uplinks};
use crate::store::AlertDelivery;

/// Registry, history, open alerts and the web records in memory.
#[derive(Debug)]
pub struct MemoryBackend {
    devices: Mutex<BTreeMap<DeviceId, DeviceInfo>>,
    history: Mutex<Vec<Reading>>,
    records: Mutex<HashMap<Record, Vec<u8>>>,
    live: broadcast::Sender<Live>,
    status: Mutex<Status>,
    /// Raised and not yet cleared or acknowledged: (rule, device).
    open: Mutex<BTreeSet<(String, DeviceId)>>,
    /// Every acknowledgement asked of the "engine", in order.
    acks: Mutex<Vec<(String, DeviceId)>>,
    delivered: Mutex<HashMap<String, AlertDelivery>>,
    rules: Option<Arc<MemoryRules>>,
    credentials: Option<Arc<dyn super::roles::DeviceCredentials>>,
    /// Documents sent upstream ([`WebState::send_upstream`]), in order.
    upstream: Mutex<Vec<serde_json::Map<String, serde_json::Value>>>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        let status = Status {
            state: "online",
            gateway: "test-home".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_s: 42,
            timezone: "Europe/London".into(),
            coordinator: Coordinator::Off,
            backlog: ByClass {
                telemetry: 3,
                ..ByClass::default()
            },
            uplinks: Uplinks {
                mqtt: UplinkState {
                    state: "connected",
                    connects: 1,
                    delivered: 7,
                    ..UplinkState::off()
                },
                lorawan: None,
                arc: None,
            },
            ..Status::default()
        };
        MemoryBackend {
            devices: Mutex::default(),
            history: Mutex::default(),
            records: Mutex::default(),
            live: broadcast::channel(256).0,
            status: Mutex::new(status),
            open: Mutex::default(),
            acks: Mutex::default(),
            delivered: Mutex::default(),
            rules: None,
            credentials: None,
            upstream: Mutex::default(),
        }
    }
}

fn merge(into: &mut DeviceInfo, from: &DeviceInfo) {
    macro_rules! take {
        ($($f:ident),*) => { $( if from.$f.is_some() { into.$f.clone_from(&from.$f); } )* };
    }
    take!(
        id,
        name,
        room,
        role,
        ieee,
        nwk,
        manufacturer,
        model,
        last_seen,
        battery,
        lqi
    );
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// With the Wi-Fi device credentials role (e.g. a real
    /// `devauth::Report` over a temporary directory).
    pub fn with_credentials(mut self, c: Arc<dyn super::roles::DeviceCredentials>) -> Self {
        self.credentials = Some(c);
        self
    }

    /// With a rules role over a real rule engine, starting from the
    /// built-in rules.
    pub fn with_rules(mut self) -> Self {
        self.rules = Some(Arc::new(MemoryRules::new()));
        self
    }

    /// The documents sent upstream so far (for assertions).
    pub fn upstream_now(&self) -> Vec<serde_json::Map<String, serde_json::Value>> {
        self.upstream.lock().map(|u| u.clone()).unwrap_or_default()
    }

    /// The acknowledgements the "engine" was asked for (for assertions).
    pub fn acks_now(&self) -> Vec<(String, DeviceId)> {
        self.acks.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Records that the alert `d.id` went upstream (what the outbox does).
    pub fn delivered(&self, d: AlertDelivery) {
        if let Ok(mut m) = self.delivered.lock() {
            m.insert(d.id.clone(), d);
        }
    }

    /// Does what the hub would: updates registry/history, then broadcasts.
    pub fn inject(&self, ev: Live) {
        match &ev {
            Live::Device(info) => self.merge_device(info),
            Live::Reading(r) => {
                self.merge_device(&DeviceInfo {
                    id: Some(r.device.clone()),
                    last_seen: Some(r.at),
                    ..Default::default()
                });
                if let Ok(mut h) = self.history.lock() {
                    h.push(r.clone());
                }
            }
            Live::Alert(a) => {
                if let Ok(mut open) = self.open.lock() {
                    let key = (a.rule.to_string(), a.device.clone());
                    match a.state {
                        AlertState::Raised => open.insert(key),
                        AlertState::Cleared => open.remove(&key),
                    };
                }
            }
            Live::Link(_) | Live::Clock(_) => {}
        }
        let _ = self.live.send(ev);
    }

    fn merge_device(&self, info: &DeviceInfo) {
        let Some(id) = &info.id else { return };
        if let Ok(mut d) = self.devices.lock() {
            merge(d.entry(id.clone()).or_default(), info);
        }
    }

    /// The registry right now (for assertions).
    pub fn devices_now(&self) -> Vec<DeviceInfo> {
        self.devices
            .lock()
            .map(|d| d.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Changes the status document.
    pub fn set_status(&self, change: impl FnOnce(&mut Status)) {
        if let Ok(mut s) = self.status.lock() {
            change(&mut s);
        }
    }
}

fn poisoned() -> BackendError {
    BackendError::Failed("memory backend lock poisoned".into())
}

fn ready<T: Send + 'static>(r: T) -> BoxFut<'static, T> {
    Box::pin(async move { r })
}

impl From<Arc<MemoryBackend>> for Roles {
    fn from(b: Arc<MemoryBackend>) -> Roles {
        Roles {
            registry: b.clone(),
            history: b.clone(),
            alerting: b.clone(),
            pairing: b.clone(),
            watch: b.clone(),
            state: b.clone(),
            rules: b.rules.clone().map(|r| r as Arc<dyn RulesAdmin>),
            credentials: b.credentials.clone(),
            uplinks: None,
            settings: Settings {
                uplinks: serde_json::json!({
                    "mqtt": {"url": "mqtts://broker.example.org:8883", "topic_prefix": "carebridge",
                             "keepalive": "30s", "telemetry": true},
                    "lorawan": null,
                }),
                config_toml: None,
                ota: Default::default(),
                mqtt: None,
                gateway: "gw-memory".into(),
                life_safety: crate::life_safety::DEFAULT.to_vec(),
                arc: None,
                devices: crate::zigbee::library::Library::builtin(),
                clock: None,
            },
        }
    }
}

impl Registry for MemoryBackend {
    fn devices(&self) -> BoxFut<'_, Result<Vec<DeviceInfo>, BackendError>> {
        ready(
            self.devices
                .lock()
                .map(|d| d.values().cloned().collect())
                .map_err(|_| poisoned()),
        )
    }
    fn device(&self, id: DeviceId) -> BoxFut<'_, Result<Option<DeviceInfo>, BackendError>> {
        ready(
            self.devices
                .lock()
                .map(|d| d.get(&id).cloned())
                .map_err(|_| poisoned()),
        )
    }
    fn update_devices(
        &self,
        infos: Vec<DeviceInfo>,
        _by: String,
    ) -> BoxFut<'_, Result<(), BackendError>> {
        for info in infos {
            self.inject(Live::Device(info));
        }
        ready(Ok(()))
    }
    fn remove_device(&self, id: DeviceId, _by: String) -> BoxFut<'_, Result<(), BackendError>> {
        ready(
            self.devices
                .lock()
                .map(|mut d| {
                    d.remove(&id);
                })
                .map_err(|_| poisoned()),
        )
    }
}

impl History for MemoryBackend {
    fn history(
        &self,
        since: Time,
        until: Time,
        limit: usize,
    ) -> BoxFut<'_, Result<Vec<Reading>, BackendError>> {
        let r = self
            .history
            .lock()
            .map(|h| {
                let mut v: Vec<Reading> = h
                    .iter()
                    .filter(|r| r.at >= since && r.at < until)
                    .cloned()
                    .collect();
                // Newest `limit`, in time order.
                let skip = v.len().saturating_sub(limit);
                v.drain(..skip);
                v
            })
            .map_err(|_| poisoned());
        ready(r)
    }
    fn latest_readings(&self, since: Time) -> BoxFut<'_, Result<Vec<Reading>, BackendError>> {
        let r = self
            .history
            .lock()
            .map(|h| {
                let mut last: BTreeMap<(DeviceId, crate::model::Kind), Reading> = BTreeMap::new();
                for r in h.iter().filter(|r| r.at >= since) {
                    let key = (r.device.clone(), r.kind);
                    if last.get(&key).is_none_or(|l| l.at <= r.at) {
                        last.insert(key, r.clone());
                    }
                }
                last.into_values().collect()
            })
            .map_err(|_| poisoned());
        ready(r)
    }
    fn wipe_history(&self) -> BoxFut<'_, Result<(), BackendError>> {
        ready(
            self.history
                .lock()
                .map(|mut h| h.clear())
                .map_err(|_| poisoned()),
        )
    }
}

impl Alerting for MemoryBackend {
    fn ack_alert(&self, rule: String, device: DeviceId) -> BoxFut<'_, Result<bool, BackendError>> {
        let key = (rule, device);
        let r = self
            .open
            .lock()
            .map(|mut open| open.remove(&key))
            .map_err(|_| poisoned());
        if let Ok(mut acks) = self.acks.lock() {
            acks.push(key);
        }
        ready(r)
    }
    fn deliveries(
        &self,
        uids: Vec<String>,
    ) -> BoxFut<'_, Result<Vec<AlertDelivery>, BackendError>> {
        let r = self
            .delivered
            .lock()
            .map(|m| uids.iter().filter_map(|u| m.get(u).cloned()).collect())
            .map_err(|_| poisoned());
        ready(r)
    }
}

impl Pairing for MemoryBackend {
    /// This backend has no coordinator, as a gateway without `[zigbee]`.
    fn permit_join(&self, _seconds: u16) -> BoxFut<'_, Result<(), BackendError>> {
        ready(Err(BackendError::Unavailable(
            "Zigbee coordinator not configured".into(),
        )))
    }
    fn identify(&self, _ieee: u64, _seconds: u16) -> BoxFut<'_, Result<(), BackendError>> {
        ready(Err(BackendError::Unavailable(
            "Zigbee coordinator not configured".into(),
        )))
    }
}

impl Watch for MemoryBackend {
    /// The document as built now (its `at` is the wall clock).
    fn status(&self) -> Status {
        let mut s = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        s.at = crate::wall::now();
        s
    }
    fn subscribe(&self) -> broadcast::Receiver<Live> {
        self.live.subscribe()
    }
}

impl WebState for MemoryBackend {
    fn load(&self, record: Record) -> BoxFut<'_, Result<Option<Vec<u8>>, BackendError>> {
        ready(
            self.records
                .lock()
                .map(|m| m.get(&record).cloned())
                .map_err(|_| poisoned()),
        )
    }
    fn save(&self, record: Record, value: Option<Vec<u8>>) -> BoxFut<'_, Result<(), BackendError>> {
        let r = self
            .records
            .lock()
            .map(|mut m| {
                match value {
                    Some(v) => m.insert(record, v),
                    None => m.remove(&record),
                };
            })
            .map_err(|_| poisoned());
        ready(r)
    }
    fn send_upstream(
        &self,
        doc: serde_json::Map<String, serde_json::Value>,
    ) -> BoxFut<'_, Result<(), BackendError>> {
        ready(
            self.upstream
                .lock()
                .map(|mut u| u.push(doc))
                .map_err(|_| poisoned()),
        )
    }
}

/// The rules role over a real [`Engine`] and the same version bookkeeping
/// as the gateway's ([`RulesHistory::propose`], [`RulesHistory::rollback`]).
pub struct MemoryRules {
    base: Version,
    state: Mutex<(RulesHistory, Engine)>,
}

impl std::fmt::Debug for MemoryRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRules").finish_non_exhaustive()
    }
}

impl Default for MemoryRules {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRules {
    /// Starts from the built-in rules (version 0).
    pub fn new() -> MemoryRules {
        let base = Version {
            version: 0,
            source: "built-in".into(),
            applied_at: 0,
            text: crate::rules::MINIMAL_RULES.into(),
        };
        // The built-in rules are part of the binary and always valid.
        #[allow(clippy::expect_used)]
        let engine = RuleSet::parse(&base.text, "rules")
            .and_then(|set| Engine::new(&set, jiff::tz::TimeZone::UTC))
            .expect("the built-in rules load");
        MemoryRules {
            base,
            state: Mutex::new((RulesHistory::default(), engine)),
        }
    }

    /// Keeps `next` and switches the engine to its current version.
    fn switch(
        &self,
        st: &mut (RulesHistory, Engine),
        next: RulesHistory,
        set: &RuleSet,
    ) -> Applied {
        let s = st.1.reload(set);
        let cur = next.current.clone().unwrap_or(self.base.clone());
        st.0 = next;
        Applied {
            version: cur.version,
            source: cur.source,
            kept: s.kept,
            fresh: s.fresh,
            removed: s.removed,
            unchanged: false,
        }
    }

    /// One change at a time, as the gateway's handle does.
    fn locked(&self) -> Result<std::sync::MutexGuard<'_, (RulesHistory, Engine)>, ApplyError> {
        self.state.lock().map_err(|_| ApplyError::Stopping)
    }
}

impl RulesAdmin for MemoryRules {
    fn active(&self) -> BoxFut<'_, Result<Version, BackendError>> {
        let r = self
            .locked()
            .map(|st| st.0.current.clone().unwrap_or(self.base.clone()))
            .map_err(|e| BackendError::Failed(e.to_string()));
        ready(r)
    }
    fn versions(&self) -> BoxFut<'_, Result<RulesHistory, BackendError>> {
        let r = self
            .locked()
            .map(|st| st.0.clone())
            .map_err(|e| BackendError::Failed(e.to_string()));
        ready(r)
    }
    fn apply(
        &self,
        text: String,
        source: String,
        now: Time,
    ) -> BoxFut<'_, Result<Applied, ApplyError>> {
        let r = (|| {
            let set = RuleSet::parse(&text, "rules")?;
            let mut st = self.locked()?;
            match st.0.propose(&text, &source, None, now)? {
                Decision::Unchanged(v) => Ok(Applied {
                    version: v,
                    source,
                    kept: 0,
                    fresh: 0,
                    removed: 0,
                    unchanged: true,
                }),
                Decision::Switch(next) => Ok(self.switch(&mut st, next, &set)),
            }
        })();
        ready(r)
    }
    fn rollback(&self) -> BoxFut<'_, Result<Applied, ApplyError>> {
        let r = (|| {
            let mut st = self.locked()?;
            let next = st.0.rollback()?;
            let text = next.current.as_ref().unwrap_or(&self.base).text.clone();
            let set = RuleSet::parse(&text, "rules")?;
            Ok(self.switch(&mut st, next, &set))
        })();
        ready(r)
    }
    fn reset(&self) -> BoxFut<'_, Result<Applied, ApplyError>> {
        let r = (|| {
            let mut st = self.locked()?;
            let set = RuleSet::parse(&self.base.text, "rules")?;
            Ok(self.switch(&mut st, RulesHistory::default(), &set))
        })();
        ready(r)
    }
}
