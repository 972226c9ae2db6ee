//! One front-door connection's internal client on the embedded broker
//! (rumqttd): what a client subscribes to and publishes that is not a
//! reading goes through it.
//!
//! The rumqttc event loop runs in a task of its own and hands the
//! connection what matters ([`Event`]) over a bounded channel. QoS 0
//! messages for a client that does not keep up are dropped there and
//! counted (`shed_subscriber`); everything else waits (rumqttd bounds what
//! it sends unacknowledged). Acknowledgements to rumqttd are manual: the
//! connection acks a message only after its client did.
//!
//! Dropping the proxy aborts the task, which closes the TCP connection
//! without DISCONNECT, so rumqttd publishes the client's will;
//! [`Proxy::disconnect`] is the clean end (no will).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::{AsyncClient, EventLoop, Incoming, LastWill, MqttOptions, Outgoing, QoS};
use rumqttc::{Publish, SubscribeFilter, SubscribeReasonCode};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Upstream;
use crate::ingest::mqtt::IngestStats;

/// What the internal client tells its connection.
#[derive(Debug)]
pub(super) enum Event {
    /// A message for the client.
    Publish(Publish),
    /// rumqttd acknowledged the oldest forwarded QoS 1 publication.
    PubAck,
    /// rumqttd answered the oldest forwarded SUBSCRIBE.
    SubAck(Vec<SubscribeReasonCode>),
    /// The internal connection failed or was refused.
    Failed(String),
}

/// How many events may wait for the connection.
const EVENTS: usize = 64;

pub(super) struct Proxy {
    client: AsyncClient,
    rx: mpsc::Receiver<Event>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Connects (in the background) as `id`, with the client's will.
    pub fn start(
        up: &Upstream,
        id: String,
        will: Option<LastWill>,
        max_packet: usize,
        inflight: usize,
        stats: Arc<IngestStats>,
    ) -> Proxy {
        let mut o = MqttOptions::new(id, up.addr.ip().to_string(), up.addr.port());
        o.set_credentials(up.login.username.clone(), up.login.password.clone());
        o.set_keep_alive(Duration::from_secs(30));
        o.set_clean_session(true);
        o.set_manual_acks(true);
        o.set_inflight(u16::try_from(inflight).unwrap_or(u16::MAX).max(1));
        o.set_max_packet_size(max_packet + 1024, max_packet + 1024);
        if let Some(w) = will {
            o.set_last_will(w);
        }
        // Room for every request the connection can have outstanding
        // (forwards and subscribes are bounded by `inflight`; acks of
        // messages from rumqttd by its own inflight limit of 256).
        let (client, el) = AsyncClient::new(o, 2 * inflight + 320);
        let (tx, rx) = mpsc::channel(EVENTS);
        let task = tokio::spawn(pump(el, tx, stats));
        Proxy { client, rx, task }
    }

    /// Queues a publication; false when the request queue is full or the
    /// topic is not valid.
    pub fn publish(&self, topic: String, qos: QoS, retain: bool, payload: bytes::Bytes) -> bool {
        self.client
            .try_publish(topic, qos, retain, payload.to_vec())
            .is_ok()
    }

    pub fn subscribe(&self, filters: Vec<SubscribeFilter>) -> bool {
        self.client.try_subscribe_many(filters).is_ok()
    }

    pub fn unsubscribe(&self, filter: String) -> bool {
        self.client.try_unsubscribe(filter).is_ok()
    }

    /// Acknowledges a message from rumqttd (its client acknowledged it).
    pub fn ack(&self, p: &Publish) -> bool {
        self.client.try_ack(p).is_ok()
    }

    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// Ends the internal session cleanly (rumqttd drops the will).
    pub async fn disconnect(mut self) {
        if self.client.try_disconnect().is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.task).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Drives the rumqttc event loop until it fails, is disconnected, or the
/// connection is gone.
async fn pump(mut el: EventLoop, tx: mpsc::Sender<Event>, stats: Arc<IngestStats>) {
    loop {
        let ev = match el.poll().await {
            Ok(rumqttc::Event::Incoming(Incoming::Publish(p))) => {
                if p.qos == QoS::AtMostOnce {
                    match tx.try_send(Event::Publish(p)) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            stats.shed_subscriber.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                    continue;
                }
                Event::Publish(p)
            }
            Ok(rumqttc::Event::Incoming(Incoming::PubAck(_))) => Event::PubAck,
            Ok(rumqttc::Event::Incoming(Incoming::SubAck(s))) => Event::SubAck(s.return_codes),
            Ok(rumqttc::Event::Incoming(Incoming::ConnAck(c)))
                if c.code != rumqttc::ConnectReturnCode::Success =>
            {
                Event::Failed(format!("internal broker refused: {:?}", c.code))
            }
            Ok(rumqttc::Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => continue,
            Err(e) => Event::Failed(e.to_string()),
        };
        let failed = matches!(ev, Event::Failed(_));
        if tx.send(ev).await.is_err() || failed {
            return;
        }
    }
}
