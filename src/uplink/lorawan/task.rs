//! The async LoRaWAN uplink task: the serial port and the integrator's API.
//!
//! Owns: the serial port (a reader thread that frames lines, writes inline —
//! one short AT line at a time), the wall clock for the pure [`Core`], the
//! request channel ([`LoraUplink`] → [`LoraQueue`]) and the event channel.
//!
//! Invariants:
//! - every [`LoraUplink::send`] gets exactly one [`Delivery`] (a lost port
//!   fails what was queued; the caller keeps it in its outbox);
//! - a lost port is reopened with backoff; the airtime ledger and the join
//!   history survive it, and with a store ([`run_with_store`]) survive
//!   restarts too: they are saved in the kv under [`STATE_KEY`] whenever
//!   they change (each uplink, downlink or join attempt);
//! - a reply that lost its line ending is read after [`QUIET`] of silence
//!   instead of waiting for the next line to end it;
//! - shutdown is the token passed in; the reader thread stops with the session.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::at::{Framed, LineFramer};
use super::modem::{Dialect, Driver};
use super::policy::{Core, CoreEvent, Delivery, Message, Persisted, RadioEvent};
use super::rak3172::Rak3172;
use super::wio_e5::WioE5;
use super::{LorawanConfig, read_app_key};

/// What the uplink task reports to the integrator.
#[derive(Debug, Clone, PartialEq)]
pub enum LoraEvent {
    /// Join state, downlinks and modem resets, as the core reported them.
    Radio(RadioEvent),
    /// Airtime used and downlinks received in the last 24 h, and the
    /// counters since start (after every delivery and join-state change).
    Airtime {
        used_24h: Duration,
        limit: Duration,
        downlinks_24h: u32,
        /// The data rate the modem reports (ADR moves it).
        data_rate: u8,
        stats: super::policy::CoreStats,
    },
    /// The serial port failed or came back.
    Port { up: bool, detail: String },
}

/// The uplink task is gone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the LoRaWAN uplink task has stopped")]
pub struct LoraClosed;

#[derive(Debug)]
struct Request {
    msg: Message,
    reply: oneshot::Sender<Delivery>,
}

/// The integrator's handle: cheap to clone.
#[derive(Debug, Clone)]
pub struct LoraUplink {
    tx: mpsc::Sender<Request>,
}

/// The task's end of the request channel.
#[derive(Debug)]
pub struct LoraQueue {
    rx: mpsc::Receiver<Request>,
}

/// A request channel holding at most `capacity` waiting requests.
pub fn channel(capacity: usize) -> (LoraUplink, LoraQueue) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (LoraUplink { tx }, LoraQueue { rx })
}

impl LoraUplink {
    /// Sends one message and waits until it was acknowledged, sent or failed.
    /// That can take long (a busy budget): run it in its own task.
    pub async fn send(&self, msg: Message) -> Result<Delivery, LoraClosed> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { msg, reply })
            .await
            .map_err(|_| LoraClosed)?;
        rx.await.map_err(|_| LoraClosed)
    }
}

/// The kv key of the persisted airtime ledger and join history (JSON).
pub const STATE_KEY: &str = "lorawan.state";
/// Silence after which a partial line is taken as a whole reply.
pub const QUIET: Duration = Duration::from_millis(100);

fn dialect(name: &str) -> Box<dyn Dialect> {
    match name {
        "wio-e5" => Box::new(WioE5),
        _ => Box::new(Rak3172),
    }
}

/// Owns the modem until `shutdown`: joins, sends what [`LoraUplink::send`]
/// hands over, reports [`LoraEvent`]s. Fails only on bad configuration.
pub async fn run(
    cfg: LorawanConfig,
    queue: LoraQueue,
    events: mpsc::Sender<LoraEvent>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with_store(cfg, queue, events, shutdown, None).await
}

/// As [`run`], keeping the airtime ledger and join history in `store`'s kv
/// (read at start, written when they change).
pub async fn run_with_store(
    cfg: LorawanConfig,
    mut queue: LoraQueue,
    events: mpsc::Sender<LoraEvent>,
    shutdown: CancellationToken,
    store: Option<crate::store::Store>,
) -> anyhow::Result<()> {
    let key = read_app_key(std::path::Path::new(&cfg.app_key_file))?;
    let settings = cfg.modem_settings(key)?;
    let core_cfg = cfg.core_config()?;
    let mut saved = match &store {
        Some(s) => load_state(s).await,
        None => Persisted::default(),
    };
    let mut backoff = Duration::from_secs(1);
    loop {
        let session = match open(&cfg) {
            Ok(port) => {
                backoff = Duration::from_secs(1);
                let driver = Driver::new(
                    dialect(&cfg.modem),
                    settings.clone(),
                    cfg.timeouts(),
                    crate::wall::now(),
                );
                let core = Core::restore(driver, core_cfg.clone(), &saved, crate::wall::now());
                let io = Io {
                    events: &events,
                    store: store.as_ref(),
                };
                let r = session(core, port, &mut queue, &io, &shutdown).await;
                saved = r.0;
                r.1
            }
            Err(e) => Err(e),
        };
        match session {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(port = %cfg.port, "lorawan modem port: {e:#}");
                let _ = events
                    .send(LoraEvent::Port {
                        up: false,
                        detail: format!("{e:#}"),
                    })
                    .await;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

/// The saved ledger and join history; a value that does not parse is
/// logged and replaced (the budget then starts empty, as before this key).
async fn load_state(store: &crate::store::Store) -> Persisted {
    match store.kv_get(STATE_KEY).await {
        Ok(Some(b)) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!(key = STATE_KEY, error = %e, "saved LoRaWAN state unreadable; starting afresh");
            Persisted::default()
        }),
        Ok(None) => Persisted::default(),
        Err(e) => {
            tracing::warn!(key = STATE_KEY, error = %e, "cannot read the saved LoRaWAN state");
            Persisted::default()
        }
    }
}

/// Where a session reports to.
struct Io<'a> {
    events: &'a mpsc::Sender<LoraEvent>,
    store: Option<&'a crate::store::Store>,
}

fn open(cfg: &LorawanConfig) -> anyhow::Result<serialport::TTYPort> {
    serialport::new(&cfg.port, cfg.baud)
        .timeout(Duration::from_millis(100))
        .open_native()
        .with_context(|| format!("{}: cannot open the modem port", cfg.port))
}

enum Input {
    Line(String),
    Closed(String),
}

fn spawn_reader(
    mut port: serialport::TTYPort,
    tx: mpsc::Sender<Input>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("lorawan-serial".into())
        .spawn(move || {
            let mut framer = LineFramer::new();
            let mut buf = [0u8; 256];
            while !stop.load(Ordering::Relaxed) {
                match port.read(&mut buf) {
                    Ok(0) => {
                        let _ = tx.blocking_send(Input::Closed("port closed".into()));
                        return;
                    }
                    Ok(n) => {
                        for f in framer.push(&buf[..n]) {
                            let line = match f {
                                Framed::Line(l) | Framed::Overlong(l) => l,
                            };
                            if tx.blocking_send(Input::Line(line)).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        // Quiet: a reply still unfinished lost its line ending.
                        if let Some(Framed::Line(l) | Framed::Overlong(l)) = framer.flush()
                            && tx.blocking_send(Input::Line(l)).is_err()
                        {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Input::Closed(e.to_string()));
                        return;
                    }
                }
            }
        })
}

/// One session on an open port. Returns the state kept across sessions.
async fn session(
    mut core: Core,
    mut port: serialport::TTYPort,
    queue: &mut LoraQueue,
    io: &Io<'_>,
    shutdown: &CancellationToken,
) -> (Persisted, anyhow::Result<()>) {
    let events = io.events;
    let (ltx, mut lines) = mpsc::channel(256);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = match port
        .try_clone_native()
        .map_err(anyhow::Error::from)
        .and_then(|p| spawn_reader(p, ltx, stop.clone()).map_err(anyhow::Error::from))
    {
        Ok(h) => h,
        Err(e) => return (core.persisted(), Err(e)),
    };
    let _ = events
        .send(LoraEvent::Port {
            up: true,
            detail: "modem port open".into(),
        })
        .await;
    let mut replies: HashMap<u64, oneshot::Sender<Delivery>> = HashMap::new();
    let mut next_id = 0u64;
    let mut accepting = true;
    let result: anyhow::Result<()> = loop {
        if let Err(e) = flush(&mut core, &mut port, events, &mut replies).await {
            break Err(e);
        }
        if let (Some(store), Some(state)) = (io.store, core.take_persisted()) {
            save_state(store, &state).await;
        }
        let wait = core
            .next_deadline()
            .map_or(Duration::from_secs(3600), |t| t.since(crate::wall::now()));
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            l = lines.recv() => match l {
                Some(Input::Line(line)) => core.handle_line(&line, crate::wall::now()),
                Some(Input::Closed(why)) => break Err(anyhow::anyhow!("modem port: {why}")),
                None => break Err(anyhow::anyhow!("modem port reader stopped")),
            },
            r = queue.rx.recv(), if accepting => match r {
                Some(req) => {
                    next_id += 1;
                    replies.insert(next_id, req.reply);
                    core.submit(next_id, req.msg, crate::wall::now());
                }
                None => accepting = false,
            },
            _ = tokio::time::sleep(wait) => core.handle_timeout(crate::wall::now()),
        }
    };
    stop.store(true, Ordering::Relaxed);
    // Whatever was not delivered stays in the caller's outbox.
    for (_, r) in replies.drain() {
        let _ = r.send(Delivery::Failed("modem session ended".into()));
    }
    drop(lines);
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
    let state = core.persisted();
    if let Some(store) = io.store {
        save_state(store, &state).await;
    }
    (state, result)
}

async fn save_state(store: &crate::store::Store, state: &Persisted) {
    let r = match serde_json::to_vec(state) {
        Ok(b) => store
            .submit(crate::store::Write::Kv(STATE_KEY.into(), Some(b)))
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = r {
        // Not fatal: the ledger lives on in memory; a restart would forget it.
        tracing::warn!(key = STATE_KEY, error = %e, "cannot save the LoRaWAN airtime ledger");
    }
}

async fn flush(
    core: &mut Core,
    port: &mut serialport::TTYPort,
    events: &mpsc::Sender<LoraEvent>,
    replies: &mut HashMap<u64, oneshot::Sender<Delivery>>,
) -> anyhow::Result<()> {
    while let Some(cmd) = core.poll_transmit() {
        tracing::debug!(%cmd, "lorawan modem <");
        port.write_all(cmd.as_bytes())
            .and_then(|()| port.write_all(b"\r\n"))
            .context("writing to the modem")?;
    }
    let mut changed = false;
    while let Some(ev) = core.poll_event() {
        let out = match ev {
            CoreEvent::Delivered { id, delivery } => {
                if let Some(r) = replies.remove(&id) {
                    let _ = r.send(delivery);
                }
                changed = true;
                continue;
            }
            CoreEvent::Radio(r) => {
                log_radio(&r);
                changed |= matches!(r, RadioEvent::JoinState { .. });
                LoraEvent::Radio(r)
            }
        };
        // Back-pressure rather than loss; a closed receiver just means nobody listens.
        let _ = events.send(out).await;
    }
    if changed {
        let now = crate::wall::now();
        let ev = LoraEvent::Airtime {
            used_24h: core.budget().used_24h(now),
            limit: core.budget().limits().daily_airtime,
            downlinks_24h: core.budget().downlinks_24h(now),
            data_rate: core.driver().data_rate(),
            stats: core.stats(),
        };
        let _ = events.send(ev).await;
    }
    Ok(())
}

/// What an operator should see in the log without debug output.
fn log_radio(r: &RadioEvent) {
    match r {
        RadioEvent::SetupRefused {
            command,
            error,
            retry_in,
        } => {
            tracing::warn!(%command, %error, ?retry_in, "LoRaWAN modem refused its set-up; trying again later")
        }
        RadioEvent::ModemReset(why) => tracing::warn!(%why, "LoRaWAN modem reset"),
        RadioEvent::JoinState { joined, detail } => {
            tracing::info!(joined, %detail, "LoRaWAN join state")
        }
        _ => {}
    }
}
