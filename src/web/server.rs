//! The listener: binds its own socket (so a busy port is an error, not a
//! panic, and port 0 works), accepts connections (TLS by default, through
//! tokio-rustls, since warp 0.4 has none), and serves each with hyper's
//! connection driver over the warp routes of [`super::routes`]. Also loads
//! the web state (accounts, audit log, setup code) and starts the alerts
//! tracker.
//!
//! Limits: connection slots per address and in all, with a reserve for new
//! addresses and idle connections closed early when slots run short
//! ([`super::slots`]); a TLS handshake or request head (also the next one
//! on a kept-alive connection) must arrive within [`HEAD_TIMEOUT`]
//! (slow-loris).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::WebConfig;
use super::alerts::Alerts;
use super::audit::AuditLog;
use super::auth::{Account, Hashed, Sessions, Throttle};
use super::http::App;
use super::roles::{Record, Roles, WebState};
use super::routes::Peer;
use crate::hub::Live;

pub use super::slots::MAX_CONNECTIONS;
use super::slots::{Slot, Slots};
/// A TLS handshake, and each request head, must arrive within this long.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

type Site = warp::filters::BoxedFilter<(super::http::Resp,)>;

/// Starts the web server. Returns the bound address and the server task
/// (which ends when `shutdown` is cancelled).
///
/// `roles` is anything that turns into [`Roles`]: `Arc<StoreBackend>` in
/// the gateway, `Arc<MemoryBackend>` in tests, e.g.
/// ```ignore
/// let backend = Arc::new(web::StoreBackend::new(store.clone(), hub_cmd_tx.clone(),
///     live_tx.clone(), status_fn.clone(), &cfg, rules.clone()));
/// let (addr, task) = web::serve(web_cfg.clone(), backend, &cfg.gateway.data_dir,
///     shutdown.clone()).await?;
/// ```
/// On first start (no account yet) the one-time setup code is written to
/// `<data_dir>/setup-code` (0600) and logged; with TLS the certificate is
/// generated under `<data_dir>/web/` and its SHA-256 fingerprint logged.
pub async fn serve(
    cfg: WebConfig,
    roles: impl Into<Roles>,
    data_dir: &Path,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    serve_with_metrics(cfg, roles, data_dir, shutdown, None).await
}

/// [`serve`] plus `GET /metrics` (see [`crate::metrics`] for who may read it).
pub async fn serve_with_metrics(
    cfg: WebConfig,
    roles: impl Into<Roles>,
    data_dir: &Path,
    shutdown: CancellationToken,
    metrics: Option<crate::metrics::Metrics>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    if let Some(p) = cfg.validate().first() {
        anyhow::bail!("web.{}: {}", p.key, p.reason);
    }
    let addr: SocketAddr = cfg
        .listen
        .parse()
        .with_context(|| format!("web.listen {:?}", cfg.listen))?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("web.listen {addr}: cannot listen"))?;
    let bound = listener.local_addr().context("web listener address")?;
    let tls = if cfg.tls {
        let (sc, fp) =
            super::tls::server_config(cfg.cert_file.as_deref(), cfg.key_file.as_deref(), data_dir)?;
        tracing::info!(sha256 = %fp, "web UI certificate fingerprint");
        Some(tokio_rustls::TlsAcceptor::from(sc))
    } else {
        tracing::warn!(%bound, "web UI over plain HTTP (no TLS)");
        None
    };
    let app = Arc::new(load(&cfg, roles.into(), data_dir, shutdown.clone()).await?);
    tokio::spawn(track_alerts(app.clone()));
    let site = super::routes::site(app.clone(), metrics);
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(url = %format!("{scheme}://{bound}/"), "web UI listening");
    let task = tokio::spawn(accept_loop(listener, tls, site, shutdown));
    Ok((bound, task))
}

async fn load_json<T: serde::de::DeserializeOwned>(
    state: &dyn WebState,
    record: Record,
) -> anyhow::Result<Option<T>> {
    match state.load(record).await? {
        None => Ok(None),
        // Corrupt data must not keep the UI (or the gateway) down: the
        // label's setup code recovers, and setup overwrites the bad value.
        Some(b) => match serde_json::from_slice(&b) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                tracing::error!(key = record.key(), error = %e, "stored web data is corrupt; ignoring it");
                Ok(None)
            }
        },
    }
}

/// Builds the state: accounts and audit log from the stored records; the
/// setup code from its record, else from `<data_dir>/setup-code`, else new.
async fn load(
    cfg: &WebConfig,
    roles: Roles,
    data_dir: &Path,
    shutdown: CancellationToken,
) -> anyhow::Result<App> {
    let state = &*roles.state;
    let accounts: Vec<Account> = load_json(state, Record::Accounts)
        .await?
        .unwrap_or_default();
    let audit = match state.load(Record::Audit).await? {
        Some(b) => AuditLog::from_json(&b),
        None => AuditLog::default(),
    };
    let alerts = match state.load(Record::RecentAlerts).await? {
        Some(b) => Alerts::from_json(&b),
        None => Alerts::default(),
    };
    let code_file = data_dir.join("setup-code");
    let mut setup: Option<Hashed> = load_json(state, Record::SetupCode).await?;
    if setup.is_none() {
        let code = match std::fs::read_to_string(&code_file) {
            Ok(c) if !c.trim().is_empty() => {
                keep_private(&code_file);
                c.trim().to_string()
            }
            _ => {
                let c = super::auth::new_setup_code()
                    .map_err(|_| anyhow::anyhow!("no system randomness for the setup code"))?;
                super::tls::write_private(&code_file, format!("{c}\n").as_bytes())?;
                c
            }
        };
        let normal = super::auth::normalize_code(&code);
        let h = tokio::task::spawn_blocking(move || Hashed::new(&normal))
            .await?
            .map_err(|_| anyhow::anyhow!("hashing the setup code"))?;
        if let Err(e) = state
            .save(Record::SetupCode, Some(serde_json::to_vec(&h)?))
            .await
        {
            // Kept in memory; the file on disk is the lasting copy.
            tracing::warn!(error = %e, "could not store the setup code hash");
        }
        setup = Some(h);
    }
    if accounts.is_empty() {
        match std::fs::read_to_string(&code_file) {
            Ok(c) => tracing::warn!(
                setup_code = %c.trim(), file = %code_file.display(),
                "no web account yet: open the web UI and enter this one-time setup code"
            ),
            Err(_) => tracing::warn!(
                "no web account yet: open the web UI and enter the setup code from the unit's label"
            ),
        }
    }
    let device_key =
        super::throttle::DeviceKey::load_or_create(&data_dir.join("web").join("device-key"))
            .context("the remembered-device key")?;
    let kinds = seed_kinds(&*roles.history, roles.settings.now()).await;
    let ota = crate::ota::Installer::new(roles.settings.ota.clone(), data_dir)
        .for_gateway(&roles.settings.gateway);
    Ok(App {
        roles,
        ota,
        tls: cfg.tls,
        idle: cfg.session_idle.0,
        hosts: cfg.hosts.clone(),
        data_dir: data_dir.to_path_buf(),
        accounts: tokio::sync::Mutex::new(accounts),
        sessions: Mutex::new(Sessions::default()),
        throttle: Mutex::new(Throttle::default()),
        device_key,
        setup_code: Mutex::new(setup),
        audit: tokio::sync::Mutex::new(audit),
        alerts: Mutex::new(alerts),
        kinds: Mutex::new(kinds),
        arc_tests: Mutex::default(),
        ui: broadcast::channel(512).0,
        dummy: Hashed {
            salt: "00".repeat(16),
            hash: "00".repeat(32),
            iterations: super::auth::PBKDF2_ITERATIONS,
        },
        shutdown,
    })
}

/// A provisioned setup-code file must be root-only; fix it if it is not.
fn keep_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(file = %path.display(), "setup-code file was readable by others; making it 0600");
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

/// Which kinds each device reported in the last week (best effort).
async fn seed_kinds(
    history: &dyn super::roles::History,
    now: crate::model::Time,
) -> std::collections::HashMap<crate::model::DeviceId, std::collections::BTreeSet<crate::model::Kind>>
{
    let since = crate::model::Time(now.as_millis() - 7 * 86_400_000);
    let mut out: std::collections::HashMap<_, std::collections::BTreeSet<_>> = Default::default();
    if let Ok(h) = history.history(since, now, 10_000).await {
        for r in h {
            out.entry(r.device).or_default().insert(r.kind);
        }
    }
    out
}

/// Feeds the recent-alerts list and re-broadcasts live events (as JSON,
/// alerts with their UI id) to SSE clients.
async fn track_alerts(app: Arc<App>) {
    use tokio::sync::broadcast::error::RecvError;
    let mut rx = app.roles.watch.subscribe();
    loop {
        let ev = tokio::select! {
            _ = app.shutdown.cancelled() => return,
            ev = rx.recv() => ev,
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "web UI fell behind the live stream");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let mut v = serde_json::to_value(&ev).unwrap_or_default();
        if let Live::Reading(r) = &ev
            && let Ok(mut k) = app.kinds.lock()
        {
            k.entry(r.device.clone()).or_default().insert(r.kind);
        }
        let saved = match ev {
            Live::Alert(a) => app.alerts.lock().ok().map(|mut alerts| {
                v["id"] = alerts.on_alert(a).into();
                alerts.to_json()
            }),
            Live::Clock(c) => app
                .alerts
                .lock()
                .ok()
                .and_then(|mut alerts| (alerts.correct(&c) > 0).then(|| alerts.to_json())),
            _ => None,
        };
        // Alerts are rare: keeping the list durable costs one small write each.
        if let Some(bytes) = saved
            && let Err(e) = app
                .roles
                .state
                .save(Record::RecentAlerts, Some(bytes))
                .await
        {
            tracing::warn!(error = %e, "could not save the recent alerts list");
        }
        let _ = app.ui.send(v.to_string());
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    site: Site,
    shutdown: CancellationToken,
) {
    let slots = Slots::default();
    // Bumped whenever free slots run short: idle connections of busy
    // addresses then close (see `super::slots`).
    let (squeeze, _) = watch::channel(0u64);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "web accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let slot = Slot::take(&slots, peer.ip());
        if slots.lock().is_ok_and(|t| t.squeezed()) {
            squeeze.send_modify(|g| *g += 1);
        }
        let slot = match slot {
            Ok(s) => s,
            Err(why) => {
                // Closed at once: the flood costs an accept, nothing more.
                tracing::debug!(%peer, ?why, "web connection refused");
                drop(stream);
                continue;
            }
        };
        let (tls, site, sd) = (tls.clone(), site.clone(), shutdown.clone());
        let squeezed = squeeze.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = sd.cancelled() => {}
                _ = connection(stream, peer, tls, site, &slot, squeezed) => {}
            }
            drop(slot);
        });
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    site: Site,
    slot: &Slot,
    squeezed: watch::Receiver<u64>,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => serve_io(stream, peer, site, slot, squeezed).await,
        Some(acc) => match tokio::time::timeout(HEAD_TIMEOUT, acc.accept(stream)).await {
            Ok(Ok(s)) => serve_io(s, peer, site, slot, squeezed).await,
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        },
    }
}

async fn serve_io<S>(
    io: S,
    peer: SocketAddr,
    site: Site,
    slot: &Slot,
    mut squeezed: watch::Receiver<u64>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper::service::Service as _;
    // One HTTP stack: hyper only carries the connection; warp routes.
    let svc = hyper_util::service::TowerToHyperService::new(warp::service(site));
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        svc.call(req)
    });
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(64 * 1024);
    let conn = b.serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    let mut conn = std::pin::pin!(conn);
    let mut watching = true;
    let result = loop {
        tokio::select! {
            r = conn.as_mut() => break r,
            changed = squeezed.changed(), if watching => {
                if changed.is_err() {
                    watching = false;
                } else if slot.should_yield() {
                    // Closes now if idle between requests; a request in
                    // progress (or an event stream) finishes first.
                    conn.as_mut().graceful_shutdown();
                    watching = false;
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "web connection ended with an error");
    }
}
