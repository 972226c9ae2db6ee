//! `[web]`: the technician's UI (listener, TLS files, sessions, accepted host names).
//!
//! Keys, defaults and validation; the part that uses it lives in the
//! shell crate.

use super::{Dur, Problem};
use serde::{Deserialize, Serialize};

/// `[web]`: the technician's UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Address to listen on (`0.0.0.0:8443`; port 0 picks a free port).
    pub listen: String,
    /// Serve HTTPS (the default). Without a cert/key pair a per-device
    /// self-signed certificate is generated under `<data_dir>/web/`.
    pub tls: bool,
    /// PEM certificate chain (optional; TLS only).
    pub cert_file: Option<std::path::PathBuf>,
    /// PEM private key for `cert_file` (PKCS#8, SEC1 or RSA).
    pub key_file: Option<std::path::PathBuf>,
    /// A session ends after this long without a request.
    pub session_idle: Dur,
    /// Allow `tls = false` on a non-loopback address (a trusted LAN only).
    pub allow_plain_http: bool,
    /// Extra DNS names the UI may be reached by. IP addresses, `localhost`,
    /// `*.local` and single-label names are always accepted; any other
    /// `Host` is refused (defeats DNS rebinding).
    pub hosts: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: "0.0.0.0:8443".into(),
            tls: true,
            cert_file: None,
            key_file: None,
            session_idle: Dur::mins(30),
            allow_plain_http: false,
            hosts: Vec::new(),
        }
    }
}

impl WebConfig {
    /// The demo's UI: plain HTTP (meant for loopback).
    pub fn demo(listen: String) -> Self {
        WebConfig {
            listen,
            tls: false,
            allow_plain_http: true,
            ..Default::default()
        }
    }

    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        match self.listen.parse::<std::net::SocketAddr>() {
            Err(_) => out.push(Problem::new(
                "listen",
                format!("{:?} is not an address like 0.0.0.0:8443", self.listen),
            )),
            Ok(a) if !self.tls && !a.ip().is_loopback() && !self.allow_plain_http => {
                out.push(Problem::new(
                    "tls",
                    format!(
                        "plain HTTP on {a} would expose passwords on the network: \
                         keep tls = true, listen on 127.0.0.1, or set allow_plain_http = true"
                    ),
                ))
            }
            Ok(_) => {}
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            out.push(Problem::new(
                "cert_file",
                "cert_file and key_file must be given together",
            ));
        }
        for (i, h) in self.hosts.iter().enumerate() {
            let ok = !h.is_empty()
                && h.len() <= 253
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !ok {
                out.push(Problem::new(
                    format!("hosts[{i}]"),
                    format!("{h:?} is not a DNS name"),
                ));
            }
        }
        let idle = self.session_idle.0.as_secs();
        if !(60..=86_400).contains(&idle) {
            out.push(Problem::new("session_idle", "must be between 1m and 24h"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_uses_tls() {
        let c = WebConfig::default();
        assert!(c.validate().is_empty());
        assert!(c.tls);
    }

    #[test]
    fn plain_http_off_loopback_is_refused_unless_allowed() {
        let mut c = WebConfig {
            tls: false,
            ..Default::default()
        };
        assert_eq!(c.validate()[0].key, "tls");
        c.listen = "127.0.0.1:8080".into();
        assert!(c.validate().is_empty());
        c.listen = "0.0.0.0:8080".into();
        c.allow_plain_http = true;
        assert!(c.validate().is_empty());
    }

    #[test]
    fn lone_cert_file_and_silly_idle_timeout_are_named() {
        let c = WebConfig {
            cert_file: Some("/x".into()),
            session_idle: Dur::secs(5),
            ..Default::default()
        };
        let keys: Vec<_> = c.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["cert_file", "session_idle"]);
    }
}
