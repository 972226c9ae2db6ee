//! An in-memory [`Backend`] for the web API tests (the e2e tests run the real daemon).
//! Nothing in the gateway itself uses it.
//!
//! [`MemoryBackend::inject`] plays the hub: it merges device facts and
//! readings into the registry and history and broadcasts the live event.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use tokio::sync::broadcast;

use super::backend::{Backend, BackendError, BoxFut};
use crate::hub::Live;
use crate::model::{DeviceId, DeviceInfo, Reading, Time};
use crate::status::{ByClass, Coordinator, Status, UplinkState, Uplinks};

/// Registry, history and key-value pairs in memory.
#[derive(Debug)]
pub struct MemoryBackend {
    devices: Mutex<BTreeMap<DeviceId, DeviceInfo>>,
    history: Mutex<Vec<Reading>>,
    kv: Mutex<HashMap<String, Vec<u8>>>,
    live: broadcast::Sender<Live>,
    status: Mutex<Status>,
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
            },
            ..Status::default()
        };
        MemoryBackend {
            devices: Mutex::default(),
            history: Mutex::default(),
            kv: Mutex::default(),
            live: broadcast::channel(256).0,
            status: Mutex::new(status),
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
            Live::Alert(_) | Live::Link(_) => {}
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

impl Backend for MemoryBackend {
    fn devices(&self) -> BoxFut<'_, Result<Vec<DeviceInfo>, BackendError>> {
        let r = self
            .devices
            .lock()
            .map(|d| d.values().cloned().collect())
            .map_err(|_| poisoned());
        Box::pin(async move { r })
    }
    fn device(&self, id: DeviceId) -> BoxFut<'_, Result<Option<DeviceInfo>, BackendError>> {
        let r = self
            .devices
            .lock()
            .map(|d| d.get(&id).cloned())
            .map_err(|_| poisoned());
        Box::pin(async move { r })
    }
    fn update_devices(
        &self,
        infos: Vec<DeviceInfo>,
        _by: String,
    ) -> BoxFut<'_, Result<(), BackendError>> {
        for info in infos {
            self.inject(Live::Device(info));
        }
        Box::pin(async move { Ok(()) })
    }
    fn remove_device(&self, id: DeviceId, _by: String) -> BoxFut<'_, Result<(), BackendError>> {
        let r = self
            .devices
            .lock()
            .map(|mut d| {
                d.remove(&id);
            })
            .map_err(|_| poisoned());
        Box::pin(async move { r })
    }
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
        Box::pin(async move { r })
    }
    fn kv_get(&self, key: String) -> BoxFut<'_, Result<Option<Vec<u8>>, BackendError>> {
        let r = self
            .kv
            .lock()
            .map(|kv| kv.get(&key).cloned())
            .map_err(|_| poisoned());
        Box::pin(async move { r })
    }
    fn kv_put(&self, key: String, value: Option<Vec<u8>>) -> BoxFut<'_, Result<(), BackendError>> {
        let r = self
            .kv
            .lock()
            .map(|mut kv| {
                match value {
                    Some(v) => kv.insert(key, v),
                    None => kv.remove(&key),
                };
            })
            .map_err(|_| poisoned());
        Box::pin(async move { r })
    }
    fn wipe_history(&self) -> BoxFut<'_, Result<(), BackendError>> {
        let r = self
            .history
            .lock()
            .map(|mut h| h.clear())
            .map_err(|_| poisoned());
        Box::pin(async move { r })
    }
    fn permit_join(&self, _seconds: u16) -> BoxFut<'_, Result<(), BackendError>> {
        Box::pin(async move {
            Err(BackendError::Unavailable(
                "Zigbee coordinator not configured".into(),
            ))
        })
    }
    /// The document as built now (its `at` is the wall clock).
    fn status(&self) -> Status {
        let mut s = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        s.at = Time::now();
        s
    }
    fn uplink_settings(&self) -> serde_json::Value {
        serde_json::json!({
            "mqtt": {"url": "mqtts://broker.example.org:8883", "topic_prefix": "carebridge",
                     "keepalive": "30s", "telemetry": true},
            "lorawan": null,
        })
    }
    fn subscribe(&self) -> broadcast::Receiver<Live> {
        self.live.subscribe()
    }
}
