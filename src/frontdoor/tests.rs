//! The connection protocol in-process over a `tokio::io::duplex` pipe, with
//! a test gate and the hub's channel in the test's hands (the test fires a
//! reading's acknowledgement where the store's writer would, after commit).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    Connect, ConnectReturnCode, Packet, PubRel, Publish, Subscribe, SubscribeReasonCode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;

/// Refuses user "bad", topics containing "forbidden", filters under "secret/".
struct TestGate;

impl Gate for TestGate {
    fn accept(&self, _: IpAddr) -> Result<(), Refusal> {
        Ok(())
    }
    fn connect(
        &self,
        _: IpAddr,
        _: &str,
        user: Option<&str>,
        _: Option<&[u8]>,
    ) -> Result<Identity, Refusal> {
        match user {
            Some("bad") => Err(Refusal::BadCredentials),
            Some("busy") => Err(Refusal::Throttled {
                retry_after: Duration::from_secs(1),
            }),
            _ => Ok(Identity::Anonymous),
        }
    }
    fn may_publish(&self, _: &Identity, topic: &str) -> bool {
        !topic.contains("forbidden")
    }
    fn may_subscribe(&self, _: &Identity, filter: &str) -> bool {
        !filter.starts_with("secret/")
    }
    fn disconnected(&self, _: IpAddr) {}
}

fn door(queue: usize, inflight: usize) -> (Arc<FrontDoor>, mpsc::Receiver<AckedReading>) {
    let (tx, rx) = mpsc::channel(queue);
    let limits = Limits {
        max_connections: 8,
        max_packet: 4096,
        inflight,
    };
    let d = FrontDoor::new(Arc::new(TestGate), tx, None, Arc::default(), limits);
    (Arc::new(d), rx)
}

struct Client {
    io: DuplexStream,
    buf: BytesMut,
}

impl Client {
    fn open(door: &Arc<FrontDoor>) -> Client {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
        tokio::spawn(serve_stream(
            b,
            peer,
            door.clone(),
            CancellationToken::new(),
        ));
        Client {
            io: a,
            buf: BytesMut::new(),
        }
    }

    async fn connected(door: &Arc<FrontDoor>, user: Option<&str>) -> (Client, ConnectReturnCode) {
        let mut c = Client::open(door);
        let mut p = Connect::new("dev");
        if let Some(u) = user {
            p.set_login(u, "pw");
        }
        c.send(Packet::Connect(p)).await;
        match c.recv().await {
            Some(Packet::ConnAck(a)) => (c, a.code),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    async fn send(&mut self, p: Packet) {
        let mut out = BytesMut::new();
        p.write(&mut out, usize::MAX).unwrap();
        self.io.write_all(&out).await.unwrap();
    }

    async fn reading(&mut self, device: &str, qos: QoS, pkid: u16) {
        let mut p = Publish::new(
            format!("carebridge/in/{device}"),
            qos,
            r#"{"kind":"panic","value":true}"#,
        );
        p.pkid = pkid;
        self.send(Packet::Publish(p)).await;
    }

    /// The next packet within 300 ms, if any.
    async fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Ok(p) = Packet::read(&mut self.buf, 1 << 16) {
                return Some(p);
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_millis(300), self.io.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Readings the hub would have taken within 100 ms.
async fn taken(rx: &mut mpsc::Receiver<AckedReading>) -> Vec<AckedReading> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut v = Vec::new();
    while let Ok(r) = rx.try_recv() {
        v.push(r);
    }
    v
}

#[tokio::test]
async fn the_puback_is_sent_only_after_the_commit_fires_it() {
    let (d, mut rx) = door(16, 8);
    let (mut c, code) = Client::connected(&d, None).await;
    assert_eq!(code, ConnectReturnCode::Success);
    c.reading("pendant", QoS::AtLeastOnce, 5).await;
    let mut got = taken(&mut rx).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].reading.device.as_str(), "pendant");
    assert!(c.recv().await.is_none(), "PUBACK before the commit");
    got.pop().unwrap().ack.unwrap().fire();
    assert!(matches!(c.recv().await, Some(Packet::PubAck(a)) if a.pkid == 5));
}

#[tokio::test]
async fn a_full_window_stops_reading_until_commits_free_it() {
    let (d, mut rx) = door(64, 4);
    let (mut c, _) = Client::connected(&d, None).await;
    for pkid in 1..=10 {
        c.reading("burst", QoS::AtLeastOnce, pkid).await;
    }
    let first = taken(&mut rx).await;
    assert_eq!(first.len(), 4, "only the window is taken");
    for r in first {
        r.ack.unwrap().fire();
    }
    assert_eq!(taken(&mut rx).await.len(), 4, "commits free the window");
}

#[tokio::test]
async fn a_qos2_reading_repeated_before_pubrel_is_taken_once() {
    let (d, mut rx) = door(16, 8);
    let (mut c, _) = Client::connected(&d, None).await;
    c.reading("door", QoS::ExactlyOnce, 9).await;
    c.reading("door", QoS::ExactlyOnce, 9).await;
    let mut got = taken(&mut rx).await;
    assert_eq!(got.len(), 1);
    got.pop().unwrap().ack.unwrap().fire();
    assert!(matches!(c.recv().await, Some(Packet::PubRec(r)) if r.pkid == 9));
    c.reading("door", QoS::ExactlyOnce, 9).await;
    assert!(matches!(c.recv().await, Some(Packet::PubRec(r)) if r.pkid == 9));
    assert!(taken(&mut rx).await.is_empty());
    c.send(Packet::PubRel(PubRel::new(9))).await;
    assert!(matches!(c.recv().await, Some(Packet::PubComp(r)) if r.pkid == 9));
}

#[tokio::test]
async fn refusals_become_connack_codes_failed_subacks_and_dropped_publications() {
    let (d, mut rx) = door(16, 8);
    let (_, code) = Client::connected(&d, Some("bad")).await;
    assert_eq!(code, ConnectReturnCode::BadUserNamePassword);
    let (_, code) = Client::connected(&d, Some("busy")).await;
    assert_eq!(code, ConnectReturnCode::ServiceUnavailable);
    let (mut c, _) = Client::connected(&d, None).await;
    c.reading("forbidden", QoS::AtLeastOnce, 3).await;
    assert!(
        matches!(c.recv().await, Some(Packet::PubAck(a)) if a.pkid == 3),
        "a refused publication is still acknowledged"
    );
    assert!(taken(&mut rx).await.is_empty());
    assert_eq!(d.stats.refused.load(Ordering::Relaxed), 1);
    let mut s = Subscribe::new("secret/x", QoS::AtLeastOnce);
    s.pkid = 4;
    c.send(Packet::Subscribe(s)).await;
    match c.recv().await {
        Some(Packet::SubAck(a)) => {
            assert_eq!(
                (a.pkid, a.return_codes),
                (4, vec![SubscribeReasonCode::Failure])
            );
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_readings_are_acknowledged_at_once_and_counted() {
    let (d, mut rx) = door(16, 8);
    let (mut c, _) = Client::connected(&d, None).await;
    let mut p = Publish::new("carebridge/in/x", QoS::AtLeastOnce, "not json");
    p.pkid = 11;
    c.send(Packet::Publish(p)).await;
    assert!(matches!(c.recv().await, Some(Packet::PubAck(a)) if a.pkid == 11));
    assert!(taken(&mut rx).await.is_empty());
    assert_eq!(d.stats.malformed.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn qos0_readings_are_shed_and_counted_when_the_hub_queue_is_full() {
    let (d, mut rx) = door(2, 8);
    let (mut c, _) = Client::connected(&d, None).await;
    for _ in 0..5 {
        c.reading("flood", QoS::AtMostOnce, 0).await;
    }
    assert_eq!(taken(&mut rx).await.len(), 2);
    assert_eq!(d.stats.shed_qos0.load(Ordering::Relaxed), 3);
    assert_eq!(d.stats.accepted.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn an_mqtt5_connect_is_refused_as_an_unacceptable_protocol_version() {
    let (d, _rx) = door(16, 8);
    let mut c = Client::open(&d);
    // CONNECT, "MQTT" level 5, clean start, keepalive 60, no properties, id "d".
    let v5 = [
        0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 1, b'd',
    ];
    c.io.write_all(&v5).await.unwrap();
    match c.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, ConnectReturnCode::RefusedProtocolVersion),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn the_tls_listener_speaks_the_same_protocol() {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let (d, mut rx) = door(16, 8);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let sd = CancellationToken::new();
    tokio::spawn(serve_tls(listener, acceptor, d.clone(), sd.clone()));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut out = BytesMut::new();
    Packet::Connect(Connect::new("tls-dev"))
        .write(&mut out, usize::MAX)
        .unwrap();
    let mut p = Publish::new(
        "carebridge/in/tls-dev",
        QoS::AtLeastOnce,
        r#"{"kind":"panic","value":true}"#,
    );
    p.pkid = 2;
    Packet::Publish(p).write(&mut out, usize::MAX).unwrap();
    tls.write_all(&out).await.unwrap();
    let got = taken(&mut rx).await;
    assert_eq!(got.len(), 1);
    for r in got {
        r.ack.unwrap().fire();
    }
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    while packets.len() < 2 {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
        while let Ok(p) = Packet::read(&mut buf, 1 << 16) {
            packets.push(p);
        }
    }
    assert!(matches!(&packets[0], Packet::ConnAck(a) if a.code == ConnectReturnCode::Success));
    assert!(matches!(&packets[1], Packet::PubAck(a) if a.pkid == 2));
    sd.cancel();
}
