//! The configuration's shell: types, defaults and validation are pure and
//! live in the core crate ([`carebridge_core::config`], re-exported here);
//! this module reads the file.

use std::path::Path;

pub use carebridge_core::config::*;

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    let cfg = Config::parse(&text, &shown)?;
    if let Some(z) = &cfg.zigbee {
        crate::zigbee::load_library(z)?;
    }
    Ok(cfg)
}
