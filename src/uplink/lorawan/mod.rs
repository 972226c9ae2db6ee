//! LoRaWAN uplink through a serial AT modem. (Being built: see the LoRaWAN issue.)

pub mod airtime;
pub mod at;
pub mod codec;
pub mod modem;
pub mod rak3172;
pub mod wio_e5;

use serde::{Deserialize, Serialize};

use crate::config::Problem;

/// `[lorawan]`: the LoRaWAN modem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LorawanConfig {
    pub port: String,
    /// `rak3172` or `wio-e5`.
    pub modem: String,
}

impl Default for LorawanConfig {
    fn default() -> Self {
        LorawanConfig {
            port: "/dev/carebridge-lora".into(),
            modem: "rak3172".into(),
        }
    }
}

impl LorawanConfig {
    pub const DEFAULT_TOML: &'static str = r#"# A LoRaWAN modem on a serial port. Uncomment to enable.
# [lorawan]
# port = "/dev/carebridge-lora"
# modem = "rak3172"                # or "wio-e5"
"#;

    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if !matches!(self.modem.as_str(), "rak3172" | "wio-e5") {
            out.push(Problem::new("modem", "must be rak3172 or wio-e5"));
        }
        out
    }
}
