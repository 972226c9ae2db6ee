//! A credential as a QR code, rendered here as SVG (qrcodegen: no
//! dependencies, no unsafe), so the installer's phone or a device's setup
//! app can read it off the screen. The SVG is one `<path>` of unit squares
//! with a quiet zone of 4 modules; it holds no text from outside.

use qrcodegen::{QrCode, QrCodeEcc};

/// The text is too long for a QR code.
#[derive(Debug, thiserror::Error)]
#[error("too much data for a QR code")]
pub struct TooLong;

/// `text` as an SVG image (black modules on white).
pub fn svg(text: &str) -> Result<String, TooLong> {
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).map_err(|_| TooLong)?;
    let border = 4;
    let size = qr.size();
    let dim = size + 2 * border;
    let mut d = String::new();
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                if !d.is_empty() {
                    d.push(' ');
                }
                d.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {dim} {dim}\" \
         width=\"{px}\" height=\"{px}\" shape-rendering=\"crispEdges\" role=\"img\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\
         <path d=\"{d}\" fill=\"#000000\"/></svg>",
        px = dim * 6
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_renders_as_a_self_contained_svg() {
        let s =
            svg(r#"{"username":"pendant","password":"0123456789abcdef0123456789abcdef"}"#).unwrap();
        assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(s.ends_with("</svg>"));
        assert!(!s.contains("pendant"), "the data is only in the modules");
        assert!(s.matches('M').count() > 100);
        assert!(svg(&"x".repeat(5000)).is_err());
    }
}
