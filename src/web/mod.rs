//! The local web UI and JSON API (warp). (Being built: see the web issue.)

use serde::{Deserialize, Serialize};

use crate::config::Problem;

/// `[web]`: the technician's UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    pub listen: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: "0.0.0.0:8443".into(),
        }
    }
}

impl WebConfig {
    pub const DEFAULT_TOML: &'static str = r#"[web]
listen = "0.0.0.0:8443"
"#;

    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            out.push(Problem::new(
                "listen",
                format!("{:?} is not an address like 0.0.0.0:8443", self.listen),
            ));
        }
        out
    }
}
