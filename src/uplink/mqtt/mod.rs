//! The MQTT uplink to the care organisation's broker (rumqttc, QoS 1).
//!
//! Topics (DESIGN.md, "Upstream MQTT"), under `<prefix>/<gateway_id>/`:
//! `alert`, `telemetry`, `status` (retained; the last will says offline),
//! `cmd/<name>` in, `cmd/<name>/result` out.
//!
//! How delivery stays exact-enough (at least once, never lost):
//! - rows are read from the committed outbox by class priority then `seq`;
//!   a window of at most `inflight` rows is in flight, a few slots kept free
//!   for alerts so a telemetry backlog never delays one;
//! - rumqttc reports the packet id it gave each publish (`Outgoing::Publish`)
//!   in the order we published, so a FIFO maps packet ids back to rows; a
//!   PUBACK turns into `Write::Delivered { via: Mqtt }` for that row — the
//!   only way a row leaves (the store records MQTT as the alert's path);
//! - every connection gets a fresh rumqttc client and event loop: nothing
//!   of a previous connection's in-flight state survives (rumqtt #1056);
//!   cursors restart from the head of the outbox, so everything not yet
//!   acknowledged is sent again, with the same `id`;
//! - commands are re-subscribed on every ConnAck (rumqtt #250);
//! - a watchdog drops a link with no incoming packet for 1.5 × keepalive
//!   (rumqttc pings every keepalive, so a healthy link always has one);
//! - reconnects use exponential backoff with jitter ([`super::backoff`]);
//!   with several broker nodes (`url` a list, or a name with several
//!   addresses) a lost or failed connection moves to the next node and a
//!   working one is kept ([`nodes`]); the node in use is in the status;
//! - the session is persistent: client id = gateway id (unless
//!   `client_id` says otherwise), `clean_session = false`, `cmd/+`
//!   subscribed at QoS 1 — a command sent while the home was offline is
//!   kept by the broker and delivered when it returns (duplicates and
//!   stale commands are handled by [`crate::commands`]);
//! - acknowledgements of incoming publishes are manual: a command's
//!   PUBLISH is PUBACKed only when its result is handed to the client
//!   (after the handler ran it and remembered its id), so a crash between
//!   receipt and execution leaves it unacknowledged and the broker delivers
//!   it again over the persistent session; a command the handler could not
//!   take, or whose result could not be queued, stays unacknowledged until
//!   the next connection. Any other publish is acknowledged at once.
//!
//! Setting up from the configuration (URL, credentials, TLS files): `setup`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, LastWill, MqttOptions, Outgoing,
    Publish, QoS, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::{Command, Direct, UplinkState};
use crate::model::Class;
use crate::store::{Store, Write};
use crate::wall::jitter_unit;

pub mod nodes;
mod setup;
pub use setup::{Prepared, SetupError, read_secret};

/// Builds the status document, called at every connect (the birth
/// message) and by the heartbeat.
pub use crate::status::StatusFn;

/// The status document as published on `<prefix>/<gateway>/status`: its
/// one serialisation (keys sorted, as `serde_json`'s maps keep them).
pub fn status_document(s: &crate::status::Status) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(s) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

/// The uplink's connections to the outside.
pub struct Links {
    pub commands: mpsc::Sender<Command>,
    pub direct: mpsc::Receiver<Direct>,
    pub state: watch::Sender<UplinkState>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Links")
    }
}

/// Runs the uplink until shutdown: connect, deliver, reconnect, forever.
pub async fn run(
    prep: Prepared,
    store: Store,
    status: StatusFn,
    mut links: Links,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut backoff = Backoff::new(prep.cfg.backoff_min.0, prep.cfg.backoff_max.0);
    let mut nodes = nodes::Nodes::new(prep.urls.clone(), &prep.gateway);
    let mut connects = 0u64;
    let mut delivered = 0u64;
    // The node of the last working connection: a connection elsewhere is
    // a failover.
    let mut last_node: Option<String> = None;
    loop {
        let node = nodes.current().await;
        set_state(&links.state, "connecting", connects, None, delivered);
        links
            .state
            .send_modify(|s| s.node = Some(node.label.clone()));
        let started = Instant::now();
        let connects_before = connects;
        let mut session = Session::new(&prep, &node, &store, &status, &mut links, &shutdown);
        session.failover = last_node.as_ref().is_some_and(|l| *l != node.label);
        let end = session.run(&mut connects).await;
        delivered += session.delivered;
        backoff.connected_for(started.elapsed());
        if connects > connects_before {
            nodes.connected();
            last_node = Some(node.label.clone());
        }
        match end {
            End::Shutdown => {
                set_state(&links.state, "off", connects, None, delivered);
                return Ok(());
            }
            End::Lost(reason) => {
                tracing::warn!(broker = %node.label, %reason, "MQTT uplink down");
                nodes.failed();
                set_state(
                    &links.state,
                    "disconnected",
                    connects,
                    Some(reason),
                    delivered,
                );
            }
        }
        let wait = backoff.next_delay(jitter_unit());
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn set_state(
    tx: &watch::Sender<UplinkState>,
    state: &'static str,
    connects: u64,
    last_error: Option<String>,
    delivered: u64,
) {
    tx.send_modify(|s| {
        if s.state != state {
            s.since = Some(crate::wall::now());
        }
        s.state = state;
        s.connects = connects;
        s.delivered = delivered;
        if state == "connected" {
            s.last_error = None;
        } else if last_error.is_some() {
            s.last_error = last_error;
        }
    });
}

enum End {
    Shutdown,
    Lost(String),
}

/// One connection's worth of state. Dropped whole on disconnect.
struct Session<'a> {
    prep: &'a Prepared,
    node: &'a nodes::Node,
    store: &'a Store,
    status: &'a StatusFn,
    links: &'a mut Links,
    shutdown: &'a CancellationToken,
    /// Highest seq handed to the client, per class, in this connection.
    cursor: [u64; 3],
    /// Publishes handed to rumqttc, waiting for their packet id.
    awaiting_pkid: VecDeque<Option<(Class, u64)>>,
    /// Packet id → outbox row, waiting for PUBACK.
    in_flight: HashMap<u16, (Class, u64)>,
    /// Outbox rows published and not yet acknowledged.
    window_used: usize,
    acks: Vec<(Class, u64)>,
    /// The outbox may hold rows we have not published yet.
    dirty: bool,
    delivered: u64,
    /// `<prefix>/<gateway>/<class>`, built once.
    topics: [String; 3],
    /// This node is not the one of the last working connection.
    failover: bool,
    /// Commands handed to the handler, by receipt, waiting for their
    /// result before they are PUBACKed.
    receipts: HashMap<u64, Publish>,
}

/// Receipts are unique across connections: a result that comes back after
/// a reconnect finds no PUBLISH of this connection to acknowledge.
static NEXT_RECEIPT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl<'a> Session<'a> {
    fn new(
        prep: &'a Prepared,
        node: &'a nodes::Node,
        store: &'a Store,
        status: &'a StatusFn,
        links: &'a mut Links,
        shutdown: &'a CancellationToken,
    ) -> Self {
        Session {
            prep,
            node,
            store,
            status,
            links,
            shutdown,
            cursor: [0; 3],
            awaiting_pkid: VecDeque::new(),
            in_flight: HashMap::new(),
            window_used: 0,
            acks: Vec::new(),
            dirty: true,
            delivered: 0,
            topics: Class::ALL.map(|c| prep.topic(c.as_str())),
            failover: false,
            receipts: HashMap::new(),
        }
    }

    fn options(&self) -> MqttOptions {
        let p = self.prep;
        let id = p.cfg.client_id.clone().unwrap_or_else(|| p.gateway.clone());
        let mut o = MqttOptions::new(id, self.node.host.clone(), self.node.port);
        o.set_keep_alive(p.cfg.keepalive.0);
        // Persistent: what the cloud sent while we were away is kept for us.
        o.set_clean_session(false);
        // A command is PUBACKed once handled, not on receipt (module doc).
        o.set_manual_acks(true);
        o.set_inflight(p.cfg.inflight.saturating_add(32));
        o.set_request_channel_capacity(usize::from(p.cfg.inflight) + 64);
        // Publishes queued together leave in one write (patched rumqttc:
        // patches/rumqttc/PATCH.md): a burst of alerts costs one system call
        // per batch, not per alert.
        o.set_max_request_batch(REQUEST_BATCH);
        o.set_max_packet_size(256 * 1024, 256 * 1024);
        let offline = serde_json::json!({"state": "offline", "gateway": p.gateway}).to_string();
        o.set_last_will(LastWill::new(
            p.topic("status"),
            offline,
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(user) = &p.cfg.username {
            o.set_credentials(user.clone(), p.password.clone().unwrap_or_default());
        }
        if let Some(tls) = &p.tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls.clone(),
            )));
        }
        o
    }

    async fn run(&mut self, connects: &mut u64) -> End {
        // `cap` is the request channel: room for a full window plus commands.
        let cap = usize::from(self.prep.cfg.inflight) + 64;
        let (client, eventloop) = AsyncClient::new(self.options(), cap);
        let (ev_tx, mut events) = mpsc::channel(1024);
        let pump = tokio::spawn(pump_events(eventloop, ev_tx));
        let end = self.drive(&client, &mut events, connects).await;
        if matches!(end, End::Shutdown) {
            // Best effort: say goodbye properly so the last will is not needed.
            let offline =
                serde_json::json!({"state": "offline", "gateway": self.prep.gateway}).to_string();
            let _ = client.try_publish(self.prep.topic("status"), QoS::AtLeastOnce, true, offline);
            let _ = client.try_disconnect();
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Some(ev) = events.recv().await {
                    if ev.is_err() {
                        break;
                    }
                }
            })
            .await;
        }
        pump.abort();
        end
    }

    async fn drive(
        &mut self,
        client: &AsyncClient,
        events: &mut mpsc::Receiver<Result<Event, ConnectionError>>,
        connects: &mut u64,
    ) -> End {
        let keepalive = self.prep.cfg.keepalive.0;
        let dead_after = keepalive.mul_f64(1.5);
        // Connect: wait for ConnAck (rumqttc applies its own connect timeout).
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return End::Shutdown,
                ev = events.recv() => match ev {
                    None => return End::Lost("event loop ended".into()),
                    Some(Err(e)) => return End::Lost(describe(&e)),
                    Some(Ok(Event::Incoming(Incoming::ConnAck(_)))) => break,
                    Some(Ok(_)) => {}
                }
            }
        }
        *connects += 1;
        if self.failover {
            self.links.state.send_modify(|s| s.failovers += 1);
        }
        // The count so far (earlier sessions): this one adds as acks commit.
        let delivered = self.links.state.borrow().delivered;
        set_state(&self.links.state, "connected", *connects, None, delivered);
        tracing::info!(broker = %self.node.label, "MQTT uplink connected");
        if let Err(e) = self.on_connected(client) {
            return End::Lost(e);
        }
        let mut changed = self.store.outbox_changed();
        let mut last_incoming = Instant::now();
        // Ticks at a tenth of the keepalive: a dead link is declared at most
        // 0.1 keepalive after 1.5 keepalives of silence.
        let mut watchdog = tokio::time::interval((keepalive / 10).max(Duration::from_millis(100)));
        loop {
            if let Err(e) = self.fill(client).await {
                return End::Lost(e);
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => {
                    self.flush_acks().await;
                    return End::Shutdown;
                }
                ev = events.recv() => {
                    let mut next = ev;
                    // Handle everything already waiting, then ack in one batch.
                    loop {
                        match next {
                            None => return End::Lost("event loop ended".into()),
                            Some(Err(e)) => {
                                self.flush_acks().await;
                                return End::Lost(describe(&e));
                            }
                            Some(Ok(ev)) => {
                                if matches!(ev, Event::Incoming(_)) {
                                    last_incoming = Instant::now();
                                }
                                self.on_event(client, ev);
                            }
                        }
                        match events.try_recv() {
                            Ok(ev) => next = Some(ev),
                            Err(_) => break,
                        }
                    }
                    self.flush_acks().await;
                }
                r = changed.changed() => {
                    if r.is_err() {
                        return End::Lost("store closed".into());
                    }
                    self.dirty = true;
                }
                d = self.links.direct.recv() => {
                    if let Some(d) = d {
                        let topic = self.prep.topic(&d.subtopic);
                        let sent = client.try_publish(topic, QoS::AtLeastOnce, d.retain, d.payload).is_ok();
                        if sent {
                            self.awaiting_pkid.push_back(None);
                        }
                        self.settle(client, d.settles, sent);
                    }
                }
                _ = watchdog.tick() => {
                    if last_incoming.elapsed() > dead_after {
                        self.flush_acks().await;
                        return End::Lost(format!(
                            "no answer from the broker for {:.1} s (keepalive {} s): link presumed dead",
                            last_incoming.elapsed().as_secs_f64(),
                            keepalive.as_secs()
                        ));
                    }
                }
            }
        }
    }

    fn on_connected(&mut self, client: &AsyncClient) -> Result<(), String> {
        client
            .try_subscribe(self.prep.topic("cmd/+"), QoS::AtLeastOnce)
            .map_err(|e| format!("subscribe: {e}"))?;
        let mut status = (self.status)();
        status.state = "online";
        let birth = serde_json::Value::Object(status_document(&status)).to_string();
        client
            .try_publish(self.prep.topic("status"), QoS::AtLeastOnce, true, birth)
            .map_err(|e| format!("publish status: {e}"))?;
        self.awaiting_pkid.push_back(None);
        Ok(())
    }

    /// A command's result was (`sent`) or could not be handed to the
    /// client: acknowledge its PUBLISH, or leave it for a redelivery.
    fn settle(&mut self, client: &AsyncClient, receipt: Option<u64>, sent: bool) {
        let Some(publish) = receipt.and_then(|r| self.receipts.remove(&r)) else {
            return;
        };
        if !sent {
            tracing::warn!(topic = %publish.topic, "command result not published: the command stays unacknowledged and comes again at the next connection");
        } else if let Err(e) = client.try_ack(&publish) {
            tracing::warn!(topic = %publish.topic, error = %e, "command not acknowledged: it comes again at the next connection");
        }
    }

    fn on_event(&mut self, client: &AsyncClient, ev: Event) {
        match ev {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(Some(row)) = self.awaiting_pkid.pop_front() {
                    self.in_flight.insert(pkid, row);
                }
            }
            Event::Incoming(Incoming::PubAck(ack)) => {
                if let Some(row) = self.in_flight.remove(&ack.pkid) {
                    self.acks.push(row);
                    self.window_used = self.window_used.saturating_sub(1);
                    self.delivered += 1;
                    self.dirty = true;
                }
            }
            Event::Incoming(Incoming::Publish(p)) => {
                let prefix = self.prep.topic("cmd/");
                let Some(name) = p.topic.strip_prefix(&prefix) else {
                    if let Err(e) = client.try_ack(&p) {
                        tracing::warn!(topic = %p.topic, error = %e, "could not acknowledge a publish");
                    }
                    return;
                };
                let receipt = NEXT_RECEIPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let cmd = Command {
                    name: name.to_string(),
                    payload: p.payload.to_vec(),
                    receipt: Some(receipt),
                };
                if self.links.commands.try_send(cmd).is_err() {
                    tracing::warn!(
                        command = name,
                        "command not taken (handler busy): left unacknowledged, it comes again at the next connection"
                    );
                    return;
                }
                self.receipts.insert(receipt, p);
            }
            _ => {}
        }
    }

    async fn flush_acks(&mut self) {
        if self.acks.is_empty() {
            return;
        }
        let acks = std::mem::take(&mut self.acks);
        let n = u64::try_from(acks.len()).unwrap_or(u64::MAX);
        // `uplink_delivered_total` counts while connected, not only when a
        // session ends.
        self.links
            .state
            .send_modify(|s| s.delivered = s.delivered.saturating_add(n));
        let done = Write::Delivered {
            via: crate::store::Via::Mqtt,
            rows: acks,
        };
        if let Err(e) = self.store.submit(done).await {
            // Not fatal for delivery: the rows are sent again later.
            tracing::error!(error = %e, "could not record acknowledgements");
        }
    }

    /// Publishes outbox rows while the window has room: alerts first.
    /// A class whose committed head the cursor already reached is not
    /// fetched; telemetry and status refill in chunks of at least
    /// [`REFILL`] rows (or what is left), so a stream of acknowledgements
    /// does not turn into one outbox query per PUBACK.
    async fn fill(&mut self, client: &AsyncClient) -> Result<(), String> {
        if !self.dirty {
            return Ok(());
        }
        let window = usize::from(self.prep.cfg.inflight);
        let reserve = (window / 4).min(16);
        let heads = self.store.outbox_heads();
        for class in Class::ALL {
            let i = class as usize;
            let limit = if class == Class::Alert {
                window
            } else {
                window - reserve
            };
            loop {
                let waiting = heads[i].saturating_sub(self.cursor[i]);
                if waiting == 0 {
                    break; // nothing committed past what we sent
                }
                let free = limit.saturating_sub(self.window_used);
                let chunk = REFILL
                    .min(limit)
                    .min(usize::try_from(waiting).unwrap_or(usize::MAX));
                if free == 0 || (class != Class::Alert && free < chunk) {
                    return Ok(()); // still dirty: refill when acks come back
                }
                let want = free.min(512);
                let rows = self
                    .store
                    .outbox_fetch(class, self.cursor[i], want)
                    .await
                    .map_err(|e| format!("reading the outbox: {e}"))?;
                let n = rows.len();
                let retain = class == Class::Status;
                for row in rows {
                    if client
                        .try_publish(
                            self.topics[i].clone(),
                            QoS::AtLeastOnce,
                            retain,
                            row.payload,
                        )
                        .is_err()
                    {
                        // Request channel full: the event loop catches up and
                        // the next event refills from this row on.
                        return Ok(());
                    }
                    self.awaiting_pkid.push_back(Some((class, row.seq)));
                    self.cursor[i] = row.seq;
                    self.window_used += 1;
                }
                if n < want {
                    break; // this class is drained
                }
            }
        }
        self.dirty = false;
        Ok(())
    }
}

/// Smallest telemetry/status refill (see `Session::fill`).
const REFILL: usize = 64;

/// Publishes written to the socket in one flush at most.
const REQUEST_BATCH: usize = 64;

async fn pump_events(mut eventloop: EventLoop, tx: mpsc::Sender<Result<Event, ConnectionError>>) {
    loop {
        let ev = eventloop.poll().await;
        let stop = ev.is_err();
        if tx.send(ev).await.is_err() || stop {
            return;
        }
    }
}

fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            format!("broker refused the connection: {code:?}")
        }
        other => other.to_string(),
    }
}
