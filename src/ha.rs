//! Home Assistant MQTT discovery on the local (embedded) broker, laid out
//! the way Zigbee2MQTT users know it.
//!
//! Topics (`<dp>` = `[homeassistant] discovery_prefix`, default
//! `homeassistant`; `<base>` = `<state_prefix>/<gateway>`, default
//! `carebridge/ha/<gateway>`; `<node>` = `carebridge_<gateway>`):
//! - `<dp>/<binary_sensor|sensor>/<node>/<device>_<kind>/config` — retained
//!   discovery document per device and kind (unique_id, state topic,
//!   availability, device class and unit, a Zigbee2MQTT-like `device`
//!   block with `via_device` = the gateway);
//! - `<base>/<device>/<kind>` — retained state: `ON`/`OFF` for binary
//!   kinds, the number otherwise;
//! - `<base>/availability` — retained `online` at start, `offline` at a
//!   clean stop;
//! - `<dp>/sensor/<node>/alerts/config` — one per-gateway "Open alerts"
//!   sensor: state `<base>/alerts` (the count), attributes
//!   `<base>/alerts/attributes` (`{"alerts": [{rule, device, severity, at,
//!   instance, attempt}]}`). An alert is open until the clear of its
//!   instance (`Alert::instance`; alerts without one: of its rule and
//!   device); an escalated re-send updates its entry.
//!
//! A device removed from the registry (web UI) has every discovery topic
//! cleared with an empty retained payload, which is how Home Assistant
//! removes entities. Removal is found by comparing with the registry every
//! `resync` and on every device event (the UI removes devices in the store
//! directly, not through the hub).
//!
//! [`Mirror`] is the pure part (live events in, messages out, no clock, no
//! I/O); [`run`] is the thin task that feeds it from the hub's `Live`
//! broadcast and publishes through an in-process link of the embedded broker.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::hub::Live;
use crate::model::{AlertState, DeviceId, DeviceInfo, Kind, Reading};

pub use crate::config::HaConfig;

/// One MQTT publication (an empty payload clears a retained topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: String,
    pub retain: bool,
}

/// Letters, digits, `_` and `-` only (Home Assistant object ids).
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Component, device class, unit and state class of a kind.
pub fn entity(kind: Kind) -> (&'static str, Option<&'static str>, Option<&'static str>) {
    use Kind::*;
    let bin = |c| ("binary_sensor", Some(c), None);
    let sen = |c, u| ("sensor", Some(c), Some(u));
    match kind {
        Motion => bin("motion"),
        Occupancy | Bed | Chair => bin("occupancy"),
        Contact => bin("door"),
        Panic | Fall => bin("safety"),
        Smoke => bin("smoke"),
        CarbonMonoxide => bin("carbon_monoxide"),
        WaterLeak => bin("moisture"),
        BatteryLow => bin("battery"),
        Tamper => bin("tamper"),
        Vibration => bin("vibration"),
        Switch => bin("power"),
        Temperature => sen("temperature", "°C"),
        Humidity => sen("humidity", "%"),
        Illuminance => sen("illuminance", "lx"),
        Power => sen("power", "W"),
        Energy => sen("energy", "kWh"),
        Battery => sen("battery", "%"),
        Voltage => sen("voltage", "V"),
        Pressure => sen("atmospheric_pressure", "hPa"),
        // The last press (1 single, 2 double, 3 long): a plain number.
        Button => ("sensor", None, None),
    }
}

/// Topic layout for one gateway.
#[derive(Debug, Clone)]
pub struct Topics {
    pub discovery_prefix: String,
    pub base: String,
    pub node: String,
    pub gateway: String,
}

impl Topics {
    pub fn new(cfg: &HaConfig, gateway: &str) -> Topics {
        Topics {
            discovery_prefix: cfg.discovery_prefix.clone(),
            base: format!("{}/{}", cfg.state_prefix, gateway),
            node: format!("carebridge_{}", slug(gateway)),
            gateway: gateway.to_string(),
        }
    }
    pub fn availability(&self) -> String {
        format!("{}/availability", self.base)
    }
    pub fn state(&self, device: &DeviceId, kind: Kind) -> String {
        format!("{}/{}/{}", self.base, device.as_str(), kind.as_str())
    }
    pub fn config(&self, device: &DeviceId, kind: Kind) -> String {
        let (component, _, _) = entity(kind);
        format!(
            "{}/{component}/{}/{}_{}/config",
            self.discovery_prefix,
            self.node,
            slug(device.as_str()),
            kind.as_str()
        )
    }
    fn bridge_id(&self) -> String {
        format!("carebridge_bridge_{}", slug(&self.gateway))
    }
    fn retained(&self, topic: String, payload: String) -> Message {
        Message {
            topic,
            payload,
            retain: true,
        }
    }

    /// The discovery document of one device's kind.
    pub fn discovery(&self, info: &DeviceInfo, device: &DeviceId, kind: Kind) -> Message {
        let (component, class, unit) = entity(kind);
        let uid = format!("carebridge_{}_{}", slug(device.as_str()), kind.as_str());
        let mut doc = json!({
            "name": title(kind),
            "unique_id": uid,
            "object_id": format!("{}_{}", slug(device.as_str()), kind.as_str()),
            "state_topic": self.state(device, kind),
            "availability": [{"topic": self.availability()}],
            "device": {
                "identifiers": [format!("carebridge_{}", slug(device.as_str()))],
                "name": info.name.clone().unwrap_or_else(|| device.as_str().to_string()),
                "model": info.model,
                "manufacturer": info.manufacturer,
                "suggested_area": info.room,
                "via_device": self.bridge_id(),
            },
            "origin": {"name": "carebridge", "sw_version": env!("CARGO_PKG_VERSION")},
        });
        if let Some(c) = class {
            doc["device_class"] = c.into();
        }
        if component == "binary_sensor" {
            doc["payload_on"] = "ON".into();
            doc["payload_off"] = "OFF".into();
        } else if kind != Kind::Button {
            // A press code (1 single, 2 double, 3 long) is no measurement.
            doc["state_class"] = if kind == Kind::Energy {
                "total_increasing"
            } else {
                "measurement"
            }
            .into();
        }
        if let Some(u) = unit {
            doc["unit_of_measurement"] = u.into();
        }
        strip_nulls(&mut doc);
        self.retained(self.config(device, kind), doc.to_string())
    }

    /// The per-gateway open-alerts sensor.
    pub fn alerts_discovery(&self) -> Message {
        let doc = json!({
            "name": "Open alerts",
            "unique_id": format!("{}_alerts", self.node),
            "object_id": format!("{}_alerts", self.node),
            "state_topic": format!("{}/alerts", self.base),
            "json_attributes_topic": format!("{}/alerts/attributes", self.base),
            "availability": [{"topic": self.availability()}],
            "icon": "mdi:alert",
            "state_class": "measurement",
            "device": {
                "identifiers": [self.bridge_id()],
                "name": format!("carebridge {}", self.gateway),
                "model": "carebridge gateway",
                "manufacturer": "carebridge",
                "sw_version": env!("CARGO_PKG_VERSION"),
            },
            "origin": {"name": "carebridge", "sw_version": env!("CARGO_PKG_VERSION")},
        });
        self.retained(
            format!(
                "{}/sensor/{}/alerts/config",
                self.discovery_prefix, self.node
            ),
            doc.to_string(),
        )
    }
}

fn title(kind: Kind) -> String {
    let s = kind.as_str().replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

fn strip_nulls(v: &mut serde_json::Value) {
    if let serde_json::Value::Object(m) = v {
        m.retain(|_, x| !x.is_null());
        for x in m.values_mut() {
            strip_nulls(x);
        }
    }
}

/// The state payload of a reading.
pub fn state_payload(r: &Reading) -> String {
    if r.kind.is_binary() {
        if r.value >= 0.5 { "ON" } else { "OFF" }.to_string()
    } else {
        r.value.to_string()
    }
}

/// What Home Assistant has been told (pure; see the module header).
#[derive(Debug)]
pub struct Mirror {
    pub topics: Topics,
    announced: BTreeMap<DeviceId, BTreeSet<Kind>>,
    info: BTreeMap<DeviceId, DeviceInfo>,
    /// Open alerts by (rule, device).
    open: BTreeMap<(String, String), serde_json::Value>,
}

impl Mirror {
    pub fn new(topics: Topics) -> Mirror {
        Mirror {
            topics,
            announced: BTreeMap::new(),
            info: BTreeMap::new(),
            open: BTreeMap::new(),
        }
    }

    /// Availability `online`, the alerts sensor and its (empty) state.
    pub fn start(&self, out: &mut Vec<Message>) {
        out.push(
            self.topics
                .retained(self.topics.availability(), "online".into()),
        );
        out.push(self.topics.alerts_discovery());
        self.alert_state(out);
    }

    /// Availability `offline`.
    pub fn stop(&self, out: &mut Vec<Message>) {
        out.push(
            self.topics
                .retained(self.topics.availability(), "offline".into()),
        );
    }

    pub fn announced(&self, device: &DeviceId) -> Option<&BTreeSet<Kind>> {
        self.announced.get(device)
    }

    /// A live event from the hub.
    pub fn on_live(&mut self, ev: &Live, out: &mut Vec<Message>) {
        match ev {
            Live::Reading(r) => self.on_reading(r, out),
            Live::Device(d) => {
                if let Some(id) = &d.id {
                    let merged = merge(self.info.get(id), d);
                    let changed = self.info.get(id) != Some(&merged);
                    self.info.insert(id.clone(), merged);
                    if changed {
                        self.reannounce(id, out);
                    }
                }
            }
            Live::Alert(a) => {
                let key = match &a.instance {
                    Some(i) => (i.instance.to_string(), String::new()),
                    None => (a.rule.to_string(), a.device.as_str().to_string()),
                };
                match a.state {
                    AlertState::Raised => {
                        let mut doc = json!({"rule": a.rule, "device": a.device.as_str(),
                                "severity": a.severity.as_str(), "at": a.at.to_rfc3339()});
                        if let (Some(i), Some(m)) = (&a.instance, doc.as_object_mut()) {
                            m.insert("instance".into(), json!(&*i.instance));
                            m.insert("attempt".into(), json!(i.attempt));
                        }
                        self.open.insert(key, doc);
                    }
                    AlertState::Cleared => {
                        self.open.remove(&key);
                    }
                }
                self.alert_state(out);
            }
            Live::Link(_) | Live::Clock(_) => {}
        }
    }

    fn on_reading(&mut self, r: &Reading, out: &mut Vec<Message>) {
        let fresh = self
            .announced
            .entry(r.device.clone())
            .or_default()
            .insert(r.kind);
        if fresh {
            let info = self.info.get(&r.device).cloned().unwrap_or_default();
            out.push(self.topics.discovery(&info, &r.device, r.kind));
        }
        out.push(
            self.topics
                .retained(self.topics.state(&r.device, r.kind), state_payload(r)),
        );
    }

    fn reannounce(&self, id: &DeviceId, out: &mut Vec<Message>) {
        let info = self.info.get(id).cloned().unwrap_or_default();
        for k in self.announced.get(id).into_iter().flatten() {
            out.push(self.topics.discovery(&info, id, *k));
        }
    }

    /// The registry as it is now: devices no longer in it are removed
    /// from Home Assistant; facts that changed are re-announced.
    pub fn on_registry(&mut self, devices: &[DeviceInfo], out: &mut Vec<Message>) {
        let present: BTreeMap<&DeviceId, &DeviceInfo> = devices
            .iter()
            .filter_map(|d| d.id.as_ref().map(|i| (i, d)))
            .collect();
        let gone: Vec<DeviceId> = self
            .announced
            .keys()
            .filter(|id| !present.contains_key(id))
            .cloned()
            .collect();
        for id in gone {
            for k in self.announced.remove(&id).unwrap_or_default() {
                out.push(
                    self.topics
                        .retained(self.topics.config(&id, k), String::new()),
                );
                out.push(
                    self.topics
                        .retained(self.topics.state(&id, k), String::new()),
                );
            }
            self.info.remove(&id);
        }
        for (id, d) in present {
            let merged = merge(self.info.get(id), d);
            if self.info.get(id) != Some(&merged) {
                self.info.insert(id.clone(), merged);
                self.reannounce(id, out);
            }
        }
    }

    fn alert_state(&self, out: &mut Vec<Message>) {
        out.push(self.topics.retained(
            format!("{}/alerts", self.topics.base),
            self.open.len().to_string(),
        ));
        let list: Vec<&serde_json::Value> = self.open.values().collect();
        out.push(self.topics.retained(
            format!("{}/alerts/attributes", self.topics.base),
            json!({ "alerts": list }).to_string(),
        ));
    }
}

/// The facts Home Assistant shows (name, model, maker, room); battery and
/// last-seen changes are not a reason to re-announce.
fn merge(old: Option<&DeviceInfo>, new: &DeviceInfo) -> DeviceInfo {
    let o = old.cloned().unwrap_or_default();
    DeviceInfo {
        id: new.id.clone(),
        name: new.name.clone().or(o.name),
        room: new.room.clone().or(o.room),
        model: new.model.clone().or(o.model),
        manufacturer: new.manufacturer.clone().or(o.manufacturer),
        ..Default::default()
    }
}

#[path = "ha_task.rs"]
mod task;
pub use task::run;

#[cfg(test)]
#[path = "ha_tests.rs"]
mod tests;
