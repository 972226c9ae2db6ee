//! Who may use the local broker, and for what: the pure decisions behind
//! the front door's access [gate](../../carebridge/frontdoor/gate/index.html)
//! (issue 24). The shell (`carebridge::devauth`) owns the credential file,
//! the hashing (ring) and the counters; everything here is a value or a
//! state machine driven by its caller with the time passed in.
//!
//! - [`acl`]: topic permissions per [`acl::Account`] (a device publishes only
//!   to `carebridge/in/<its id>` and subscribes only under
//!   `carebridge/cmd/<its id>/`; the Home Assistant account reads the HA
//!   topics; the legacy shared account publishes readings; anonymous keeps
//!   the old open permissions);
//! - [`limits`]: per-address connection caps and the authentication-failure
//!   back-off (an address that keeps guessing is refused before it can try
//!   again);
//! - [`alarm`]: the `warning` alert raised upstream when authentication
//!   failures repeat (someone guessing), cleared after a quiet hour;
//! - [`record`]: the credential records as stored (salt + MAC, never the
//!   secret) and the file that holds them, with validation that names the
//!   field.

pub mod acl;
pub mod alarm;
pub mod limits;
pub mod record;

/// Why a connection or a request was refused, as counted in the status
/// document and `/metrics` (`local_broker_refused_total{cause}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// A client with no user name where anonymous access is off.
    Anonymous,
    /// A user name nobody has a credential for.
    UnknownUser,
    /// A known user name with the wrong password.
    BadPassword,
    /// A credential that was revoked while the client was connected.
    Revoked,
    /// Refused before reading: the address is backing off after failures.
    Throttled,
    /// Refused before reading: too many connections from one address.
    TooManyConnections,
    /// A publish outside the account's topics.
    Publish,
    /// A subscription outside the account's topics.
    Subscribe,
}

impl Cause {
    pub const ALL: [Cause; 8] = [
        Cause::Anonymous,
        Cause::UnknownUser,
        Cause::BadPassword,
        Cause::Revoked,
        Cause::Throttled,
        Cause::TooManyConnections,
        Cause::Publish,
        Cause::Subscribe,
    ];

    /// The wire name (status document key, metrics label).
    pub const fn as_str(self) -> &'static str {
        match self {
            Cause::Anonymous => "anonymous",
            Cause::UnknownUser => "unknown_user",
            Cause::BadPassword => "bad_password",
            Cause::Revoked => "revoked",
            Cause::Throttled => "throttled",
            Cause::TooManyConnections => "too_many_connections",
            Cause::Publish => "publish",
            Cause::Subscribe => "subscribe",
        }
    }

    /// An authentication failure (counts towards the back-off and the alarm).
    pub const fn is_auth_failure(self) -> bool {
        matches!(
            self,
            Cause::Anonymous | Cause::UnknownUser | Cause::BadPassword
        )
    }

    /// The index into per-cause counters.
    pub const fn index(self) -> usize {
        self as usize
    }
}
