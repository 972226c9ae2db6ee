//! Setup, login, logout and user management.
//!
//! The first account can only be made with the unit's one-time setup code
//! and is always an installer; once any account exists, setup is refused.
//! Logins are throttled with growing delays, never locked out, and a
//! browser that logged in before is remembered by a signed cookie so
//! strangers guessing its account do not slow it ([`super::throttle`]).
//! Every attempt is counted before its password is checked. Hashing runs
//! on the blocking pool.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use warp::http::{HeaderValue, StatusCode, header};

use super::auth::{Account, Hashed, Role};
use super::http::{App, Fail, Req, Resp, Result, Who, installer, json_resp};
use super::throttle::Attempt;
use super::validate::{self, Obj};

async fn hash(secret: String) -> Result<Hashed> {
    tokio::task::spawn_blocking(move || Hashed::new(&secret))
        .await
        .ok()
        .and_then(|r| r.ok())
        .ok_or_else(|| Fail::new(StatusCode::INTERNAL_SERVER_ERROR, "hashing failed"))
}

async fn verify(h: Hashed, secret: String) -> bool {
    tokio::task::spawn_blocking(move || h.verify(&secret))
        .await
        .unwrap_or(false)
}

fn throttled(wait: std::time::Duration) -> Fail {
    Fail::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "too many failed attempts: try again in {} s",
            // Rounded up: waiting the number shown is always enough.
            wait.as_millis().div_ceil(1000).max(1)
        ),
    )
}

/// Admits and counts an attempt for `user` (see [`super::throttle`]);
/// `device` is the request's remembered-device cookie when it is valid for
/// `user`.
fn begin(app: &App, req: &Req, user: &str, device: Option<[u8; 16]>) -> Result<Attempt> {
    let mut th = app
        .throttle
        .lock()
        .map_err(|_| Fail::new(StatusCode::INTERNAL_SERVER_ERROR, "lock poisoned"))?;
    th.begin(req.peer.ip(), user, device, Instant::now())
        .map_err(throttled)
}

fn succeeded(app: &App, a: Attempt) {
    if let Ok(mut th) = app.throttle.lock() {
        th.succeeded(a);
    }
}

/// A failed attempt (already counted): its delay starts now; logged, and
/// audited once when the
/// account's failures reach [`super::throttle::REPORT_AT`].
async fn record_failure(app: &App, req: &Req, a: &Attempt) {
    if let Ok(mut th) = app.throttle.lock() {
        th.failed(a, Instant::now());
    }
    if a.account_failures == super::throttle::REPORT_AT {
        tracing::warn!(peer = %req.peer.ip(), user = %a.user(), "web log-in: repeated failures (someone may be guessing)");
        let shown: String = a.user().chars().take(32).collect();
        let _ = app
            .audit(
                "-",
                "auth.guessing",
                format!(
                    "{} failed log-ins for {shown:?} (last from {}): attempts are slowed, \
                     browsers that logged in before are not",
                    a.account_failures,
                    req.peer.ip()
                ),
            )
            .await;
    }
}

/// The request's remembered-device cookie, when it is valid for `user`.
fn remembered(app: &App, req: &Req, user: &str) -> Option<[u8; 16]> {
    App::cookie(&req.headers, app.device_cookie_name()).and_then(|v| app.device_key.check(v, user))
}

fn session_resp(app: &App, status: StatusCode, user: &str, role: Role) -> Result<Resp> {
    let (token, csrf) = app
        .sessions
        .lock()
        .map_err(|_| Fail::new(StatusCode::INTERNAL_SERVER_ERROR, "lock poisoned"))?
        .create(user, role, Instant::now())
        .map_err(|_| Fail::new(StatusCode::INTERNAL_SERVER_ERROR, "no randomness"))?;
    let mut r = json_resp(
        status,
        &json!({"user": user, "role": role.as_str(), "csrf": csrf}),
    );
    if let Ok(v) = HeaderValue::from_str(&app.session_cookie(&token)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    // Remember this browser for this account (a fresh id at every log-in).
    if let Some(v) = app
        .device_key
        .issue(user)
        .ok()
        .and_then(|d| HeaderValue::from_str(&app.device_cookie(&d)).ok())
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// `POST /api/v1/setup {code, username, password}`: the first installer.
pub async fn setup(app: &Arc<App>, req: &Req) -> Result<Resp> {
    let o = Obj::parse(&req.body, &["code", "username", "password"])?;
    let code = o.str("code")?;
    let user = validate::word("username", o.str("username")?, 32)?;
    let password = o.str("password")?;
    validate::password_for("password", password, &user)?;
    if code.len() > 64 {
        return Err(validate::Invalid::new("code", "must be at most 64 characters").into());
    }
    // Hold the accounts lock across the check so two racing setups cannot
    // both create an installer.
    let mut accounts = app.accounts.lock().await;
    if !accounts.is_empty() {
        return Err(Fail::new(
            StatusCode::CONFLICT,
            "setup is already done: log in instead",
        ));
    }
    let attempt = begin(app, req, "setup", None)?;
    let expected = app.setup_code.lock().ok().and_then(|c| c.clone());
    let ok = match expected {
        Some(h) => verify(h, super::auth::normalize_code(code)).await,
        None => false,
    };
    if !ok {
        record_failure(app, req, &attempt).await;
        return Err(Fail {
            status: StatusCode::FORBIDDEN,
            message: "code: wrong setup code (see the label or <data_dir>/setup-code)".into(),
            field: Some("code".into()),
        });
    }
    let account = Account {
        name: user.clone(),
        role: Role::Installer,
        password: hash(password.to_string()).await?,
        created: crate::wall::now(),
    };
    accounts.push(account);
    app.save_accounts(&accounts).await?;
    drop(accounts);
    succeeded(app, attempt);
    app.audit(
        &user,
        "setup.complete",
        format!("first installer account {user:?} created with the setup code"),
    )
    .await?;
    session_resp(app, StatusCode::CREATED, &user, Role::Installer)
}

/// `POST /api/v1/login {username, password}`.
pub async fn login(app: &Arc<App>, req: &Req) -> Result<Resp> {
    let o = Obj::parse(&req.body, &["username", "password"])?;
    let user = o.str("username")?;
    let password = o.str("password")?;
    if user.len() > 64 || password.len() > 256 {
        return Err(Fail::new(
            StatusCode::UNAUTHORIZED,
            "wrong user name or password",
        ));
    }
    let attempt = begin(app, req, user, remembered(app, req, user))?;
    let found = app
        .accounts
        .lock()
        .await
        .iter()
        .find(|a| a.name == user)
        .map(|a| (a.password.clone(), a.role));
    // Hash even for unknown users, so timing does not reveal names.
    let (h, role) = match found {
        Some((h, role)) => (h, Some(role)),
        None => (app.dummy.clone(), None),
    };
    let ok = verify(h, password.to_string()).await && role.is_some();
    match role {
        Some(role) if ok => {
            succeeded(app, attempt);
            tracing::info!(user, peer = %req.peer.ip(), "web login");
            session_resp(app, StatusCode::OK, user, role)
        }
        _ => {
            record_failure(app, req, &attempt).await;
            tracing::info!(peer = %req.peer.ip(), "web login failed");
            Err(Fail::new(
                StatusCode::UNAUTHORIZED,
                "wrong user name or password",
            ))
        }
    }
}

/// `POST /api/v1/logout`.
pub fn logout(app: &App, who: &Who) -> Result<Resp> {
    if let Ok(mut s) = app.sessions.lock() {
        s.remove(&who.token);
    }
    let mut r = json_resp(StatusCode::OK, &json!({"ok": true}));
    if let Ok(v) = HeaderValue::from_str(&app.clear_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// `GET /api/v1/users` (installer).
pub async fn list(app: &App, who: &Who) -> Result<Resp> {
    installer(who)?;
    let users: Vec<_> = app
        .accounts
        .lock()
        .await
        .iter()
        .map(|a| json!({"name": a.name, "role": a.role, "created": a.created}))
        .collect();
    Ok(json_resp(StatusCode::OK, &json!({ "users": users })))
}

/// `POST /api/v1/users {name, role, password}` (installer).
pub async fn create(app: &App, req: &Req, who: &Who) -> Result<Resp> {
    installer(who)?;
    let o = Obj::parse(&req.body, &["name", "role", "password"])?;
    let name = validate::word("name", o.str("name")?, 32)?;
    let role = match o.str("role")? {
        "installer" => Role::Installer,
        "carer" => Role::Carer,
        _ => return Err(validate::Invalid::new("role", "must be installer or carer").into()),
    };
    let password = o.str("password")?;
    validate::password_for("password", password, &name)?;
    let hashed = hash(password.to_string()).await?;
    let mut accounts = app.accounts.lock().await;
    if accounts.iter().any(|a| a.name == name) {
        return Err(Fail {
            status: StatusCode::CONFLICT,
            message: format!("name: a user called {name:?} already exists"),
            field: Some("name".into()),
        });
    }
    if accounts.len() >= 64 {
        return Err(Fail::new(StatusCode::CONFLICT, "at most 64 accounts"));
    }
    accounts.push(Account {
        name: name.clone(),
        role,
        password: hashed,
        created: crate::wall::now(),
    });
    app.save_accounts(&accounts).await?;
    drop(accounts);
    app.audit(
        &who.session.user,
        "user.create",
        format!("created {} account {name:?}", role.as_str()),
    )
    .await?;
    Ok(json_resp(
        StatusCode::CREATED,
        &json!({"name": name, "role": role}),
    ))
}

/// `DELETE /api/v1/users/{name}` (installer; not yourself).
pub async fn delete(app: &App, name: &str, who: &Who) -> Result<Resp> {
    installer(who)?;
    let name = validate::word("name", name, 32)?;
    if name == who.session.user {
        return Err(Fail::new(
            StatusCode::CONFLICT,
            "you cannot delete your own account",
        ));
    }
    let mut accounts = app.accounts.lock().await;
    let before = accounts.len();
    accounts.retain(|a| a.name != name);
    if accounts.len() == before {
        return Err(Fail::new(
            StatusCode::NOT_FOUND,
            format!("no user {name:?}"),
        ));
    }
    app.save_accounts(&accounts).await?;
    drop(accounts);
    if let Ok(mut s) = app.sessions.lock() {
        s.remove_user(&name);
    }
    app.audit(
        &who.session.user,
        "user.delete",
        format!("deleted account {name:?}"),
    )
    .await?;
    Ok(json_resp(StatusCode::OK, &json!({"ok": true})))
}

/// `POST /api/v1/session/password {current, new}`: change your own
/// password; your other sessions end.
pub async fn change_password(app: &App, req: &Req, who: &Who) -> Result<Resp> {
    let o = Obj::parse(&req.body, &["current", "new"])?;
    let current = o.str("current")?;
    let new = o.str("new")?;
    validate::password_for("new", new, &who.session.user)?;
    if current.len() > 256 {
        return Err(validate::Invalid::new("current", "is wrong").into());
    }
    let user = who.session.user.clone();
    let attempt = begin(app, req, &user, remembered(app, req, &user))?;
    let old = app
        .accounts
        .lock()
        .await
        .iter()
        .find(|a| a.name == user)
        .map(|a| a.password.clone())
        .ok_or_else(|| Fail::new(StatusCode::NOT_FOUND, "your account no longer exists"))?;
    if !verify(old, current.to_string()).await {
        record_failure(app, req, &attempt).await;
        return Err(validate::Invalid::new("current", "is wrong").into());
    }
    succeeded(app, attempt);
    let hashed = hash(new.to_string()).await?;
    {
        let mut accounts = app.accounts.lock().await;
        if let Some(a) = accounts.iter_mut().find(|a| a.name == user) {
            a.password = hashed;
        }
        app.save_accounts(&accounts).await?;
    }
    if let Ok(mut s) = app.sessions.lock() {
        let keep = s.touch(&who.token, app.idle, Instant::now());
        s.remove_user(&user);
        if let Some(k) = keep {
            s.restore(&who.token, k);
        }
    }
    app.audit(&user, "user.password", "changed own password".into())
        .await?;
    Ok(json_resp(StatusCode::OK, &json!({"ok": true})))
}
