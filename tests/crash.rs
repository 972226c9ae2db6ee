//! `kill -9` at random moments while carebridge receives and publishes:
//! nothing it accepted is lost, seq numbers have no gaps, the database
//! passes its integrity check. More cycles: `CAREBRIDGE_CRASH_CYCLES=500`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};

/// Publishes one reading at QoS 1 and waits for its PUBACK.
struct Device {
    client: Client,
    conn: rumqttc::Connection,
}

impl Device {
    fn connect(port: u16) -> Option<Device> {
        let mut opts = MqttOptions::new(format!("crash-dev-{}", free_port()), "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut conn) = Client::new(opts, 8);
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => return Some(Device { client, conn }),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    fn send(&mut self, device: &str, payload: serde_json::Value) -> bool {
        if self
            .client
            .publish(
                format!("carebridge/in/{device}"),
                QoS::AtLeastOnce,
                false,
                payload.to_string(),
            )
            .is_err()
        {
            return false;
        }
        for ev in self.conn.iter() {
            match ev {
                Ok(Event::Incoming(Incoming::PubAck(_))) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }
}

/// (telemetry value, panic device if a panic, when acknowledged)
type Accepted = (u64, Option<String>, Instant);

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn kill_9_at_random_moments_loses_nothing_that_was_accepted() {
    if !have("mosquitto") {
        return;
    }
    let cycles: u64 = std::env::var("CAREBRIDGE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test seed {seed}, {cycles} cycles");
    let mut rng = Lcg(seed);

    let up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(dir.path(), "gw-crash", up.port, "");

    // (telemetry value or panic device, acknowledged at)
    let mut must_arrive_tel: HashSet<u64> = HashSet::new();
    let mut must_arrive_alert: HashSet<String> = HashSet::new();
    let mut acked_300ms: HashSet<u64> = HashSet::new();
    for cycle in 0..cycles {
        let acked: Arc<Mutex<Vec<Accepted>>> = Arc::default();
        let port = gw.broker_port;
        let sink = acked.clone();
        let publisher = std::thread::spawn(move || {
            let Some(mut dev) = Device::connect(port) else {
                return;
            };
            for i in 0..100_000u64 {
                let value = cycle * 100_000 + i;
                let (device, payload, panic_dev) = if i % 25 == 24 {
                    let d = format!("p-{cycle}-{i}");
                    (
                        d.clone(),
                        serde_json::json!({"kind":"panic","value":true}),
                        Some(d),
                    )
                } else {
                    (
                        "t".to_string(),
                        serde_json::json!({"kind":"temperature","value":value}),
                        None,
                    )
                };
                if !dev.send(&device, payload) {
                    return;
                }
                sink.lock()
                    .unwrap()
                    .push((value, panic_dev, Instant::now()));
            }
        });
        std::thread::sleep(Duration::from_millis(50 + rng.next(500)));
        // What had provably been committed at the moment of the kill: the
        // newest reading of this cycle already seen upstream. The pipeline is
        // FIFO (one device connection → broker → hub → one writer thread), so
        // every earlier reading of the cycle was committed before it.
        let seen_before_kill = col
            .unique("telemetry")
            .iter()
            .filter(|t| t["device"] == "t")
            .filter_map(|t| t["value"].as_f64().map(|v| v as u64))
            .filter(|v| v / 100_000 == cycle)
            .max();
        let killed_at = Instant::now();
        gw.kill9();
        publisher.join().unwrap();
        let acked = acked.lock().unwrap();
        if let Some(newest) = seen_before_kill {
            for (value, panic_dev, _) in acked.iter().filter(|(v, _, _)| *v <= newest) {
                match panic_dev {
                    Some(d) => must_arrive_alert.insert(d.clone()),
                    None => must_arrive_tel.insert(*value),
                };
            }
        }
        // For the record: readings the embedded broker had acknowledged more
        // than 300 ms before the kill (rumqttd acknowledges on receipt, before
        // carebridge commits; under heavy load the pipeline can hold more).
        acked_300ms.extend(
            acked
                .iter()
                .filter(|(_, p, at)| {
                    p.is_none() && killed_at.duration_since(*at) > Duration::from_millis(300)
                })
                .map(|(v, _, _)| *v),
        );
        gw.restart();
    }

    // Let the last run drain everything, then stop cleanly.
    let ok = eventually(Duration::from_secs(60), || {
        let tel: HashSet<u64> = col
            .unique("telemetry")
            .iter()
            .filter(|t| t["device"] == "t")
            .filter_map(|t| t["value"].as_f64().map(|v| v as u64))
            .collect();
        let alerts: HashSet<String> = col
            .unique("alert")
            .iter()
            .filter_map(|a| a["device"].as_str().map(str::to_string))
            .collect();
        must_arrive_tel.is_subset(&tel) && must_arrive_alert.is_subset(&alerts)
    });
    assert!(
        ok,
        "lost accepted data: {} telemetry and {} alerts required, upstream has {} and {}",
        must_arrive_tel.len(),
        must_arrive_alert.len(),
        col.count("telemetry"),
        col.count("alert")
    );
    let tel_now: HashSet<u64> = col
        .unique("telemetry")
        .iter()
        .filter(|t| t["device"] == "t")
        .filter_map(|t| t["value"].as_f64().map(|v| v as u64))
        .collect();
    eprintln!(
        "crash test: {} readings acknowledged by the local broker >300 ms before a kill never reached the store",
        acked_300ms.difference(&tel_now).count()
    );
    assert!(
        must_arrive_tel.len() > 100,
        "the test exercised too little: {}",
        must_arrive_tel.len()
    );
    // Wait until nothing more arrives: the outbox has drained.
    let mut last = 0;
    assert!(eventually(Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_secs(2));
        let n = col.snapshot().len();
        std::mem::replace(&mut last, n) == n
    }));
    gw.stop();

    let all = col.snapshot();
    let total = all.iter().filter(|m| !m.topic.ends_with("/status")).count();
    let unique = col.count("telemetry") + col.count("alert");
    eprintln!(
        "crash test: {} accepted telemetry, {} accepted alerts, {} messages upstream, {} duplicates (receiver de-duplicates by id)",
        must_arrive_tel.len(),
        must_arrive_alert.len(),
        total,
        total - unique
    );
    assert_contiguous(&col.unique("telemetry"), "telemetry");
    assert_contiguous(&col.unique("alert"), "alerts");

    let db = rusqlite::Connection::open(gw.db()).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// The rule state that made alerts is saved with them as small deltas
/// after a full snapshot (`rules::Saved`): after a `kill -9` the restored
/// state still knows every water leak it raised, so the same sensors
/// reporting wet again raise nothing twice, and drying clears each one.
#[test]
fn kill_9_after_alerts_saved_as_journal_deltas_raises_none_twice() {
    if !cloud_peers() {
        return;
    }
    const N: usize = 120;
    let up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(dir.path(), "gw-journal", up.port, "");
    let leak = |wet: bool| -> Vec<(String, serde_json::Value)> {
        (0..N)
            .map(|i| {
                (
                    format!("leak-{i}"),
                    serde_json::json!({"kind": "water_leak", "value": wet}),
                )
            })
            .collect()
    };
    let count = |state: &str| {
        col.unique("alert")
            .iter()
            .filter(|a| a["rule"] == "water_leak" && a["state"] == state)
            .count()
    };
    // Several alert batches: the first save is full, the rest are deltas.
    for chunk in leak(true).chunks(N / 6) {
        assert_eq!(publish(gw.broker_port, chunk), chunk.len());
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(
        eventually(Duration::from_secs(30), || count("raised") == N),
        "{} of {N} leaks raised",
        count("raised")
    );
    let journal: i64 =
        rusqlite::Connection::open_with_flags(gw.db(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap()
            .query_row("SELECT count(*) FROM rules_journal", [], |r| r.get(0))
            .unwrap();
    assert!(journal > 0, "the alerts' state went to the journal");
    gw.kill9();
    gw.restart();
    // Still wet: nothing new. Then dry: each leak clears once.
    assert_eq!(publish(gw.broker_port, &leak(true)), N);
    assert_eq!(publish(gw.broker_port, &leak(false)), N);
    assert!(
        eventually(Duration::from_secs(30), || count("cleared") == N),
        "{} of {N} leaks cleared after the restart",
        count("cleared")
    );
    assert_eq!(count("raised"), N, "a leak raised twice after kill -9");
    // A clean stop (an update, a restart) leaves one full snapshot and no
    // journal: a build rolled back to finds the latest state.
    gw.stop();
    let db = rusqlite::Connection::open(gw.db()).unwrap();
    let journal: i64 = db
        .query_row("SELECT count(*) FROM rules_journal", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, 0, "a clean stop ends the journal");
    assert!(
        db.query_row(
            "SELECT count(*) FROM kv WHERE key = 'rules.state'",
            [],
            |r| r.get::<_, i64>(0)
        )
        .unwrap()
            == 1
    );
}
