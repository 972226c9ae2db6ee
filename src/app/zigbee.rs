//! Wiring of the Zigbee coordinator into the gateway: its link state
//! upstream and as an outage alert, and its network parameters kept in the
//! store (so a restarted gateway or a replaced stick keeps the network).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::model::LinkStatus;
use crate::store::{Store, Write};

use crate::status::StatusFn;

/// Queues a status document as soon as the coordinator link goes up or
/// down (the heartbeat may be minutes away), and raises the outage alert
/// ([`crate::zigbee::outage`]) when it stays down. Link times are wall
/// clock (the coordinator stamps them so), also in a fast demo.
pub(super) async fn zigbee_link_watch(
    mut links: watch::Receiver<BTreeMap<String, LinkStatus>>,
    store: Store,
    status: StatusFn,
    live: broadcast::Sender<crate::hub::Live>,
    after: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut outage = crate::zigbee::outage::OutageWatch::new(after);
    let mut last_up: Option<bool> = None;
    let mut ids = crate::ids::IdGen::default();
    loop {
        let nap = outage
            .next_deadline()
            .map_or(Duration::from_secs(3600), |d| d.since(crate::wall::now()));
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            changed = links.changed() => {
                if changed.is_err() {
                    // The hub is gone: the gateway is stopping.
                    shutdown.cancelled().await;
                    return Ok(());
                }
                let zigbee = links.borrow_and_update().get("zigbee").cloned();
                if let Some(l) = zigbee {
                    if last_up != Some(l.up) {
                        last_up = Some(l.up);
                        let doc = crate::uplink::mqtt::status_document(&status());
                        store.submit(Write::Status(doc)).await?;
                    }
                    outage.handle_link(l.up, &l.detail, crate::wall::now());
                }
            }
            _ = tokio::time::sleep(nap) => outage.handle_timeout(crate::wall::now()),
        }
        while let Some(mut a) = outage.poll_alert() {
            a.uid = Some(ids.next_id());
            tracing::warn!(rule = %a.rule, state = a.state.as_str(), "{}", a.message);
            let _ = live.send(crate::hub::Live::Alert(a.clone()));
            store.submit(Write::Alert(Box::new(a))).await?;
        }
    }
}

/// The Zigbee network parameters, kept in the store's kv table so a
/// restarted gateway or a replaced stick keeps the same network.
pub(super) struct KvNetworkStore {
    pub(super) store: Store,
    pub(super) handle: tokio::runtime::Handle,
}

const ZIGBEE_NETWORK_KEY: &str = "zigbee.network";

impl crate::zigbee::NetworkStore for KvNetworkStore {
    fn load(&self) -> Option<Vec<u8>> {
        let store = self.store.clone();
        self.handle
            .block_on(async move { store.kv_get(ZIGBEE_NETWORK_KEY).await })
            .ok()
            .flatten()
    }
    fn save(&self, bytes: &[u8]) {
        let w = Write::Kv(ZIGBEE_NETWORK_KEY.to_string(), Some(bytes.to_vec()));
        if self.store.submit_blocking(w).is_err() || self.store.flush_blocking().is_err() {
            tracing::error!("could not save the Zigbee network parameters");
        }
    }
}
