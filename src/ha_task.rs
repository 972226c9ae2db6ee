//! The Home Assistant task: feeds [`super::Mirror`] from the hub's live
//! broadcast and the registry, and publishes its messages, retained,
//! through an in-process link of the embedded broker.

use std::time::Duration;

use rumqttd::local::LinkTx;
use rumqttd::protocol::{Packet, Publish};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{HaConfig, Message, Mirror, Topics};
use crate::hub::Live;
use crate::model::Time;
use crate::store::Store;

/// Readings of the last this-long seed the states after a restart.
const SEED: i64 = 2 * 86_400_000;

async fn publish(link: &mut LinkTx, out: &mut Vec<Message>) -> anyhow::Result<()> {
    for m in out.drain(..) {
        let p = Publish::new(
            bytes::Bytes::from(m.topic),
            bytes::Bytes::from(m.payload),
            m.retain,
        );
        link.send(Packet::Publish(p, None))
            .await
            .map_err(|e| anyhow::anyhow!("embedded broker link: {e}"))?;
    }
    Ok(())
}

/// Runs until shutdown; `link` is a link of the embedded broker.
pub async fn run(
    cfg: HaConfig,
    gateway: String,
    mut link: LinkTx,
    store: Store,
    mut live: broadcast::Receiver<Live>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut mirror = Mirror::new(Topics::new(&cfg, &gateway));
    let mut out = Vec::new();
    mirror.start(&mut out);
    let devices = store.devices().await?;
    for d in &devices {
        mirror.on_live(&Live::Device(d.clone()), &mut out);
    }
    // The last value of each device's kinds, so Home Assistant has states
    // (and entities) right after a restart.
    let now = crate::wall::now();
    let seen = store
        .history(Time(now.as_millis() - SEED), now, 100_000)
        .await?;
    for r in seen {
        mirror.on_live(&Live::Reading(r), &mut out);
    }
    publish(&mut link, &mut out).await?;
    tracing::info!(
        devices = devices.len(),
        "Home Assistant discovery published"
    );
    let mut tick = tokio::time::interval(cfg.resync.0.max(Duration::from_secs(1)));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = live.recv() => match ev {
                Ok(ev) => {
                    mirror.on_live(&ev, &mut out);
                    // The UI removes devices in the store, not via the hub:
                    // a device event is a good moment to look.
                    if matches!(ev, Live::Device(_)) {
                        mirror.on_registry(&store.devices().await?, &mut out);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "Home Assistant mirror fell behind the live stream");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = tick.tick() => mirror.on_registry(&store.devices().await?, &mut out),
        }
        publish(&mut link, &mut out).await?;
    }
    mirror.stop(&mut out);
    publish(&mut link, &mut out).await?;

    Ok(())
}
