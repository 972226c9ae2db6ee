//! The optional services around the gateway's core that `app` starts: Home
//! Assistant discovery on its own broker link, the active config versions
//! upstream (drift), and the Prometheus metrics listener of its own.

use crate::broker::Broker;
use crate::config::Config;

use super::wiring::Wiring;

/// Name of the broker link Home Assistant discovery publishes through.
pub const HA_LINK: &str = "carebridge-ha";

/// The extra in-process broker links the configuration needs.
pub fn broker_links(cfg: &Config) -> &'static [&'static str] {
    if cfg.homeassistant.enabled {
        &[HA_LINK]
    } else {
        &[]
    }
}

/// Starts Home Assistant discovery when its link was made.
pub(super) fn start_homeassistant(w: &mut Wiring, broker: &mut Broker) {
    let Some(i) = broker.links.iter().position(|(n, _, _)| n == HA_LINK) else {
        return;
    };
    let (_, tx, rx) = broker.links.remove(i);
    let (c, gw, st, live, sd) = (
        w.cfg.homeassistant.clone(),
        w.cfg.gateway.id.clone(),
        w.store.clone(),
        w.live.subscribe(),
        w.shutdown.clone(),
    );
    w.tasks.spawn(async move {
        // The receiving half lives as long as the task.
        let _rx = rx;
        (
            "homeassistant",
            crate::ha::run(c, gw, tx, st, live, sd).await,
        )
    });
}

/// Publishes the active versions upstream (and drift) for the life of the gateway.
pub(super) fn start_versions(w: &mut Wiring) {
    let (versions, direct, sd) = (w.versions.clone(), w.direct.clone(), w.shutdown.clone());
    w.tasks.spawn(async move {
        (
            "config-versions",
            crate::remote_config::report_versions(versions, direct, sd).await,
        )
    });
}

/// Starts the metrics listener of its own, when `[metrics] listen` is set
/// (the web server serves `/metrics` too).
pub(super) async fn start_metrics(w: &mut Wiring) -> anyhow::Result<()> {
    if let Some(listen) = &w.cfg.metrics.listen {
        let (_, handle) =
            crate::metrics::serve(listen, w.metrics.clone(), w.shutdown.clone()).await?;
        w.tasks.spawn(async move {
            let r = handle
                .await
                .map_err(|e| anyhow::anyhow!("metrics server: {e}"));
            ("metrics", r)
        });
    }
    Ok(())
}
