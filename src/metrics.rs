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

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;

use crate::hub::HubStats;
use crate::model::Kind;
use crate::status::{Status, ZigbeeStatus};
use crate::store::{Store, StoreStats};
use crate::uplink::mqtt::StatusFn;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub use crate::config::MetricsConfig;

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

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP carebridge_{name} {help}");
        let _ = writeln!(self.0, "# TYPE carebridge_{name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        let _ = write!(self.0, "carebridge_{name}");
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", l.join(","));
        }
        let _ = writeln!(self.0, " {v}");
    }
}

/// The coordinator link's counters (the status document's `zigbee` part,
/// see [`crate::zigbee::ZigbeeCounters`]) as series.
type ZigbeeSeries = (fn(&ZigbeeStatus) -> u64, &'static str, &'static str);
const ZIGBEE_SERIES: [ZigbeeSeries; 6] = [
    (
        |z| z.frames,
        "zigbee_frames_total",
        "ZNP frames decoded from the coordinator stick.",
    ),
    (
        |z| z.frame_errors,
        "zigbee_frame_errors_total",
        "Rejected ZNP frames (bad checksum, length or type) on the serial line.",
    ),
    (
        |z| z.timeouts,
        "zigbee_request_timeouts_total",
        "Requests to the coordinator that got no answer in time.",
    ),
    (
        |z| z.rpc_errors,
        "zigbee_rpc_errors_total",
        "MT RPC errors returned by the coordinator.",
    ),
    (
        |z| z.restarts,
        "zigbee_coordinator_restarts_total",
        "Coordinator sessions that failed and were started again.",
    ),
    (
        |z| z.resets,
        "zigbee_coordinator_resets_total",
        "Unexpected coordinator stick resets (a subset of the restarts).",
    ),
];

/// One uplink as its series show it: (name, up, connects, delivered).
fn uplink_rows(s: &Status) -> Vec<(&'static str, bool, u64, u64)> {
    let mut rows = Vec::with_capacity(2);
    // Sorted by name, as they always were. LoRaWAN is up when joined; it
    // counts no connections (0), and its deliveries are the alerts the
    // store recorded as delivered by radio.
    if let Some(l) = &s.uplinks.lorawan {
        rows.push(("lorawan", l.state == "joined", 0, s.delivered.lorawan));
    }
    let m = &s.uplinks.mqtt;
    rows.push(("mqtt", m.state == "connected", m.connects, m.delivered));
    rows
}

/// The exposition text (pure).
pub fn render(i: &Inputs) -> String {
    let mut o = Out(String::with_capacity(4096));
    let s = &i.status;
    o.family("build_info", "gauge", "Version of the running carebridge.");
    o.sample("build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);
    o.family(
        "uptime_seconds",
        "gauge",
        "Seconds since the gateway started.",
    );
    o.sample("uptime_seconds", &[], s.uptime_s);
    o.family(
        "clock_trusted",
        "gauge",
        "1 when the clock is NTP-synchronised or kept by an RTC (source: ntp, rtc, none).",
    );
    o.sample(
        "clock_trusted",
        &[("source", s.clock.source)],
        u8::from(s.clock.trusted),
    );
    o.family(
        "clock_steps_total",
        "counter",
        "Wall-clock steps the gateway followed.",
    );
    o.sample("clock_steps_total", &[], s.clock.steps);
    o.family(
        "clock_corrections_total",
        "counter",
        "Steps that corrected stamps made while the clock was not trusted.",
    );
    o.sample("clock_corrections_total", &[], s.clock.corrections_total);
    if let Some(st) = s.clock.last_step {
        o.family(
            "clock_last_step_seconds",
            "gauge",
            "Size of the last wall-clock step (negative: backwards).",
        );
        o.sample("clock_last_step_seconds", &[], st.delta_ms as f64 / 1000.0);
        o.family(
            "clock_last_step_timestamp_seconds",
            "gauge",
            "When the last wall-clock step was followed (Unix time, after it).",
        );
        o.sample(
            "clock_last_step_timestamp_seconds",
            &[],
            st.at.as_millis() as f64 / 1000.0,
        );
    }
    o.family("readings_total", "counter", "Readings received, by kind.");
    for (k, n) in &i.by_kind {
        o.sample("readings_total", &[("kind", k.as_str())], n);
    }
    o.family(
        "alerts_total",
        "counter",
        "Alerts raised and cleared, by rule and severity.",
    );
    for ((rule, sev, state), n) in &i.by_rule {
        o.sample(
            "alerts_total",
            &[("rule", rule), ("severity", sev), ("state", state)],
            n,
        );
    }
    let classes = [
        ("alert", &i.store.alert),
        ("status", &i.store.status),
        ("telemetry", &i.store.telemetry),
    ];
    o.family(
        "outbox_rows",
        "gauge",
        "Rows waiting for the uplink, by class.",
    );
    for (c, st) in classes {
        o.sample("outbox_rows", &[("class", c)], st.rows);
    }
    o.family(
        "outbox_bytes",
        "gauge",
        "Bytes waiting for the uplink, by class.",
    );
    for (c, st) in classes {
        o.sample("outbox_bytes", &[("class", c)], st.bytes);
    }
    o.family(
        "outbox_oldest_age_seconds",
        "gauge",
        "Age of the oldest waiting row, by class (0 when empty).",
    );
    for (c, age) in s.oldest_age_s.iter() {
        o.sample("outbox_oldest_age_seconds", &[("class", c)], age);
    }
    o.family(
        "outbox_evicted_total",
        "counter",
        "Rows evicted by the outbox cap, by class.",
    );
    for (c, st) in classes {
        o.sample("outbox_evicted_total", &[("class", c)], st.evicted);
    }
    let ups = uplink_rows(s);
    o.family("uplink_up", "gauge", "1 when the uplink is connected.");
    for (name, up, _, _) in &ups {
        o.sample("uplink_up", &[("uplink", name)], u8::from(*up));
    }
    o.family(
        "uplink_connects_total",
        "counter",
        "Successful connections since start.",
    );
    for (name, _, connects, _) in &ups {
        o.sample("uplink_connects_total", &[("uplink", name)], connects);
    }
    o.family(
        "uplink_reconnects_total",
        "counter",
        "Connections after the first since start.",
    );
    for (name, _, connects, _) in &ups {
        o.sample(
            "uplink_reconnects_total",
            &[("uplink", name)],
            connects.saturating_sub(1),
        );
    }
    o.family(
        "uplink_delivered_total",
        "counter",
        "Rows acknowledged by the far end since start.",
    );
    for (name, _, _, delivered) in &ups {
        o.sample("uplink_delivered_total", &[("uplink", name)], delivered);
    }
    if s.uplinks.mqtt.state != "off" {
        let m = &s.uplinks.mqtt;
        o.family(
            "uplink_failovers_total",
            "counter",
            "MQTT connections made to another broker node than the previous one.",
        );
        o.sample("uplink_failovers_total", &[("uplink", "mqtt")], m.failovers);
        if let (Some(node), true) = (&m.node, m.state == "connected") {
            o.family(
                "uplink_node_info",
                "gauge",
                "The broker node the MQTT uplink is connected to (value 1).",
            );
            o.sample(
                "uplink_node_info",
                &[("uplink", "mqtt"), ("node", node.as_str())],
                1,
            );
        }
    }
    if let Some(l) = &s.uplinks.lorawan {
        o.family(
            "lorawan_airtime_used_seconds",
            "gauge",
            "LoRaWAN uplink airtime used in the last 24 hours.",
        );
        o.sample(
            "lorawan_airtime_used_seconds",
            &[],
            l.airtime_24h_ms as f64 / 1000.0,
        );
        o.family(
            "lorawan_downlinks_24h",
            "gauge",
            "LoRaWAN downlinks (acks and join accepts) in the last 24 hours.",
        );
        o.sample("lorawan_downlinks_24h", &[], l.downlinks_24h);
        o.family(
            "lorawan_data_rate",
            "gauge",
            "The data rate the LoRaWAN modem reports (ADR moves it).",
        );
        o.sample("lorawan_data_rate", &[], l.data_rate);
        o.family(
            "lorawan_joins_total",
            "counter",
            "LoRaWAN join accepts since start.",
        );
        o.sample("lorawan_joins_total", &[], l.joins);
        o.family(
            "lorawan_info_dropped_total",
            "counter",
            "Info alerts dropped from the radio under budget pressure since start.",
        );
        o.sample("lorawan_info_dropped_total", &[], l.info_dropped);
    }
    if let Some(a) = &s.uplinks.arc {
        o.family(
            "arc_up",
            "gauge",
            "1 when the alarm receiving centre answered the last message.",
        );
        o.sample("arc_up", &[], u8::from(a.state == "connected"));
        o.family(
            "arc_queued",
            "gauge",
            "Alerts waiting for the alarm receiving centre's ACK.",
        );
        o.sample("arc_queued", &[], a.queued);
        for (name, help, v) in [
            (
                "arc_delivered_total",
                "Alerts the ARC acknowledged since start.",
                a.delivered,
            ),
            (
                "arc_naks_total",
                "NAKs from the ARC since start (refusals and clock resyncs).",
                a.naks,
            ),
            (
                "arc_nak_resyncs_total",
                "Timestamp NAKs: clock corrected and message resent.",
                a.nak_resyncs,
            ),
            (
                "arc_duh_total",
                "DUH answers (event not understood, dropped) since start.",
                a.duh,
            ),
            (
                "arc_timeouts_total",
                "Exchanges with no usable answer since start.",
                a.timeouts,
            ),
            (
                "arc_failovers_total",
                "Switches to the secondary receiver since start.",
                a.failovers,
            ),
            (
                "arc_supervision_total",
                "NULL link tests sent since start.",
                a.supervision_sent,
            ),
        ] {
            o.family(name, "counter", help);
            o.sample(name, &[], v);
        }
    }
    o.family(
        "link_up",
        "gauge",
        "1 when the link (coordinator, serial board, modem) is up.",
    );
    for (name, l) in &s.links {
        o.sample("link_up", &[("link", name)], u8::from(l.up));
    }
    o.family(
        "link_down_total",
        "counter",
        "Times a link went down (coordinator resets, lost ports, modem loss).",
    );
    for (name, n) in &i.link_downs {
        o.sample("link_down_total", &[("link", name)], n);
    }
    if let Some(z) = &s.zigbee {
        for (read, name, help) in ZIGBEE_SERIES {
            o.family(name, "counter", help);
            o.sample(name, &[], read(z));
        }
    }
    let h = &i.store.commit_latency;
    o.family(
        "store_commit_seconds",
        "histogram",
        "Store transaction (group commit) latency.",
    );
    for (n, bound) in h.buckets.iter().zip(crate::store::CommitLatency::BOUNDS_US) {
        let le = format!("{}", bound as f64 / 1e6);
        o.sample("store_commit_seconds_bucket", &[("le", &le)], n);
    }
    o.sample("store_commit_seconds_bucket", &[("le", "+Inf")], h.count);
    o.sample("store_commit_seconds_sum", &[], h.sum_us as f64 / 1e6);
    o.sample("store_commit_seconds_count", &[], h.count);
    o.family(
        "store_commits_total",
        "counter",
        "Store transactions committed.",
    );
    o.sample("store_commits_total", &[], i.store.commits);
    o.family(
        "store_failed_commits_total",
        "counter",
        "Store commits that failed and were retried.",
    );
    o.sample("store_failed_commits_total", &[], i.store.failed_commits);
    for (name, v) in [
        ("mqtt_ingest_accepted_total", s.counters.mqtt_accepted),
        ("mqtt_ingest_malformed_total", s.counters.mqtt_malformed),
        ("mqtt_ingest_refused_total", s.counters.mqtt_refused),
    ] {
        o.family(name, "counter", "Local MQTT ingest publications.");
        o.sample(name, &[], v);
    }
    o.family(
        "mqtt_shed_total",
        "counter",
        "Messages the MQTT front door dropped under load, by cause.",
    );
    let shed = &s.counters.mqtt_shed;
    for (cause, v) in [
        ("broker_skipped", shed.broker_skipped),
        ("qos0_overload", shed.qos0_overload),
        ("subscriber_slow", shed.subscriber_slow),
    ] {
        o.sample("mqtt_shed_total", &[("cause", cause)], v);
    }
    if let Some(b) = &s.local_broker {
        o.family(
            "local_broker_refused_total",
            "counter",
            "Connections, log-ins, publishes and subscriptions the local broker's access policy refused, by cause.",
        );
        for (cause, v) in &b.refused {
            o.sample("local_broker_refused_total", &[("cause", cause)], v);
        }
        o.family(
            "local_broker_logins_total",
            "counter",
            "Successful log-ins on the local broker (anonymous ones included).",
        );
        o.sample("local_broker_logins_total", &[], b.logins);
        o.family(
            "local_broker_credentials",
            "gauge",
            "Device and service credentials stored for the local broker.",
        );
        o.sample("local_broker_credentials", &[], b.credentials);
        o.family(
            "local_broker_anonymous_on_network",
            "gauge",
            "1 while anyone on the network may use the local broker without a credential.",
        );
        o.sample(
            "local_broker_anonymous_on_network",
            &[],
            u8::from(b.anonymous_on_network),
        );
    }
    o.family(
        "config_version",
        "gauge",
        "Active configuration version, by part.",
    );
    // By part name, sorted, as they always were.
    let cv = &s.config_version;
    for (part, v) in [("config", &cv.config), ("rules", &cv.rules)] {
        o.sample("config_version", &[("part", part)], v.version);
    }
    o.family(
        "rules_life_safety_off",
        "gauge",
        "Life-safety kinds ([rules] life_safety) the active rules raise no alert for (0 when all are covered).",
    );
    o.sample("rules_life_safety_off", &[], s.life_safety_off.len());
    if let Some(rss) = i.rss {
        let _ = writeln!(
            o.0,
            "# HELP process_resident_memory_bytes Resident memory size in bytes."
        );
        let _ = writeln!(o.0, "# TYPE process_resident_memory_bytes gauge");
        let _ = writeln!(o.0, "process_resident_memory_bytes {rss}");
    }
    o.0
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
mod tests {
    use super::*;
    use crate::model::LinkStatus;
    use crate::status::{Active, ByClass, ConfigVersions, Counters, UplinkState, Uplinks};

    fn inputs() -> Inputs {
        let mut store = StoreStats::default();
        store.alert.rows = 3;
        store.commit_latency.observe(700);
        store.commit_latency.observe(30_000);
        let zigbee_up = LinkStatus {
            link: "zigbee".into(),
            up: true,
            detail: String::new(),
            at: crate::model::Time(0),
        };
        Inputs {
            status: Status {
                uptime_s: 12,
                oldest_age_s: ByClass {
                    alert: 5,
                    status: 0,
                    telemetry: 9,
                },
                uplinks: Uplinks {
                    mqtt: UplinkState {
                        state: "connected",
                        connects: 3,
                        delivered: 40,
                        node: Some("node-b:1883".into()),
                        failovers: 1,
                        ..UplinkState::off()
                    },
                    lorawan: None,
                    arc: None,
                },
                links: [("zigbee".to_string(), zigbee_up)].into(),
                zigbee: Some(ZigbeeStatus {
                    frames: 120,
                    frame_errors: 3,
                    timeouts: 1,
                    restarts: 2,
                    resets: 1,
                    ..ZigbeeStatus::default()
                }),
                counters: Counters {
                    mqtt_accepted: 7,
                    mqtt_malformed: 1,
                    ..Counters::default()
                },
                config_version: ConfigVersions {
                    rules: Active {
                        version: 4,
                        source: "remote".into(),
                    },
                    ..ConfigVersions::default()
                },
                clock: crate::clock::ClockState {
                    trusted: false,
                    source: "none",
                    steps: 1,
                    last_step: Some(crate::clock::Step {
                        delta_ms: -7_200_000,
                        at: crate::model::Time(1_780_000_000_000),
                    }),
                    ..Default::default()
                },
                ..Status::default()
            },
            store,
            by_kind: vec![(Kind::Temperature, 10), (Kind::Panic, 1)],
            by_rule: vec![(("panic".into(), "urgent", "raised"), 1)],
            link_downs: vec![("zigbee".into(), 2)],
            rss: Some(4096),
        }
    }

    #[test]
    fn every_series_family_is_typed_and_samples_follow() {
        let t = render(&inputs());
        for needle in [
            "# TYPE carebridge_readings_total counter",
            "carebridge_readings_total{kind=\"temperature\"} 10",
            "carebridge_clock_trusted{source=\"none\"} 0",
            "carebridge_clock_steps_total 1",
            "carebridge_clock_last_step_seconds -7200",
            "carebridge_clock_last_step_timestamp_seconds 1780000000",
            "carebridge_alerts_total{rule=\"panic\",severity=\"urgent\",state=\"raised\"} 1",
            "carebridge_outbox_rows{class=\"alert\"} 3",
            "carebridge_outbox_oldest_age_seconds{class=\"telemetry\"} 9",
            "carebridge_uplink_up{uplink=\"mqtt\"} 1",
            "carebridge_uplink_reconnects_total{uplink=\"mqtt\"} 2",
            "carebridge_uplink_failovers_total{uplink=\"mqtt\"} 1",
            "carebridge_uplink_node_info{uplink=\"mqtt\",node=\"node-b:1883\"} 1",
            "carebridge_link_up{link=\"zigbee\"} 1",
            "carebridge_link_down_total{link=\"zigbee\"} 2",
            "# TYPE carebridge_zigbee_frame_errors_total counter",
            "carebridge_zigbee_frame_errors_total 3",
            "carebridge_zigbee_coordinator_resets_total 1",
            "carebridge_zigbee_coordinator_restarts_total 2",
            "carebridge_store_commit_seconds_bucket{le=\"0.001\"} 1",
            "carebridge_store_commit_seconds_bucket{le=\"+Inf\"} 2",
            "carebridge_store_commit_seconds_count 2",
            "carebridge_config_version{part=\"rules\"} 4",
            "process_resident_memory_bytes 4096",
        ] {
            assert!(t.contains(needle), "missing {needle:?} in\n{t}");
        }
    }

    #[test]
    fn a_joined_lorawan_uplink_is_up_and_counts_its_radio_deliveries() {
        let mut i = inputs();
        i.status.uplinks.lorawan = Some(crate::status::LoraStatus {
            state: "joined".into(),
            ..Default::default()
        });
        i.status.delivered.lorawan = 4;
        let t = render(&i);
        assert!(
            t.contains("carebridge_uplink_up{uplink=\"lorawan\"} 1"),
            "{t}"
        );
        i.status.uplinks.lorawan = Some(crate::status::LoraStatus {
            state: "joining".into(),
            ..Default::default()
        });
        let t = render(&i);
        assert!(
            t.contains("carebridge_uplink_up{uplink=\"lorawan\"} 0"),
            "{t}"
        );
        assert!(t.contains("uplink=\"lorawan\"} 4"), "{t}");
        i.status.uplinks.lorawan = Some(crate::status::LoraStatus {
            state: "joined".into(),
            downlinks_24h: 3,
            data_rate: 2,
            joins: 1,
            info_dropped: 5,
            ..Default::default()
        });
        let t = render(&i);
        for needle in [
            "carebridge_lorawan_downlinks_24h 3",
            "carebridge_lorawan_data_rate 2",
            "carebridge_lorawan_joins_total 1",
            "carebridge_lorawan_info_dropped_total 5",
        ] {
            assert!(t.contains(needle), "missing {needle:?} in\n{t}");
        }
    }

    #[test]
    fn life_safety_kinds_without_a_rule_are_counted() {
        let mut i = inputs();
        assert!(render(&i).contains("carebridge_rules_life_safety_off 0"));
        i.status.life_safety_off = vec![Kind::Panic, Kind::Smoke];
        let t = render(&i);
        assert!(t.contains("carebridge_rules_life_safety_off 2"), "{t}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn only_loopback_sessions_or_public_may_read() {
        let lo: SocketAddr = "127.0.0.1:5".parse().unwrap();
        let lo6: SocketAddr = "[::ffff:127.0.0.1]:5".parse().unwrap();
        let far: SocketAddr = "192.0.2.1:5".parse().unwrap();
        assert!(allowed(lo, false, false));
        assert!(allowed(lo6, false, false));
        assert!(!allowed(far, false, false));
        assert!(allowed(far, false, true));
        assert!(allowed(far, true, false));
    }

    #[test]
    fn a_public_listener_must_be_asked_for() {
        let c = MetricsConfig {
            listen: Some("0.0.0.0:9464".into()),
            public: false,
        };
        assert_eq!(c.validate()[0].key, "listen");
        let c = MetricsConfig {
            listen: Some("127.0.0.1:9464".into()),
            public: false,
        };
        assert!(c.validate().is_empty());
    }
}
