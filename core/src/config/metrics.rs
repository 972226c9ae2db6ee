//! `[metrics]`: the Prometheus endpoint.
//!
//! Keys, defaults and validation; the part that uses it lives in the
//! shell crate.

use super::Problem;
use serde::{Deserialize, Serialize};

/// `[metrics]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// A listener of its own (plain HTTP), e.g. `127.0.0.1:9464`.
    pub listen: Option<String>,
    /// Serve without authentication to any peer (web server and listener).
    pub public: bool,
}

impl MetricsConfig {
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if let Some(l) = &self.listen {
            match l.parse::<std::net::SocketAddr>() {
                Err(_) => out.push(Problem::new(
                    "listen",
                    format!("{l:?} is not an address like 127.0.0.1:9464"),
                )),
                Ok(a) if !a.ip().is_loopback() && !self.public => out.push(Problem::new(
                    "listen",
                    "a non-loopback address serves metrics to anyone: set public = true to mean it",
                )),
                Ok(_) => {}
            }
        }
        out
    }
}
