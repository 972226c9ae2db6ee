//! [`DeviceAuth`]: the access policy behind the front door's
//! [`Gate`](crate::frontdoor::gate::Gate). It answers the listener's
//! questions from the credential store, the topic table
//! ([`crate::devauth::acl`]) and the per-address limits
//! ([`crate::devauth::limits`]), and counts (by [`Cause`]), logs
//! (rate-limited: one line per cause per 10 s with the number left out)
//! and reports to the guessing alarm every refusal it returns.
//!
//! Who is who:
//! - no user name → `Anonymous` when anonymous access is allowed (a loopback
//!   listener without authentication, or `allow_anonymous = true`), else
//!   refused;
//! - the legacy `[local_broker] username` with its password → service
//!   `legacy` (deprecated; logged once per connection as such);
//! - with `device_credentials`, a device id or `homeassistant` with its
//!   secret → `Device(id)` / service `homeassistant`;
//! - without authentication configured at all, any user name is accepted as
//!   anonymous (what the old broker did).
//!
//! A revoked credential stops working at the next log-in and at the next
//! publish or subscribe of a connection that is still open.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::devauth::Cause;
use crate::devauth::acl::{self, Account, Policy};
use crate::devauth::limits::{Limits, LimitsConfig, Refused};
use crate::devauth::record::Holder;
use crate::devauth::store::{CredentialStore, Verdict};
use crate::frontdoor::gate::{Gate, Identity, Refusal};

/// The service name the legacy shared account gets.
pub const LEGACY_SERVICE: &str = "legacy";
/// How long a refused over-the-cap connection is told to wait.
const CAP_RETRY: Duration = Duration::from_secs(5);
/// At most one log line per cause this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Counters of the gate, for the status document and `/metrics`.
#[derive(Debug, Default)]
pub struct AuthStats {
    /// Refusals by [`Cause::index`].
    pub refused: [AtomicU64; Cause::ALL.len()],
    /// Successful log-ins (anonymous ones included).
    pub logins: AtomicU64,
}

impl AuthStats {
    pub fn refused(&self, c: Cause) -> u64 {
        self.refused[c.index()].load(Ordering::Relaxed)
    }
}

/// What the gate is configured with.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// Per-device credentials are accepted.
    pub device_credentials: bool,
    /// Clients without a user name are accepted as anonymous.
    pub anonymous_ok: bool,
    /// Some authentication is configured (else user names are ignored).
    pub authenticated: bool,
    /// The legacy shared account: user name and password.
    pub legacy: Option<(String, String)>,
    pub limits: LimitsConfig,
    pub policy: Policy,
}

impl AuthSettings {
    /// From the configuration and the legacy password (read from
    /// `password_file` at start-up).
    pub fn from_config(
        cfg: &crate::config::Config,
        legacy_password: Option<String>,
    ) -> AuthSettings {
        let b = cfg.local_broker.clone().unwrap_or_default();
        let ha = cfg.homeassistant.enabled.then(|| acl::HaTopics {
            discovery_prefix: cfg.homeassistant.discovery_prefix.clone(),
            state_prefix: cfg.homeassistant.state_prefix.clone(),
        });
        AuthSettings {
            device_credentials: b.device_credentials,
            anonymous_ok: b.allow_anonymous || !b.authenticated(),
            authenticated: b.authenticated(),
            legacy: b.username.clone().zip(legacy_password),
            limits: LimitsConfig {
                per_address: b.max_connections_per_address,
                free_failures: b.failures_before_backoff,
                backoff_max: b.backoff_max.0,
                ..LimitsConfig::default()
            },
            policy: Policy { ha },
        }
    }
}

/// The access policy (see the module header).
pub struct DeviceAuth {
    settings: AuthSettings,
    creds: CredentialStore,
    limits: Mutex<Limits>,
    started: Instant,
    stats: Arc<AuthStats>,
    /// Authentication failures, to the guessing alarm (dropped when full).
    alarm: Option<mpsc::Sender<IpAddr>>,
    log: Mutex<[(Option<Instant>, u64); Cause::ALL.len()]>,
}

impl std::fmt::Debug for DeviceAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuth")
            .field("settings", &self.settings.device_credentials)
            .finish_non_exhaustive()
    }
}

impl DeviceAuth {
    pub fn new(settings: AuthSettings, creds: CredentialStore) -> DeviceAuth {
        DeviceAuth {
            limits: Mutex::new(Limits::new(settings.limits.clone())),
            settings,
            creds,
            started: Instant::now(),
            stats: Arc::default(),
            alarm: None,
            log: Mutex::new([(None, 0); Cause::ALL.len()]),
        }
    }

    /// Reports authentication failures to the guessing alarm's task.
    pub fn with_alarm(mut self, tx: mpsc::Sender<IpAddr>) -> DeviceAuth {
        self.alarm = Some(tx);
        self
    }

    pub fn stats(&self) -> Arc<AuthStats> {
        self.stats.clone()
    }

    pub fn credentials(&self) -> &CredentialStore {
        &self.creds
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn limits(&self) -> std::sync::MutexGuard<'_, Limits> {
        self.limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts and logs (rate-limited) one refusal.
    fn refuse(&self, cause: Cause, peer: Option<IpAddr>, detail: &str) {
        self.stats.refused[cause.index()].fetch_add(1, Ordering::Relaxed);
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let (last, skipped) = &mut log[cause.index()];
        let now = Instant::now();
        if last.is_some_and(|l| now.duration_since(l) < LOG_EVERY) {
            *skipped += 1;
            return;
        }
        let more = std::mem::take(skipped);
        *last = Some(now);
        match peer {
            Some(peer) => {
                tracing::warn!(cause = cause.as_str(), %peer, more_not_logged = more, "local broker refused: {detail}")
            }
            None => {
                tracing::warn!(
                    cause = cause.as_str(),
                    more_not_logged = more,
                    "local broker refused: {detail}"
                )
            }
        }
    }

    /// An authentication failure: counted, backed off, reported.
    fn failed(&self, cause: Cause, peer: IpAddr, detail: &str) -> Refusal {
        let wait = self.limits().failed(peer, self.now());
        self.refuse(cause, Some(peer), detail);
        if let Some(tx) = &self.alarm {
            let _ = tx.try_send(peer);
        }
        if wait.is_zero() {
            Refusal::BadCredentials
        } else {
            Refusal::Throttled { retry_after: wait }
        }
    }

    fn account(&self, who: &Identity) -> Result<Account, Cause> {
        match who {
            Identity::Anonymous => Ok(Account::Anonymous),
            Identity::Device(id) => {
                if self.creds.has(id.as_str()) {
                    Ok(Account::Device(id.clone()))
                } else {
                    Err(Cause::Revoked)
                }
            }
            Identity::Service(s) if s == LEGACY_SERVICE && self.settings.legacy.is_some() => {
                Ok(Account::Legacy)
            }
            Identity::Service(s) if s == acl::HOME_ASSISTANT => {
                if self.creds.has(acl::HOME_ASSISTANT) {
                    Ok(Account::HomeAssistant)
                } else {
                    Err(Cause::Revoked)
                }
            }
            Identity::Service(_) => Err(Cause::Revoked),
        }
    }

    fn allowed(
        &self,
        who: &Identity,
        what: &str,
        cause: Cause,
        ok: impl Fn(&Account) -> bool,
    ) -> bool {
        match self.account(who) {
            Ok(a) if ok(&a) => true,
            Ok(_) => {
                self.refuse(
                    cause,
                    None,
                    &format!("{who:?} may not {} {what:?}", verb(cause)),
                );
                false
            }
            Err(c) => {
                self.refuse(
                    c,
                    None,
                    &format!("{who:?}: credential revoked ({} {what:?})", verb(cause)),
                );
                false
            }
        }
    }
}

fn verb(c: Cause) -> &'static str {
    if c == Cause::Subscribe {
        "subscribe to"
    } else {
        "publish to"
    }
}

/// Compares two byte strings in constant time (through HMAC under a
/// one-off key, as ring offers no bare comparison).
fn same(a: &[u8], b: &[u8]) -> bool {
    let Ok(salt) = crate::devauth::secret::salt() else {
        return false;
    };
    let mac = crate::devauth::secret::mac(&salt, b);
    crate::devauth::secret::verify(&salt, &mac, a)
}

impl Gate for DeviceAuth {
    fn accept(&self, peer: IpAddr) -> Result<(), Refusal> {
        let r = self.limits().accept(peer, self.now());
        match r {
            Ok(()) => Ok(()),
            Err(Refused::Throttled { retry_after }) => {
                self.refuse(
                    Cause::Throttled,
                    Some(peer),
                    "backing off after log-in failures",
                );
                Err(Refusal::Throttled { retry_after })
            }
            Err(Refused::TooManyConnections) => {
                self.refuse(
                    Cause::TooManyConnections,
                    Some(peer),
                    "too many connections from one address",
                );
                Err(Refusal::Throttled {
                    retry_after: CAP_RETRY,
                })
            }
        }
    }

    fn connect(
        &self,
        peer: IpAddr,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<Identity, Refusal> {
        let check = self.limits().check(peer, self.now());
        if let Err(Refused::Throttled { retry_after }) = check {
            self.refuse(
                Cause::Throttled,
                Some(peer),
                "backing off after log-in failures",
            );
            return Err(Refusal::Throttled { retry_after });
        }
        let s = &self.settings;
        let who = match username {
            _ if !s.authenticated => Identity::Anonymous,
            None if s.anonymous_ok => Identity::Anonymous,
            None => {
                return Err(self.failed(
                    Cause::Anonymous,
                    peer,
                    &format!("client {client_id:?} gave no user name"),
                ));
            }
            Some(user) => {
                let pass = password.unwrap_or_default();
                if let Some((lu, lp)) = &s.legacy
                    && lu == user
                {
                    if !same(pass, lp.as_bytes()) {
                        return Err(self.failed(
                            Cause::BadPassword,
                            peer,
                            &format!("wrong password for {user:?}"),
                        ));
                    }
                    tracing::info!(%peer, client = client_id, "client logged in with the deprecated shared [local_broker] username: give it a device credential");
                    Identity::Service(LEGACY_SERVICE.into())
                } else if !s.device_credentials {
                    return Err(self.failed(
                        Cause::UnknownUser,
                        peer,
                        &format!("unknown user {user:?}"),
                    ));
                } else {
                    match self.creds.verify(user, pass) {
                        Verdict::Ok(Holder::Device(id)) => Identity::Device(id),
                        Verdict::Ok(Holder::Service(name)) => Identity::Service(name),
                        Verdict::UnknownUser => {
                            return Err(self.failed(
                                Cause::UnknownUser,
                                peer,
                                &format!("unknown user {user:?}"),
                            ));
                        }
                        Verdict::BadPassword => {
                            return Err(self.failed(
                                Cause::BadPassword,
                                peer,
                                &format!("wrong password for {user:?}"),
                            ));
                        }
                    }
                }
            }
        };
        self.limits().succeeded(peer);
        self.stats.logins.fetch_add(1, Ordering::Relaxed);
        Ok(who)
    }

    fn may_publish(&self, who: &Identity, topic: &str) -> bool {
        self.allowed(who, topic, Cause::Publish, |a| {
            self.settings.policy.may_publish(a, topic)
        })
    }

    fn may_subscribe(&self, who: &Identity, filter: &str) -> bool {
        self.allowed(who, filter, Cause::Subscribe, |a| {
            self.settings.policy.may_subscribe(a, filter)
        })
    }

    fn disconnected(&self, peer: IpAddr) {
        self.limits().closed(peer);
    }
}

#[cfg(test)]
mod tests;
