//! Over-the-air updates: signed bundles, install, trial, rollback.
//! (Being built: see the OTA issue.)

use serde::{Deserialize, Serialize};

use crate::config::Problem;

/// `[ota]`: update settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtaConfig {
    /// Directory of trusted Ed25519 public keys.
    pub keys_dir: String,
}

impl Default for OtaConfig {
    fn default() -> Self {
        OtaConfig {
            keys_dir: "/etc/carebridge/keys".into(),
        }
    }
}

impl OtaConfig {
    pub const DEFAULT_TOML: &'static str = r#"# Over-the-air updates. Uncomment to enable.
# [ota]
# keys_dir = "/etc/carebridge/keys"
"#;

    pub fn validate(&self) -> Vec<Problem> {
        Vec::new()
    }
}
