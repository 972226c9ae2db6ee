//! The HTML pages and static assets, embedded in the binary (no internet
//! needed). Every page is the same small shell; `app.js` (the shared part
//! and one file per page under `assets/pages/`) renders the page
//! named in `<body data-page=…>` from the JSON API. No inline scripts or
//! styles, so the CSP can stay `default-src 'self'`.

use warp::Reply as _;
use warp::http::{HeaderValue, StatusCode, header};

use super::http::{Fail, Resp, Result};

const SHELL: &str = include_str!("assets/page.html");
/// `app.js` is served as one file (one request, one cache entry): the shared
/// helpers and start-up, then one file per page (`assets/pages/`), each
/// adding its renderer to `pages`. Add a page's file here.
const APP_JS: &str = concat!(
    include_str!("assets/app.js"),
    include_str!("assets/pages/login.js"),
    include_str!("assets/pages/alerts.js"),
    include_str!("assets/pages/devices.js"),
    include_str!("assets/pages/rules.js"),
    include_str!("assets/pages/uplinks.js"),
    include_str!("assets/pages/system.js"),
    include_str!("assets/pages/commissioning.js"),
    include_str!("assets/pages/credentials.js"),
    include_str!("assets/pages/mode.js"),
);
const STYLE_CSS: &str = include_str!("assets/style.css");
const ICON_SVG: &str = include_str!("assets/icon.svg");
pub const OPENAPI: &str = include_str!("openapi.yaml");

/// Pages behind a session, with their titles.
const PAGES: &[(&str, &str)] = &[
    ("", "Overview"),
    ("devices", "Devices"),
    ("live", "Live"),
    ("alerts", "Alerts"),
    ("rules", "Rules"),
    ("uplinks", "Uplinks"),
    ("system", "System"),
    ("commissioning", "Commissioning report"),
    ("credentials", "Wi-Fi device credentials"),
];

pub fn is_page(path: &str) -> bool {
    let p = path.trim_start_matches('/');
    PAGES.iter().any(|(name, _)| *name == p)
}

fn title(page: &str) -> &'static str {
    match page {
        "login" => "Log in",
        "setup" => "First-time setup",
        _ => PAGES
            .iter()
            .find(|(n, _)| *n == page)
            .map(|(_, t)| *t)
            .unwrap_or("carebridge"),
    }
}

/// The shell for `page` ("" is the overview).
pub fn page(page: &str) -> Resp {
    let name = if page.is_empty() { "overview" } else { page };
    let html = SHELL
        .replace("{{PAGE}}", name)
        .replace("{{TITLE}}", title(page));
    typed(html.into_bytes(), "text/html; charset=utf-8")
}

fn typed(body: Vec<u8>, ctype: &'static str) -> Resp {
    let mut r = warp::http::Response::new(body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

pub fn asset(path: &str) -> Result<Resp> {
    let (body, ctype) = match path {
        "/assets/app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "/assets/style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
        "/assets/icon.svg" => (ICON_SVG, "image/svg+xml"),
        _ => return Err(Fail::new(StatusCode::NOT_FOUND, "no such asset")),
    };
    Ok(typed(body.as_bytes().to_vec(), ctype))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_has_no_inline_script_or_style_and_assets_fit_the_budget() {
        assert!(!SHELL.contains("<script>"));
        assert!(!SHELL.contains("style="));
        assert!(!SHELL.contains("<style"));
        let weight = SHELL.len() + APP_JS.len() + STYLE_CSS.len() + ICON_SVG.len();
        assert!(weight < 150 * 1024, "page weight {weight} bytes");
    }

    #[test]
    fn every_page_renders_with_its_name_and_title() {
        for (name, t) in PAGES {
            let html = SHELL
                .replace("{{PAGE}}", name)
                .replace("{{TITLE}}", title(name));
            assert!(html.contains(t));
            assert!(!html.contains("{{"));
        }
    }
}
