//! Setting the uplink up from its configuration: the broker URL, client
//! id, credentials and TLS material read from the files the config names
//! ([`Prepared`]), with errors that name the key ([`SetupError`]).

use std::path::Path;
use std::sync::Arc;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};

use crate::config::{BrokerUrl, MqttUplinkConfig};

/// Why the uplink could not be set up (bad files named by their key).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("uplink.mqtt.{0}")]
    Url(String),
    #[error("{key} {path}: {reason}")]
    File {
        key: &'static str,
        path: String,
        reason: String,
    },
    #[error("uplink.mqtt TLS setup: {0}")]
    Tls(String),
}

/// Everything the uplink needs, with secrets and certificates already read.
#[derive(Clone)]
pub struct Prepared {
    pub(super) cfg: MqttUplinkConfig,
    pub(super) gateway: String,
    /// The first node (the connection test's).
    pub(super) url: BrokerUrl,
    /// Every configured URL, in order ([`super::nodes`] expands names).
    pub(super) urls: Vec<BrokerUrl>,
    pub(super) password: Option<String>,
    pub(super) tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("url", &self.url)
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// Reads the password, CA and client certificate files named in the
    /// config and builds the TLS configuration (ring provider only).
    pub fn new(cfg: &MqttUplinkConfig, gateway: &str) -> Result<Prepared, SetupError> {
        let urls = cfg.url.parse_all().map_err(|(i, e)| {
            if cfg.url.as_slice().len() > 1 {
                SetupError::Url(format!("url[{i}]: {e}"))
            } else {
                SetupError::Url(format!("url: {e}"))
            }
        })?;
        let url = urls
            .first()
            .cloned()
            .ok_or_else(|| SetupError::Url("url: no broker URL".into()))?;
        let password = match &cfg.password_file {
            Some(p) => Some(read_secret("uplink.mqtt.password_file", p)?),
            None => None,
        };
        let tls = if url.tls {
            Some(Arc::new(tls_config(cfg)?))
        } else {
            None
        };
        Ok(Prepared {
            cfg: cfg.clone(),
            gateway: gateway.to_string(),
            url,
            urls,
            password,
            tls,
        })
    }

    pub(super) fn topic(&self, sub: &str) -> String {
        format!("{}/{}/{}", self.cfg.topic_prefix, self.gateway, sub)
    }

    /// Options for a one-shot connection test (the web UI): the same broker,
    /// TLS and credentials, but its own client id so the live session is not
    /// taken over, and no last will.
    pub fn probe_options(&self, client_id: &str) -> MqttOptions {
        let mut o = MqttOptions::new(client_id, self.url.host.clone(), self.url.port);
        o.set_keep_alive(self.cfg.keepalive.0);
        o.set_clean_session(true);
        if let Some(user) = &self.cfg.username {
            o.set_credentials(user.clone(), self.password.clone().unwrap_or_default());
        }
        if let Some(tls) = &self.tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls.clone(),
            )));
        }
        o
    }
}

fn read_file(key: &'static str, path: &Path) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|e| SetupError::File {
        key,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Reads a secret file: the first line, without its line ending.
pub fn read_secret(key: &'static str, path: &Path) -> Result<String, SetupError> {
    let bytes = read_file(key, path)?;
    let text = String::from_utf8(bytes).map_err(|_| SetupError::File {
        key,
        path: path.display().to_string(),
        reason: "is not UTF-8 text".into(),
    })?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(SetupError::File {
            key,
            path: path.display().to_string(),
            reason: "is empty".into(),
        });
    }
    Ok(line)
}

fn tls_config(cfg: &MqttUplinkConfig) -> Result<rustls::ClientConfig, SetupError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";
    let (ca_key, ca_path) = match &cfg.ca_file {
        Some(p) => ("uplink.mqtt.ca_file", p.clone()),
        None => ("default CA bundle", SYSTEM_CAS.into()),
    };
    let ca_pem = read_file("uplink.mqtt.ca_file", &ca_path)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca_pem) {
        let cert = cert.map_err(|e| SetupError::File {
            key: "uplink.mqtt.ca_file",
            path: ca_path.display().to_string(),
            reason: format!("bad PEM: {e}"),
        })?;
        roots.add(cert).map_err(|e| SetupError::File {
            key: "uplink.mqtt.ca_file",
            path: ca_path.display().to_string(),
            reason: format!("unusable certificate: {e}"),
        })?;
    }
    if roots.is_empty() {
        return Err(SetupError::File {
            key: "uplink.mqtt.ca_file",
            path: format!("{} ({ca_key})", ca_path.display()),
            reason: "holds no certificate".into(),
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    match (&cfg.cert_file, &cfg.key_file) {
        (Some(c), Some(k)) => {
            let cert_pem = read_file("uplink.mqtt.cert_file", c)?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<_, _>>()
                .map_err(|e| SetupError::File {
                    key: "uplink.mqtt.cert_file",
                    path: c.display().to_string(),
                    reason: format!("bad PEM: {e}"),
                })?;
            let key_pem = read_file("uplink.mqtt.key_file", k)?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| SetupError::File {
                key: "uplink.mqtt.key_file",
                path: k.display().to_string(),
                reason: format!("no usable private key: {e}"),
            })?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| SetupError::Tls(format!("client certificate: {e}")))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}
