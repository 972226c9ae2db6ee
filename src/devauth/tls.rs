//! TLS for the local broker (`[local_broker] tls_listen`): the front door
//! serves the same MQTT over a [`TlsAcceptor`] built from the gateway's
//! per-unit certificate — the one the web UI uses (`[web] cert_file` /
//! `key_file` when given, else made on first boot under `<data_dir>/web/`)
//! — so a device can verify, or pin by its SHA-256 fingerprint (logged at
//! start, shown in the UI and the status document), that it talks to this
//! gateway.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// The acceptor and the certificate's SHA-256 fingerprint (`AB:CD:…`).
pub fn acceptor(cfg: &Config) -> anyhow::Result<(TlsAcceptor, String)> {
    let web = cfg.web.as_ref();
    let (chain, key, fp) = crate::web::tls::unit_identity(
        web.and_then(|w| w.cert_file.as_deref()),
        web.and_then(|w| w.key_file.as_deref()),
        &cfg.gateway.data_dir,
    )?;
    // No ALPN: a client offering protocols we do not list would be refused.
    let sc = crate::web::tls::rustls_config(chain, key)?;
    Ok((TlsAcceptor::from(Arc::new(sc)), fp))
}
