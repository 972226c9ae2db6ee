//! `[local_broker]` validation and the questions the rest of the gateway
//! asks of it: is a listener reachable from the network, are its clients
//! authenticated, is anonymous access on the network switched on.
//!
//! The rule (issue 24): a listener on anything but loopback must
//! authenticate its clients (`device_credentials = true`, or the deprecated
//! shared `username`/`password_file`), unless `allow_anonymous = true` says
//! otherwise explicitly — then the UI and the status document warn.

use std::net::SocketAddr;
use std::time::Duration;

use super::{LocalBrokerConfig, Problem};

impl LocalBrokerConfig {
    /// Every problem of the section, keys relative to `local_broker`.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let listen = self.listen.parse::<SocketAddr>();
        if listen.is_err() {
            out.push(Problem::new(
                "listen",
                format!("{:?} is not an address like 127.0.0.1:1883", self.listen),
            ));
        }
        let tls = self
            .tls_listen
            .as_ref()
            .map(|t| (t, t.parse::<SocketAddr>()));
        if let Some((t, Err(_))) = &tls {
            out.push(Problem::new(
                "tls_listen",
                format!("{t:?} is not an address like 0.0.0.0:8883"),
            ));
        }
        if let (Ok(a), Some((_, Ok(b)))) = (&listen, &tls)
            && a.port() == b.port()
            && a.port() != 0
            && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        {
            out.push(Problem::new(
                "tls_listen",
                format!("{b} overlaps listen {a}: use another port (8883)"),
            ));
        }
        if !self.authenticated() && !self.allow_anonymous {
            let open = [
                ("listen", listen.ok()),
                ("tls_listen", tls.and_then(|(_, r)| r.ok())),
            ];
            for (key, addr) in open {
                if let Some(a) = addr
                    && !is_loopback(&a)
                {
                    out.push(Problem::new(
                        key,
                        format!(
                            "{a} is reachable from the network but its clients are not \
                             authenticated: set device_credentials = true (a credential per \
                             device, made in the web UI), or allow_anonymous = true to let \
                             anyone on the network publish readings and read what the gateway \
                             publishes (not recommended)"
                        ),
                    ));
                }
            }
        }
        if self.username.is_some() != self.password_file.is_some() {
            out.push(Problem::new(
                "password_file",
                "username and password_file go together: set both or neither",
            ));
        }
        if let Some(u) = &self.username
            && (u.is_empty() || u.len() > 64 || u.contains(['+', '#', '/']))
        {
            out.push(Problem::new(
                "username",
                "1 to 64 characters, without + # /",
            ));
        }
        if self.max_connections == 0 {
            out.push(Problem::new("max_connections", "must be at least 1"));
        }
        if !(256..=16 * 1024 * 1024).contains(&self.max_payload) {
            out.push(Problem::new(
                "max_payload",
                "must be between 256 bytes and 16 MiB",
            ));
        }
        if !(1..=65_535).contains(&self.inflight) {
            out.push(Problem::new("inflight", "must be between 1 and 65535"));
        }
        if self.max_connections_per_address == 0 {
            out.push(Problem::new(
                "max_connections_per_address",
                "must be at least 1",
            ));
        }
        if self.failures_before_backoff == 0 {
            out.push(Problem::new(
                "failures_before_backoff",
                "must be at least 1",
            ));
        }
        if self.backoff_max.0 < Duration::from_secs(1)
            || self.backoff_max.0 > Duration::from_secs(86_400)
        {
            out.push(Problem::new("backoff_max", "must be between 1s and 1d"));
        }
        out
    }

    /// Clients must log in (per-device credentials or the legacy account).
    pub fn authenticated(&self) -> bool {
        self.device_credentials || self.username.is_some()
    }

    /// Some listener is reachable from the network (not loopback).
    pub fn network_facing(&self) -> bool {
        [Some(&self.listen), self.tls_listen.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|a| a.parse::<SocketAddr>().ok())
            .any(|a| !is_loopback(&a))
    }

    /// Anyone on the network may connect without a credential (the
    /// standing warning in the UI and the status document).
    pub fn anonymous_on_network(&self) -> bool {
        self.allow_anonymous && self.network_facing()
    }
}

fn is_loopback(a: &SocketAddr) -> bool {
    a.ip().is_loopback() || a.ip().to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(listen: &str) -> LocalBrokerConfig {
        LocalBrokerConfig {
            listen: listen.into(),
            ..Default::default()
        }
    }

    fn keys(c: &LocalBrokerConfig) -> Vec<String> {
        c.validate().into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn a_network_listener_without_authentication_is_refused_naming_the_key() {
        for addr in ["0.0.0.0:1883", "192.168.1.2:1883", "[::]:1883"] {
            let c = cfg(addr);
            let p = c.validate();
            assert_eq!(keys(&c), ["listen"], "{addr}");
            assert!(
                p[0].reason.contains("device_credentials = true"),
                "{}",
                p[0].reason
            );
            assert!(p[0].reason.contains("allow_anonymous = true"));
        }
        let c = LocalBrokerConfig {
            tls_listen: Some("0.0.0.0:8883".into()),
            ..cfg("127.0.0.1:1883")
        };
        assert_eq!(keys(&c), ["tls_listen"]);
    }

    #[test]
    fn loopback_credentials_legacy_or_explicit_anonymous_pass() {
        assert!(keys(&cfg("127.0.0.1:1883")).is_empty());
        assert!(keys(&cfg("[::1]:1883")).is_empty());
        let ok = [
            LocalBrokerConfig {
                device_credentials: true,
                ..cfg("0.0.0.0:1883")
            },
            LocalBrokerConfig {
                username: Some("sensors".into()),
                password_file: Some("/etc/carebridge/broker.password".into()),
                ..cfg("0.0.0.0:1883")
            },
            LocalBrokerConfig {
                allow_anonymous: true,
                ..cfg("0.0.0.0:1883")
            },
        ];
        for c in ok {
            assert!(keys(&c).is_empty(), "{c:?}");
        }
        assert!(!cfg("0.0.0.0:1883").anonymous_on_network());
        assert!(
            LocalBrokerConfig {
                allow_anonymous: true,
                ..cfg("0.0.0.0:1883")
            }
            .anonymous_on_network()
        );
        assert!(
            !LocalBrokerConfig {
                allow_anonymous: true,
                ..cfg("127.0.0.1:1883")
            }
            .anonymous_on_network()
        );
    }

    #[test]
    fn a_tls_listener_on_the_same_port_and_bad_limits_are_refused() {
        let c = LocalBrokerConfig {
            device_credentials: true,
            tls_listen: Some("0.0.0.0:1883".into()),
            max_connections_per_address: 0,
            failures_before_backoff: 0,
            ..cfg("0.0.0.0:1883")
        };
        assert_eq!(
            keys(&c),
            [
                "tls_listen",
                "max_connections_per_address",
                "failures_before_backoff"
            ]
        );
        for (inflight, ok) in [(0, false), (1, true), (65_535, true), (65_536, false)] {
            let c = LocalBrokerConfig {
                inflight,
                ..cfg("127.0.0.1:1883")
            };
            let want: &[&str] = if ok { &[] } else { &["inflight"] };
            assert_eq!(keys(&c), want, "inflight = {inflight}");
        }
    }
}
