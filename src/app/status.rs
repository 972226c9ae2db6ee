//! The status document's builder (what `status`, the heartbeat, the web
//! Overview, diagnostics and `/metrics` read) and the heartbeat task that
//! queues it. The builder only reads shared state; it never blocks on the
//! store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::hub::HubStats;
use crate::ingest::mqtt::IngestStats;
use crate::model::LinkStatus;
use crate::status::{ByClass, Coordinator, Counters, Status, StatusFn, Uplinks};
use crate::store::{ClassStats, Store, Write};
use crate::uplink::UplinkState;

/// Everything the status document is read from.
pub(super) struct StatusSources {
    pub gateway: String,
    pub timezone: String,
    /// A `[zigbee]` section is configured.
    pub zigbee_configured: bool,
    pub started: Instant,
    pub clock: Arc<dyn Clock>,
    pub store: Store,
    pub uplink: watch::Receiver<UplinkState>,
    pub links: watch::Receiver<BTreeMap<String, LinkStatus>>,
    pub hub: Arc<HubStats>,
    pub ingest: Arc<IngestStats>,
    pub versions: crate::remote_config::Versions,
    pub zigbee: Option<Arc<crate::zigbee::ZigbeeCounters>>,
    pub lorawan: Option<crate::uplink::dual::SharedStatus>,
    /// The ARC path's status, when `[arc]` is configured.
    pub arc: Option<crate::uplink::arc::SharedArcStatus>,
    /// The local broker's access policy, when `[local_broker]` is configured.
    pub local_broker: Option<crate::devauth::Report>,
    /// Life-safety kinds the active rules leave without an alert.
    pub life_safety_off: watch::Receiver<Vec<crate::model::Kind>>,
}

impl StatusSources {
    /// The document now.
    pub fn status(&self) -> Status {
        let s = self.store.stats();
        let now = self.clock.now();
        let links = self.links.borrow().clone();
        let per = |f: &dyn Fn(&ClassStats) -> u64| ByClass {
            alert: f(&s.alert),
            status: f(&s.status),
            telemetry: f(&s.telemetry),
        };
        let lorawan = self.lorawan.as_ref().map(|l| match l.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        });
        Status {
            state: "online",
            gateway: self.gateway.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            at: now,
            uptime_s: self.started.elapsed().as_secs(),
            timezone: self.timezone.clone(),
            config_version: self.versions.snapshot(),
            backlog: per(&|c| c.rows),
            backlog_bytes: per(&|c| c.bytes),
            oldest_age_s: per(&|c| c.oldest_at.map_or(0, |t| now.since(t).as_secs())),
            evicted: per(&|c| c.evicted),
            store_error: s.error.clone(),
            disk_full: s.disk_full.as_ref().map(|e| crate::status::DiskFull {
                history_evicted: e.history,
                telemetry_evicted: e.telemetry,
                status_evicted: e.status,
                wal_freed_bytes: e.wal_bytes,
                files_removed: e.files,
                readings_shed: e.readings_shed,
                held_alerts: s.held_alerts as u64,
            }),
            coordinator: Coordinator::from_link(links.get("zigbee"), self.zigbee_configured),
            zigbee: self.zigbee.as_ref().map(|z| z.snapshot()),
            uplinks: Uplinks {
                mqtt: self.uplink.borrow().clone(),
                lorawan,
                arc: self
                    .arc
                    .as_ref()
                    .map(|a| a.lock().unwrap_or_else(|p| p.into_inner()).clone()),
            },
            links,
            counters: Counters {
                readings: self.hub.readings.load(Ordering::Relaxed),
                alerts: self.hub.alerts.load(Ordering::Relaxed),
                mqtt_accepted: self.ingest.accepted.load(Ordering::Relaxed),
                mqtt_malformed: self.ingest.malformed.load(Ordering::Relaxed),
                mqtt_refused: self.ingest.refused.load(Ordering::Relaxed),
                mqtt_shed: crate::status::Shed {
                    qos0_overload: self.ingest.shed_qos0.load(Ordering::Relaxed),
                    subscriber_slow: self.ingest.shed_subscriber.load(Ordering::Relaxed),
                    broker_skipped: self.ingest.broker_skipped.load(Ordering::Relaxed),
                },
            },
            delivered: s.delivered.clone(),
            local_broker: self.local_broker.as_ref().map(|r| r.status()),
            clock: self.clock.state(),
            life_safety_off: self.life_safety_off.borrow().clone(),
            mode: match self.hub.mode.lock() {
                Ok(m) => m.clone(),
                Err(p) => p.into_inner().clone(),
            },
        }
    }
}

/// The builder every reader shares.
pub(super) fn status_builder(sources: StatusSources) -> StatusFn {
    Arc::new(move || sources.status())
}

/// Queues a status document in the outbox every `every` (older unsent ones
/// are superseded by the store: only the newest matters), and at once when
/// the clock corrected untrusted stamps (the cloud should correct what it
/// received as soon as it can; the document lists the newest corrections,
/// so a superseded one loses none).
pub(super) async fn heartbeat(
    store: Store,
    status: StatusFn,
    clock: Arc<dyn Clock>,
    every: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(every);
    tick.tick().await; // the birth message covers the start
    let mut check = tokio::time::interval(Duration::from_secs(1));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut corrections = clock.state().corrections_total;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
            _ = check.tick() => {
                let now = clock.state().corrections_total;
                if now == corrections {
                    continue;
                }
                corrections = now;
            }
        }
        let doc = crate::uplink::mqtt::status_document(&status());
        store.submit(Write::Status(doc)).await?
    }
}
