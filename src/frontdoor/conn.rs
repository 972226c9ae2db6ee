//! One front-door connection: CONNECT and the gate, then the packet loop.
//!
//! The loop reads the socket only while the connection has room for more
//! unacknowledged work ([`super::Limits::inflight`]: readings waiting for
//! their commit, publications waiting for rumqttd, subscribes waiting for
//! its SUBACK), so a fast sender is paced by the store's commits. Buffered
//! packets are parsed under the same bound. Everything the connection
//! answers goes into one output buffer, written once per loop turn.
//!
//! Acknowledgements of readings come from the store's writer thread
//! through [`Committed`] (a token per reading: the packet id, plus
//! [`QOS2`] for a PUBREC); the loop wakes on its `Notify`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, LastWill, Packet, PubAck, PubComp, PubRec, Publish,
    SubAck, Subscribe, SubscribeFilter, SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{self, Protocol, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf};
use tokio::sync::Notify;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::proxy::{self, Proxy};
use super::{FrontDoor, Identity, Refusal};
use crate::hub::AckedReading;
use crate::ingest::mqtt::TOPIC_ROOT;
use crate::store::{AckSink, AckTo};

/// A client must send CONNECT this soon after connecting.
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// A client that does not read what it is sent for this long is dropped.
const WRITE_WAIT: Duration = Duration::from_secs(30);
/// Token bit: the reading came at QoS 2 (answer PUBREC, not PUBACK).
const QOS2: u32 = 1 << 16;

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("no CONNECT within 10 s")]
    ConnectTimeout,
    #[error("keepalive expired")]
    KeepAlive,
    #[error("refused at CONNECT: {0:?}")]
    Refused(ConnectReturnCode),
    #[error("the client does not read: write timed out")]
    WriteTimeout,
    #[error("internal broker: {0}")]
    Upstream(String),
    #[error("the hub stopped")]
    HubGone,
}

/// The commits a connection waits for: filled on the store's writer
/// thread, drained by the connection's loop.
#[derive(Default)]
struct Committed {
    done: Mutex<Vec<u32>>,
    wake: Notify,
}

impl AckSink for Committed {
    fn committed(&self, token: u32) {
        match self.done.lock() {
            Ok(mut g) => g.push(token),
            Err(p) => p.into_inner().push(token),
        }
        self.wake.notify_one();
    }
}

/// What a forwarded publication's PUBACK from rumqttd answers.
#[derive(Debug, Clone, Copy)]
enum Fwd {
    PubAck(u16),
    PubRec(u16),
}

struct Conn<'a, W> {
    door: &'a Arc<FrontDoor>,
    peer: SocketAddr,
    who: Identity,
    client_id: String,
    wr: W,
    out: BytesMut,
    sink: Arc<Committed>,
    /// Swapped with `sink.done` (keeps both allocations).
    taken: Vec<u32>,
    /// Readings waiting for their commit.
    pending: usize,
    /// QoS 2 packet ids waiting for PUBREL → PUBREC already sent.
    qos2: HashMap<u16, bool>,
    /// Forwarded QoS 1/2 publications waiting for rumqttd, oldest first.
    fwd: VecDeque<Fwd>,
    /// Forwarded SUBSCRIBEs waiting for rumqttd: packet id and, per
    /// filter, whether it was passed on.
    subs: VecDeque<(u16, Vec<bool>)>,
    /// Messages sent to the client at QoS 1, by our packet id, waiting for
    /// its PUBACK (then acknowledged to rumqttd).
    down: HashMap<u16, rumqttc::Publish>,
    next_pkid: u16,
    proxy: Option<Proxy>,
}

/// Serves one connection (see the module header).
pub(super) async fn run<S>(
    stream: S,
    peer: SocketAddr,
    door: &Arc<FrontDoor>,
    shutdown: CancellationToken,
) -> Result<(), ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(stream);
    let mut inbuf = BytesMut::with_capacity(512);
    let max = door.limits.max_packet;
    let connect = tokio::time::timeout(CONNECT_WAIT, read_connect(&mut rd, &mut inbuf, max))
        .await
        .map_err(|_| ConnError::ConnectTimeout)?;
    let mut c = Conn {
        door,
        peer,
        who: Identity::Anonymous,
        client_id: String::new(),
        wr,
        out: BytesMut::with_capacity(256),
        sink: Arc::default(),
        taken: Vec::new(),
        pending: 0,
        qos2: HashMap::new(),
        fwd: VecDeque::new(),
        subs: VecDeque::new(),
        down: HashMap::new(),
        next_pkid: 0,
        proxy: None,
    };
    let connect = match connect {
        Ok(x) => x,
        Err(ConnError::Refused(code)) => {
            c.put(Packet::ConnAck(ConnAck::new(code, false)))?;
            c.flush().await?;
            return Err(ConnError::Refused(code));
        }
        Err(e) => return Err(e),
    };
    if let Err(code) = c.admit(&connect) {
        c.put(Packet::ConnAck(ConnAck::new(code, false)))?;
        c.flush().await?;
        return Err(ConnError::Refused(code));
    }
    c.put(Packet::ConnAck(ConnAck::new(
        ConnectReturnCode::Success,
        false,
    )))?;
    if let Some(will) = connect.last_will {
        c.start_proxy(Some(will));
    }
    let keep = Duration::from_millis(u64::from(connect.keep_alive) * 1500);
    let mut deadline = Instant::now() + keep;
    let limit = door.limits.inflight.max(1);
    let mut graceful = false;
    loop {
        if c.process(&mut inbuf, limit).await? {
            graceful = true;
            break;
        }
        c.flush().await?;
        let room = c.inflight() < limit;
        if inbuf.capacity() - inbuf.len() < 256 {
            inbuf.reserve(2048);
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            n = rd.read_buf(&mut inbuf), if room => {
                if n? == 0 {
                    break; // closed without DISCONNECT: the will goes out
                }
                deadline = Instant::now() + keep;
            }
            _ = c.sink.wake.notified() => {
                c.drain_committed()?;
                deadline = Instant::now() + keep;
            }
            ev = next_event(&mut c.proxy) => c.on_upstream(ev)?,
            _ = tokio::time::sleep_until(deadline), if !keep.is_zero() && room => {
                return Err(ConnError::KeepAlive);
            }
        }
    }
    if graceful && let Some(p) = c.proxy.take() {
        p.disconnect().await;
    }
    Ok(())
}

/// Reads until the first packet; it must be a 3.1.1 CONNECT.
async fn read_connect<R: AsyncRead + Unpin>(
    rd: &mut ReadHalf<R>,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Connect, ConnError> {
    loop {
        if mqttbytes::check(buf.iter(), max).is_ok() {
            // Protocol level sits after the name ("\0\4MQTT"): refuse v5
            // (and 3.1) with the code a v3 server answers, before parsing.
            let len_bytes = buf.iter().skip(1).take_while(|b| *b & 0x80 != 0).count() + 1;
            let level = buf.get(1 + len_bytes + 6).copied();
            if buf.first().is_some_and(|b| b >> 4 == 1) && level != Some(4) {
                return Err(ConnError::Refused(
                    ConnectReturnCode::RefusedProtocolVersion,
                ));
            }
        }
        match Packet::read(buf, max) {
            Ok(Packet::Connect(c)) if c.protocol == Protocol::V4 => return Ok(c),
            Ok(Packet::Connect(_)) => {
                return Err(ConnError::Refused(
                    ConnectReturnCode::RefusedProtocolVersion,
                ));
            }
            Ok(other) => {
                return Err(ConnError::Protocol(format!(
                    "first packet is not CONNECT: {other:?}"
                )));
            }
            Err(mqttbytes::Error::InsufficientBytes(_)) => {
                buf.reserve(256);
                if rd.read_buf(buf).await? == 0 {
                    return Err(ConnError::Protocol("closed before CONNECT".into()));
                }
            }
            Err(e) => return Err(ConnError::Protocol(e.to_string())),
        }
    }
}

/// QoS 2 is carried as QoS 1 behind the front door.
fn at_most_1(q: QoS) -> QoS {
    if q == QoS::ExactlyOnce {
        QoS::AtLeastOnce
    } else {
        q
    }
}

/// The next event of the internal client; never, without one.
async fn next_event(proxy: &mut Option<Proxy>) -> proxy::Event {
    match proxy.as_mut() {
        Some(p) => match p.recv().await {
            Some(ev) => ev,
            None => proxy::Event::Failed("internal client stopped".into()),
        },
        None => std::future::pending().await,
    }
}

impl<W: AsyncWrite + Unpin> Conn<'_, W> {
    /// The gate's verdict on CONNECT, and the connection limit.
    fn admit(&mut self, connect: &Connect) -> Result<(), ConnectReturnCode> {
        let door = self.door;
        if door.connections() > door.limits.max_connections {
            return Err(ConnectReturnCode::ServiceUnavailable);
        }
        let n = door.next_id.fetch_add(1, Ordering::Relaxed);
        self.client_id = if connect.client_id.is_empty() {
            if !connect.clean_session {
                return Err(ConnectReturnCode::BadClientId);
            }
            format!("carebridge-auto-{n}")
        } else {
            connect.client_id.clone()
        };
        let login = connect.login.as_ref();
        let who = door
            .gate
            .connect(
                self.peer.ip(),
                &self.client_id,
                login.map(|l| l.username.as_str()),
                login.map(|l| l.password.as_bytes()),
            )
            .map_err(|r| match r {
                Refusal::Throttled { .. } => ConnectReturnCode::ServiceUnavailable,
                Refusal::BadCredentials => ConnectReturnCode::BadUserNamePassword,
                Refusal::NotAuthorized => ConnectReturnCode::NotAuthorized,
            })?;
        if let Some(w) = &connect.last_will
            && !door.gate.may_publish(&who, &w.topic)
        {
            return Err(ConnectReturnCode::NotAuthorized);
        }
        self.who = who;
        // Unique on rumqttd whatever the client calls itself, without the
        // characters rumqttd refuses in a client id.
        let safe: String = self
            .client_id
            .chars()
            .take(64)
            .map(|c| if "+$#/".contains(c) { '_' } else { c })
            .collect();
        self.client_id = format!("fd{n}-{safe}");
        Ok(())
    }

    fn inflight(&self) -> usize {
        self.pending + self.fwd.len() + self.subs.len()
    }

    fn put(&mut self, p: Packet) -> Result<(), ConnError> {
        p.write(&mut self.out, usize::MAX)
            .map(|_| ())
            .map_err(|e| ConnError::Protocol(e.to_string()))
    }

    async fn flush(&mut self) -> Result<(), ConnError> {
        if self.out.is_empty() {
            return Ok(());
        }
        tokio::time::timeout(WRITE_WAIT, self.wr.write_all(&self.out))
            .await
            .map_err(|_| ConnError::WriteTimeout)??;
        self.out.clear();
        if self.out.capacity() > 64 * 1024 {
            self.out = BytesMut::with_capacity(256);
        }
        Ok(())
    }

    /// Handles buffered packets while there is room; true on DISCONNECT.
    async fn process(&mut self, buf: &mut BytesMut, limit: usize) -> Result<bool, ConnError> {
        while self.inflight() < limit {
            let packet = match Packet::read(buf, self.door.limits.max_packet) {
                Ok(p) => p,
                Err(mqttbytes::Error::InsufficientBytes(_)) => return Ok(false),
                Err(e) => return Err(ConnError::Protocol(e.to_string())),
            };
            match packet {
                Packet::Publish(p) => self.on_publish(p).await?,
                Packet::PubAck(a) => {
                    if let Some(p) = self.down.remove(&a.pkid)
                        && let Some(proxy) = &self.proxy
                        && !proxy.ack(&p)
                    {
                        return Err(ConnError::Upstream("request queue full".into()));
                    }
                }
                Packet::PubRel(r) => {
                    self.qos2.remove(&r.pkid);
                    self.put(Packet::PubComp(PubComp::new(r.pkid)))?;
                }
                // We never send QoS 2 to a client (subscriptions are
                // granted QoS 1 at most): nothing to answer.
                Packet::PubRec(_) | Packet::PubComp(_) => {}
                Packet::Subscribe(s) => self.on_subscribe(s)?,
                Packet::Unsubscribe(u) => {
                    if let Some(proxy) = &self.proxy {
                        for t in u.topics {
                            if !proxy.unsubscribe(t) {
                                return Err(ConnError::Upstream("request queue full".into()));
                            }
                        }
                    }
                    self.put(Packet::UnsubAck(UnsubAck::new(u.pkid)))?;
                }
                Packet::PingReq => self.put(Packet::PingResp)?,
                Packet::Disconnect => return Ok(true),
                other => {
                    return Err(ConnError::Protocol(format!(
                        "unexpected packet from a client: {other:?}"
                    )));
                }
            }
        }
        Ok(false)
    }

    /// Answers a publication that is not waited for (refused, malformed,
    /// or nowhere to forward it): acknowledged so the client moves on.
    fn ack_now(&mut self, qos: QoS, pkid: u16) -> Result<(), ConnError> {
        match qos {
            QoS::AtMostOnce => Ok(()),
            QoS::AtLeastOnce => self.put(Packet::PubAck(PubAck::new(pkid))),
            QoS::ExactlyOnce => {
                self.qos2.insert(pkid, true);
                self.put(Packet::PubRec(PubRec::new(pkid)))
            }
        }
    }

    async fn on_publish(&mut self, p: Publish) -> Result<(), ConnError> {
        // A QoS 2 publication repeated before its PUBREL: not again.
        if p.qos == QoS::ExactlyOnce
            && let Some(&sent) = self.qos2.get(&p.pkid)
        {
            if sent {
                self.put(Packet::PubRec(PubRec::new(p.pkid)))?;
            }
            return Ok(());
        }
        if !self.door.gate.may_publish(&self.who, &p.topic) {
            self.door.stats.refused.fetch_add(1, Ordering::Relaxed);
            return self.ack_now(p.qos, p.pkid);
        }
        if p.topic.starts_with(TOPIC_ROOT) {
            self.on_reading(p).await
        } else {
            self.forward(p)
        }
    }

    async fn on_reading(&mut self, p: Publish) -> Result<(), ConnError> {
        let stats = &self.door.stats;
        let now = self.door.now();
        let reading = match crate::ingest::mqtt::parse(p.topic.as_bytes(), &p.payload, now) {
            Ok(r) => r,
            Err(e) => {
                let n = stats.malformed.fetch_add(1, Ordering::Relaxed) + 1;
                if FrontDoor::allow_log(&self.door.malformed_log) {
                    tracing::warn!(topic = %p.topic, error = %e, malformed_total = n,
                        "malformed reading ignored");
                }
                return self.ack_now(p.qos, p.pkid);
            }
        };
        if p.qos == QoS::AtMostOnce {
            let item = AckedReading { reading, ack: None };
            return match self.door.hub.try_send(item) {
                Ok(()) => {
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Err(TrySendError::Full(_)) => {
                    let n = stats.shed_qos0.fetch_add(1, Ordering::Relaxed) + 1;
                    if FrontDoor::allow_log(&self.door.shed_log) {
                        tracing::warn!(
                            shed_total = n,
                            cause = "qos0_overload",
                            "QoS 0 reading shed: the hub's queue is full"
                        );
                    }
                    Ok(())
                }
                Err(TrySendError::Closed(_)) => Err(ConnError::HubGone),
            };
        }
        let token = u32::from(p.pkid) | if p.qos == QoS::ExactlyOnce { QOS2 } else { 0 };
        if p.qos == QoS::ExactlyOnce {
            self.qos2.insert(p.pkid, false);
        }
        let sink: Arc<dyn AckSink> = self.sink.clone();
        let item = AckedReading {
            reading,
            ack: Some(AckTo::new(sink, token)),
        };
        self.pending += 1;
        match self.door.hub.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(item)) => {
                // The hub is behind: answer what is ready, then wait (the
                // socket is not read meanwhile: the sender slows down).
                self.flush().await?;
                self.door
                    .hub
                    .send(item)
                    .await
                    .map_err(|_| ConnError::HubGone)?;
            }
            Err(TrySendError::Closed(_)) => return Err(ConnError::HubGone),
        }
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A publication that is not a reading: to rumqttd.
    fn forward(&mut self, p: Publish) -> Result<(), ConnError> {
        if self.proxy.is_none() {
            self.start_proxy(None);
        }
        let Some(proxy) = &self.proxy else {
            return self.ack_now(p.qos, p.pkid); // no broker behind: nowhere to go
        };
        let up_qos = at_most_1(p.qos);
        let ok = proxy.publish(p.topic, up_qos, p.retain, p.payload);
        match p.qos {
            QoS::AtMostOnce => {
                if !ok {
                    self.door
                        .stats
                        .shed_subscriber
                        .fetch_add(1, Ordering::Relaxed);
                }
                return Ok(());
            }
            QoS::AtLeastOnce => self.fwd.push_back(Fwd::PubAck(p.pkid)),
            QoS::ExactlyOnce => {
                self.qos2.insert(p.pkid, false);
                self.fwd.push_back(Fwd::PubRec(p.pkid));
            }
        }
        if ok {
            Ok(())
        } else {
            Err(ConnError::Upstream("request queue full".into()))
        }
    }

    fn on_subscribe(&mut self, s: Subscribe) -> Result<(), ConnError> {
        let mut passed = Vec::with_capacity(s.filters.len());
        let mut allowed = Vec::new();
        for f in s.filters {
            let ok = mqttbytes::valid_filter(&f.path)
                && self.door.gate.may_subscribe(&self.who, &f.path);
            if ok {
                allowed.push(SubscribeFilter::new(f.path, at_most_1(f.qos)));
            }
            passed.push(ok);
        }
        if !allowed.is_empty() && self.proxy.is_none() {
            self.start_proxy(None);
        }
        match &self.proxy {
            Some(proxy) if !allowed.is_empty() => {
                if !proxy.subscribe(allowed) {
                    return Err(ConnError::Upstream("request queue full".into()));
                }
                self.subs.push_back((s.pkid, passed));
                Ok(())
            }
            _ => {
                let codes = vec![SubscribeReasonCode::Failure; passed.len()];
                self.put(Packet::SubAck(SubAck::new(s.pkid, codes)))
            }
        }
    }

    fn start_proxy(&mut self, will: Option<LastWill>) {
        if let Some(up) = &self.door.upstream {
            let l = self.door.limits;
            self.proxy = Some(Proxy::start(
                up,
                self.client_id.clone(),
                will,
                l.max_packet,
                l.inflight,
                self.door.stats.clone(),
            ));
        }
    }

    fn on_upstream(&mut self, ev: proxy::Event) -> Result<(), ConnError> {
        match ev {
            proxy::Event::Publish(p) => {
                let mut out =
                    Publish::from_bytes(p.topic.clone(), QoS::AtMostOnce, p.payload.clone());
                out.retain = p.retain;
                if p.qos != QoS::AtMostOnce {
                    let pkid = self.next_free_pkid();
                    out.qos = QoS::AtLeastOnce;
                    out.pkid = pkid;
                    self.down.insert(pkid, p);
                }
                self.put(Packet::Publish(out))
            }
            proxy::Event::PubAck => match self.fwd.pop_front() {
                Some(Fwd::PubAck(pkid)) => self.put(Packet::PubAck(PubAck::new(pkid))),
                Some(Fwd::PubRec(pkid)) => {
                    self.qos2.insert(pkid, true);
                    self.put(Packet::PubRec(PubRec::new(pkid)))
                }
                None => Ok(()),
            },
            proxy::Event::SubAck(codes) => {
                let Some((pkid, passed)) = self.subs.pop_front() else {
                    return Ok(());
                };
                let mut granted = codes.into_iter();
                let codes = passed
                    .into_iter()
                    .map(|ok| {
                        if ok {
                            granted.next().unwrap_or(SubscribeReasonCode::Failure)
                        } else {
                            SubscribeReasonCode::Failure
                        }
                    })
                    .collect();
                self.put(Packet::SubAck(SubAck::new(pkid, codes)))
            }
            proxy::Event::Failed(why) => Err(ConnError::Upstream(why)),
        }
    }

    fn next_free_pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
            if !self.down.contains_key(&self.next_pkid) {
                return self.next_pkid;
            }
        }
    }

    /// Answers readings whose commit is done.
    fn drain_committed(&mut self) -> Result<(), ConnError> {
        let mut got = std::mem::take(&mut self.taken);
        match self.sink.done.lock() {
            Ok(mut g) => std::mem::swap(&mut *g, &mut got),
            Err(p) => std::mem::swap(&mut *p.into_inner(), &mut got),
        }
        for t in got.drain(..) {
            let pkid = (t & 0xFFFF) as u16;
            self.pending = self.pending.saturating_sub(1);
            if t & QOS2 != 0 {
                self.qos2.insert(pkid, true);
                self.put(Packet::PubRec(PubRec::new(pkid)))?;
            } else {
                self.put(Packet::PubAck(PubAck::new(pkid)))?;
            }
        }
        self.taken = got;
        Ok(())
    }
}
