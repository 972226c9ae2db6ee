//! `[remote]`: how remote configuration is accepted.
//!
//! Keys, defaults and validation; the part that uses it lives in the
//! shell crate.

use super::{Config, Problem};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[remote]`: how remote configuration is accepted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConfig {
    /// Refuse `cmd/config` bodies that are not signed by a trusted key.
    pub require_signed: bool,
    /// Trusted keys; default the `[ota] keys_dir`, else `/etc/carebridge/keys`.
    pub keys_dir: Option<PathBuf>,
}

impl RemoteConfig {
    pub fn validate(&self) -> Vec<Problem> {
        match &self.keys_dir {
            Some(d) if !d.is_absolute() => {
                vec![Problem::new("keys_dir", "must be an absolute path")]
            }
            _ => Vec::new(),
        }
    }

    /// The trusted-key directory in effect.
    pub fn keys_dir(&self, cfg: &Config) -> PathBuf {
        self.keys_dir
            .clone()
            .or_else(|| cfg.ota.as_ref().map(|o| o.keys_dir.clone()))
            .unwrap_or_else(|| PathBuf::from("/etc/carebridge/keys"))
    }
}
