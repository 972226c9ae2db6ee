//! The start-up steps: one [`Wiring`] holds the handles every part shares
//! (configuration, store, channels, the status builder, the task set), and
//! each `start_*` method starts one part over it. `app::run` calls them in
//! order; a step that is not configured does nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::config::Config;
use crate::frontdoor::{FrontDoor, Gate, Limits, Upstream};
use crate::hub::{AckedReading, Hub, HubCommand, HubStats, Live};
use crate::ingest::mqtt::IngestStats;
use crate::model::{Ingest, LinkStatus};
use crate::remote_config::{ConfigState, Versions};
use crate::rules::active::Rules;
use crate::status::StatusFn;
use crate::store::Store;
use crate::uplink::{Command, Direct, UplinkState};
use crate::zigbee::ZigbeeCommand;

use super::startup::{Inputs, Restored};
use super::status::{StatusSources, status_builder};
use super::{Exit, RunOptions, Tasks, dual, integrations, zigbee};

/// What the steps share.
pub(super) struct Wiring {
    pub cfg: Config,
    pub opts: RunOptions,
    pub started: Instant,
    pub store: Store,
    pub shutdown: CancellationToken,
    pub tasks: Tasks,
    /// Commands to the hub (device facts, acks, rule sets).
    pub hub: mpsc::Sender<HubCommand>,
    /// The live view (web UI, Home Assistant).
    pub live: broadcast::Sender<Live>,
    /// Link states as the hub keeps them.
    pub links: watch::Receiver<BTreeMap<String, LinkStatus>>,
    pub hub_stats: Arc<HubStats>,
    pub rules: Rules,
    pub config_state: ConfigState,
    pub versions: Versions,
    /// Commands to the coordinator, when `[zigbee]` is configured.
    pub zigbee: Option<mpsc::Sender<ZigbeeCommand>>,
    pub uplink_state: watch::Receiver<UplinkState>,
    /// Messages published directly upstream (command results).
    pub direct: mpsc::Sender<Direct>,
    /// Commands from upstream, to the command handler.
    pub commands: mpsc::Sender<Command>,
    /// The LoRaWAN part of the status, when `[lorawan]` is configured.
    pub lora_status: Option<crate::uplink::dual::SharedStatus>,
    pub status: StatusFn,
    pub metrics: crate::metrics::Metrics,
    pub broker_addr: Option<SocketAddr>,
    pub web_addr: Option<SocketAddr>,
    /// The local broker's TLS listener, when `tls_listen` is set.
    pub broker_tls_addr: Option<SocketAddr>,
    /// The local broker's access policy (with `[local_broker]`).
    pub devauth: Option<crate::devauth::Prepared>,
    /// The alarm receiving centre task (with `[arc]`, once started).
    pub arc: Option<crate::uplink::arc::ArcHandle>,
    /// The ARC path's status, when `[arc]` is configured.
    pub arc_status: Option<crate::uplink::arc::SharedArcStatus>,
}

/// The receiving ends, each handed to the one step that owns it.
pub(super) struct Ends {
    /// Inputs to the hub; dropped once every input has its copy.
    pub ingest: mpsc::Sender<Ingest>,
    pub ingest_stats: Arc<IngestStats>,
    /// Readings from the front door into the hub (acknowledged after commit).
    pub frontdoor: mpsc::Sender<AckedReading>,
    pub zigbee: mpsc::Receiver<ZigbeeCommand>,
    pub zigbee_counters: Option<Arc<crate::zigbee::ZigbeeCounters>>,
    pub hub: HubEnds,
    pub mqtt: MqttEnds,
}

/// What only the hub takes.
pub(super) struct HubEnds {
    engine: crate::rules::Engine,
    input: mpsc::Receiver<Ingest>,
    acked: mpsc::Receiver<AckedReading>,
    commands: mpsc::Receiver<HubCommand>,
    links: watch::Sender<BTreeMap<String, LinkStatus>>,
}

/// What only the MQTT uplink and its command handler take.
pub(super) struct MqttEnds {
    direct: mpsc::Receiver<Direct>,
    commands: mpsc::Receiver<Command>,
    state: watch::Sender<UplinkState>,
}

impl Wiring {
    /// The shared handles and channels, and the status builder over them.
    pub fn new(
        restored: Restored,
        store: Store,
        opts: RunOptions,
        started: Instant,
        inputs: &Inputs,
        devauth: Option<crate::devauth::Prepared>,
    ) -> (Wiring, Ends) {
        let Restored {
            cfg,
            file_cfg,
            overlay,
            active_rules,
            engine,
        } = restored;
        let (ingest_tx, ingest_rx) = mpsc::channel(4096);
        let (door_tx, door_rx) = mpsc::channel(Limits::HUB_QUEUE);
        let (hub_tx, hub_rx) = mpsc::channel(256);
        // Reading and changing the active rules (web UI, remote config).
        let rules = Rules::new(store.clone(), hub_tx.clone(), inputs.base_rules.clone())
            .with_life_safety(cfg.rules.life_safety());
        rules.started_with(&active_rules);
        let config_state = ConfigState::new(
            store.clone(),
            hub_tx.clone(),
            opts.log.clone(),
            file_cfg,
            cfg.clone(),
            overlay,
        );
        let versions = Versions {
            rules: rules.watch(),
            config: config_state.watch(),
        };
        let (live, _) = broadcast::channel(1024);
        let (links_tx, links_rx) = watch::channel(BTreeMap::<String, LinkStatus>::new());
        let hub_stats = Arc::new(HubStats::default());
        // Known before any task starts (the ARC path maps by rule type).
        hub_stats.set_rule_types(&engine);
        let ingest_stats = Arc::new(IngestStats {
            // rumqttd's skips, counted from its log.
            broker_skipped: opts
                .log
                .as_ref()
                .map(|l| l.broker_skips.clone())
                .unwrap_or_default(),
            ..IngestStats::default()
        });
        let (zigbee_tx, zigbee_rx) = mpsc::channel::<ZigbeeCommand>(16);
        let zigbee_counters = cfg
            .zigbee
            .as_ref()
            .map(|_| Arc::new(crate::zigbee::ZigbeeCounters::default()));
        let (uplink_state_tx, uplink_state_rx) = watch::channel(UplinkState::off());
        let (direct_tx, direct_rx) = mpsc::channel::<Direct>(256);
        let (cmd_tx, cmd_rx) = mpsc::channel::<Command>(64);
        let lora_status = cfg
            .lorawan
            .as_ref()
            .map(|_| crate::uplink::dual::SharedStatus::default());
        let arc_status = cfg
            .arc
            .as_ref()
            .map(|_| crate::uplink::arc::SharedArcStatus::default());
        let status = status_builder(StatusSources {
            gateway: cfg.gateway.id.clone(),
            timezone: cfg.gateway.timezone.clone(),
            zigbee_configured: cfg.zigbee.is_some(),
            started,
            clock: opts.clock.clone(),
            store: store.clone(),
            uplink: uplink_state_rx.clone(),
            links: links_rx.clone(),
            hub: hub_stats.clone(),
            ingest: ingest_stats.clone(),
            versions: versions.clone(),
            zigbee: zigbee_counters.clone(),
            lorawan: lora_status.clone(),
            arc: arc_status.clone(),
            local_broker: devauth.as_ref().map(|d| d.report.clone()),
            life_safety_off: rules.life_safety_off(),
        });
        let metrics = crate::metrics::Metrics {
            store: store.clone(),
            status: status.clone(),
            hub: hub_stats.clone(),
            public: cfg.metrics.public,
        };
        let w = Wiring {
            zigbee: cfg.zigbee.is_some().then_some(zigbee_tx),
            cfg,
            opts,
            started,
            store,
            shutdown: CancellationToken::new(),
            tasks: Tasks::new(),
            hub: hub_tx,
            live,
            links: links_rx,
            hub_stats,
            rules,
            config_state,
            versions,
            uplink_state: uplink_state_rx,
            direct: direct_tx,
            commands: cmd_tx,
            lora_status,
            status,
            metrics,
            broker_addr: None,
            web_addr: None,
            broker_tls_addr: None,
            devauth,
            arc: None,
            arc_status,
        };
        let ends = Ends {
            ingest: ingest_tx,
            ingest_stats,
            frontdoor: door_tx,
            zigbee: zigbee_rx,
            zigbee_counters,
            hub: HubEnds {
                engine,
                input: ingest_rx,
                acked: door_rx,
                commands: hub_rx,
                links: links_tx,
            },
            mqtt: MqttEnds {
                direct: direct_rx,
                commands: cmd_rx,
                state: uplink_state_tx,
            },
        };
        (w, ends)
    }

    /// Spawns a named task that stops with the shared shutdown token.
    fn spawn<F>(&mut self, name: &'static str, task: impl FnOnce(CancellationToken) -> F)
    where
        F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let run = task(self.shutdown.clone());
        self.tasks.spawn(async move { (name, run.await) });
    }

    /// The device front door on `[local_broker] listen`, the embedded
    /// broker behind it (loopback, its own credential), Home Assistant
    /// discovery on it, and the shedding alert.
    pub fn start_broker(
        &mut self,
        inputs: &Inputs,
        hub_in: mpsc::Sender<AckedReading>,
        stats: Arc<IngestStats>,
    ) -> Result<(), Exit> {
        let Some(b) = self.cfg.local_broker.clone() else {
            return Ok(());
        };
        if let Some(rx) = self.devauth.as_mut().and_then(|d| d.failures.take()) {
            let (st, live, n) = (
                self.store.clone(),
                self.live.clone(),
                b.alert_after_failures,
            );
            self.spawn("devauth-alarm", |sd| {
                crate::devauth::watch::run(rx, n, st, live, sd)
            });
        }
        // Bind first: a busy port stops start-up before anything else runs.
        let listener = crate::frontdoor::bind(&b.listen).map_err(Exit::input)?;
        let addr = listener.local_addr().map_err(Exit::runtime)?;
        let links = integrations::broker_links(&self.cfg);
        let (mut broker, login) = Broker::start_internal(&b, links).map_err(Exit::input)?;
        let upstream = Upstream {
            addr: broker.addr(),
            login,
        };
        self.broker_addr = Some(addr);
        integrations::start_homeassistant(self, &mut broker);
        // The access policy: device credentials, topic permissions,
        // per-address limits (crate::devauth); the plain legacy gate only
        // if the policy was not prepared.
        let gate: Arc<dyn Gate> = match &self.devauth {
            Some(d) => d.gate.clone(),
            None => local_gate(&b, inputs),
        };
        let door = Arc::new(
            FrontDoor::new(
                gate,
                hub_in,
                Some(upstream),
                stats.clone(),
                Limits {
                    max_connections: b.max_connections,
                    max_packet: b.max_payload,
                    inflight: b.inflight,
                },
            )
            .with_clock(self.opts.clock.clone()),
        );
        tracing::info!(%addr, "MQTT front door listening");
        if let Some(t) = self.devauth.as_ref().and_then(|d| d.tls.as_ref()) {
            let tls_listener = crate::frontdoor::bind(&t.addr.to_string()).map_err(|e| {
                Exit::input(anyhow::anyhow!("local_broker.tls_listen {}: {e}", t.addr))
            })?;
            let tls_addr = tls_listener.local_addr().map_err(Exit::runtime)?;
            self.broker_tls_addr = Some(tls_addr);
            tracing::info!(addr = %tls_addr, sha256 = %t.sha256, "MQTT front door listening with TLS");
            let (acceptor, door) = (t.acceptor.clone(), door.clone());
            self.spawn("frontdoor-tls", |sd| {
                crate::frontdoor::serve_tls(tls_listener, acceptor, door, sd)
            });
        }
        self.spawn("frontdoor", |sd| {
            crate::frontdoor::serve(listener, door, sd)
        });
        let (st, live) = (self.store.clone(), self.live.clone());
        self.spawn("ingest-shed", |sd| {
            crate::frontdoor::shed::run(stats, st, live, sd)
        });
        Ok(())
    }

    /// The simulated home (`carebridge demo`; a build without the `sim`
    /// feature refuses `[simulator]` in `startup::read_inputs`).
    #[cfg(feature = "sim")]
    pub fn start_simulator(&mut self, inputs: &Inputs, ingest: &mpsc::Sender<Ingest>) {
        let Some(sim) = self.cfg.simulator.clone() else {
            return;
        };
        let (out, clock, tz) = (ingest.clone(), self.opts.clock.clone(), inputs.tz.clone());
        self.spawn("simulator", |sd| {
            crate::ingest::sim::run(sim, tz, clock, out, sd)
        });
    }

    /// The Zigbee coordinator, its link watch (status upstream at once, the
    /// outage alert) and its network parameters kept in the store.
    pub fn start_zigbee(
        &mut self,
        ingest: &mpsc::Sender<Ingest>,
        commands: mpsc::Receiver<ZigbeeCommand>,
        counters: Option<Arc<crate::zigbee::ZigbeeCounters>>,
    ) {
        let (Some(z), Some(counters)) = (self.cfg.zigbee.clone(), counters) else {
            return;
        };
        let net = zigbee::KvNetworkStore {
            store: self.store.clone(),
            handle: tokio::runtime::Handle::current(),
        };
        let out = ingest.clone();
        let outage_after = z.outage_alert.0;
        self.spawn("zigbee", |sd| {
            crate::zigbee::run(z, out, commands, net, counters, sd)
        });
        let (links, st, sf, live) = (
            self.links.clone(),
            self.store.clone(),
            self.status.clone(),
            self.live.clone(),
        );
        self.spawn("zigbee-link-watch", |sd| {
            zigbee::zigbee_link_watch(links, st, sf, live, outage_after, sd)
        });
    }

    /// Serial sensor boards.
    pub fn start_serial_boards(&mut self, ingest: &mpsc::Sender<Ingest>) {
        for board in self.cfg.serial.clone() {
            let out = ingest.clone();
            self.spawn("serial-board", |sd| {
                crate::ingest::line::run(board, out, sd)
            });
        }
    }

    /// The upstream MQTT link, its heartbeat, the active versions upstream
    /// and the command handler (remote config, diagnostics, updates).
    pub fn start_mqtt_uplink(&mut self, inputs: &Inputs, ends: MqttEnds) -> Result<(), Exit> {
        let Some(m) = &self.cfg.uplink.mqtt else {
            return Ok(());
        };
        let every = m.heartbeat.0;
        let Some(prep) = inputs.uplink.clone() else {
            return Err(Exit::runtime(anyhow::anyhow!(
                "uplink configuration vanished during start-up"
            )));
        };
        let links = crate::uplink::mqtt::Links {
            commands: self.commands.clone(),
            direct: ends.direct,
            state: ends.state,
        };
        let (st, sf) = (self.store.clone(), self.status.clone());
        self.spawn("mqtt-uplink", |sd| {
            crate::uplink::mqtt::run(prep, st, sf, links, sd)
        });
        let (st, sf) = (self.store.clone(), self.status.clone());
        let clock = self.opts.clock.clone();
        self.spawn("heartbeat", |sd| {
            super::status::heartbeat(st, sf, clock, every, sd)
        });
        integrations::start_versions(self);
        let handler = self.command_handler();
        self.spawn("commands", |sd| handler.run(ends.commands, sd));
        Ok(())
    }

    /// Answers `cmd/<name>`: acks, rules, remote config, diagnostics and,
    /// with `[ota]`, updates (a clean stop after a good install).
    fn command_handler(&self) -> crate::commands::CommandHandler {
        let cfg = &self.cfg;
        let fleet = crate::commands::Fleet {
            gateway: cfg.gateway.id.clone(),
            require_signed: cfg.remote.require_signed,
            keys_dir: cfg.remote.keys_dir(cfg),
            config: self.config_state.clone(),
            diagnostics: crate::diagnostics::Diagnostics {
                store: self.store.clone(),
                status: self.status.clone(),
                recent: self.opts.log.as_ref().map(|l| l.recent.clone()),
                data_dir: cfg.gateway.data_dir.clone(),
            },
            credentials: self
                .devauth
                .as_ref()
                .map(|d| d.report.credentials().clone()),
        };
        let updater = cfg.ota.as_ref().map(|o| crate::ota::daemon::Updater {
            cfg: o.clone(),
            paths: o.paths(&cfg.gateway.data_dir),
            target: crate::ota::bundle::Target {
                gateway: cfg.gateway.id.clone(),
                fleets: o.fleets.clone(),
            },
            store: self.store.clone(),
            direct: self.direct.clone(),
            shutdown: self.shutdown.clone(),
            busy: Arc::default(),
        });
        crate::commands::CommandHandler {
            hub: self.hub.clone(),
            zigbee: self.zigbee.clone(),
            direct: self.direct.clone(),
            rules: self.rules.clone(),
            fleet: Some(fleet),
            updater,
            seen: match crate::commands::once::SeenIds::open(
                &cfg.gateway.data_dir,
                crate::commands::once::KEEP,
            ) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "command ids cannot be remembered: a repeated command would run again");
                    None
                }
            },
            clock: Some(self.opts.clock.clone()),
            arc: self.arc.clone(),
        }
    }

    /// OTA health reports: commit a release on trial; outcomes go upstream.
    pub fn start_ota(&mut self) {
        let Some(o) = self.cfg.ota.clone() else {
            return;
        };
        let paths = o.paths(&self.cfg.gateway.data_dir);
        let mqtt = self.cfg.uplink.mqtt.is_some();
        let links = crate::ota::daemon::OtaLinks {
            store: self.store.clone(),
            uplink: mqtt.then(|| self.uplink_state.clone()),
            links: self.links.clone(),
            coordinator: self.cfg.zigbee.is_some(),
            direct: mqtt.then(|| self.direct.clone()),
        };
        self.spawn("ota", |sd| crate::ota::daemon::run(o, paths, links, sd));
    }

    /// The LoRaWAN modem task and the router between it, the outbox and
    /// the MQTT link.
    pub fn start_dual_path(&mut self) -> Result<(), Exit> {
        let (Some(l), Some(status)) = (self.cfg.lorawan.clone(), self.lora_status.clone()) else {
            return Ok(());
        };
        let links = dual::DualLinks {
            store: self.store.clone(),
            mqtt: self.uplink_state.clone(),
            mqtt_commands: self
                .cfg
                .uplink
                .mqtt
                .is_some()
                .then(|| self.commands.clone()),
            hub: self.hub.clone(),
            zigbee: self.zigbee.clone(),
            rules: self.rules.clone(),
            status,
            arc: self.arc.clone(),
        };
        dual::start_dual_path(&mut self.tasks, l, links, &self.shutdown)
    }

    /// The hub: readings through the rules into the store, fed by every input.
    pub fn start_hub(&mut self, ends: HubEnds) {
        let telemetry = self.cfg.uplink.mqtt.as_ref().is_none_or(|m| m.telemetry);
        let hub = Hub {
            engine: ends.engine,
            store: self.store.clone(),
            clock: self.opts.clock.clone(),
            watchdog: systemd_watchdog(),
            telemetry,
            live: self.live.clone(),
            links: ends.links,
            stats: self.hub_stats.clone(),
            ids: Default::default(),
            acked: Some(ends.acked),
            zigbee: self.zigbee.clone(),
            frame: crate::clock::TrustFrame::new(
                self.opts.clock.now(),
                self.opts.clock.state().trusted,
            ),
        };
        let (input, commands) = (ends.input, ends.commands);
        self.spawn("hub", |sd| hub.run(input, commands, sd));
    }

    /// The web UI and API (with `/metrics` on the same server).
    pub async fn start_web(&mut self) -> Result<(), Exit> {
        let Some(w) = self.cfg.web.clone() else {
            return Ok(());
        };
        let backend = Arc::new(
            crate::web::backend::StoreBackend::new(
                self.store.clone(),
                self.hub.clone(),
                self.live.clone(),
                self.status.clone(),
                &self.cfg,
                // The Rules page edits the active rules.
                self.rules.clone(),
            )
            // The pairing page's permit join goes to the coordinator.
            .with_zigbee(self.zigbee.clone())
            // Device edits are versioned local config (drift upstream).
            .with_config_state(self.config_state.clone())
            // Wi-Fi device credentials for the local broker.
            .with_credentials(self.devauth.as_ref().map(|d| {
                Arc::new(d.report.clone()) as Arc<dyn crate::web::roles::DeviceCredentials>
            }))
            // The Uplinks page's "send test signal" (with `[arc]`).
            .with_arc(self.arc.clone())
            // Commissioning compares readings with the clock that stamps them.
            .with_clock(self.opts.clock.clone()),
        );
        let (addr, handle) = crate::web::server::serve_with_metrics(
            w,
            backend,
            &self.cfg.gateway.data_dir,
            self.shutdown.clone(),
            Some(self.metrics.clone()),
        )
        .await
        .map_err(Exit::input)?;
        self.web_addr = Some(addr);
        self.tasks.spawn(async move {
            let r = handle.await.map_err(|e| anyhow::anyhow!("web server: {e}"));
            ("web", r)
        });
        Ok(())
    }
}

/// The front door's access policy: `[local_broker] username` and
/// `password_file`, as before the front door (anonymous without them).
fn local_gate(b: &crate::config::LocalBrokerConfig, inputs: &Inputs) -> Arc<dyn Gate> {
    Arc::new(crate::frontdoor::local_gate::LocalGate::new(
        b.username.as_deref(),
        inputs.broker_password.as_deref(),
    ))
}

/// systemd's watchdog, when the unit asks for one (`WatchdogSec`).
fn systemd_watchdog() -> Option<crate::hub::Watchdog> {
    crate::ota::notify::watchdog_interval().map(|interval| crate::hub::Watchdog {
        interval,
        feed: Box::new(|| {
            let _ = crate::ota::notify::notify_watchdog();
        }),
    })
}
