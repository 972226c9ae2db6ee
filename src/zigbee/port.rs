//! The serial shell: owns the port on its own thread, gives the pure
//! [`Coordinator`] bytes and wall-clock time, and carries out its
//! [`Output`]s (readings to the hub, parameters to the store, re-init on failure).
//!
//! Supervision: a failed coordinator (SRSP timeout, repeated RPC errors,
//! unexpected reset) or a vanished port leads to `link down`, a backoff
//! (doubling from `backoff_min` to `backoff_max`, reset after a successful
//! start), reopening the port by path (it may come back under the same
//! udev name), and a fresh start-up that soft-resets the stick first. It
//! never gives up; only the shutdown token or a closed output channel ends it.
//!
//! Time is the wall clock (readings carry it). A clock step backwards only
//! delays timeouts; a step forwards (NTP after boot on a Pi without RTC)
//! times out at most the request in flight, which costs one extra ping,
//! not the link.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ring::rand::{SecureRandom, SystemRandom};
use serialport::{SerialPort, TTYPort};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::coordinator::{Coordinator, Output, RESET_REASON};
use super::counters::{ZigbeeCounters, accumulate};
use super::library;
use super::network::{NetworkParams, NetworkStore};
use super::session::SessionStats;
use super::{ZigbeeCommand, ZigbeeConfig};
use crate::model::{Ingest, LinkStatus};

/// Longest the loop blocks in a read, so commands and shutdown stay prompt.
const TICK: Duration = Duration::from_millis(20);

/// Magic byte that makes the CC26xx serial bootloader start the application.
const SKIP_BOOTLOADER: u8 = 0xEF;

/// Runs the coordinator link until `shutdown`. Readings, device facts and
/// link status go to `out`; network parameters are loaded from and saved
/// to `net_store`; link counters are kept in `counters`.
pub async fn run(
    cfg: ZigbeeConfig,
    out: mpsc::Sender<Ingest>,
    cmds: mpsc::Receiver<ZigbeeCommand>,
    net_store: impl NetworkStore,
    counters: Arc<ZigbeeCounters>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || drive(cfg, out, cmds, net_store, &counters, shutdown))
        .await
        .context("zigbee thread panicked")?
}

enum Ended {
    Shutdown,
    Failed { reason: String, was_up: bool },
}

/// Opens the port 115200 8N1 without flow control. DTR/RTS are lowered on a
/// best-effort basis: on a pseudo-terminal that fails with ENOTTY.
pub fn open_port(path: &str, baud: u32) -> Result<TTYPort, serialport::Error> {
    let mut p = serialport::new(path, baud)
        .data_bits(serialport::DataBits::Eight)
        .parity(serialport::Parity::None)
        .stop_bits(serialport::StopBits::One)
        .flow_control(serialport::FlowControl::None)
        .timeout(TICK)
        .open_native()?;
    let _ = p.write_data_terminal_ready(false);
    let _ = p.write_request_to_send(false);
    Ok(p)
}

fn link(up: bool, detail: String) -> Ingest {
    Ingest::Link(LinkStatus {
        link: "zigbee".into(),
        up,
        detail,
        at: crate::wall::now(),
    })
}

/// Sleeps `d` in ticks; false when shutdown was requested meanwhile.
fn nap(d: Duration, shutdown: &CancellationToken) -> bool {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        if shutdown.is_cancelled() {
            return false;
        }
        std::thread::sleep(TICK.min(end.saturating_duration_since(std::time::Instant::now())));
    }
    !shutdown.is_cancelled()
}

fn drive(
    cfg: ZigbeeConfig,
    out: mpsc::Sender<Ingest>,
    mut cmds: mpsc::Receiver<ZigbeeCommand>,
    store: impl NetworkStore,
    counters: &ZigbeeCounters,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let rng = SystemRandom::new();
    // Counts of ended sessions (each coordinator session starts from zero).
    let mut base = SessionStats::default();
    let mut backoff = cfg.backoff_min.0;
    let mut first = true;
    let mut reported_up: Option<bool> = None;
    let library = super::load_library(&cfg).unwrap_or_else(|e| {
        tracing::error!("{e}; using the built-in device library only");
        library::Library::builtin()
    });
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let reason = match open_port(&cfg.port, cfg.baud) {
            Err(e) => format!("cannot open {}: {e}", cfg.port),
            Ok(port) => {
                let stored = store
                    .load()
                    .and_then(|b| match NetworkParams::from_bytes(&b) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            tracing::warn!(
                                "{e}; a new network will be formed if the stick is blank"
                            );
                            None
                        }
                    });
                let mut rnd = [0u8; 26];
                rng.fill(&mut rnd)
                    .map_err(|_| anyhow::anyhow!("system random generator failed"))?;
                let fresh = NetworkParams::from_random(cfg.channel, &rnd);
                let mut coord = Coordinator::new(cfg.coordinator(), stored, fresh, !first)
                    .with_library(library.clone());
                first = false;
                let ended = session(
                    port,
                    &mut coord,
                    &out,
                    &mut cmds,
                    &store,
                    &shutdown,
                    Report {
                        up: &mut reported_up,
                        counters,
                        base: &base,
                    },
                );
                accumulate(&mut base, &coord.session_stats());
                counters.publish(&base, &SessionStats::default());
                match ended {
                    Ended::Shutdown => return Ok(()),
                    Ended::Failed { reason, was_up } => {
                        counters.restarted(reason == RESET_REASON);
                        if was_up {
                            backoff = cfg.backoff_min.0;
                        }
                        reason
                    }
                }
            }
        };
        tracing::warn!(target: "carebridge::zigbee", "link down: {reason}; retrying in {backoff:?}");
        if reported_up != Some(false) {
            reported_up = Some(false);
            if out.blocking_send(link(false, reason)).is_err() {
                return Ok(());
            }
        }
        if !nap(backoff, &shutdown) {
            return Ok(());
        }
        backoff = (backoff * 2).min(cfg.backoff_max.0);
    }
}

/// What a session reports besides its readings: the link state last told
/// to the hub, and the counters (with the counts of ended sessions).
struct Report<'a> {
    up: &'a mut Option<bool>,
    counters: &'a ZigbeeCounters,
    base: &'a SessionStats,
}

fn session(
    mut port: TTYPort,
    coord: &mut Coordinator,
    out: &mpsc::Sender<Ingest>,
    cmds: &mut mpsc::Receiver<ZigbeeCommand>,
    store: &impl NetworkStore,
    shutdown: &CancellationToken,
    report: Report<'_>,
) -> Ended {
    let Report {
        up: reported_up,
        counters,
        base,
    } = report;
    let mut buf = [0u8; 512];
    // CC2652 sticks with the serial bootloader wait in it after power-up
    // until they see this byte (as Zigbee2MQTT's "skip bootloader"); a
    // running Z-Stack discards it as a non-SOF byte.
    if let Err(e) = port.write_all(&[SKIP_BOOTLOADER]) {
        return Ended::Failed {
            reason: format!("port write failed: {e}"),
            was_up: false,
        };
    }
    coord.handle_timeout(crate::wall::now());
    loop {
        if shutdown.is_cancelled() {
            return Ended::Shutdown;
        }
        let was_up = coord.is_running();
        while let Ok(c) = cmds.try_recv() {
            match c {
                ZigbeeCommand::PermitJoin { secs } => coord.permit_join(secs, crate::wall::now()),
                ZigbeeCommand::Identify { ieee, secs } => {
                    if !coord.identify(ieee, secs, crate::wall::now()) {
                        tracing::warn!(
                            ieee = format!("{ieee:016x}"),
                            "identify: device not in the running network"
                        );
                    }
                }
                ZigbeeCommand::Warn { ieee, command } => {
                    if !coord.warn(ieee, &command, crate::wall::now()) {
                        tracing::warn!(
                            ieee = format!("{ieee:016x}"),
                            ?command,
                            "siren warning: device not in the running network"
                        );
                    }
                }
            }
        }
        while let Some(b) = coord.poll_transmit() {
            if let Err(e) = port.write_all(&b) {
                return Ended::Failed {
                    reason: format!("port write failed: {e}"),
                    was_up,
                };
            }
        }
        while let Some(o) = coord.poll_output() {
            match o {
                Output::Ingest(i) => {
                    if let Ingest::Link(l) = &i {
                        *reported_up = Some(l.up);
                    }
                    if out.blocking_send(i).is_err() {
                        return Ended::Shutdown;
                    }
                }
                Output::Save(p) => store.save(&p.to_bytes()),
                Output::Failed(reason) => return Ended::Failed { reason, was_up },
            }
        }
        let now = crate::wall::now();
        let wait = coord
            .next_deadline()
            .map(|d| d.since(now))
            .unwrap_or(TICK)
            .clamp(Duration::from_millis(1), TICK);
        let _ = port.set_timeout(wait);
        match port.read(&mut buf) {
            Ok(0) => {
                return Ended::Failed {
                    reason: "port closed".into(),
                    was_up,
                };
            }
            Ok(n) => coord.handle_bytes(&buf[..n], crate::wall::now()),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Ended::Failed {
                    reason: format!("port vanished: {e}"),
                    was_up,
                };
            }
        }
        coord.handle_timeout(crate::wall::now());
        // Seven relaxed stores per wake-up (at most every 20 ms when idle).
        counters.publish(base, &coord.session_stats());
    }
}
