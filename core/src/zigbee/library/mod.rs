//! The device library: what the Zigbee devices care organisations buy
//! are, keyed by the Basic cluster's manufacturer name and model id (read
//! at interview), and how their frames — standard or not — become
//! readings.
//!
//! - [`table`]: the TOML format of a definition and its checks;
//! - `devices.toml`: the built-in table, compiled in and parsed once;
//! - [`apply`]: readings from a frame through a definition;
//! - [`tuya`], [`xiaomi`]: codecs for Tuya data points (cluster 0xEF00)
//!   and Xiaomi's 0xFF01 structure.
//!
//! A care organisation extends the table without a rebuild with
//! `[zigbee] devices_file` (same format; its entries are looked up before
//! the built-in ones, so it can also override one). Unknown devices keep
//! the generic ZCL path ([`super::zcl_map`]).
//!
//! Invariant: lookups never fail loudly: a device without a definition
//! is simply unknown; the built-in table's validity is a test.

use std::sync::{Arc, OnceLock};

pub mod apply;
pub mod table;
pub mod tuya;
pub mod xiaomi;

pub use apply::Decoded;
pub use table::{Definition, Map, Quirk, Source};

use crate::setting::ConfigError;

/// The built-in table's text.
pub const BUILTIN: &str = include_str!("devices.toml");

/// A set of definitions, searched in order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Library {
    defs: Vec<Definition>,
}

impl Library {
    /// The built-in definitions (parsed on first use; empty if the table
    /// were ever broken, which `builtin_table_parses` rules out).
    pub fn builtin() -> Arc<Library> {
        static LIB: OnceLock<Arc<Library>> = OnceLock::new();
        LIB.get_or_init(|| {
            Arc::new(Library {
                defs: table::parse(BUILTIN, "devices.toml (built in)").unwrap_or_default(),
            })
        })
        .clone()
    }

    /// Just these definitions.
    pub fn from_definitions(defs: Vec<Definition>) -> Library {
        Library { defs }
    }

    /// The built-in definitions extended by a local file's text (`path` is
    /// named in errors). Local entries are found first.
    pub fn with_local(text: &str, path: &str) -> Result<Library, ConfigError> {
        let mut defs = table::parse(text, path)?;
        defs.extend(Library::builtin().defs.iter().cloned());
        Ok(Library { defs })
    }

    pub fn definitions(&self) -> &[Definition] {
        &self.defs
    }

    /// The index of the definition for this manufacturer and model.
    pub fn find_index(&self, manufacturer: Option<&str>, model: Option<&str>) -> Option<usize> {
        let model = model?.trim_end_matches(['\0', ' ']);
        let manufacturer = manufacturer.map(|m| m.trim_end_matches(['\0', ' ']));
        self.defs.iter().position(|d| {
            d.matches.iter().any(|m| {
                m.model == model
                    && m.manufacturer
                        .as_deref()
                        .is_none_or(|want| Some(want) == manufacturer)
            })
        })
    }

    /// The definition for this manufacturer and model, if any.
    pub fn find(&self, manufacturer: Option<&str>, model: Option<&str>) -> Option<&Definition> {
        self.find_index(manufacturer, model)
            .and_then(|i| self.defs.get(i))
    }

    /// The check-in interval of this manufacturer and model's definition:
    /// the longest a healthy device stays quiet (for the silence rule).
    pub fn checkin(
        &self,
        manufacturer: Option<&str>,
        model: Option<&str>,
    ) -> Option<std::time::Duration> {
        self.find(manufacturer, model).and_then(|d| d.checkin)
    }

    pub fn get(&self, i: usize) -> Option<&Definition> {
        self.defs.get(i)
    }
}

#[cfg(test)]
mod tests;
