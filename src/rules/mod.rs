//! Alert rules. This is the spine's minimal rule path: readings of kind
//! panic, fall, smoke, co or water_leak raise an urgent alert. The full rule
//! engine (its own issue) replaces the inside of [`Engine`] and keeps its
//! methods, so the hub does not change.
//!
//! Contract the hub relies on: the engine is pure and deterministic — no
//! I/O, no clock (`now` is passed in), no tokio.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Problem;
use crate::model::{Alert, AlertState, DeviceId, DeviceInfo, Kind, Reading, Severity, Time};

/// `[rules]`: where the rule set lives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// A rules file (TOML). Without one, the built-in safety rules apply.
    pub file: Option<PathBuf>,
}

impl RulesConfig {
    pub const DEFAULT_TOML: &'static str = r#"[rules]
# file = "/etc/carebridge/rules.toml"   # without it, the built-in safety rules apply
"#;

    pub fn validate(&self) -> Vec<Problem> {
        Vec::new()
    }
}

/// The rule engine the hub drives.
#[derive(Debug, Default)]
pub struct Engine {
    devices: HashMap<DeviceId, DeviceInfo>,
}

impl Engine {
    /// The built-in safety rules: panic, fall, smoke, CO and water leak raise
    /// an urgent alert.
    pub fn minimal() -> Engine {
        Engine::default()
    }

    /// Registry facts (room, name, role) changed for a device.
    pub fn set_device(&mut self, info: &DeviceInfo) {
        if let Some(id) = &info.id {
            let entry = self.devices.entry(id.clone()).or_default();
            entry.id = Some(id.clone());
            if info.room.is_some() {
                entry.room.clone_from(&info.room);
            }
            if info.name.is_some() {
                entry.name.clone_from(&info.name);
            }
        }
    }

    /// A reading arrived; alerts it causes are appended to `out`.
    pub fn on_reading(&mut self, _now: Time, r: &Reading, out: &mut Vec<Alert>) {
        let (rule, what) = match r.kind {
            Kind::Panic => ("panic", "Panic button pressed"),
            Kind::Fall => ("fall", "Fall detected"),
            Kind::Smoke => ("smoke", "Smoke alarm"),
            Kind::CarbonMonoxide => ("co", "Carbon monoxide alarm"),
            Kind::WaterLeak => ("water_leak", "Water leak detected"),
            _ => return,
        };
        if !r.is_active() {
            return;
        }
        let info = self.devices.get(&r.device);
        let room = info.and_then(|d| d.room.clone());
        let name = info
            .and_then(|d| d.name.clone())
            .unwrap_or_else(|| r.device.to_string());
        let message = match &room {
            Some(room) => format!("{what} in the {room} ({name})"),
            None => format!("{what} ({name})"),
        };
        out.push(Alert {
            rule: rule.to_string(),
            severity: Severity::Urgent,
            state: AlertState::Raised,
            device: r.device.clone(),
            room,
            at: r.at,
            message,
            value: Some(r.value),
            kind: Some(r.kind),
        });
    }

    /// Time passed; timer-driven alerts are appended to `out`.
    pub fn on_tick(&mut self, _now: Time, _out: &mut Vec<Alert>) {}

    /// When `on_tick` next needs to be called, if ever.
    pub fn next_deadline(&self) -> Option<Time> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(kind: Kind, value: f64) -> Reading {
        Reading::new(DeviceId::new("d1").unwrap(), kind, value, Time(1000)).unwrap()
    }

    #[test]
    fn panic_press_raises_an_urgent_alert_naming_the_room() {
        let mut e = Engine::minimal();
        e.set_device(&DeviceInfo {
            id: Some(DeviceId::new("d1").unwrap()),
            room: Some("hall".into()),
            ..Default::default()
        });
        let mut out = Vec::new();
        e.on_reading(Time(1000), &reading(Kind::Panic, 1.0), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].severity, Severity::Urgent);
        assert_eq!(out[0].room.as_deref(), Some("hall"));
        assert!(out[0].message.contains("hall"), "{}", out[0].message);
    }

    #[test]
    fn release_and_ordinary_readings_raise_nothing() {
        let mut e = Engine::minimal();
        let mut out = Vec::new();
        e.on_reading(Time(0), &reading(Kind::Panic, 0.0), &mut out);
        e.on_reading(Time(0), &reading(Kind::Temperature, 12.0), &mut out);
        assert!(out.is_empty());
    }
}
