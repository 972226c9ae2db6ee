//! `[homeassistant]`: Home Assistant MQTT discovery on the local broker.
//!
//! Keys, defaults and validation; the part that uses it lives in the
//! shell crate.

use super::{Dur, Problem};
use serde::{Deserialize, Serialize};

/// `[homeassistant]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HaConfig {
    pub enabled: bool,
    pub discovery_prefix: String,
    /// Root of the state topics (the gateway id is appended).
    pub state_prefix: String,
    /// How often removed devices are looked for.
    pub resync: Dur,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            enabled: false,
            discovery_prefix: "homeassistant".into(),
            state_prefix: "carebridge/ha".into(),
            resync: Dur::secs(30),
        }
    }
}

impl HaConfig {
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for (k, v) in [
            ("discovery_prefix", &self.discovery_prefix),
            ("state_prefix", &self.state_prefix),
        ] {
            if v.is_empty() || v.contains(['+', '#']) || v.starts_with('/') || v.ends_with('/') {
                out.push(Problem::new(
                    k,
                    format!(
                        "{v:?}: must be non-empty, without + or #, and not start or end with /"
                    ),
                ));
            }
            if v.starts_with(crate::model::INGEST_TOPIC_ROOT.trim_end_matches('/')) {
                out.push(Problem::new(k, "must not be under the ingest topics"));
            }
        }
        if self.resync.0 < std::time::Duration::from_secs(1) {
            out.push(Problem::new("resync", "must be at least 1s"));
        }
        out
    }
}
