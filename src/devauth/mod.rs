//! Device authentication on the local broker (issue 24): per-device
//! credentials, topic permissions, TLS, per-address limits, and no silent
//! open door on the home network.
//!
//! The front door ([`crate::frontdoor`]) owns the sockets and MQTT and asks
//! [`DeviceAuth`] (a [`crate::frontdoor::gate::Gate`]) who may connect and
//! what they may do. The pure decisions are the core's
//! (`carebridge_core::devauth`, re-exported here: [`acl`], [`limits`],
//! [`alarm`], [`record`]); this module adds the I/O around them:
//! - [`store`]: the credential file (atomic, 0600) and the in-memory set;
//! - [`secret`]: generating secrets and checking them (salted HMAC-SHA256,
//!   constant time; why that is enough is in its header);
//! - [`gate`]: [`DeviceAuth`], its counters and rate-limited log;
//! - [`tls`]: the TLS acceptor from the unit's certificate;
//! - [`qr`]: a credential as an SVG QR code for the web UI;
//! - [`watch`]: the task raising the "someone is guessing" alert.
//!
//! [`prepare`] builds all of it at start-up from the configuration (every
//! failure is an input error: exit 2).

pub use carebridge_core::devauth::{Cause, acl, alarm, limits, record};

pub mod gate;
pub mod qr;
pub mod secret;
pub mod store;
pub mod tls;
pub mod watch;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

pub use gate::{AuthSettings, AuthStats, DeviceAuth, LEGACY_SERVICE};
pub use store::{CredError, CredentialStore, Verdict};

use crate::config::Config;
use crate::status::LocalBrokerStatus;

/// Failures queued for the alarm task before they are dropped.
const ALARM_QUEUE: usize = 1024;

/// The TLS listener's address, acceptor and certificate fingerprint.
pub struct TlsListener {
    pub addr: SocketAddr,
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub sha256: String,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("addr", &self.addr)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// Everything the local broker's access policy needs, built at start-up.
#[derive(Debug)]
pub struct Prepared {
    pub gate: Arc<DeviceAuth>,
    pub tls: Option<TlsListener>,
    /// The alarm task's end of the failure channel (taken when it starts).
    pub failures: Option<mpsc::Receiver<IpAddr>>,
    pub report: Report,
}

/// Builds the gate, the credential store and (with `tls_listen`) the TLS
/// acceptor; logs the certificate's fingerprint and any standing warning.
pub fn prepare(cfg: &Config, legacy_password: Option<String>) -> anyhow::Result<Prepared> {
    let b = cfg.local_broker.clone().unwrap_or_default();
    let creds = CredentialStore::open(&cfg.gateway.data_dir);
    let (tx, failures) = mpsc::channel(ALARM_QUEUE);
    let gate = Arc::new(
        DeviceAuth::new(
            AuthSettings::from_config(cfg, legacy_password),
            creds.clone(),
        )
        .with_alarm(tx),
    );
    let tls = match &b.tls_listen {
        Some(a) => {
            let addr: SocketAddr = a
                .parse()
                .map_err(|_| anyhow::anyhow!("local_broker.tls_listen {a:?} is not an address"))?;
            let (acceptor, sha256) = tls::acceptor(cfg)
                .map_err(|e| e.context("local_broker.tls_listen: the unit's certificate"))?;
            tracing::info!(%addr, sha256 = %sha256, "local broker TLS certificate (devices may pin this fingerprint)");
            Some(TlsListener {
                addr,
                acceptor,
                sha256,
            })
        }
        None => None,
    };
    let report = Report {
        stats: gate.stats(),
        creds,
        cfg: b,
        tls_sha256: tls.as_ref().map(|t| t.sha256.clone()),
    };
    for w in report.warnings() {
        tracing::warn!("{w}");
    }
    Ok(Prepared {
        gate,
        tls,
        failures: Some(failures),
        report,
    })
}

/// Reads the policy's part of the status document.
#[derive(Debug, Clone)]
pub struct Report {
    stats: Arc<AuthStats>,
    creds: CredentialStore,
    cfg: crate::config::LocalBrokerConfig,
    tls_sha256: Option<String>,
}

impl Report {
    /// The standing warnings (the UI shows them on every page).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.cfg.anonymous_on_network() {
            out.push(format!(
                "The local MQTT broker ({}) accepts anyone on the network without a password \
                 (allow_anonymous = true): any device on the home Wi-Fi can send false alarms \
                 and read what the gateway publishes. Give each device its own credential \
                 (device_credentials = true) and remove allow_anonymous.",
                self.cfg.listen
            ));
        }
        if self.cfg.username.is_some() {
            out.push(
                "The local MQTT broker still has the shared [local_broker] username (deprecated): \
                 give each device its own credential and remove username/password_file."
                    .to_string(),
            );
        }
        out
    }

    pub fn status(&self) -> LocalBrokerStatus {
        LocalBrokerStatus {
            anonymous_on_network: self.cfg.anonymous_on_network(),
            warnings: self.warnings(),
            device_credentials: self.cfg.device_credentials,
            credentials: self.creds.len() as u64,
            tls_sha256: self.tls_sha256.clone(),
            logins: self.stats.logins.load(Ordering::Relaxed),
            refused: Cause::ALL
                .iter()
                .map(|c| (c.as_str(), self.stats.refused(*c)))
                .collect(),
        }
    }

    pub fn credentials(&self) -> &CredentialStore {
        &self.creds
    }

    pub fn config(&self) -> &crate::config::LocalBrokerConfig {
        &self.cfg
    }

    pub fn tls_sha256(&self) -> Option<&str> {
        self.tls_sha256.as_deref()
    }
}

/// The web UI's credentials role over the credential store (file writes
/// off the runtime).
impl crate::web::roles::DeviceCredentials for Report {
    fn overview(
        &self,
    ) -> crate::web::roles::BoxFut<
        '_,
        Result<crate::web::roles::CredentialsOverview, crate::web::BackendError>,
    > {
        let o = crate::web::roles::CredentialsOverview {
            credentials: self.creds.list(),
            enabled: self.cfg.device_credentials,
            listen: self.cfg.listen.clone(),
            tls_listen: self.cfg.tls_listen.clone(),
            tls_sha256: self.tls_sha256.clone(),
            warnings: self.warnings(),
        };
        Box::pin(async move { Ok(o) })
    }

    fn create(
        &self,
        holder: record::Holder,
        by: String,
    ) -> crate::web::roles::BoxFut<'_, Result<String, crate::web::roles::CreateError>> {
        use crate::web::roles::CreateError;
        let creds = self.creds.clone();
        Box::pin(async move {
            let r =
                tokio::task::spawn_blocking(move || creds.create(holder, &by, crate::wall::now()))
                    .await
                    .map_err(|e| crate::web::BackendError::Failed(e.to_string()))?;
            match r {
                Ok(secret) => Ok(secret),
                Err(CredError::Exists(u)) => Err(CreateError::Exists(u)),
                Err(e) => Err(CreateError::Backend(crate::web::BackendError::Failed(
                    e.to_string(),
                ))),
            }
        })
    }

    fn revoke(
        &self,
        username: String,
    ) -> crate::web::roles::BoxFut<'_, Result<bool, crate::web::BackendError>> {
        let creds = self.creds.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || creds.revoke(&username))
                .await
                .map_err(|e| crate::web::BackendError::Failed(e.to_string()))?
                .map_err(|e| crate::web::BackendError::Failed(e.to_string()))
        })
    }
}
