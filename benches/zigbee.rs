//! Zigbee hot paths: ZNP decode + ZCL decode + mapping to readings, and a
//! replay of a report stream through the whole pure coordinator.
//! Target: ≥ 38,400 frames/s decode+ZCL (384 frames/s at ≤ 1 % of a core),
//! ≥ 20,000 frames/s replay.
//!
//! Measured 2026-11-23 on the 2-core x86 build machine (`--quick`, shared
//! with other builds): decode+ZCL+mapping ≈ 4.9 M frames/s (≈ 0.2 µs a
//! frame, so 384 frames/s cost ≈ 0.008 % of a core); replay through the
//! whole coordinator in 64-byte chunks ≈ 2.3 M frames/s.
//! Re-run 2026-11-23 12:57 UTC at load average ≈ 17 on the 2 cores:
//! 2.08 M frames/s (0.48 µs a frame: ≈ 0.02 % of a core at line rate) and
//! replay 0.79 M frames/s; the hot paths did not change, the load did.
//! Both stay far above target.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use carebridge::model::Time;
use carebridge::zigbee::af::IncomingMsg;
use carebridge::zigbee::coordinator::{Coordinator, CoordinatorConfig, Output};
use carebridge::zigbee::frame::Decoder;
use carebridge::zigbee::network::NetworkParams;
use carebridge::zigbee::sim_stick::{SimDeviceKind, Stick};
use carebridge::zigbee::wire::Msg;
use carebridge::zigbee::{zcl, zcl_map};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const N: usize = 1000;

fn cfg() -> CoordinatorConfig {
    CoordinatorConfig {
        channel: 15,
        srsp_timeout: Duration::from_secs(6),
        stall_timeout: Duration::from_millis(50),
        wait_timeout: Duration::from_secs(5),
        interview_timeout: Duration::from_secs(5),
        ping_interval: Duration::from_secs(3600),
        vibration_is_fall: true,
    }
}

/// Runs coordinator and stick against each other until quiet.
fn pump(c: &mut Coordinator, s: &mut Stick, now: Time) {
    loop {
        let mut back = Vec::new();
        while let Some(b) = c.poll_transmit() {
            let mut d = Decoder::new();
            d.push(&b);
            while let Some(f) = d.next_frame() {
                back.extend(s.handle(&f, now.0 as u64));
            }
        }
        back.extend(s.tick(now.0 as u64));
        while c.poll_output().is_some() {}
        if back.is_empty() {
            return;
        }
        for f in back {
            c.handle_bytes(&f.to_bytes(), now);
        }
    }
}

/// A running coordinator with a paired thermometer and panic button, and a
/// byte stream of their reports (half temperature/humidity, half zone alarms).
fn setup() -> (Coordinator, Vec<u8>) {
    let mut s = Stick::new();
    let mut c = Coordinator::new(cfg(), None, NetworkParams::from_random(15, &[1; 26]), false);
    let now = Time(1);
    c.handle_timeout(now);
    pump(&mut c, &mut s, now);
    let th = s.add_device(SimDeviceKind::Temperature);
    let sos = s.add_device(SimDeviceKind::PanicButton);
    c.permit_join(60, now);
    pump(&mut c, &mut s, now);
    assert!(c.is_running());
    let mut stream = Vec::new();
    for i in 0..N / 2 {
        for f in s
            .temperature(th, 20.0 + (i % 10) as f64 / 10.0, 45.0)
            .into_iter()
            .take(1)
        {
            stream.extend(f.to_bytes());
        }
        stream.extend(s.zone_alarm(sos, i % 2 == 0, false).unwrap().to_bytes());
    }
    (c, stream)
}

fn bench(c: &mut Criterion) {
    let (mut coord, stream) = setup();
    let dev = zcl_map::device_id(0x0015_8D00_0000_0001);
    let mut g = c.benchmark_group("zigbee");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("decode_znp_zcl_to_readings", |b| {
        b.iter(|| {
            let mut d = Decoder::new();
            d.push(black_box(&stream));
            let mut n = 0;
            while let Some(f) = d.next_frame() {
                let m = IncomingMsg::from_frame(&f).unwrap();
                let (_, z) = zcl::decode(m.cluster, &m.data).unwrap();
                n += zcl_map::readings(&dev, m.cluster, &z, Some(0x2c), true, Time(0)).len();
            }
            black_box(n)
        })
    });
    g.bench_function("replay_through_coordinator", |b| {
        b.iter(|| {
            // Fed in 64-byte chunks, as serial reads arrive.
            for chunk in stream.chunks(64) {
                coord.handle_bytes(black_box(chunk), Time(2));
            }
            let mut n = 0;
            while let Some(o) = coord.poll_output() {
                n += usize::from(matches!(o, Output::Ingest(_)));
            }
            assert!(n >= N, "every frame yields readings");
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
