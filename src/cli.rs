//! The `carebridge` command line: the subcommands (clap) and what each
//! runs. `main.rs` only parses and reports; the daemon itself is
//! [`crate::app::run`].

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

#[cfg(feature = "sim")]
use crate::app::DemoArgs;
use crate::app::{self, Exit, RunOptions, ScaledClock};
use crate::clock::Clock;
use crate::config::{self, Config};

/// carebridge — a home-care edge gateway: sensors in, alert rules at the
/// edge, durable delivery over MQTT or LoRaWAN.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the gateway daemon.
    Run {
        #[arg(long, default_value = "/etc/carebridge/carebridge.toml")]
        config: PathBuf,
    },
    /// Run a simulated home, all local, no hardware: embedded broker,
    /// store and an uplink to the same broker under `uplink/`.
    #[cfg(feature = "sim")]
    Demo {
        /// Data directory (default: a `carebridge-demo` folder in the temp dir).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Web UI address.
        #[arg(long)]
        web: Option<String>,
        /// Embedded MQTT broker address (default 127.0.0.1:1883, or a free port if taken).
        #[arg(long)]
        mqtt: Option<String>,
        /// Simulated seconds per real second.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// No simulated Zigbee stick (by default one runs on a pty, with
        /// devices to pair from the UI).
        #[arg(long)]
        no_zigbee_sim: bool,
        /// Also run a LoRaWAN modem simulator on a pseudo-terminal: alerts
        /// then travel over both paths (decoded radio uplinks are printed).
        #[arg(long)]
        lorawan_sim: bool,
    },
    /// Provision a unit before its first start: make its one-time setup
    /// code and web certificate, and write a printable label (gateway id,
    /// setup code, certificate fingerprint, QR code) as HTML.
    Provision {
        #[arg(long, default_value = "/etc/carebridge/carebridge.toml")]
        config: PathBuf,
        /// Where to write the label (default `<data_dir>/label.html`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Configuration files.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Rule sets: check one, or replay recorded events through it.
    #[command(subcommand)]
    Rules(crate::rules::cli::RulesCmd),
    /// Signed update bundles: keygen, sign, verify, inspect.
    #[command(subcommand)]
    Bundle(crate::ota::cli::BundleCmd),
    /// Installed releases and update trials (used by the systemd units).
    #[command(subcommand)]
    Ota(crate::ota::cli::OtaCmd),
    /// A simulated Zigbee coordinator stick (Z-Stack 3.x, ZNP) on a
    /// pseudo-terminal, for tests and trials; commands on stdin.
    #[cfg(feature = "sim")]
    SimStick(crate::zigbee::sim_run::SimStickArgs),
    /// N simulated homes (household, rules, outbox, own MQTT client each)
    /// in one process against a cloud broker: telemetry, alerts, status,
    /// commands and reconnect storms (`--outage`); prints progress and a
    /// summary of rates, latencies and anything lost.
    #[cfg(feature = "sim")]
    FleetSim(crate::fleet_sim::FleetSimArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Print the fully commented default configuration.
    Defaults,
    /// Check a configuration file; errors name the file, line and key.
    Check { path: PathBuf },
}

/// Runs the command `cli` names.
pub fn run(cli: Cli) -> Result<(), Exit> {
    match cli.cmd {
        Cmd::Run { config } => crate::config::load(&config)
            .map_err(Exit::input)
            .and_then(|cfg| serve(cfg, Arc::new(ScaledClock::system()), false)),
        #[cfg(feature = "sim")]
        Cmd::Demo {
            data,
            web,
            mqtt,
            speed,
            no_zigbee_sim,
            lorawan_sim,
        } => {
            let args = DemoArgs {
                data,
                web,
                mqtt,
                speed,
            };
            app::demo_config(&args).and_then(|mut cfg| {
                let _stick = (!no_zigbee_sim).then(|| app::demo_zigbee(&mut cfg));
                let _sim = lorawan_sim
                    .then(|| app::demo_lorawan_sim(&mut cfg))
                    .transpose()?;
                serve(
                    cfg,
                    Arc::new(ScaledClock::new(crate::wall::now(), speed)),
                    true,
                )
            })
        }
        Cmd::Provision { config, out } => {
            let cfg = crate::config::load(&config).map_err(Exit::input)?;
            let l = crate::provision::provision(&cfg, out.as_deref()).map_err(Exit::runtime)?;
            println!("gateway      {}", l.gateway);
            println!("setup code   {}", l.setup_code);
            println!("certificate  SHA-256 {}", l.fingerprint);
            println!("label        {} (print it, or save it as PDF)", l.path.display());
            Ok(())
        }
        Cmd::Config(ConfigCmd::Defaults) => {
            print!("{}", config::defaults_toml());
            Ok(())
        }
        Cmd::Config(ConfigCmd::Check { path }) => {
            crate::config::load(&path).map_err(Exit::input).map(|cfg| {
                if cfg
                    .local_broker
                    .as_ref()
                    .is_some_and(|b| b.anonymous_on_network())
                {
                    eprintln!(
                        "{}: warning: local_broker.allow_anonymous: anyone on the network may                          connect to the local broker without a credential",
                        path.display()
                    );
                }
                println!("{}: ok", path.display());
            })
        }
        Cmd::Rules(c) => crate::rules::cli::run(c).map_err(|e| Exit {
            code: u8::try_from(e.exit_code()).unwrap_or(1),
            error: e.into(),
        }),
        Cmd::Bundle(c) => crate::ota::cli::run(c).map_err(ota_exit),
        Cmd::Ota(c) => crate::ota::cli::run_ota(c).map_err(ota_exit),
        #[cfg(feature = "sim")]
        Cmd::SimStick(a) => crate::zigbee::sim_run::main(&a).map_err(Exit::runtime),
        #[cfg(feature = "sim")]
        Cmd::FleetSim(a) => crate::fleet_sim::main(&a).map_err(Exit::runtime),
    }
}

fn ota_exit(e: crate::ota::cli::OtaCliError) -> Exit {
    Exit {
        code: e.exit_code(),
        error: e.into(),
    }
}

fn serve(cfg: Config, clock: Arc<dyn Clock>, banner: bool) -> Result<(), Exit> {
    // Before any thread starts (they inherit it); see `app::sched` and
    // `app::malloc`.
    let refused = app::malloc::tune();
    let batch = app::sched::batch();
    let log = crate::logging::init(&cfg.log);
    if !refused.is_empty() {
        tracing::warn!(
            ?refused,
            "the C allocator refused some of carebridge's settings; using its defaults for them"
        );
    }
    if let Err(e) = batch {
        tracing::warn!(error = %e, "cannot use the SCHED_BATCH CPU policy; running under the default one");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Exit::runtime)?;
    let ended = rt.block_on(app::run(cfg, RunOptions { clock, banner, log }));
    // Whatever blocking work is still running (a stuck disk) must not hold
    // the exit: `app::run` already stopped or abandoned everything.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    ended
}
