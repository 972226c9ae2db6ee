//! The embedded MQTT broker (rumqttd) behind the front door: local
//! subscribers, Home Assistant and everything devices publish that is not a
//! reading.
//!
//! Devices never talk to rumqttd directly: [`crate::frontdoor`] owns
//! `[local_broker] listen`, takes readings itself (acknowledged after their
//! commit; rumqttd acknowledges from memory and skips what a slow link did
//! not read, issue 14) and passes the rest to rumqttd through one internal
//! client per connection. rumqttd listens on loopback on a port of its own
//! ([`Broker::start_internal`]), with a credential made at each start that
//! only the front door knows.
//!
//! rumqttd runs its router and each listener on threads of its own; this
//! module builds its configuration, checks the listen address first (rumqttd
//! only *logs* a bind failure, so a second process would otherwise silently
//! talk to whoever holds the port), starts it on a dedicated thread, and
//! hands out in-process links (`Broker::links`, e.g. Home Assistant).
//!
//! rumqttd has no shutdown API: the broker lives as long as the process.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::config::LocalBrokerConfig;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("local_broker.listen {addr}: {source} (is another broker running on that port?)")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("local_broker.listen {0:?} is not an address like 127.0.0.1:1883")]
    Addr(String),
    #[error("the embedded broker did not start listening on {0} within 5 s")]
    NotListening(SocketAddr),
    #[error("embedded broker link: {0}")]
    Link(String),
    #[error("cannot start the embedded broker thread: {0}")]
    Thread(std::io::Error),
}

/// A running embedded broker and the in-process links made for it.
pub struct Broker {
    addr: SocketAddr,
    /// Extra in-process links asked for in [`Broker::start_with_links`]
    /// (e.g. `carebridge-ha` for Home Assistant discovery), by name.
    pub links: Vec<(String, LinkTx, LinkRx)>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").field("addr", &self.addr).finish()
    }
}

impl Broker {
    /// Starts the broker on its own thread and waits until it accepts
    /// connections. `password` is the local broker password (read by the
    /// caller from `password_file`), when authentication is configured.
    pub fn start(cfg: &LocalBrokerConfig, password: Option<String>) -> Result<Broker, BrokerError> {
        Broker::start_with_links(cfg, password, &[])
    }

    /// [`Broker::start`] with extra in-process links (made before the
    /// broker starts: rumqttd cannot make them later).
    pub fn start_with_links(
        cfg: &LocalBrokerConfig,
        password: Option<String>,
        names: &[&str],
    ) -> Result<Broker, BrokerError> {
        let addr = resolve_listen(&cfg.listen)?;
        let mut connections = ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: cfg.max_payload,
            max_inflight_count: 256,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        };
        if let (Some(user), Some(pass)) = (&cfg.username, password) {
            connections.auth = Some(HashMap::from([(user.clone(), pass)]));
        }
        let server = ServerSettings {
            name: "local".into(),
            listen: addr,
            tls: None,
            next_connection_delay_ms: 0,
            connections,
        };
        let config = Config {
            id: 0,
            // RouterConfig::default() is all zeros: every limit is set here.
            router: RouterConfig {
                max_connections: cfg.max_connections + 8,
                max_outgoing_packet_count: 1024,
                // rumqttd keeps every publish in an in-memory log per
                // subscription filter until the log rolls over, whether
                // or not it was consumed, and counts only topic + payload
                // bytes (real memory is ~4× that). 4 MB × 8 grew the daemon
                // by 28 MB per 100 k readings (benches/spine.rs). Readings
                // no longer pass through rumqttd (the front door takes
                // them), so a short log is enough for local subscribers; a
                // subscriber that falls further behind is skipped ahead by
                // rumqttd, which the front door counts (`broker_skipped`).
                max_segment_size: (256 * 1024).max(cfg.max_payload),
                max_segment_count: 4,
                custom_segment: None,
                initialized_filters: None,
                shared_subscriptions_strategy: Default::default(),
            },
            v4: Some(HashMap::from([("local".to_string(), server)])),
            v5: None,
            ws: None,
            cluster: None,
            console: None,
            bridge: None,
            prometheus: None,
            metrics: None,
        };
        let mut broker = rumqttd::Broker::new(config);
        // Links are made before start(), which blocks for the life of the process.
        let mut links = Vec::new();
        for name in names {
            let (tx, rx) = broker
                .link(name)
                .map_err(|e| BrokerError::Link(e.to_string()))?;
            links.push((name.to_string(), tx, rx));
        }
        std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded broker stopped");
                }
            })
            .map_err(BrokerError::Thread)?;
        wait_listening(addr)?;
        tracing::info!(%addr, "embedded MQTT broker listening");
        Ok(Broker { addr, links })
    }

    /// The broker behind the front door: loopback, a free port, and a
    /// user/password made now (returned) that only the front door uses;
    /// the limits are those of `cfg` (the device-facing section).
    pub fn start_internal(
        cfg: &LocalBrokerConfig,
        names: &[&str],
    ) -> Result<(Broker, InternalLogin), BrokerError> {
        let login = InternalLogin::generate().map_err(BrokerError::Link)?;
        let internal = LocalBrokerConfig {
            listen: "127.0.0.1:0".into(),
            username: Some(login.username.clone()),
            password_file: None,
            ..cfg.clone()
        };
        let b = Broker::start_with_links(&internal, Some(login.password.clone()), names)?;
        Ok((b, login))
    }

    /// The address the broker listens on (with the real port when `:0` was asked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// The credential the front door's internal clients log in to rumqttd with.
#[derive(Clone)]
pub struct InternalLogin {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for InternalLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalLogin")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl InternalLogin {
    /// 128 random bits from the system's generator, hex-encoded.
    fn generate() -> Result<InternalLogin, String> {
        use ring::rand::SecureRandom as _;
        let mut bytes = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| "no randomness for the internal broker password".to_string())?;
        Ok(InternalLogin {
            username: "carebridge-frontdoor".into(),
            password: hex::encode(bytes),
        })
    }
}

/// Resolves the listen address; for port 0 picks a free port now (rumqttd
/// would not tell us which one it got). Either way the port is checked free.
fn resolve_listen(listen: &str) -> Result<SocketAddr, BrokerError> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| BrokerError::Addr(listen.to_string()))?;
    let probe = TcpListener::bind(addr).map_err(|source| BrokerError::Bind {
        addr: listen.to_string(),
        source,
    })?;
    let real = probe.local_addr().map_err(|source| BrokerError::Bind {
        addr: listen.to_string(),
        source,
    })?;
    drop(probe);
    Ok(real)
}

/// Waits until rumqttd listens on the port. It looks in the kernel's socket
/// table instead of connecting (a probe connection makes rumqttd log an
/// error) or binding (which would race rumqttd for the port).
fn wait_listening(addr: SocketAddr) -> Result<(), BrokerError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if is_listening(addr.port()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(BrokerError::NotListening(addr))
}

/// Is a TCP socket in LISTEN state on `port` (IPv4 or IPv6)? Reads
/// `/proc/self/net/…`, not `/proc/net/…`: the service runs with systemd's
/// `ProcSubset=pid`, which hides `/proc/net` (same table, own namespace).
fn is_listening(port: u16) -> bool {
    let want = format!(":{port:04X}");
    ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .iter()
        .any(|table| {
            std::fs::read_to_string(table).is_ok_and(|text| {
                text.lines().skip(1).any(|line| {
                    let mut cols = line.split_whitespace();
                    let local = cols.nth(1).unwrap_or("");
                    let state = cols.nth(1).unwrap_or("");
                    local.ends_with(&want) && state == "0A"
                })
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_listening_socket_in_the_processs_own_socket_table() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(is_listening(port));
    }
}
