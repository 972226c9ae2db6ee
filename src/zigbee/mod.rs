//! Zigbee through a Z-Stack ZNP coordinator. (Being built: see the Zigbee issue.)

use serde::{Deserialize, Serialize};

use crate::config::Problem;

/// `[zigbee]`: the coordinator stick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZigbeeConfig {
    pub port: String,
    pub channel: u8,
}

impl Default for ZigbeeConfig {
    fn default() -> Self {
        ZigbeeConfig {
            port: "/dev/carebridge-zigbee".into(),
            channel: 15,
        }
    }
}

impl ZigbeeConfig {
    pub const DEFAULT_TOML: &'static str = r#"# The Zigbee coordinator (TI CC2652 running Z-Stack). Uncomment to enable.
# [zigbee]
# port = "/dev/carebridge-zigbee"
# channel = 15
"#;

    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if !(11..=26).contains(&self.channel) {
            out.push(Problem::new(
                "channel",
                "must be a Zigbee channel from 11 to 26",
            ));
        }
        out
    }
}
