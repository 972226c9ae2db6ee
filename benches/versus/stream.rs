//! The side-by-side bench's stream: the readings of each flow and feeding
//! them at a pace through a [`Publisher`] (QoS 1 paced on PUBACK into
//! carebridge's front door, QoS 0 into Mosquitto for Node-RED).

use std::time::{Duration, Instant};

use super::system::Publisher;

/// The device id of the warm-up readings (not counted as events).
pub const WARM: &str = "warm-up";

/// What a run sends and what counts as one event upstream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Flow {
    /// Panic presses from distinct pendants; an event is a raised alert.
    Alert,
    /// Temperature readings from `sensors` sensors; an event is a
    /// telemetry message.
    Telemetry { sensors: usize },
}

/// How fast the stream goes in.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// As fast as the system delivers, at most `window` events ahead of
    /// what has arrived upstream (Node-RED keeps no backlog of its own: a
    /// stream far ahead of it would only measure Mosquitto's queue).
    Burst { window: u64 },
    /// One reading every `every`.
    Every(Duration),
}

/// The `i`-th reading of a flow as (device, JSON payload).
pub fn reading(flow: Flow, i: u64) -> (String, String) {
    let at = jiff::Timestamp::now().to_string();
    match flow {
        Flow::Alert => (
            format!("pendant-{i:06}"),
            format!("{{\"kind\":\"panic\",\"value\":true,\"at\":\"{at}\"}}"),
        ),
        Flow::Telemetry { sensors } => {
            let s = (i % sensors.max(1) as u64) as usize;
            let t = 18.0 + ((i * 7) % 60) as f64 / 10.0;
            (
                format!("temp-{s:03}"),
                format!("{{\"kind\":\"temperature\",\"value\":{t:.1},\"at\":\"{at}\"}}"),
            )
        }
    }
}

/// Feeds readings `0..n` of `flow` at `pace` under `prefix` (`<prefix><device>`);
/// `done()` says how many events have arrived upstream. Returns when all
/// were sent (at QoS 1, when all were acknowledged too).
pub fn feed(
    pb: &mut Publisher,
    prefix: &str,
    flow: Flow,
    n: u64,
    pace: Pace,
    done: &dyn Fn() -> u64,
) {
    match pace {
        Pace::Burst { window } => {
            // Encoded in chunks so the generator mostly writes bytes.
            let mut buf = Vec::with_capacity(256 * 1000);
            while pb.sent() < n {
                let room = pb.room().min(500).min(n - pb.sent());
                if pb.sent() >= done() + window || room == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
                buf.clear();
                for i in pb.sent()..pb.sent() + room {
                    let (d, p) = reading(flow, i);
                    pb.encode(&format!("{prefix}{d}"), p.as_bytes(), &mut buf);
                }
                pb.write(&buf);
            }
        }
        Pace::Every(every) => {
            let t0 = Instant::now();
            for i in 0..n {
                let due = t0 + every * i as u32;
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
                let (d, p) = reading(flow, i);
                pb.send(&format!("{prefix}{d}"), p.as_bytes());
            }
        }
    }
    pb.wait_all_acked(Duration::from_secs(600));
}
