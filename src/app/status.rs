//! The status document (what `status`, the heartbeat, the web Overview,
//! diagnostics and `/metrics` read) and the heartbeat task that queues it.
//! The builder only reads shared state; it never blocks on the store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::hub::HubStats;
use crate::ingest::mqtt::IngestStats;
use crate::ingest::sim::Clock;
use crate::model::LinkStatus;
use crate::store::{Store, Write};
use crate::uplink::UplinkState;

pub(super) type StatusFn = crate::uplink::mqtt::StatusFn;

#[allow(clippy::too_many_arguments)]
pub(super) fn status_builder(
    cfg: &Config,
    started: Instant,
    store: Store,
    uplink: watch::Receiver<UplinkState>,
    links: watch::Receiver<BTreeMap<String, LinkStatus>>,
    hub: Arc<HubStats>,
    ingest: Arc<IngestStats>,
    clock: Clock,
    versions: crate::remote_config::Versions,
    zigbee: Option<Arc<crate::zigbee::ZigbeeCounters>>,
) -> StatusFn {
    let gateway = cfg.gateway.id.clone();
    let timezone = cfg.gateway.timezone.clone();
    let zigbee_on = cfg.zigbee.is_some();
    Arc::new(move || {
        let s = store.stats();
        let links = links.borrow().clone();
        let coordinator = match links.get("zigbee") {
            Some(l) if l.up => "up",
            Some(_) => "down",
            None if zigbee_on => "starting",
            None => "off",
        };
        let mut m = serde_json::Map::new();
        m.insert("state".into(), "online".into());
        m.insert("gateway".into(), gateway.clone().into());
        m.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        m.insert("at".into(), clock.now().to_rfc3339().into());
        m.insert("uptime_s".into(), started.elapsed().as_secs().into());
        m.insert("timezone".into(), timezone.clone().into());
        m.insert("config_version".into(), versions.to_json());
        let per = |f: &dyn Fn(&crate::store::ClassStats) -> u64| {
            serde_json::json!({
                "alert": f(&s.alert), "status": f(&s.status), "telemetry": f(&s.telemetry),
            })
        };
        m.insert("backlog".into(), per(&|c| c.rows));
        m.insert("backlog_bytes".into(), per(&|c| c.bytes));
        let now = clock.now();
        m.insert(
            "oldest_age_s".into(),
            per(&|c| c.oldest_at.map_or(0, |t| now.since(t).as_secs())),
        );
        m.insert("evicted".into(), per(&|c| c.evicted));
        m.insert("store_error".into(), s.error.clone().into());
        m.insert("coordinator".into(), coordinator.into());
        if let Some(z) = &zigbee {
            m.insert("zigbee".into(), z.to_json());
        }
        m.insert(
            "uplinks".into(),
            serde_json::json!({ "mqtt": serde_json::to_value(&*uplink.borrow()).unwrap_or_default() }),
        );
        m.insert(
            "links".into(),
            serde_json::to_value(&links).unwrap_or_default(),
        );
        m.insert(
            "counters".into(),
            serde_json::json!({
                "readings": hub.readings.load(Ordering::Relaxed),
                "alerts": hub.alerts.load(Ordering::Relaxed),
                "mqtt_accepted": ingest.accepted.load(Ordering::Relaxed),
                "mqtt_malformed": ingest.malformed.load(Ordering::Relaxed),
            }),
        );
        m
    })
}

/// Queues a status document in the outbox every `every` (older unsent ones
/// are superseded by the store: only the newest matters).
pub(super) async fn heartbeat(
    store: Store,
    status: StatusFn,
    every: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(every);
    tick.tick().await; // the birth message covers the start
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => store.submit(Write::Status(status())).await?,
        }
    }
}
