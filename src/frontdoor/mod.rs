//! The device-facing MQTT listener ("front door"): Wi-Fi devices and local
//! clients connect here; readings published to `carebridge/in/<id>` are
//! acknowledged only once committed to SQLite; everything else is checked by
//! the access [`gate::Gate`] and passed to the embedded broker (rumqttd).
//!
//! Why our own listener: rumqttd acknowledges a publication from memory and,
//! when a reader falls behind its in-memory log, skips ahead ("jumping to
//! head"): 27 % of a 50 k QoS 1 burst was lost after PUBACK (issue 14). Here:
//!
//! - **PUBACK (QoS 1) / PUBREC (QoS 2) after commit.** A reading goes to the
//!   hub as a [`crate::hub::AckedReading`] carrying a
//!   [`crate::store::AckTo`]; the hub submits the reading, its alerts, then
//!   the ack, and the store's writer fires it after the `COMMIT` holding
//!   them ([`crate::store::ack`]). The connection then writes the PUBACK. A
//!   crash before the commit means no PUBACK: the device sends again.
//! - **Backpressure, bounded memory.** At most [`Limits::inflight`]
//!   (`[local_broker] inflight`, 256) unacknowledged QoS 1/2 publications
//!   per connection (the socket is not read while full) and a bounded queue
//!   into the hub (a full queue stops the connection too). The window is
//!   also how many readings of one bursting client can share a commit: at
//!   64 a 50 k panic burst committed ~50 alerts per fsync (19.4 µs of CPU
//!   an alert), at 256 ~200 (13–14 µs). Memory is bounded by the queues,
//!   not the window (a connection parses no further while the hub's queue
//!   is full). QoS 0 readings are never waited for: when the
//!   hub's queue is full they are shed and counted (`qos0_overload`).
//! - **Nothing lost silently.** Malformed readings are acknowledged (the
//!   device must not retransmit them forever), counted and logged
//!   (rate-limited) with topic and reason; shed readings, QoS 0 messages a
//!   slow local subscriber could not take (`subscriber_slow`), and skips
//!   rumqttd reports (`broker_skipped`, counted from its log by
//!   [`crate::logging`]) are counted in the status document and `/metrics`;
//!   while readings are shed a `warning` alert is raised ([`shed`]).
//! - **Everything else goes to rumqttd** through one internal rumqttc client
//!   per connection ([`proxy`]), made on first need: permitted SUBSCRIBEs
//!   (granted QoS at most 1; SUBACK once rumqttd answered), non-reading
//!   PUBLISHes (PUBACK once rumqttd acknowledged), the will. Messages from
//!   rumqttd at QoS 1 are acknowledged to rumqttd only when the client
//!   acknowledged them.
//!
//! Protocol: MQTT 3.1.1 (what mosquitto_pub and most devices speak); a v5
//! CONNECT is refused with return code 1 (unacceptable protocol version).
//! Sessions are clean (`session_present` is always 0); QoS 2 is honoured
//! exactly once per connection (a repeated PUBLISH before PUBREL is not
//! ingested twice).
//!
//! The access policy is behind [`gate::Gate`]; [`local_gate::LocalGate`] is
//! the `[local_broker] username`/`password_file` policy. The listener is
//! generic over the stream: [`serve`] for TCP, [`serve_tls`] for a TLS
//! listener, both through [`serve_stream`].

pub mod gate;
pub mod local_gate;
pub mod shed;

mod conn;
mod proxy;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::broker::InternalLogin;
use crate::hub::AckedReading;
use crate::ingest::mqtt::{IngestStats, LogLimiter};

pub use gate::{Gate, Identity, Refusal};

/// Why the front door could not start.
#[derive(Debug, thiserror::Error)]
pub enum FrontDoorError {
    #[error("local_broker.listen {addr}: {source} (is another broker running on that port?)")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Per-connection and global bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections at once; more are refused with CONNACK 3 (server unavailable).
    pub max_connections: usize,
    /// Largest accepted MQTT packet, in bytes.
    pub max_packet: usize,
    /// Unacknowledged QoS 1/2 publications (and pending subscribes) per
    /// connection before the socket is no longer read
    /// (`[local_broker] inflight`).
    pub inflight: usize,
}

impl Limits {
    /// The front door's queue into the hub (readings not yet taken by it).
    pub const HUB_QUEUE: usize = 1024;
}

/// Where the internal broker is and how to log in to it.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub login: InternalLogin,
}

/// What every connection shares.
pub struct FrontDoor {
    pub gate: Arc<dyn Gate>,
    /// Readings into the hub (bounded: [`Limits::HUB_QUEUE`]).
    pub hub: mpsc::Sender<AckedReading>,
    /// The internal broker; `None`: only readings are served.
    pub upstream: Option<Upstream>,
    pub stats: Arc<IngestStats>,
    pub limits: Limits,
    connections: AtomicUsize,
    next_id: AtomicU64,
    /// One log budget for all connections (a babbling fleet must not flood
    /// the journal): malformed readings, and shed messages.
    malformed_log: Mutex<LogLimiter>,
    shed_log: Mutex<LogLimiter>,
    /// The gateway's clock, which stamps readings sent without a time (the
    /// hub, the rules and the UI all read it; in the demo it is simulated).
    /// `None`: the wall clock.
    clock: Option<Arc<dyn crate::clock::Clock>>,
}

impl std::fmt::Debug for FrontDoor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontDoor")
            .field("upstream", &self.upstream)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl FrontDoor {
    pub fn new(
        gate: Arc<dyn Gate>,
        hub: mpsc::Sender<AckedReading>,
        upstream: Option<Upstream>,
        stats: Arc<IngestStats>,
        limits: Limits,
    ) -> FrontDoor {
        FrontDoor {
            gate,
            hub,
            upstream,
            stats,
            limits,
            connections: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            malformed_log: Mutex::new(LogLimiter::default()),
            shed_log: Mutex::new(LogLimiter::default()),
            clock: None,
        }
    }

    /// Stamps readings without a time with `clock` (the gateway's).
    pub fn with_clock(mut self, clock: Arc<dyn crate::clock::Clock>) -> FrontDoor {
        self.clock = Some(clock);
        self
    }

    /// The time a reading without its own arrives at.
    pub(crate) fn now(&self) -> crate::model::Time {
        self.clock
            .as_ref()
            .map_or_else(crate::wall::now, |c| c.now())
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    fn allow_log(limiter: &Mutex<LogLimiter>) -> bool {
        let now = crate::wall::now();
        match limiter.lock() {
            Ok(mut l) => l.allow(now),
            Err(p) => p.into_inner().allow(now),
        }
    }
}

/// Binds the device-facing listener (`[local_broker] listen`); call
/// inside the runtime.
pub fn bind(listen: &str) -> Result<TcpListener, FrontDoorError> {
    let err = |source| FrontDoorError::Bind {
        addr: listen.to_string(),
        source,
    };
    let l = std::net::TcpListener::bind(listen).map_err(err)?;
    l.set_nonblocking(true).map_err(err)?;
    TcpListener::from_std(l).map_err(err)
}

/// Accepts plain TCP connections until shutdown.
pub async fn serve(
    listener: TcpListener,
    door: Arc<FrontDoor>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    accept_loop(listener, None, door, shutdown).await
}

/// Accepts TLS connections until shutdown (the handshake runs in each
/// connection's task, within 10 s; the same protocol code as [`serve`]).
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    door: Arc<FrontDoor>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    accept_loop(listener, Some(acceptor), door, shutdown).await
}

/// The accept loop: asks the gate before reading a byte, then serves each
/// connection in a task of its own; the gate hears of every end.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    door: Arc<FrontDoor>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let (sock, peer) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            got = listener.accept() => match got {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait, retry.
                    tracing::warn!(error = %e, "front door: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if door.gate.accept(peer.ip()).is_err() {
            drop(sock); // the gate counted and logged it
            continue;
        }
        let _ = sock.set_nodelay(true);
        let (door, sd) = (door.clone(), shutdown.clone());
        // Two task types, not one with a branch: a task's future is as large
        // as its largest state, and the TLS handshake's would make every
        // plain connection's task carry its size too (1,000 connections).
        match tls.clone() {
            None => tokio::spawn(async move {
                serve_stream(sock, peer, door.clone(), sd).await;
                door.gate.disconnected(peer.ip());
            }),
            Some(acceptor) => tokio::spawn(async move {
                let hs = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(sock));
                match hs.await {
                    Ok(Ok(s)) => serve_stream(s, peer, door.clone(), sd).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "front door: TLS handshake failed")
                    }
                    Err(_) => tracing::debug!(%peer, "front door: TLS handshake timed out"),
                }
                door.gate.disconnected(peer.ip());
            }),
        };
    }
}

/// Serves one MQTT connection over any byte stream until it ends or
/// shutdown. Does not call [`Gate::accept`] or [`Gate::disconnected`]
/// (the accept loop does).
pub async fn serve_stream<S>(
    stream: S,
    peer: SocketAddr,
    door: Arc<FrontDoor>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    door.connections.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = conn::run(stream, peer, &door, shutdown).await {
        tracing::debug!(%peer, error = %e, "front door: connection closed");
    }
    door.connections.fetch_sub(1, Ordering::Relaxed);
}
