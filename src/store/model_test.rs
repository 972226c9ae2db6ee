//! Model-based property test of the outbox: random enqueue / fetch / ack /
//! reopen sequences against a plain in-memory model of the documented rules
//! (per-class seq, status superseding, cap eviction of telemetry then status,
//! alerts never evicted, persisted counters).

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::tests::{dev, reading};
use super::*;
use crate::model::{AlertState, Kind, Severity};

const CAP: u64 = 1_500;
const FAKE_ID: &str = "00000000-0000-4000-8000-000000000000";

#[derive(Clone, Debug)]
enum Op {
    Enqueue(Class, u16),
    Ack(Class, Vec<usize>, bool),
    Check,
    Reopen,
    /// The last handle dropped without `close` (then reopened).
    DropReopen,
}

fn op() -> impl Strategy<Value = Op> {
    let class = prop_oneof![
        Just(Class::Alert),
        Just(Class::Status),
        Just(Class::Telemetry)
    ];
    prop_oneof![
        6 => (class.clone(), any::<u16>()).prop_map(|(c, t)| Op::Enqueue(c, t)),
        2 => (class, proptest::collection::vec(0usize..16, 0..4), any::<bool>())
            .prop_map(|(c, picks, bogus)| Op::Ack(c, picks, bogus)),
        1 => Just(Op::Check),
        1 => Just(Op::Reopen),
        1 => Just(Op::DropReopen),
    ]
}

fn alert_for(token: u16) -> Alert {
    Alert {
        uid: None,
        rule: format!("r{token}").into(),
        severity: Severity::Warning,
        state: AlertState::Raised,
        device: dev("d1"),
        room: None,
        at: Time(1_000),
        message: "m".into(),
        value: None,
        kind: None,
        time_trusted: true,
        instance: None,
    }
}

fn status_for(token: u16) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("n".into(), serde_json::json!(token));
    m
}

fn write_for(class: Class, token: u16) -> Write {
    match class {
        Class::Alert => Write::Alert(Box::new(alert_for(token))),
        Class::Status => Write::Status(status_for(token)),
        Class::Telemetry => Write::Reading(reading("d1", Kind::Power, f64::from(token), 1_000)),
    }
}

fn payload_len(class: Class, token: u16, seq: u64) -> u64 {
    let p = match class {
        // Stored as a compact body (see `alert_body`).
        Class::Alert => outbox::alert_body(FAKE_ID, seq, &alert_for(token)),
        Class::Status => outbox::status_payload(FAKE_ID, seq, &status_for(token)),
        // Stored without `id` and `seq` (see `payload::telemetry_body`).
        Class::Telemetry => super::payload::telemetry_body(
            &reading("d1", Kind::Power, f64::from(token), 1_000),
            true,
        ),
    };
    p.unwrap().len() as u64
}

fn token_of(class: Class, payload: &[u8]) -> u16 {
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
    match class {
        Class::Alert => v["rule"].as_str().unwrap()[1..].parse().unwrap(),
        Class::Status => v["n"].as_u64().unwrap() as u16,
        Class::Telemetry => v["value"].as_f64().unwrap() as u16,
    }
}

#[derive(Default)]
struct Model {
    /// Per class: seq -> (token, payload bytes).
    rows: [BTreeMap<u64, (u16, u64)>; 3],
    next: [u64; 3],
    evicted: [u64; 3],
    superseded: u64,
    /// Ids seen so far: they must never change.
    ids: HashMap<(u8, u64), String>,
}

impl Model {
    fn new() -> Self {
        Model {
            next: [1; 3],
            ..Default::default()
        }
    }
    fn total(&self) -> u64 {
        self.rows
            .iter()
            .flat_map(|r| r.values())
            .map(|(_, b)| b)
            .sum()
    }
    fn enqueue(&mut self, class: Class, token: u16) {
        let i = class as usize;
        let seq = self.next[i];
        self.next[i] += 1;
        self.rows[i].insert(seq, (token, payload_len(class, token, seq)));
        if class == Class::Status {
            let older: Vec<u64> = self.rows[i].range(..seq).map(|(s, _)| *s).collect();
            for s in older {
                self.rows[i].remove(&s);
                self.superseded += 1;
            }
        }
        for victim in [Class::Telemetry, Class::Status] {
            let v = victim as usize;
            while self.total() > CAP {
                let Some((&s, _)) = self.rows[v].iter().next() else {
                    break;
                };
                self.rows[v].remove(&s);
                self.evicted[v] += 1;
            }
        }
    }
}

async fn check(store: &Store, model: &mut Model) {
    store.flush().await.unwrap();
    let stats = store.stats();
    for class in Class::ALL {
        let i = class as usize;
        let rows = store.outbox_fetch(class, 0, usize::MAX).await.unwrap();
        let got: Vec<(u64, u16)> = rows
            .iter()
            .map(|r| (r.seq, token_of(class, &r.payload)))
            .collect();
        let want: Vec<(u64, u16)> = model.rows[i].iter().map(|(s, (t, _))| (*s, *t)).collect();
        assert_eq!(got, want, "{class} rows");
        for r in &rows {
            let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
            assert_eq!(v["id"], r.id.as_str());
            assert_eq!(v["seq"], r.seq);
            let known = model
                .ids
                .entry((class as u8, r.seq))
                .or_insert_with(|| r.id.clone());
            assert_eq!(known, &r.id, "{class} seq {} changed id", r.seq);
        }
        // Reads from the middle, as an uplink's cursor makes them.
        let seqs: Vec<u64> = want.iter().map(|(s, _)| *s).collect();
        let mut afters = vec![model.next[i].saturating_sub(1)];
        afters.extend(seqs.get(seqs.len() / 2).map(|s| s - 1));
        afters.extend(seqs.last().map(|s| s.saturating_sub(2)));
        for after in afters {
            let got: Vec<(u64, u16)> = store
                .outbox_fetch(class, after, 3)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.seq, token_of(class, &r.payload)))
                .collect();
            let part: Vec<(u64, u16)> = want
                .iter()
                .filter(|(s, _)| *s > after)
                .take(3)
                .copied()
                .collect();
            assert_eq!(got, part, "{class} rows after {after}");
        }
        let cs = stats.class(class);
        assert_eq!(cs.rows, want.len() as u64, "{class} row count");
        assert_eq!(
            cs.bytes,
            model.rows[i].values().map(|(_, b)| b).sum::<u64>(),
            "{class} bytes"
        );
        assert_eq!(cs.evicted, model.evicted[i], "{class} evicted");
        assert_eq!(cs.next_seq, model.next[i], "{class} next seq");
    }
    assert_eq!(stats.alert.evicted, 0);
    assert_eq!(stats.superseded, model.superseded);
}

fn run(ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let cfg = StoreConfig {
            batch_max: 7,
            disk_reserve_kb: 128,
            ..Default::default()
        };
        let mut store = Store::open_with_cap(&path, &cfg, CAP).unwrap();
        let mut model = Model::new();
        for op in ops {
            match op {
                Op::Enqueue(class, token) => {
                    store.submit(write_for(class, token)).await.unwrap();
                    model.enqueue(class, token);
                }
                Op::Ack(class, picks, bogus) => {
                    let i = class as usize;
                    let seqs: Vec<u64> = model.rows[i].keys().copied().collect();
                    let mut acks = Vec::new();
                    for p in picks {
                        if let Some(&s) = seqs.get(p) {
                            acks.push((class, s));
                            model.rows[i].remove(&s);
                        }
                    }
                    if bogus {
                        // Unknown and repeated acknowledgements are no-ops.
                        acks.push((class, model.next[i] + 3));
                        acks.extend(acks.clone());
                    }
                    store.submit(Write::Ack(acks)).await.unwrap();
                }
                Op::Check => check(&store, &mut model).await,
                Op::DropReopen => {
                    drop(store);
                    store = Store::open_with_cap(&path, &cfg, CAP).unwrap();
                    check(&store, &mut model).await;
                }
                Op::Reopen => {
                    store.close().await.unwrap();
                    store = Store::open_with_cap(&path, &cfg, CAP).unwrap();
                    check(&store, &mut model).await;
                }
            }
        }
        check(&store, &mut model).await;
        store.close().await.unwrap();
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn outbox_matches_its_model_across_acks_evictions_and_reopens(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        run(ops);
    }
}

/// Eviction under the cap with no reopen before it, then superseded status
/// rows and acknowledgements with unknown and repeated seqs.
#[test]
fn rows_evicted_under_the_cap_are_gone_from_every_read() {
    let mut ops: Vec<Op> = (0..40).map(|t| Op::Enqueue(Class::Telemetry, t)).collect();
    ops.push(Op::Check);
    ops.extend((0..20).map(|t| Op::Enqueue(Class::Status, t)));
    ops.extend((0..5).map(|t| Op::Enqueue(Class::Alert, t)));
    ops.push(Op::Ack(Class::Alert, vec![1, 2], true));
    run(ops);
}
