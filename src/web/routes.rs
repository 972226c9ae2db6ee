//! The routes, as warp filters: one table of path + method + guards + body
//! per route, composed with `.or()`, and one recovery that turns every
//! rejection into the JSON error shape `{"error", "field"?}`.
//!
//! Order of checks: Host (421, every route but `/metrics`) → for a route
//! that needs a session: session (401, or a redirect to the login for a
//! page) → Origin and CSRF token on state-changing methods (403) → body
//! (413 over the route's limit, 408 when it trickles) → role (403, in the
//! handler) → input (400, in the handler). Handlers never reject: their
//! errors are responses, so a failing handler cannot fall through to
//! another route. Every response gets the security headers.
//!
//! Rejections, most specific first when several routes were tried:
//! [`WrongHost`] → [`Refused`] (a route matched but a check failed) →
//! [`NoSession`] → anything else is 404 "no such API route".

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::path::FullPath;
use warp::{Filter, Rejection, reject};

use super::http::{
    AUTH_BODY_MAX, App, BODY_MAX, Fail, Req, Resp, Who, add_security_headers, check_csrf,
    check_host, check_origin, fail_resp, json_resp, redirect,
};
use super::{accounts, api, commissioning, credentials, pages, rules_page, system, uplinks};

/// A body must arrive completely within this long.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The client's address, put into each request's extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The `Host` header names a host this gateway does not answer to.
#[derive(Debug)]
pub struct WrongHost(Fail);
/// A route matched, but one of its checks failed.
#[derive(Debug)]
pub struct Refused(Fail);
/// No valid session: 401, or a redirect for a page.
#[derive(Debug)]
pub struct NoSession(Option<&'static str>);

impl reject::Reject for WrongHost {}
impl reject::Reject for Refused {}
impl reject::Reject for NoSession {}

type Route = BoxedFilter<(Resp,)>;

/// The whole site: `/metrics` (when given), then the UI behind the Host
/// check, recovered into JSON errors, with the security headers.
pub fn site(app: Arc<App>, metrics: Option<crate::metrics::Metrics>) -> Route {
    let ui = host(app.clone())
        .and(any_of(vec![public(app.clone()), private(app.clone())]).or(fallback(app.clone())))
        .unify()
        .recover(recover)
        .unify();
    let tls = app.tls;
    let ui = warp::path::full()
        .and(ui)
        .map(move |p: FullPath, mut r: Resp| {
            let assets = p.as_str().starts_with("/assets/");
            add_security_headers(&mut r, if assets { "no-cache" } else { "no-store" });
            if tls {
                super::http::add_hsts(&mut r);
            }
            r
        });
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(peer())
        .and(warp::header::headers_cloned())
        .and_then(move |peer: SocketAddr, headers: HeaderMap| {
            let (app, m) = (app.clone(), metrics.clone());
            async move {
                match m {
                    Some(m) => Ok(m.respond(peer, app.who(&headers).is_some())),
                    None => Err(reject::not_found()),
                }
            }
        });
    metrics.or(ui).unify().boxed()
}

fn any_of(routes: Vec<Route>) -> Route {
    let mut it = routes.into_iter();
    let first = it
        .next()
        .unwrap_or_else(|| warp::any().and_then(nothing).boxed());
    it.fold(first, |acc, r| acc.or(r).unify().boxed())
}

async fn nothing() -> Result<Resp, Rejection> {
    Err(reject::not_found())
}

async fn recover(err: Rejection) -> Result<Resp, Infallible> {
    let fail = if let Some(WrongHost(f)) = err.find() {
        f
    } else if let Some(Refused(f)) = err.find() {
        f
    } else if let Some(NoSession(to)) = err.find() {
        return Ok(match to {
            Some(to) => redirect(to),
            None => fail_resp(Fail::new(
                StatusCode::UNAUTHORIZED,
                "log in first (no valid session)",
            )),
        });
    } else {
        return Ok(fail_resp(Fail::new(
            StatusCode::NOT_FOUND,
            "no such API route",
        )));
    };
    Ok(fail_resp(Fail {
        status: fail.status,
        message: fail.message.clone(),
        field: fail.field.clone(),
    }))
}

fn with_app(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone {
    warp::any().map(move || app.clone())
}

fn peer() -> impl Filter<Extract = (SocketAddr,), Error = Rejection> + Clone {
    warp::ext::get::<Peer>().map(|Peer(p)| p)
}

fn refuse(f: Fail) -> Rejection {
    reject::custom(Refused(f))
}

/// Refuses a `Host` this gateway does not answer to (DNS rebinding).
fn host(app: Arc<App>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("host")
        .and_then(move |h: Option<String>| {
            let r = check_host(&app, h.as_deref()).map_err(|f| reject::custom(WrongHost(f)));
            async move { r }
        })
        .untuple_one()
}

/// The session, then Origin + CSRF token on a state-changing method.
fn authed(app: Arc<App>) -> impl Filter<Extract = (Arc<App>, Who), Error = Rejection> + Clone {
    with_app(app)
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and_then(
            |app: Arc<App>, m: Method, path: FullPath, headers: HeaderMap| async move {
                let Some(who) = app.who(&headers) else {
                    let to = if m == Method::GET && pages::is_page(path.as_str()) {
                        Some(if app.setup_needed().await {
                            "/setup"
                        } else {
                            "/login"
                        })
                    } else {
                        None
                    };
                    return Err(reject::custom(NoSession(to)));
                };
                if !(m == Method::GET || m == Method::HEAD) {
                    check_origin(&app, &headers).map_err(refuse)?;
                    check_csrf(&headers, &who).map_err(refuse)?;
                }
                Ok((app, who))
            },
        )
        .untuple_one()
}

/// The Origin check of the routes open without a session (login CSRF).
fn same_origin(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = Rejection> + Clone {
    with_app(app).and(warp::header::headers_cloned()).and_then(
        |app: Arc<App>, headers: HeaderMap| async move {
            check_origin(&app, &headers).map_err(refuse)?;
            Ok::<_, Rejection>(app)
        },
    )
}

/// The request body, at most `limit` bytes, within [`BODY_TIMEOUT`].
fn body(limit: usize) -> impl Filter<Extract = (Req,), Error = Rejection> + Clone {
    peer()
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and_then(move |peer, headers, s| async move {
            let read = tokio::time::timeout(BODY_TIMEOUT, read_body(s, limit)).await;
            match read.unwrap_or(Err(StatusCode::REQUEST_TIMEOUT)) {
                Ok(body) => Ok(Req {
                    body,
                    peer,
                    headers,
                }),
                Err(status) => {
                    let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
                        format!("request body over {} KiB", limit / 1024)
                    } else {
                        "request body incomplete or too slow".to_string()
                    };
                    Err(refuse(Fail::new(status, msg)))
                }
            }
        })
}

async fn read_body<S, B>(body: S, limit: usize) -> Result<Bytes, StatusCode>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: warp::Buf,
{
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
        while chunk.has_remaining() {
            let c = chunk.chunk();
            if out.len() + c.len() > limit {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
            out.extend_from_slice(c);
            let n = c.len();
            chunk.advance(n);
        }
    }
    Ok(Bytes::from(out))
}

fn done(r: super::http::Result<Resp>) -> Resp {
    r.unwrap_or_else(fail_resp)
}

/// Routes open without a session.
fn public(app: Arc<App>) -> Route {
    let a = || with_app(app.clone());
    let o = || same_origin(app.clone());
    any_of(vec![
        warp::path!("healthz")
            .and(warp::get())
            .map(|| json_resp(StatusCode::OK, &json!({"ok": true})))
            .boxed(),
        warp::path!("assets" / String)
            .and(warp::get())
            .map(|name: String| done(pages::asset(&format!("/assets/{name}"))))
            .boxed(),
        warp::path!("login")
            .and(warp::get())
            .map(|| pages::page("login"))
            .boxed(),
        warp::path!("setup")
            .and(warp::get())
            .and(a())
            .then(|app: Arc<App>| async move {
                if app.setup_needed().await {
                    pages::page("setup")
                } else {
                    redirect("/login")
                }
            })
            .boxed(),
        warp::path!("api" / "v1" / "setup")
            .and(warp::get())
            .and(a())
            .then(|app: Arc<App>| async move {
                let needed = app.setup_needed().await;
                json_resp(StatusCode::OK, &json!({ "needed": needed }))
            })
            .boxed(),
        warp::path!("api" / "v1" / "setup")
            .and(warp::post())
            .and(o())
            .and(body(AUTH_BODY_MAX))
            .then(|app: Arc<App>, req: Req| async move { done(accounts::setup(&app, &req).await) })
            .boxed(),
        warp::path!("api" / "v1" / "login")
            .and(warp::post())
            .and(o())
            .and(body(AUTH_BODY_MAX))
            .then(|app: Arc<App>, req: Req| async move { done(accounts::login(&app, &req).await) })
            .boxed(),
    ])
}

/// Any other request: the session check (401 / redirect), then 404.
fn fallback(app: Arc<App>) -> Route {
    warp::any()
        .and(with_app(app))
        .and(warp::header::headers_cloned())
        .and(warp::method())
        .and(warp::path::full())
        .and_then(
            |app: Arc<App>, headers: HeaderMap, m: Method, path: FullPath| async move {
                if app.who(&headers).is_some() {
                    return Err(reject::not_found());
                }
                let page = m == Method::GET && pages::is_page(path.as_str());
                let to = match (page, app.setup_needed().await) {
                    (false, _) => None,
                    (true, true) => Some("/setup"),
                    (true, false) => Some("/login"),
                };
                Err::<Resp, _>(reject::custom(NoSession(to)))
            },
        )
        .boxed()
}

/// Routes behind a session: the pages and the JSON API.
fn private(app: Arc<App>) -> Route {
    let s = || authed(app.clone());
    let pages = warp::get()
        .and(warp::path::full())
        .and_then(|p: FullPath| async move {
            if pages::is_page(p.as_str()) {
                Ok(p)
            } else {
                Err(reject::not_found())
            }
        })
        .and(s())
        .map(|p: FullPath, _app, _who| pages::page(p.as_str().trim_start_matches('/')))
        .boxed();
    any_of(vec![
        pages,
        accounts_api(&s),
        devices_api(&s),
        alerts_api(&s),
        rules_api(&s),
        system_api(&s),
        credentials_api(&s),
    ])
}

/// Wi-Fi device credentials for the local broker (installers only).
fn credentials_api<S, F>(s: &S) -> Route
where
    S: Fn() -> F,
    F: Filter<Extract = (Arc<App>, Who), Error = Rejection> + Clone + Send + Sync + 'static,
{
    any_of(vec![
        warp::path!("api" / "v1" / "device-credentials")
            .and(warp::get())
            .and(s())
            .then(
                |app: Arc<App>, who: Who| async move { done(credentials::list(&app, &who).await) },
            )
            .boxed(),
        warp::path!("api" / "v1" / "device-credentials")
            .and(warp::post())
            .and(s())
            .and(body(BODY_MAX))
            .then(|app: Arc<App>, who: Who, req: Req| async move {
                done(credentials::create(&app, &req, &who).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "device-credentials" / String)
            .and(warp::delete())
            .and(s())
            .then(|user: String, app: Arc<App>, who: Who| async move {
                done(credentials::revoke(&app, &who, &user).await)
            })
            .boxed(),
    ])
}

/// Session, logout, password, users.
fn accounts_api<S, F>(s: &S) -> Route
where
    S: Fn() -> F,
    F: Filter<Extract = (Arc<App>, Who), Error = Rejection> + Clone + Send + Sync + 'static,
{
    any_of(vec![
        warp::path!("api" / "v1" / "session")
            .and(warp::get())
            .and(s())
            .then(|app: Arc<App>, who: Who| async move { done(api::session(&app, &who).await) })
            .boxed(),
        warp::path!("api" / "v1" / "logout")
            .and(warp::post())
            .and(s())
            .map(|app: Arc<App>, who: Who| done(accounts::logout(&app, &who)))
            .boxed(),
        warp::path!("api" / "v1" / "session" / "password")
            .and(warp::post())
            .and(s())
            .and(body(BODY_MAX))
            .then(|app: Arc<App>, who: Who, req: Req| async move {
                done(accounts::change_password(&app, &req, &who).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "users")
            .and(warp::get())
            .and(s())
            .then(|app: Arc<App>, who: Who| async move { done(accounts::list(&app, &who).await) })
            .boxed(),
        warp::path!("api" / "v1" / "users")
            .and(warp::post())
            .and(s())
            .and(body(BODY_MAX))
            .then(|app: Arc<App>, who: Who, req: Req| async move {
                done(accounts::create(&app, &req, &who).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "users" / String)
            .and(warp::delete())
            .and(s())
            .then(|name: String, app: Arc<App>, who: Who| async move {
                done(accounts::delete(&app, &name, &who).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "audit")
            .and(warp::get())
            .and(s())
            .then(|app: Arc<App>, who: Who| async move { done(api::audit(&app, &who).await) })
            .boxed(),
        warp::path!("api" / "v1" / "openapi.yaml")
            .and(warp::get())
            .and(s())
            .map(|_app, _who| done(api::openapi()))
            .boxed(),
    ])
}

/// Status, devices, pairing, the live stream, uplinks, commissioning.
fn devices_api<S, F>(s: &S) -> Route
where
    S: Fn() -> F,
    F: Filter<Extract = (Arc<App>, Who), Error = Rejection> + Clone + Send + Sync + 'static,
{
    any_of(vec![
        warp::path!("api" / "v1" / "status")
            .and(warp::get())
            .and(s())
            .then(|app: Arc<App>, _who| async move { done(api::status(&app).await) })
            .boxed(),
        warp::path!("api" / "v1" / "devices")
            .and(warp::get())
            .and(s())
            .then(|app: Arc<App>, _who| async move { done(api::devices(&app).await) })
            .boxed(),
        warp::path!("api" / "v1" / "devices" / "permit-join")
            .and(warp::post())
            .and(s())
            .and(body(BODY_MAX))
            .then(|app: Arc<App>, who: Who, req: Req| async move {
                done(api::permit_join(&app, &req, &who).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "devices" / String)
            .and(warp::put())
            .and(s())
            .and(body(BODY_MAX))
            .then(|id: String, app: Arc<App>, who: Who, req: Req| async move {
                done(api::update_device(&app, &req, &who, &id).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "devices" / String / "identify")
            .and(warp::post())
            .and(s())
            .and(body(BODY_MAX))
            .then(|id: String, app: Arc<App>, who: Who, req: Req| async move {
                done(api::identify(&app, &req, &who, &id).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "devices" / String)
            .and(warp::delete())
            .and(s())
            .then(|id: String, app: Arc<App>, who: Who| async move {
                done(api::remove_device(&app, &who, &id).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "events")
            .and(warp::get())
            .and(s())
            .map(|app: Arc<App>, who: Who| api::events(&app, &who))
            .boxed(),
        warp::path!("api" / "v1" / "uplinks")
            .and(warp::get())
            .and(s())
            .map(|app: Arc<App>, _who| done(api::uplinks(&app)))
            .boxed(),
        warp::path!("api" / "v1" / "uplinks" / "settings")
            .and(warp::get())
            .and(s())
            .then(|app: Arc<App>, who: Who| async move { done(uplinks::get(&app, &who).await) })
            .boxed(),
        warp::path!("api" / "v1" / "uplinks" / "settings")
            .and(warp::put())
            .and(s())
            .and(body(BODY_MAX))
            .then(|app: Arc<App>, who: Who, req: Req| async move {
                done(uplinks::save(&app, &req, &who).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "uplinks" / "test")
            .and(warp::post())
            .and(s())
            .and(body(BODY_MAX))
            .then(|app: Arc<App>, who: Who, req: Req| async move {
                done(uplinks::test(&app, &req, &who).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "uplinks" / "rollback")
            .and(warp::post())
            .and(s())
            .then(|app: Arc<App>, who: Who| async move { done(uplinks::rollback(&app, &who).await) })
            .boxed(),
        warp::path!("api" / "v1" / "uplinks" / "restart")
            .and(warp::post())
            .and(s())
            .then(|app: Arc<App>, who: Who| async move { done(uplinks::restart(&app, &who).await) })
            .boxed(),
        warp::path!("api" / "v1" / "uplinks" / "mqtt" / "test")
            .and(warp::post())
            .and(s())
            .then(
                |app: Arc<App>, who: Who| async move { done(system::mqtt_test(&app, &who).await) },
            )
            .boxed(),
        warp::path!("api" / "v1" / "uplinks" / "arc" / "test")
            .and(warp::post())
            .and(s())
            .then(|app: Arc<App>, who: Who| async move { done(system::arc_test(&app, &who).await) })
            .boxed(),
        warp::path!("api" / "v1" / "commissioning")
            .and(warp::get())
            .and(s())
            .then(|app: Arc<App>, _who| async move { done(api::commissioning(&app).await) })
            .boxed(),
        warp::path!("api" / "v1" / "commissioning" / "start")
            .and(warp::post())
            .and(s())
            .then(|app: Arc<App>, who: Who| async move {
                done(commissioning::start(&app, &who).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "commissioning" / "signoff")
            .and(warp::post())
            .and(s())
            .and(body(BODY_MAX))
            .then(|app: Arc<App>, who: Who, req: Req| async move {
                done(commissioning::signoff(&app, &req, &who).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "commissioning" / "arc_test")
            .and(warp::post())
            .and(s())
            .and(body(BODY_MAX))
            .then(|app: Arc<App>, who: Who, req: Req| async move {
                done(commissioning::arc_test(&app, &req, &who).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "commissioning" / "reports")
            .and(warp::get())
            .and(s())
            .then(|app: Arc<App>, _who| async move { done(commissioning::list(&app).await) })
            .boxed(),
    ])
}

/// The alerts list and acknowledgement; the household's mode.
fn alerts_api<S, F>(s: &S) -> Route
where
    S: Fn() -> F,
    F: Filter<Extract = (Arc<App>, Who), Error = Rejection> + Clone + Send + Sync + 'static,
{
    any_of(vec![
        warp::path!("api" / "v1" / "alerts")
            .and(warp::get())
            .and(s())
            .then(|app: Arc<App>, _who| async move { done(api::alerts(&app).await) })
            .boxed(),
        warp::path!("api" / "v1" / "alerts" / String / "ack")
            .and(warp::post())
            .and(s())
            .then(|id: String, app: Arc<App>, who: Who| async move {
                done(api::ack(&app, &who, &id).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "mode")
            .and(warp::post())
            .and(s())
            .and(body(BODY_MAX))
            .then(|app: Arc<App>, who: Who, req: Req| async move {
                done(api::set_mode(&app, &req, &who).await)
            })
            .boxed(),
    ])
}

/// View, edit, try and roll back the rules.
fn rules_api<S, F>(s: &S) -> Route
where
    S: Fn() -> F,
    F: Filter<Extract = (Arc<App>, Who), Error = Rejection> + Clone + Send + Sync + 'static,
{
    any_of(vec![
        warp::path!("api" / "v1" / "rules")
            .and(warp::get())
            .and(s())
            .then(|app: Arc<App>, _who| async move { done(rules_page::get(&app).await) })
            .boxed(),
        warp::path!("api" / "v1" / "rules")
            .and(warp::put())
            .and(s())
            .and(body(BODY_MAX))
            .then(|app: Arc<App>, who: Who, req: Req| async move {
                done(rules_page::put(&app, &req, &who).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "rules" / "try")
            .and(warp::post())
            .and(s())
            .and(body(BODY_MAX))
            .then(|app: Arc<App>, who: Who, req: Req| async move {
                done(rules_page::try_it(&app, &req, &who).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "rules" / "rollback")
            .and(warp::post())
            .and(s())
            .then(|app: Arc<App>, who: Who| async move {
                done(rules_page::rollback(&app, &who).await)
            })
            .boxed(),
    ])
}

/// Backup, restore, factory reset, logs and the OTA upload (streamed).
fn system_api<S, F>(s: &S) -> Route
where
    S: Fn() -> F,
    F: Filter<Extract = (Arc<App>, Who), Error = Rejection> + Clone + Send + Sync + 'static,
{
    any_of(vec![
        warp::path!("api" / "v1" / "system" / "backup")
            .and(warp::get())
            .and(s())
            .then(|app: Arc<App>, who: Who| async move { done(system::backup(&app, &who).await) })
            .boxed(),
        warp::path!("api" / "v1" / "system" / "restore")
            .and(warp::post())
            .and(s())
            .and(body(BODY_MAX))
            .then(|app: Arc<App>, who: Who, req: Req| async move {
                done(system::restore(&app, &req, &who).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "system" / "factory-reset")
            .and(warp::post())
            .and(s())
            .and(body(BODY_MAX))
            .then(|app: Arc<App>, who: Who, req: Req| async move {
                done(system::factory_reset(&app, &req, &who).await)
            })
            .boxed(),
        warp::path!("api" / "v1" / "system" / "logs")
            .and(warp::get())
            .and(s())
            .then(|_app, who: Who| async move { done(system::logs(&who).await) })
            .boxed(),
        // The bundle is streamed to a file by the handler, never buffered.
        warp::path!("api" / "v1" / "system" / "ota")
            .and(warp::post())
            .and(s())
            .and(warp::header::optional::<u64>("content-length"))
            .and(warp::body::stream())
            .then(
                |app: Arc<App>, who: Who, len: Option<u64>, body| async move {
                    done(system::ota_upload(app, who, len, body).await)
                },
            )
            .boxed(),
    ])
}
