//! The async LoRaWAN uplink task: the serial port and the integrator's API.
//!
//! Owns: the serial port (a reader thread that frames lines, writes inline —
//! one short AT line at a time), the wall clock for the pure [`Core`], the
//! request channel ([`LoraUplink`] → [`LoraQueue`]) and the event channel.
//!
//! Invariants:
//! - every [`LoraUplink::send`] gets exactly one [`Delivery`] (a lost port
//!   fails what was queued; the caller keeps it in its outbox);
//! - a lost port is reopened with backoff; the airtime ledger survives it;
//! - shutdown is the token passed in; the reader thread stops with the session.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::airtime::Budget;
use super::at::{Framed, LineFramer};
use super::modem::{Dialect, Driver};
use super::policy::{Core, CoreEvent, Delivery, Message, RadioEvent};
use super::rak3172::Rak3172;
use super::wio_e5::WioE5;
use super::{LorawanConfig, read_app_key};

/// What the uplink task reports to the integrator.
#[derive(Debug, Clone, PartialEq)]
pub enum LoraEvent {
    /// Join state, downlinks and modem resets, as the core reported them.
    Radio(RadioEvent),
    /// Airtime used and downlinks received in the last 24 h (after every delivery).
    Airtime {
        used_24h: Duration,
        limit: Duration,
        downlinks_24h: u32,
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
    mut queue: LoraQueue,
    events: mpsc::Sender<LoraEvent>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let key = read_app_key(std::path::Path::new(&cfg.app_key_file))?;
    let settings = cfg.modem_settings(key)?;
    let core_cfg = cfg.core_config()?;
    let mut budget = Budget::new(core_cfg.limits.clone());
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
                let core = Core::with_budget(driver, core_cfg.clone(), budget, crate::wall::now());
                let r = session(core, port, &mut queue, &events, &shutdown).await;
                budget = r.0;
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
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Input::Closed(e.to_string()));
                        return;
                    }
                }
            }
        })
}

/// One session on an open port. Returns the budget (kept across sessions).
async fn session(
    mut core: Core,
    mut port: serialport::TTYPort,
    queue: &mut LoraQueue,
    events: &mpsc::Sender<LoraEvent>,
    shutdown: &CancellationToken,
) -> (Budget, anyhow::Result<()>) {
    let (ltx, mut lines) = mpsc::channel(256);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = match port
        .try_clone_native()
        .map_err(anyhow::Error::from)
        .and_then(|p| spawn_reader(p, ltx, stop.clone()).map_err(anyhow::Error::from))
    {
        Ok(h) => h,
        Err(e) => return (core.into_budget(), Err(e)),
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
    (core.into_budget(), result)
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
    while let Some(ev) = core.poll_event() {
        let out = match ev {
            CoreEvent::Delivered { id, delivery } => {
                if let Some(r) = replies.remove(&id) {
                    let _ = r.send(delivery);
                }
                let now = crate::wall::now();
                LoraEvent::Airtime {
                    used_24h: core.budget().used_24h(now),
                    limit: core.budget().limits().daily_airtime,
                    downlinks_24h: core.budget().downlinks_24h(now),
                }
            }
            CoreEvent::Radio(r) => LoraEvent::Radio(r),
        };
        // Back-pressure rather than loss; a closed receiver just means nobody listens.
        let _ = events.send(out).await;
    }
    Ok(())
}
