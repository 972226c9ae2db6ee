//! Prometheus metrics: `GET /metrics` in the text exposition format 0.0.4.
//!
//! Served in two places, both optional:
//! - on the web UI's server (hooked in `web::server`), where it is free of
//!   authentication only for a loopback peer or with `[metrics] public =
//!   true`; otherwise a logged-in session is required (else `401`);
//! - on its own plain-HTTP listener, `[metrics] listen = "127.0.0.1:9464"`,
//!   so a gateway without the web UI can be scraped too. Whoever can reach
//!   that address may read it: a non-loopback address needs `public = true`
//!   (an explicit decision, checked by `config check`).
//!
//! Series (all prefixed `carebridge_`): `build_info`, `uptime_seconds`,
//! `clock_trusted{source}`, `clock_steps_total`, `clock_corrections_total`, `clock_last_step_seconds`,
//! `clock_last_step_timestamp_seconds` (after a step),
//! `readings_total{kind}`, `alerts_total{rule,severity,state}`,
//! `outbox_rows{class}`, `outbox_bytes{class}`,
//! `outbox_oldest_age_seconds{class}`, `outbox_evicted_total{class}`,
//! `uplink_up{uplink}`, `uplink_connects_total{uplink}`,
//! `uplink_reconnects_total{uplink}`, `uplink_delivered_total{uplink}`,
//! `uplink_failovers_total{uplink}`, `uplink_node_info{uplink,node}`
//! (MQTT, while connected: the broker node in use),
//! `link_up{link}` (coordinator, serial boards, LoRaWAN),
//! `link_down_total{link}` (coordinator resets and lost ports: the Zigbee
//! task reports a reset as its link going down),
//! `zigbee_frames_total`, `zigbee_frame_errors_total`,
//! `zigbee_request_timeouts_total`, `zigbee_rpc_errors_total`,
//! `zigbee_coordinator_restarts_total`, `zigbee_coordinator_resets_total`
//! (when a coordinator is configured),
//! `lorawan_airtime_used_seconds`, `lorawan_downlinks_24h`,
//! `lorawan_data_rate`, `lorawan_joins_total`, `lorawan_info_dropped_total`
//! (when the LoRaWAN uplink is configured),
//! `store_commit_seconds` (histogram), `store_commits_total`,
//! `store_failed_commits_total`, `mqtt_ingest_{accepted,malformed,refused}_total`,
//! `local_broker_refused_total{cause}`, `local_broker_logins_total`,
//! `local_broker_credentials`, `local_broker_anonymous_on_network` (with
//! `[local_broker]`),
//! `mqtt_shed_total{cause}` (front door: `qos0_overload`, `subscriber_slow`,
//! `broker_skipped`),
//! `config_version{part}`, `rules_life_safety_off`, and `process_resident_memory_bytes` (standard
//! name). Labels carry ids only (rule ids, kinds, link names), never names
//! or rooms.
//!
//! Rendering is a pure function of the inputs ([`render`]); the handle
//! ([`Metrics`]) only gathers them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;

use crate::hub::HubStats;
use crate::model::Kind;
use crate::status::Status;
use crate::store::{Store, StoreStats};
use crate::uplink::mqtt::StatusFn;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub use crate::config::MetricsConfig;

mod render;
pub use render::render;

/// Gathers what `/metrics` shows.
#[derive(Clone)]
pub struct Metrics {
    pub store: Store,
    pub status: StatusFn,
    pub hub: Arc<HubStats>,
    pub public: bool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Whether a request may read the metrics.
pub fn allowed(peer: SocketAddr, public: bool, has_session: bool) -> bool {
    public || has_session || peer.ip().is_loopback() || peer.ip().to_canonical().is_loopback()
}

impl Metrics {
    /// The exposition text now.
    pub fn text(&self) -> String {
        let by_kind: Vec<(Kind, u64)> = Kind::ALL
            .iter()
            .map(|k| {
                let n = self
                    .hub
                    .by_kind
                    .get(usize::from(k.code()))
                    .map_or(0, |c| c.load(Ordering::Relaxed));
                (*k, n)
            })
            .collect();
        let by_rule: Vec<(crate::hub::RuleKey, u64)> = match self.hub.by_rule.lock() {
            Ok(m) => m.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            Err(_) => Vec::new(),
        };
        let link_downs: Vec<(String, u64)> = match self.hub.link_downs.lock() {
            Ok(m) => m.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            Err(_) => Vec::new(),
        };
        render(&Inputs {
            link_downs,
            status: (self.status)(),
            store: self.store.stats(),
            by_kind,
            by_rule,
            rss: crate::diagnostics::rss_bytes(),
        })
    }

    /// The HTTP answer for a peer (web server hook and own listener).
    pub fn respond(&self, peer: SocketAddr, has_session: bool) -> warp::reply::Response {
        use warp::http::{Response, StatusCode, header};
        if !allowed(peer, self.public, has_session) {
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body("log in first, scrape from the gateway itself, or set [metrics] public = true\n".into())
                .unwrap_or_default();
        }
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, CONTENT_TYPE)
            .header(header::CACHE_CONTROL, "no-store")
            .body(self.text().into())
            .unwrap_or_default()
    }
}

/// Everything a rendering needs.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub status: Status,
    pub store: StoreStats,
    pub by_kind: Vec<(Kind, u64)>,
    pub by_rule: Vec<(crate::hub::RuleKey, u64)>,
    /// Times each link went down.
    pub link_downs: Vec<(String, u64)>,
    pub rss: Option<u64>,
}

/// Escapes a label value (backslash, double quote, newline).
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics listener of its own (`[metrics] listen`). Returns the bound
/// address; the server stops with `shutdown`.
pub async fn serve(
    listen: &str,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use anyhow::Context as _;
    use warp::Filter as _;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("metrics.listen {listen}: cannot listen"))?;
    let bound = listener.local_addr().context("metrics listener address")?;
    tracing::info!(url = %format!("http://{bound}/metrics"), "metrics listening");
    let task = tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let m = metrics.clone();
            let sd = shutdown.clone();
            tokio::spawn(async move {
                let route = warp::path("metrics")
                    .and(warp::path::end())
                    .and(warp::get())
                    .map(move || m.respond(peer, false));
                let svc = hyper_util::service::TowerToHyperService::new(warp::service(route));
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10));
                let conn = b.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                tokio::select! {
                    _ = sd.cancelled() => {}
                    _ = conn => {}
                }
            });
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests;
