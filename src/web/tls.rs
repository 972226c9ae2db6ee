//! HTTPS for the UI: the per-device self-signed certificate (made on first
//! boot) or an installer-supplied one, and the rustls server config.
//!
//! The generated key is ECDSA P-256 (rcgen over ring), written 0600 to
//! `<data_dir>/web/key.pem` with the certificate beside it; its SHA-256
//! fingerprint is logged so an installer can compare it with what the
//! browser shows. Only ring is used as the crypto provider. The local
//! broker's TLS listener serves the same certificate ([`unit_identity`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where the generated certificate lives.
pub fn default_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let d = data_dir.join("web");
    (d.join("cert.pem"), d.join("key.pem"))
}

/// SHA-256 of a DER certificate, as `AB:CD:…`.
pub fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Writes `bytes` to `path` readable by the owner only (0600), atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Makes a self-signed certificate for this unit: names `carebridge`,
/// `localhost`, the host name and 127.0.0.1 / ::1.
pub fn generate(cert: &Path, key: &Path) -> anyhow::Result<()> {
    let mut names = vec![
        "carebridge".to_string(),
        "carebridge.local".to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty()
            && h.len() < 64
            && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            names.push(h.to_string());
            names.push(format!("{h}.local"));
        }
    }
    names.sort();
    names.dedup();
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("generating the web UI key")?;
    let mut params =
        rcgen::CertificateParams::new(names).context("building the certificate parameters")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "carebridge gateway");
    // A Pi without an RTC may boot with a wrong clock: keep not_before
    // well in the past.
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2050, 1, 1);
    let c = params
        .self_signed(&key_pair)
        .context("signing the web UI certificate")?;
    write_private(key, key_pair.serialize_pem().as_bytes())?;
    write_private(cert, c.pem().as_bytes())?;
    Ok(())
}

/// The unit's certificate chain, key and the leaf's fingerprint: the
/// installer's files when given, else the per-unit certificate (made on
/// first boot). Shared by the web UI and the local broker's TLS listener.
pub type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String);

/// Loads (or on first boot creates) the certificate and builds the rustls
/// server config. Returns it with the leaf's fingerprint.
pub fn server_config(
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    data_dir: &Path,
) -> anyhow::Result<(Arc<rustls::ServerConfig>, String)> {
    let (chain, key, fp) = unit_identity(cert_file, key_file, data_dir)?;
    let mut cfg = rustls_config(chain, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), fp))
}

/// A rustls server config over ring for a chain and key.
pub fn rustls_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("web certificate and key do not match")
}

/// Loads (or on first boot creates) the unit's certificate ([`Identity`]).
pub fn unit_identity(
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    data_dir: &Path,
) -> anyhow::Result<Identity> {
    let (cert, key) = match (cert_file, key_file) {
        (Some(c), Some(k)) => (c.to_path_buf(), k.to_path_buf()),
        _ => {
            let (c, k) = default_paths(data_dir);
            if !c.exists() || !k.exists() {
                generate(&c, &k)?;
                tracing::info!(cert = %c.display(), "generated the web UI certificate for this unit");
            }
            // For the device label / installer sheet, beside the setup code.
            if let Ok(pem) = std::fs::read(&c)
                && let Some(Ok(der)) = CertificateDer::pem_slice_iter(&pem).next()
            {
                let _ = std::fs::write(
                    c.with_file_name("cert.sha256"),
                    format!("{}\n", fingerprint(&der)),
                );
            }
            (c, k)
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .with_context(|| format!("web.cert_file {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("web.cert_file {}: bad PEM", cert.display()))?;
    let first = chain
        .first()
        .with_context(|| format!("web.cert_file {}: no certificate", cert.display()))?;
    let fp = fingerprint(first);
    let key = PrivateKeyDer::from_pem_file(&key)
        .with_context(|| format!("web.key_file {}: no usable private key", key.display()))?;
    Ok((chain, key, fp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn first_boot_generates_a_private_key_and_reuses_it_afterwards() {
        let dir = tempfile::tempdir().unwrap();
        let (_, fp1) = server_config(None, None, dir.path()).unwrap();
        let (c, k) = default_paths(dir.path());
        let mode = std::fs::metadata(&k).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            std::fs::read_to_string(&c)
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        let (_, fp2) = server_config(None, None, dir.path()).unwrap();
        assert_eq!(fp1, fp2, "same certificate on the next boot");
        assert_eq!(fp1.len(), 32 * 3 - 1);
        let written = std::fs::read_to_string(dir.path().join("web/cert.sha256")).unwrap();
        assert_eq!(written.trim(), fp1);
    }

    #[test]
    fn mismatched_or_missing_files_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let e = server_config(
            Some(&dir.path().join("nope.pem")),
            Some(&dir.path().join("k")),
            dir.path(),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("web.cert_file"), "{e:#}");
    }
}
