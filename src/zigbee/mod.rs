//! Zigbee's shell: the ZNP/ZCL layers and the coordinator state machine are
//! pure and live in the core crate ([`carebridge_core::zigbee`], re-exported
//! here); this module adds the serial port task ([`port`], [`run`]) and the
//! coordinator simulator (`sim`, `sim_stick`, `sim_run`; cargo feature `sim`)
//! used by the demo, `carebridge sim-stick` and the tests.

pub use carebridge_core::zigbee::*;

pub mod port;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "sim")]
pub mod sim_run;
#[cfg(feature = "sim")]
pub mod sim_stick;

pub use port::run;

/// The device library for `[zigbee]`: the built-in table, extended by
/// `devices_file` when set (read here; errors name the file, the entry
/// and the key). `config::load` calls this so `config check` and start-up
/// refuse a broken file.
pub fn load_library(
    cfg: &ZigbeeConfig,
) -> Result<std::sync::Arc<library::Library>, crate::config::ConfigError> {
    let Some(path) = &cfg.devices_file else {
        return Ok(library::Library::builtin());
    };
    let text =
        std::fs::read_to_string(path).map_err(|source| crate::config::ConfigError::Read {
            path: path.clone(),
            source,
        })?;
    library::Library::with_local(&text, path).map(std::sync::Arc::new)
}

#[cfg(all(test, feature = "sim"))]
mod loopback_tests;
