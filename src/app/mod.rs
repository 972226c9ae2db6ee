//! Wiring: builds every part from the [`Config`], spawns the tasks, and
//! shuts them down together.
//!
//! Task failure policy (house style 7): every task takes the same
//! cancellation token; the first task that fails is logged, the others are
//! cancelled, and the process exits non-zero so systemd restarts it.
//!
//! Parts: [`startup`] (what is read before anything starts), [`wiring`]
//! (the shared handles and the `start_*` steps), [`status`] (the status
//! document's builder and heartbeat), [`zigbee`] (the coordinator link
//! watch and network parameters), [`dual`] (the LoRaWAN path and its
//! router), [`integrations`] (Home Assistant, config versions, metrics),
//! [`clock`] (the real clock), [`sched`] (the threads' CPU scheduling
//! policy), `demo` (`carebridge demo`, feature `sim`).

mod arc;
mod clock;
#[cfg(feature = "sim")]
mod demo;
mod dual;
mod integrations;
pub mod malloc;
pub mod sched;
mod startup;
mod status;
mod wiring;
mod zigbee;

pub use clock::{ScaledClock, TrustProbe};
#[cfg(feature = "sim")]
pub use demo::{DemoArgs, demo_config, demo_lorawan_sim, demo_zigbee};
pub use integrations::{HA_LINK, broker_links};

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;

use wiring::Wiring;

/// The running tasks: each says its name and how it ended.
type Tasks = JoinSet<(&'static str, anyhow::Result<()>)>;

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
    /// The gateway's time ([`ScaledClock::system`], or a fast one for the demo).
    pub clock: Arc<dyn Clock>,
    /// Print a "where to look" banner (the demo).
    pub banner: bool,
    /// Changes log levels at run time; recent warnings for diagnostics.
    pub log: Option<crate::logging::LogControl>,
}

/// Runs the gateway until SIGINT/SIGTERM or a task fails.
pub async fn run(cfg: Config, opts: RunOptions) -> Result<(), Exit> {
    let started = Instant::now();
    let mut inputs = startup::read_inputs(&cfg)?;
    let devauth = inputs.devauth.take();
    let store = startup::open_store(&cfg).map_err(Exit::runtime)?;
    let restored = startup::restore(cfg, &opts, &store, &inputs).await?;
    let (mut w, ends) = Wiring::new(restored, store, opts, started, &inputs, devauth);
    let ingest = ends.ingest;
    w.start_broker(&inputs, ends.frontdoor, ends.ingest_stats)?;
    #[cfg(feature = "sim")]
    w.start_simulator(&inputs, &ingest);
    w.start_zigbee(&ingest, ends.zigbee, ends.zigbee_counters);
    w.start_serial_boards(&ingest);
    // Before the hub commits any alert, and before the command handlers
    // that send its test signal.
    arc::start_arc(&mut w).await?;
    w.start_mqtt_uplink(&inputs, ends.mqtt)?;
    w.start_ota();
    integrations::start_metrics(&mut w)
        .await
        .map_err(Exit::input)?;
    w.start_dual_path()?;
    w.start_hub(ends.hub);
    // Every input has its copy: the hub sees its inputs close when they all end.
    drop(ingest);
    w.start_web().await?;
    announce(&w);
    supervise_then_stop(w).await
}

/// Tells systemd and the log (and the demo's user) that the gateway is up.
fn announce(w: &Wiring) {
    let ms = w.started.elapsed().as_millis();
    let _ = crate::ota::notify::notify_ready();
    tracing::info!(gateway = %w.cfg.gateway.id, startup_ms = ms, version = env!("CARGO_PKG_VERSION"), "carebridge running");
    #[cfg(feature = "sim")]
    if w.opts.banner {
        demo::print_banner(&w.cfg, w.broker_addr, w.web_addr);
    }
}

/// Waits for a signal or the first task to end; a task ending on its own
/// (even cleanly) is a failure of the gateway.
async fn supervise(tasks: &mut Tasks, shutdown: &CancellationToken) -> anyhow::Result<()> {
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

/// How long a stop may take in all, from SIGTERM to exit (the unit's
/// `TimeoutStopSec` leaves room above it).
pub const STOP_WITHIN: Duration = Duration::from_secs(2);

/// Supervises until the end, then cancels every task, waits for them (at
/// most 1.1 s: every task selects on the shutdown token, but one blocked on
/// a stuck store is aborted), and closes the store in what is left of
/// [`STOP_WITHIN`], abandoning a batch the disk refuses (see
/// [`crate::store::Store::close_within`]).
async fn supervise_then_stop(mut w: Wiring) -> Result<(), Exit> {
    let result = supervise(&mut w.tasks, &w.shutdown).await;
    let stop_started = Instant::now();
    w.shutdown.cancel();
    let drain = async { while w.tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_millis(1100), drain)
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not stop within 1.1 s; aborting them");
        w.tasks.abort_all();
        let _ = tokio::time::timeout(Duration::from_millis(100), async {
            while w.tasks.join_next().await.is_some() {}
        })
        .await;
    }
    let left = STOP_WITHIN
        .saturating_sub(stop_started.elapsed())
        .saturating_sub(Duration::from_millis(250));
    if let Err(e) = w.store.close_within(left).await {
        tracing::error!(error = %e, "closing the store");
    }
    tracing::info!(
        stop_ms = stop_started.elapsed().as_millis() as u64,
        "stopped"
    );
    result.map_err(Exit::runtime)
}
