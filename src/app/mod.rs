//! Wiring: builds every part from the [`Config`], spawns the tasks, and
//! shuts them down together.
//!
//! Task failure policy (house style 7): every task takes the same
//! cancellation token; the first task that fails is logged, the others are
//! cancelled, and the process exits non-zero so systemd restarts it.
//!
//! Parts: [`status`] (the status document and heartbeat), [`zigbee`] (the
//! coordinator link watch and network parameters), [`dual`] (the LoRaWAN
//! path and its router), [`demo`] (`carebridge demo`).

mod demo;
mod dual;
mod status;
mod zigbee;

pub use demo::{DemoArgs, demo_config, demo_lorawan_sim, demo_zigbee};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::config::{Config, MqttUplinkConfig};
use crate::hub::{Hub, HubStats};
use crate::ingest::mqtt::IngestStats;
use crate::ingest::sim::Clock;
use crate::model::{DeviceInfo, LinkStatus, Time};
use crate::store::{Store, Write};
use crate::uplink::{Command, Direct, UplinkState};

/// An error with the exit code it deserves: 2 for bad input (config, files,
/// usage), 1 for a failure at run time.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Exit {
    pub fn input(error: impl Into<anyhow::Error>) -> Exit {
        Exit {
            code: 2,
            error: error.into(),
        }
    }
    pub fn runtime(error: impl Into<anyhow::Error>) -> Exit {
        Exit {
            code: 1,
            error: error.into(),
        }
    }
}

/// Logs to stderr, or to journald under systemd (see [`crate::logging`]).
/// `RUST_LOG` wins. Prefer [`crate::logging::init`], which also returns the
/// handle that changes levels at run time.
pub fn init_logging(level: &str) {
    let _ = crate::logging::init(&crate::config::LogConfig {
        level: level.to_string(),
        ..Default::default()
    });
}

/// Options that do not come from the config file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub clock: Clock,
    /// Print a "where to look" banner (the demo).
    pub banner: bool,
    /// Changes log levels at run time; recent warnings for diagnostics.
    pub log: Option<crate::logging::LogControl>,
}

/// Runs the gateway until SIGINT/SIGTERM or a task fails.
pub async fn run(cfg: Config, opts: RunOptions) -> Result<(), Exit> {
    let started = Instant::now();
    let tz = jiff::tz::TimeZone::get(&cfg.gateway.timezone)
        .map_err(|e| Exit::input(anyhow::anyhow!("gateway.timezone: {e}")))?;
    std::fs::create_dir_all(&cfg.gateway.data_dir)
        .with_context(|| format!("gateway.data_dir {}", cfg.gateway.data_dir.display()))
        .map_err(Exit::runtime)?;
    // Files named in the config are read before anything starts, so a
    // missing secret is a clear input error, not a half-started gateway.
    let broker_password = match cfg
        .local_broker
        .as_ref()
        .and_then(|b| b.password_file.as_ref())
    {
        Some(p) => Some(
            crate::uplink::mqtt::read_secret("local_broker.password_file", p)
                .map_err(Exit::input)?,
        ),
        None => None,
    };
    let uplink_prep = match &cfg.uplink.mqtt {
        Some(m) => {
            Some(crate::uplink::mqtt::Prepared::new(m, &cfg.gateway.id).map_err(Exit::input)?)
        }
        None => None,
    };
    // The base rules (config file or built-in); a set applied later from
    // the UI or the cloud is stored and wins (see rules::active).
    let base_rules = match &cfg.rules.file {
        Some(path) => {
            crate::rules::load(path).map_err(Exit::input)?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("rules.file {}", path.display()))
                .map_err(Exit::input)?;
            crate::rules::active::Version {
                version: 0,
                source: "config".into(),
                applied_at: 0,
                text,
            }
        }
        None => crate::rules::active::Version {
            version: 0,
            source: "built-in".into(),
            applied_at: 0,
            text: crate::rules::MINIMAL_RULES.to_string(),
        },
    };
    let store = open_store(&cfg).map_err(Exit::runtime)?;
    // --- fleet (issue 9): the stored remote-config overlay ([devices.*], [log]) ---
    let file_cfg = cfg.clone();
    let (cfg, overlay) = crate::remote_config::with_overlay(&store, &file_cfg)
        .await
        .map_err(Exit::runtime)?;
    if cfg.log != file_cfg.log
        && let Some(l) = &opts.log
        && let Err(e) = l.apply(&cfg.log)
    {
        tracing::warn!(error = %e, "stored log levels not applied");
    }
    // --- end fleet ---
    // Device facts: the registry as the UI left it, then the config file's
    // (which win), known to the rules before the first reading arrives.
    let mut devices = store.devices().await.map_err(Exit::runtime)?;
    for (id, d) in &cfg.devices {
        if let Some(info) = crate::remote_config::device_info(id, d) {
            store
                .submit(Write::Device(info.clone()))
                .await
                .map_err(Exit::runtime)?;
            devices.push(info);
        }
    }
    let (active_rules, rule_set) = crate::rules::active::startup_set(&store, &base_rules)
        .await
        .map_err(Exit::runtime)?;
    tracing::info!(version = active_rules.version, source = %active_rules.source, "rules");
    let engine = build_engine(&rule_set, tz.clone(), &store, &devices, opts.clock.now())
        .await
        .map_err(Exit::input)?;

    let shutdown = CancellationToken::new();
    let mut tasks: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();
    let (ingest_tx, ingest_rx) = mpsc::channel(4096);
    let (hub_cmd_tx, hub_cmd_rx) = mpsc::channel(256);
    // Reading and changing the active rules (web UI, remote config).
    let rules = crate::rules::active::Rules::new(store.clone(), hub_cmd_tx.clone(), base_rules);
    // --- fleet (issue 9) ---
    rules.started_with(&active_rules);
    let config_state = crate::remote_config::ConfigState::new(
        store.clone(),
        hub_cmd_tx.clone(),
        opts.log.clone(),
        file_cfg,
        cfg.clone(),
        overlay,
    );
    let versions = crate::remote_config::Versions {
        rules: rules.watch(),
        config: config_state.watch(),
    };
    // --- end fleet ---
    let (live_tx, _) = broadcast::channel(1024);
    let (links_tx, links_rx) = watch::channel(BTreeMap::<String, LinkStatus>::new());
    let hub_stats = Arc::new(HubStats::default());
    let ingest_stats = Arc::new(IngestStats::default());

    // The embedded broker and its ingest.
    let mut broker_addr = None;
    if let Some(b) = &cfg.local_broker {
        // fleet (issue 9): extra in-process links (Home Assistant discovery).
        let links = crate::fleet::broker_links(&cfg);
        let mut broker =
            Broker::start_with_links(b, broker_password.clone(), links).map_err(Exit::input)?;
        broker_addr = Some(broker.addr());
        crate::fleet::spawn_ha(&mut tasks, &cfg, &mut broker, &store, &live_tx, &shutdown);
        if let Some(link) = broker.ingest_link.take() {
            let (out, stats, sd) = (ingest_tx.clone(), ingest_stats.clone(), shutdown.clone());
            tasks.spawn(async move {
                (
                    "mqtt-ingest",
                    crate::ingest::mqtt::run(link, out, stats, sd).await,
                )
            });
        }
    }

    if let Some(sim) = cfg.simulator.clone() {
        let (out, sd, clock, tz) = (ingest_tx.clone(), shutdown.clone(), opts.clock, tz.clone());
        tasks.spawn(async move {
            (
                "simulator",
                crate::ingest::sim::run(sim, tz, clock, out, sd).await,
            )
        });
    }

    // The Zigbee coordinator and serial sensor boards.
    let (zigbee_tx, zigbee_rx) = mpsc::channel::<crate::zigbee::ZigbeeCommand>(16);
    let zigbee_counters = cfg
        .zigbee
        .as_ref()
        .map(|_| Arc::new(crate::zigbee::ZigbeeCounters::default()));
    let zigbee_tx = if let (Some(z), Some(counters)) = (cfg.zigbee.clone(), zigbee_counters.clone())
    {
        let net = zigbee::KvNetworkStore {
            store: store.clone(),
            handle: tokio::runtime::Handle::current(),
        };
        let (out, sd) = (ingest_tx.clone(), shutdown.clone());
        tasks.spawn(async move {
            (
                "zigbee",
                crate::zigbee::run(z, out, zigbee_rx, net, counters, sd).await,
            )
        });
        Some(zigbee_tx)
    } else {
        None
    };
    for board in cfg.serial.clone() {
        let (out, sd) = (ingest_tx.clone(), shutdown.clone());
        tasks.spawn(async move {
            (
                "serial-board",
                crate::ingest::line::run(board, out, sd).await,
            )
        });
    }

    // The upstream MQTT link, its heartbeat and its commands.
    let (uplink_state_tx, uplink_state_rx) = watch::channel(UplinkState::off());
    let (direct_tx, direct_rx) = mpsc::channel::<Direct>(256);
    let (cmd_tx, cmd_rx) = mpsc::channel::<Command>(64);
    let status_fn = status::status_builder(
        &cfg,
        started,
        store.clone(),
        uplink_state_rx.clone(),
        links_rx.clone(),
        hub_stats.clone(),
        ingest_stats.clone(),
        opts.clock,
        versions.clone(),
        zigbee_counters,
    );
    // ---- dual path (issue 5): delivery counters and LoRaWAN state in the status ----
    let lora_status = cfg
        .lorawan
        .as_ref()
        .map(|_| crate::uplink::dual::SharedStatus::default());
    let status_fn = crate::uplink::dual::with_status(status_fn, store.clone(), lora_status.clone());
    // ---- end dual path ----
    if let Some(z) = &cfg.zigbee {
        // zigbee: coordinator status upstream at once, outage alert.
        let (st, sf, live, sd) = (
            store.clone(),
            status_fn.clone(),
            live_tx.clone(),
            shutdown.clone(),
        );
        let (links, after) = (links_rx.clone(), z.outage_alert.0);
        tasks.spawn(async move {
            (
                "zigbee-link-watch",
                zigbee::zigbee_link_watch(links, st, sf, live, after, sd).await,
            )
        });
    }
    if let Some(m) = &cfg.uplink.mqtt {
        let Some(prep) = uplink_prep.clone() else {
            unreachable_config()?
        };
        let links = crate::uplink::mqtt::Links {
            commands: cmd_tx.clone(),
            direct: direct_rx,
            state: uplink_state_tx,
        };
        let (st, sf, sd) = (store.clone(), status_fn.clone(), shutdown.clone());
        tasks.spawn(async move {
            (
                "mqtt-uplink",
                crate::uplink::mqtt::run(prep, st, sf, links, sd).await,
            )
        });
        let (st, sf, sd, every) = (
            store.clone(),
            status_fn.clone(),
            shutdown.clone(),
            m.heartbeat.0,
        );
        tasks.spawn(async move { ("heartbeat", status::heartbeat(st, sf, every, sd).await) });
        // fleet (issue 9): active versions upstream (drift), diagnostics.
        crate::fleet::spawn_versions(&mut tasks, versions.clone(), direct_tx.clone(), &shutdown);
        let fleet = crate::commands::Fleet {
            gateway: cfg.gateway.id.clone(),
            require_signed: cfg.remote.require_signed,
            keys_dir: cfg.remote.keys_dir(&cfg),
            config: config_state.clone(),
            diagnostics: crate::diagnostics::Diagnostics {
                store: store.clone(),
                status: status_fn.clone(),
                recent: opts.log.as_ref().map(|l| l.recent.clone()),
                data_dir: cfg.gateway.data_dir.clone(),
            },
        };
        // ota (issue 7): cmd/update in the background, a clean stop after a good install.
        let updater = cfg.ota.as_ref().map(|o| crate::ota::daemon::Updater {
            cfg: o.clone(),
            paths: o.paths(&cfg.gateway.data_dir),
            store: store.clone(),
            direct: direct_tx.clone(),
            shutdown: shutdown.clone(),
            busy: Arc::default(),
        });
        let handler = crate::commands::CommandHandler {
            hub: hub_cmd_tx.clone(),
            zigbee: zigbee_tx.clone(),
            direct: direct_tx.clone(),
            rules: rules.clone(),
            fleet: Some(fleet),
            updater,
        };
        let sd = shutdown.clone();
        tasks.spawn(async move { ("commands", handler.run(cmd_rx, sd).await) });
    }

    // ota (issue 7): health reports commit a release on trial; outcomes go upstream.
    if let Some(o) = cfg.ota.clone() {
        let paths = o.paths(&cfg.gateway.data_dir);
        let links = crate::ota::daemon::OtaLinks {
            store: store.clone(),
            uplink: cfg.uplink.mqtt.is_some().then(|| uplink_state_rx.clone()),
            links: links_rx.clone(),
            coordinator: cfg.zigbee.is_some(),
            direct: cfg.uplink.mqtt.is_some().then(|| direct_tx.clone()),
        };
        let sd = shutdown.clone();
        tasks.spawn(async move { ("ota", crate::ota::daemon::run(o, paths, links, sd).await) });
    }

    // fleet (issue 9): Prometheus metrics (web route and/or own listener).
    let metrics = crate::metrics::Metrics {
        store: store.clone(),
        status: status_fn.clone(),
        hub: hub_stats.clone(),
        public: cfg.metrics.public,
    };
    crate::fleet::spawn_metrics(&mut tasks, &cfg, &metrics, &shutdown)
        .await
        .map_err(Exit::input)?;

    // ---- dual path (issue 5): the LoRaWAN modem task and the router ----
    if let (Some(l), Some(ls)) = (cfg.lorawan.clone(), lora_status) {
        let links = dual::DualLinks {
            store: store.clone(),
            mqtt: uplink_state_rx.clone(),
            mqtt_commands: cfg.uplink.mqtt.is_some().then(|| cmd_tx.clone()),
            hub: hub_cmd_tx.clone(),
            zigbee: zigbee_tx.clone(),
            rules: rules.clone(),
            status: ls,
        };
        dual::start_dual_path(&mut tasks, l, links, &shutdown)?;
    }
    // ---- end dual path ----

    let hub = Hub {
        engine,
        store: store.clone(),
        clock: opts.clock,
        telemetry: cfg
            .uplink
            .mqtt
            .as_ref()
            .is_none_or(|m: &MqttUplinkConfig| m.telemetry),
        live: live_tx.clone(),
        links: links_tx,
        stats: hub_stats,
        ids: Default::default(),
    };
    {
        let sd = shutdown.clone();
        tasks.spawn(async move { ("hub", hub.run(ingest_rx, hub_cmd_rx, sd).await) });
    }
    drop(ingest_tx);

    let mut web_addr = None;
    if let Some(w) = cfg.web.clone() {
        let backend = Arc::new(
            crate::web::backend::StoreBackend::new(
                store.clone(),
                hub_cmd_tx.clone(),
                live_tx.clone(),
                status_fn.clone(),
                &cfg,
                rules.clone(), // web: the Rules page edits the active rules
            )
            // zigbee: the pairing page's permit join goes to the coordinator.
            .with_zigbee(zigbee_tx.clone())
            // fleet: device edits are versioned local config (drift upstream).
            .with_config_state(config_state.clone()),
        );
        let (addr, handle) = crate::web::server::serve_with_metrics(
            w,
            backend,
            &cfg.gateway.data_dir,
            shutdown.clone(),
            Some(metrics.clone()),
        )
        .await
        .map_err(Exit::input)?;
        web_addr = Some(addr);
        tasks.spawn(async move {
            let r = handle.await.map_err(|e| anyhow::anyhow!("web server: {e}"));
            ("web", r)
        });
    }

    let ms = started.elapsed().as_millis();
    let _ = crate::ota::notify::notify_ready();
    tracing::info!(gateway = %cfg.gateway.id, startup_ms = ms, version = env!("CARGO_PKG_VERSION"), "carebridge running");
    if opts.banner {
        demo::print_banner(&cfg, broker_addr, web_addr);
    }

    let result = supervise(&mut tasks, &shutdown).await;
    shutdown.cancel();
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not stop within 5 s");
        tasks.abort_all();
    }
    if let Err(e) = store.close().await {
        tracing::error!(error = %e, "closing the store");
    }
    result.map_err(Exit::runtime)
}

fn unreachable_config<T>() -> Result<T, Exit> {
    Err(Exit::runtime(anyhow::anyhow!(
        "uplink configuration vanished during start-up"
    )))
}

/// Waits for a signal or the first task to end; a task ending on its own
/// (even cleanly) is a failure of the gateway.
async fn supervise(
    tasks: &mut JoinSet<(&'static str, anyhow::Result<()>)>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => { tracing::info!("interrupted: stopping"); Ok(()) }
        _ = term.recv() => { tracing::info!("SIGTERM: stopping"); Ok(()) }
        _ = shutdown.cancelled() => Ok(()),
        done = tasks.join_next() => match done {
            Some(Ok((name, Ok(())))) => Err(anyhow::anyhow!("task {name} stopped unexpectedly")),
            Some(Ok((name, Err(e)))) => Err(e.context(format!("task {name} failed"))),
            Some(Err(e)) => Err(anyhow::anyhow!("a task panicked: {e}")),
            None => Ok(()),
        }
    }
}

/// Opens the store; a database that fails its integrity check is moved
/// aside (kept for inspection) and a fresh one is created: a gateway that
/// refuses to start raises no alerts at all.
fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    let path = cfg.db_path();
    match Store::open(&path, &cfg.store) {
        Ok(s) => Ok(s),
        Err(crate::store::StoreError::Corrupt { detail }) => {
            let moved = Store::quarantine(&path)
                .with_context(|| format!("moving the corrupt database {} aside", path.display()))?;
            tracing::error!(%detail, moved_to = %moved.display(), "database failed its integrity check; starting a fresh one");
            Store::open(&path, &cfg.store).with_context(|| format!("opening {}", path.display()))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("opening {}", path.display()))),
    }
}

/// The rule engine: the configured rule set (or the built-in safety rules),
/// its state restored from the last run, routines seeded from history.
async fn build_engine(
    set: &crate::rules::RuleSet,
    tz: jiff::tz::TimeZone,
    store: &Store,
    devices: &[DeviceInfo],
    now: Time,
) -> anyhow::Result<crate::rules::Engine> {
    let mut engine = crate::rules::Engine::new(set, tz)?;
    // Order matters: devices, then learned routines, then saved state.
    for d in devices {
        engine.set_device(d);
    }
    // Reading 15 days of history costs ~1.7 µs a row at start-up: only
    // when a routine rule will learn from it.
    if engine.learns_routines() {
        let since = Time(now.as_millis() - 15 * 86_400_000);
        let history = store.history(since, now, 500_000).await?;
        engine.learn_from_history(history.iter());
    }
    if let Some(bytes) = store.kv_get(crate::hub::RULE_STATE_KEY).await? {
        match engine.restore(&bytes, now) {
            Ok(n) => tracing::info!(restored = n, "rule state restored"),
            Err(e) => tracing::warn!(error = %e, "saved rule state not usable; starting fresh"),
        }
    }
    Ok(engine)
}
