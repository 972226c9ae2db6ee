//! Wiring of the fleet parts (issue 9) that `app` starts: Home Assistant
//! discovery on its broker link, the config-version reporter, and the
//! metrics listener. Kept here so `app` stays a list of calls.

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::config::Config;
use crate::hub::Live;
use crate::store::Store;

/// The task set of `app::run`.
pub type Tasks = JoinSet<(&'static str, anyhow::Result<()>)>;

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
pub fn spawn_ha(
    tasks: &mut Tasks,
    cfg: &Config,
    broker: &mut Broker,
    store: &Store,
    live: &broadcast::Sender<Live>,
    shutdown: &CancellationToken,
) {
    let Some(i) = broker.links.iter().position(|(n, _, _)| n == HA_LINK) else {
        return;
    };
    let (_, tx, rx) = broker.links.remove(i);
    let (c, gw, st, live, sd) = (
        cfg.homeassistant.clone(),
        cfg.gateway.id.clone(),
        store.clone(),
        live.subscribe(),
        shutdown.clone(),
    );
    tasks.spawn(async move {
        // The receiving half lives as long as the task.
        let _rx = rx;
        (
            "homeassistant",
            crate::ha::run(c, gw, tx, st, live, sd).await,
        )
    });
}

/// Publishes the active versions upstream (and drift) for the life of the gateway.
pub fn spawn_versions(
    tasks: &mut Tasks,
    versions: crate::remote_config::Versions,
    direct: mpsc::Sender<crate::uplink::Direct>,
    shutdown: &CancellationToken,
) {
    let sd = shutdown.clone();
    tasks.spawn(async move {
        (
            "config-versions",
            crate::remote_config::report_versions(versions, direct, sd).await,
        )
    });
}

/// Starts the metrics listener of its own, when `[metrics] listen` is set.
pub async fn spawn_metrics(
    tasks: &mut Tasks,
    cfg: &Config,
    metrics: &crate::metrics::Metrics,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    if let Some(listen) = &cfg.metrics.listen {
        let (_, handle) = crate::metrics::serve(listen, metrics.clone(), shutdown.clone()).await?;
        tasks.spawn(async move {
            let r = handle
                .await
                .map_err(|e| anyhow::anyhow!("metrics server: {e}"));
            ("metrics", r)
        });
    }
    Ok(())
}
