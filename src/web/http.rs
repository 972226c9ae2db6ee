//! The web server's shared state ([`App`]), the error shape ([`Fail`]) and
//! the checks the routes in [`super::routes`] are built from: Host (DNS
//! rebinding), session cookie, Origin, CSRF token, role, security headers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use warp::Reply as _;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};

use super::alerts::Alerts;
use super::audit::{AuditLog, Entry};
use super::auth::{Account, Hashed, Role, Session, Sessions, Throttle};
use super::roles::{BackendError, Record, Roles};
use super::validate::Invalid;

pub type Resp = warp::reply::Response;

/// Largest request body accepted (OTA uploads have their own limit).
pub const BODY_MAX: usize = 256 * 1024;
/// Largest body of the routes open without a session (setup, login).
pub const AUTH_BODY_MAX: usize = 16 * 1024;
pub const CSRF_HEADER: &str = "x-csrf-token";

const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
                   form-action 'self'; object-src 'none'";

/// Shared state of the web server.
pub struct App {
    pub roles: Roles,
    /// Installs uploaded bundles (one at a time).
    pub ota: crate::ota::Installer,
    pub tls: bool,
    pub idle: Duration,
    /// Extra accepted `Host` names (see [`host_allowed`]).
    pub hosts: Vec<String>,
    pub data_dir: PathBuf,
    pub accounts: tokio::sync::Mutex<Vec<Account>>,
    pub sessions: Mutex<Sessions>,
    pub throttle: Mutex<Throttle>,
    /// Signs remembered-device cookies (see [`super::throttle`]).
    pub device_key: super::throttle::DeviceKey,
    pub setup_code: Mutex<Option<Hashed>>,
    pub audit: tokio::sync::Mutex<AuditLog>,
    pub alerts: Mutex<Alerts>,
    /// Reading kinds seen per device (from history at start, then live).
    pub kinds: Mutex<
        std::collections::HashMap<
            crate::model::DeviceId,
            std::collections::BTreeSet<crate::model::Kind>,
        >,
    >,
    /// Each device's newest ARC test from the commissioning page.
    pub arc_tests: Mutex<std::collections::BTreeMap<String, super::commissioning::ArcCheck>>,
    /// Live events for SSE clients, already JSON (alerts carry their UI id).
    pub ui: broadcast::Sender<String>,
    /// Hash checked for unknown user names (same cost, never matches).
    pub dummy: Hashed,
    pub shutdown: CancellationToken,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// What a handler with a body gets of its request.
#[derive(Debug)]
pub struct Req {
    pub body: Bytes,
    pub peer: SocketAddr,
    /// The request's headers (the login reads its remembered-device cookie).
    pub headers: HeaderMap,
}

/// The logged-in user of a request.
#[derive(Debug, Clone)]
pub struct Who {
    pub token: String,
    pub session: Session,
}

/// An error response: status, message, optional field.
#[derive(Debug)]
pub struct Fail {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
}

impl Fail {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Fail {
        Fail {
            status,
            message: message.into(),
            field: None,
        }
    }
}

impl From<Invalid> for Fail {
    fn from(e: Invalid) -> Fail {
        Fail {
            status: StatusCode::BAD_REQUEST,
            message: e.to_string(),
            field: Some(e.field),
        }
    }
}

impl From<BackendError> for Fail {
    fn from(e: BackendError) -> Fail {
        let status = match e {
            BackendError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            BackendError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
            BackendError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Fail::new(status, e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Fail>;

pub fn json_resp(status: StatusCode, v: &serde_json::Value) -> Resp {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = warp::http::Response::new(body).into_response();
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn fail_resp(f: Fail) -> Resp {
    let mut v = json!({ "error": f.message });
    if let Some(field) = f.field {
        v["field"] = field.into();
    }
    json_resp(f.status, &v)
}

pub fn redirect(to: &'static str) -> Resp {
    let mut r = warp::http::Response::new(Vec::new()).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    r
}

impl App {
    pub fn cookie_name(&self) -> &'static str {
        // The __Host- prefix pins the cookie to this origin, HTTPS, path /.
        if self.tls {
            "__Host-cb_session"
        } else {
            "cb_session"
        }
    }

    pub fn session_cookie(&self, token: &str) -> String {
        let secure = if self.tls { "; Secure" } else { "" };
        format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.cookie_name(),
            super::auth::SESSION_MAX.as_secs()
        )
    }

    pub fn clear_cookie(&self) -> String {
        let secure = if self.tls { "; Secure" } else { "" };
        format!(
            "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}",
            self.cookie_name()
        )
    }

    /// The remembered-device cookie's name (same prefix rule as the session's).
    pub fn device_cookie_name(&self) -> &'static str {
        if self.tls {
            "__Host-cb_device"
        } else {
            "cb_device"
        }
    }

    /// The `Set-Cookie` value remembering this browser for its account.
    pub fn device_cookie(&self, value: &str) -> String {
        let secure = if self.tls { "; Secure" } else { "" };
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.device_cookie_name(),
            super::throttle::DEVICE_MAX_AGE.as_secs()
        )
    }

    /// The value of cookie `name`, if the request carries it.
    pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    fn token_of(&self, headers: &HeaderMap) -> Option<String> {
        App::cookie(headers, self.cookie_name())
            .map(str::to_string)
            .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    pub fn who(&self, headers: &HeaderMap) -> Option<Who> {
        let token = self.token_of(headers)?;
        let session = self
            .sessions
            .lock()
            .ok()?
            .touch(&token, self.idle, Instant::now())?;
        Some(Who { token, session })
    }

    /// Is this session still valid (without refreshing it)? For SSE.
    pub fn alive(&self, token: &str) -> bool {
        self.sessions
            .lock()
            .is_ok_and(|s| s.alive(token, self.idle, Instant::now()))
    }

    pub async fn setup_needed(&self) -> bool {
        self.accounts.lock().await.is_empty()
    }

    /// Appends to the audit log and persists it.
    pub async fn audit(&self, user: &str, action: &str, detail: String) -> Result<()> {
        let mut log = self.audit.lock().await;
        log.push(Entry {
            at: crate::wall::now(),
            user: user.to_string(),
            action: action.to_string(),
            detail,
        });
        let bytes = log.to_json();
        self.roles
            .state
            .save(Record::Audit, Some(bytes))
            .await
            .map_err(Fail::from)
    }

    pub async fn save_accounts(&self, accounts: &[Account]) -> Result<()> {
        let bytes = serde_json::to_vec(accounts)
            .map_err(|e| Fail::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let value = if accounts.is_empty() {
            None
        } else {
            Some(bytes)
        };
        self.roles
            .state
            .save(Record::Accounts, value)
            .await
            .map_err(Fail::from)
    }
}

/// Is `host` (a `Host` header, maybe with a port) a name this gateway
/// answers to? IP literals, `localhost`, `*.local`, single-label names and
/// the configured extras. Anything else is likely DNS rebinding.
pub fn host_allowed(host: &str, extra: &[String]) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, _)) => return ip.parse::<std::net::Ipv6Addr>().is_ok(),
            None => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
            Some(_) => return false,
            None => host,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    label_ok
        && (name.parse::<std::net::Ipv4Addr>().is_ok()
            || name == "localhost"
            || name.ends_with(".local")
            || !name.contains('.')
            || extra.iter().any(|e| e.eq_ignore_ascii_case(&name)))
}

/// `Origin` must be this server's own origin (scheme + Host).
pub fn check_origin(app: &App, headers: &HeaderMap) -> Result<()> {
    let forbid = |m: &str| Fail::new(StatusCode::FORBIDDEN, m);
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| forbid("missing Origin header (cross-site request refused)"))?;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| forbid("missing Host header"))?;
    let scheme = if app.tls { "https" } else { "http" };
    if origin != format!("{scheme}://{host}") {
        return Err(forbid(
            "Origin does not match this gateway (cross-site request refused)",
        ));
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(forbid("cross-site request refused"));
    }
    Ok(())
}

pub fn check_csrf(headers: &HeaderMap, who: &Who) -> Result<()> {
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Fail::new(StatusCode::FORBIDDEN, "missing X-CSRF-Token header"))?;
    if !super::auth::same(sent, &who.session.csrf) {
        return Err(Fail::new(StatusCode::FORBIDDEN, "wrong X-CSRF-Token"));
    }
    Ok(())
}

pub fn add_security_headers(r: &mut Resp, cache: &'static str) {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, "content-security-policy", CSP);
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    set(h, "x-content-type-options", "nosniff");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(h, "cross-origin-resource-policy", "same-origin");
    set(
        h,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", cache);
    }
}

/// `Strict-Transport-Security` on HTTPS responses: browsers that reached
/// the UI over TLS keep using TLS for its name for a year. (Plain HTTP
/// responses must not carry it; see RFC 6797 §7.2.)
pub fn add_hsts(r: &mut Resp) {
    r.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
}

/// Refuses a request for a host name this gateway does not answer to
/// (DNS rebinding).
pub fn check_host(app: &App, host: Option<&str>) -> Result<()> {
    if host_allowed(host.unwrap_or(""), &app.hosts) {
        Ok(())
    } else {
        Err(Fail::new(
            StatusCode::MISDIRECTED_REQUEST,
            "this gateway does not answer to that host name (add it to web.hosts)",
        ))
    }
}

/// Refuses a carer on installer-only routes.
pub fn installer(who: &Who) -> Result<()> {
    if who.session.role == Role::Installer {
        Ok(())
    } else {
        Err(Fail::new(
            StatusCode::FORBIDDEN,
            "installers only: carers can view status and acknowledge alerts",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn host_check_accepts_lan_names_and_refuses_rebinding_names() {
        let extra = vec!["gw.care.example".to_string()];
        for ok in [
            "192.168.1.20:8443",
            "127.0.0.1",
            "[::1]:8443",
            "localhost:8080",
            "carebridge.local",
            "carebridge",
            "GW.care.example:443",
        ] {
            assert!(host_allowed(ok, &extra), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8443",
            "",
            "a b",
            "[::1",
            "x:y",
            "1.2.3.4.nip.io",
        ] {
            assert!(!host_allowed(bad, &extra), "{bad}");
        }
    }
}
