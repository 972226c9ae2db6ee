//! `carebridge provision`: what the care organisation runs when it flashes
//! or provisions a unit, before the unit first starts. It makes (or reuses)
//! the one-time setup code (`<data_dir>/setup-code`, 0600: the web server
//! takes it from there on its first start) and the web UI's certificate
//! (`<data_dir>/web/cert.pem` unless `[web] cert_file` is set), then writes
//! a printable label — gateway id, setup code, certificate fingerprint and a
//! QR code of the three — as a self-contained HTML page (print it, or the
//! browser's "save as PDF"). The console path (HDMI/serial banner from the
//! image's `carebridge-console-info`) is unchanged.
//!
//! The label holds the setup code: treat it like a key until the unit is
//! set up (the code is single-use; after setup it opens nothing).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::Config;

/// What went onto the label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub gateway: String,
    pub setup_code: String,
    /// SHA-256 of the web UI's certificate, `AB:CD:…`.
    pub fingerprint: String,
    /// Where the label was written.
    pub path: PathBuf,
}

/// The text inside the QR code (one line a phone's camera shows as is).
pub fn qr_text(gateway: &str, code: &str, fingerprint: &str) -> String {
    format!("carebridge gateway={gateway} setup={code} sha256={fingerprint}")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The label page: one card, sized for a 62 mm label printer or A4.
pub fn label_html(gateway: &str, code: &str, fingerprint: &str) -> anyhow::Result<String> {
    let qr =
        crate::devauth::qr::svg(&qr_text(gateway, code, fingerprint)).context("label: QR code")?;
    let (g, c, f) = (escape(gateway), escape(code), escape(fingerprint));
    Ok(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>carebridge {g}: setup label</title><style>\
body{{font:14px/1.35 system-ui,sans-serif;margin:0;padding:8mm}}\
.label{{border:1px solid #000;border-radius:3mm;padding:4mm;width:90mm}}\
h1{{font-size:16px;margin:0 0 2mm}}.code{{font:bold 20px ui-monospace,monospace;letter-spacing:.05em}}\
.fp{{font:9px ui-monospace,monospace;word-break:break-all}}svg{{width:38mm;height:38mm;float:right;margin-left:2mm}}\
@media print{{body{{padding:0}}}}</style></head><body>\n\
<div class=\"label\">{qr}\n<h1>carebridge gateway</h1>\n\
<div>Gateway id</div><div class=\"code\" id=\"gateway\">{g}</div>\n\
<div>Setup code (one-time)</div><div class=\"code\" id=\"setup-code\">{c}</div>\n\
<div>Web UI certificate SHA-256</div><div class=\"fp\" id=\"fingerprint\">{f}</div>\n\
<p>Open https://carebridge.local:8443/ on the home's network, check the certificate \
fingerprint, and enter the setup code to create the installer account.</p></div>\n</body></html>\n"
    ))
}

/// Makes or reuses the setup code and the certificate of the unit whose
/// configuration is `cfg`, and writes the label to `out` (default
/// `<data_dir>/label.html`).
pub fn provision(cfg: &Config, out: Option<&Path>) -> anyhow::Result<Label> {
    let data = &cfg.gateway.data_dir;
    std::fs::create_dir_all(data)
        .with_context(|| format!("gateway.data_dir {}", data.display()))?;
    let code_file = data.join("setup-code");
    let code = match std::fs::read_to_string(&code_file) {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => {
            let c = crate::web::auth::new_setup_code()
                .map_err(|_| anyhow::anyhow!("no system randomness for the setup code"))?;
            crate::web::tls::write_private(&code_file, format!("{c}\n").as_bytes())?;
            c
        }
    };
    let web = cfg.web.clone().unwrap_or_default();
    let (_, _, fingerprint) =
        crate::web::tls::unit_identity(web.cert_file.as_deref(), web.key_file.as_deref(), data)?;
    let path = out.map_or_else(|| data.join("label.html"), Path::to_path_buf);
    let html = label_html(&cfg.gateway.id, &code, &fingerprint)?;
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))?;
    Ok(Label {
        gateway: cfg.gateway.id.clone(),
        setup_code: code,
        fingerprint,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisioning_writes_a_label_with_the_code_the_server_will_use_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.gateway.id = "home-0042".into();
        cfg.gateway.data_dir = dir.path().to_path_buf();
        let a = provision(&cfg, None).unwrap();
        let html = std::fs::read_to_string(&a.path).unwrap();
        assert!(html.contains(&a.setup_code) && html.contains("home-0042"));
        assert!(html.contains(&a.fingerprint) && html.contains("<svg"));
        // The file the web server reads on its first start, private.
        let on_disk = std::fs::read_to_string(dir.path().join("setup-code")).unwrap();
        assert_eq!(on_disk.trim(), a.setup_code);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("setup-code"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // The certificate fingerprint the unit's web UI will present.
        let fp = std::fs::read_to_string(dir.path().join("web/cert.sha256")).unwrap();
        assert_eq!(fp.trim(), a.fingerprint);
        // Run again (a reprint): the same code and certificate.
        let b = provision(&cfg, Some(&dir.path().join("again.html"))).unwrap();
        assert_eq!((b.setup_code, b.fingerprint), (a.setup_code, a.fingerprint));
    }

    #[test]
    fn label_text_is_escaped() {
        let h = label_html("a<b", "CODE", "AB").unwrap();
        assert!(h.contains("a&lt;b") && !h.contains("a<b"));
    }
}
