//! The patched rumqttc (patches/rumqttc/PATCH.md): with
//! `max_request_batch`, publishes queued together leave in one flush. Run
//! against a real Mosquitto: every QoS 1 publish of a burst arrives once,
//! in order, and the batches never put more publishes in flight than
//! `inflight` allows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Outgoing, QoS};

const N: usize = 5_000;
const INFLIGHT: u16 = 20;

#[test]
fn a_batched_burst_arrives_once_in_order_within_the_inflight_window() {
    if !have("mosquitto") {
        return;
    }
    let up = Mosquitto::start();
    let col = Collector::start(up.port, "batch/#");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (max_out, acked) = rt.block_on(async {
        let mut o = MqttOptions::new("batcher", "127.0.0.1", up.port);
        o.set_inflight(INFLIGHT);
        o.set_max_request_batch(64);
        o.set_request_channel_capacity(N);
        let (client, mut ev) = AsyncClient::new(o, N);
        // The whole burst is queued before the event loop runs: every
        // flush after the first can take a full batch.
        for i in 0..N {
            client
                .try_publish("batch/x", QoS::AtLeastOnce, false, i.to_string())
                .unwrap();
        }
        let (mut out, mut max_out, mut acked) = (0i64, 0i64, 0usize);
        let done = tokio::time::timeout(Duration::from_secs(60), async {
            while acked < N {
                match ev.poll().await.unwrap() {
                    Event::Outgoing(Outgoing::Publish(_)) => {
                        out += 1;
                        max_out = max_out.max(out);
                    }
                    Event::Incoming(Incoming::PubAck(_)) => {
                        out -= 1;
                        acked += 1;
                    }
                    _ => {}
                }
            }
        })
        .await;
        assert!(done.is_ok(), "{acked} of {N} acknowledged in 60 s");
        (max_out, acked)
    });
    assert_eq!(acked, N);
    assert!(
        max_out <= i64::from(INFLIGHT),
        "{max_out} publishes in flight, limit {INFLIGHT}"
    );
    assert!(
        eventually(Duration::from_secs(30), || col.snapshot().len() >= N),
        "subscriber got {}",
        col.snapshot().len()
    );
    let got: Vec<usize> = col
        .snapshot()
        .iter()
        .map(|m| m.json.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(got, (0..N).collect::<Vec<_>>(), "once each, in order");
}
