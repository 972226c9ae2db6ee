//! Wiring of the dual path (MQTT and LoRaWAN): the LoRaWAN modem task, the router
//! between it, the outbox and the MQTT link, and where downlink commands go.

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::uplink::{Command, Direct, UplinkState};

use super::Exit;

/// What the dual path needs from the rest of the gateway.
pub(super) struct DualLinks {
    pub(super) store: Store,
    pub(super) mqtt: watch::Receiver<UplinkState>,
    /// The MQTT command handler's queue, when MQTT is configured.
    pub(super) mqtt_commands: Option<mpsc::Sender<Command>>,
    pub(super) hub: mpsc::Sender<crate::hub::HubCommand>,
    pub(super) zigbee: Option<mpsc::Sender<crate::zigbee::ZigbeeCommand>>,
    pub(super) rules: crate::rules::active::Rules,
    pub(super) status: crate::uplink::dual::SharedStatus,
    /// `cmd/arc_test` over a downlink, when `[arc]` is configured.
    pub(super) arc: Option<crate::uplink::arc::ArcHandle>,
}

/// Starts the LoRaWAN modem task and the router between it, the outbox and
/// the MQTT link. Downlink commands go to the MQTT command handler, or to a
/// handler of their own when there is no MQTT uplink.
pub(super) fn start_dual_path(
    tasks: &mut super::Tasks,
    cfg: crate::uplink::lorawan::LorawanConfig,
    links: DualLinks,
    shutdown: &CancellationToken,
) -> Result<(), Exit> {
    // A missing or readable-by-all AppKey is an input error, not a task failure.
    crate::uplink::lorawan::read_app_key(std::path::Path::new(&cfg.app_key_file))
        .map_err(|e| Exit::input(anyhow::anyhow!("lorawan.app_key_file: {e}")))?;
    let (lora, queue) = crate::uplink::lorawan::channel(16);
    // No MQTT uplink: the radio is the only path (the router then decides
    // when an unconfirmed alert is done).
    let lorawan_only = links.mqtt_commands.is_none();
    let (ev_tx, ev_rx) = mpsc::channel(64);
    let commands = match links.mqtt_commands {
        Some(c) => c,
        None => {
            let (tx, rx) = mpsc::channel::<Command>(64);
            // No MQTT: command results have nowhere to go.
            let (direct, _) = mpsc::channel::<Direct>(1);
            let handler = crate::commands::CommandHandler {
                hub: links.hub.clone(),
                zigbee: links.zigbee.clone(),
                direct,
                rules: links.rules.clone(),
                fleet: None,
                updater: None,
                seen: None,
                clock: None,
                arc: links.arc.clone(),
            };
            let sd = shutdown.clone();
            tasks.spawn(async move { ("lorawan-commands", handler.run(rx, sd).await) });
            tx
        }
    };
    let dual = crate::uplink::dual::Dual {
        store: links.store,
        lora,
        events: ev_rx,
        mqtt: Some(links.mqtt),
        commands,
        router: crate::uplink::router::RouterConfig {
            lorawan_only,
            ..cfg.router_config()
        },
        confirmed_alerts: cfg.confirmed_alerts,
        status: links.status,
    };
    let sd = shutdown.clone();
    let store = dual.store.clone();
    tasks.spawn(async move {
        (
            "lorawan",
            crate::uplink::lorawan::run_with_store(cfg, queue, ev_tx, sd, Some(store)).await,
        )
    });
    let sd = shutdown.clone();
    tasks.spawn(async move { ("router", dual.run(sd).await) });
    Ok(())
}
