//! The questions the front door asks of the access policy.
//!
//! The listener ([`crate::frontdoor`]) owns sockets, TLS and the MQTT
//! protocol; the policy (device credentials, topic permissions, per-address
//! limits — `crate::devauth`) answers these questions and counts what it
//! refuses. Keeping the seam this narrow lets each side be tested alone.

use std::net::IpAddr;
use std::time::Duration;

use crate::model::DeviceId;

/// Who a connection authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A device with its own credential: may publish only to
    /// `carebridge/in/<id>` and subscribe only to its own command topics.
    Device(DeviceId),
    /// A named service account (e.g. the Home Assistant bridge), with the
    /// topic permissions the policy gives that account.
    Service(String),
    /// No credential, accepted because the policy allows it (a loopback
    /// listener, or `allow_anonymous = true` on a LAN listener).
    Anonymous,
}

/// Why a connection or request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Too many connections or attempts from this address; try again later.
    Throttled { retry_after: Duration },
    /// Unknown user, wrong password or revoked credential (CONNACK 0x04 /
    /// v5 0x86).
    BadCredentials,
    /// Authenticated but not allowed (CONNACK 0x05 / v5 0x87).
    NotAuthorized,
}

/// The access policy behind the front door. Implementations count and log
/// (rate-limited) every refusal they return; the listener only enforces.
pub trait Gate: Send + Sync + 'static {
    /// A TCP connection arrived from `peer` (before any bytes are read).
    fn accept(&self, peer: IpAddr) -> Result<(), Refusal>;
    /// The CONNECT packet of a connection from `peer`.
    fn connect(
        &self,
        peer: IpAddr,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<Identity, Refusal>;
    /// May `who` publish to `topic`?
    fn may_publish(&self, who: &Identity, topic: &str) -> bool;
    /// May `who` subscribe to `filter`?
    fn may_subscribe(&self, who: &Identity, filter: &str) -> bool;
    /// A connection from `peer` ended (releases its per-address slot).
    fn disconnected(&self, peer: IpAddr);
}
