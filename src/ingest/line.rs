//! Serial sensor boards speaking a line protocol. (Being built: see the Zigbee issue.)

use serde::{Deserialize, Serialize};

use crate::config::Problem;

/// `[[serial]]`: one sensor board on one serial port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SerialBoardConfig {
    pub port: String,
    pub baud: u32,
}

impl Default for SerialBoardConfig {
    fn default() -> Self {
        SerialBoardConfig {
            port: "/dev/ttyUSB0".into(),
            baud: 115_200,
        }
    }
}

impl SerialBoardConfig {
    pub const DEFAULT_TOML: &'static str = r#"# Serial sensor boards (line protocol), one table per port. Uncomment to enable.
# [[serial]]
# port = "/dev/ttyUSB0"
# baud = 115200
"#;

    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.baud == 0 {
            out.push(Problem::new("baud", "must be above zero"));
        }
        out
    }
}
