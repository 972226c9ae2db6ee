//! Device facts edited locally (the web UI's Devices page, a restored
//! backup) as versioned overlay fragments, and their removal: the same
//! path as a remote fragment, so a local edit is kept at restart and is
//! reported upstream as drift.

use super::{ConfigApplied, ConfigState, RemoteError, load_overlay};
use crate::model::{DeviceId, DeviceInfo, Time};
use crate::rules::active::Decision;

impl ConfigState {
    /// A local edit of device facts (the web UI's Devices page, a restored
    /// backup), as one fragment `[devices."<id>"]…`: versioned like a remote
    /// one (source `source`, e.g. `ui:ann`), kept over the config file at
    /// restart, and reported upstream (drift). Fields left `None` keep
    /// their value.
    pub async fn edit_devices(
        &self,
        infos: &[DeviceInfo],
        source: &str,
        now: Time,
    ) -> Result<ConfigApplied, RemoteError> {
        let mut devices = toml::Table::new();
        for info in infos {
            let Some(id) = &info.id else {
                return Err(RemoteError::Field(
                    "id: a device edit needs the device id".into(),
                ));
            };
            let mut facts = toml::Table::new();
            for (k, v) in [
                ("name", &info.name),
                ("room", &info.room),
                ("role", &info.role),
            ] {
                if let Some(v) = v {
                    facts.insert(k.into(), toml::Value::String(v.clone()));
                }
            }
            devices.insert(id.as_str().to_string(), toml::Value::Table(facts));
        }
        let mut fragment = toml::Table::new();
        fragment.insert("devices".into(), toml::Value::Table(devices));
        let text = toml::to_string(&fragment).unwrap_or_default();
        self.apply(&text, source, None, now).await
    }

    /// Takes a removed device out of the overlay (a new version), so a
    /// restart does not bring back facts the UI removed. A device the config
    /// file itself names keeps the file's facts.
    pub async fn forget_device(
        &self,
        id: &DeviceId,
        source: &str,
        now: Time,
    ) -> Result<ConfigApplied, RemoteError> {
        let mut eff = self.effective.lock().await;
        let (hist, mut overlay) = load_overlay(&self.store).await?;
        let removed = overlay
            .get_mut("devices")
            .and_then(|d| d.as_table_mut())
            .and_then(|d| d.remove(id.as_str()))
            .is_some();
        if !removed {
            return Ok(ConfigApplied::unchanged(hist.version()));
        }
        if overlay
            .get("devices")
            .and_then(|d| d.as_table())
            .is_some_and(|d| d.is_empty())
        {
            overlay.remove("devices");
        }
        let text = toml::to_string(&overlay).unwrap_or_default();
        let cfg = crate::config::check_fragment(&self.base, &text, "stored config")?;
        match hist.propose(&text, source, None, now)? {
            Decision::Unchanged(v) => Ok(ConfigApplied::unchanged(v)),
            Decision::Switch(next) => self.switch(&mut eff, next, cfg).await,
        }
    }
}
