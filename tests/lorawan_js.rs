//! The network servers' payload formatter (`src/uplink/lorawan/decoder.js`)
//! against the Rust codec, run under node: random messages encoded in Rust
//! must decode in JS to the same JSON, and JS-encoded downlinks must equal
//! the Rust bytes. Needs `node`: fails when CI=true and node is missing,
//! else prints why it skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};

use carebridge::model::{AlertState, Kind, Severity};
use carebridge::uplink::lorawan::codec::{
    self, AlertMsg, Downlink, MAX_BATCH, MAX_ROOMS, RoomActivity, Summary, TelemetryRec, Uplink,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

const DECODER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/core/src/uplink/lorawan/decoder.js"
);

fn node() -> Option<&'static str> {
    let ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some("node");
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "node is required in CI (apt-get install nodejs)"
    );
    eprintln!("skipping: node not found (install nodejs to run the decoder.js tests)");
    None
}

/// Runs `script` with the decoder loaded as `D` and `input` on stdin; returns its JSON output.
fn run_node(node: &str, script: &str, input: &Value) -> Value {
    let prog = format!(
        "const D = require({DECODER:?}); let s=''; process.stdin.on('data', c => s += c); \
         process.stdin.on('end', () => {{ const input = JSON.parse(s); {script} }});"
    );
    let mut child = Command::new(node)
        .arg("-e")
        .arg(prog)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn node");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("node output");
    assert!(out.status.success(), "node failed");
    serde_json::from_slice(&out.stdout).expect("node printed JSON")
}

/// JSON numbers compared as f64 (JS prints 20, serde prints 20.0).
fn norm(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.iter().map(norm).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), norm(v))).collect()),
        other => other.clone(),
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    (0..Kind::ALL.len()).prop_map(|i| Kind::ALL[i])
}

fn uplink() -> impl Strategy<Value = Uplink> {
    let alert = (
        proptest::option::of(kind()),
        0u8..3,
        any::<bool>(),
        any::<u16>(),
        any::<u16>(),
        proptest::option::of(any::<i16>()),
    )
        .prop_map(|(kind, s, c, device_index, age_min, value)| {
            Uplink::Alert(AlertMsg {
                kind,
                severity: Severity::from_code(s).unwrap_or(Severity::Info),
                state: if c {
                    AlertState::Cleared
                } else {
                    AlertState::Raised
                },
                device_index,
                age_min,
                value,
            })
        });
    let rec =
        (any::<u8>(), kind(), any::<u16>(), any::<i16>()).prop_map(|(d, k, a, v)| TelemetryRec {
            device_index: d,
            kind: k,
            age_min: a,
            value: v,
        });
    let tel = proptest::collection::vec(rec, 0..=MAX_BATCH).prop_map(Uplink::Telemetry);
    let room = (any::<u8>(), 0u8..=96).prop_map(|(room_index, active_slots)| RoomActivity {
        room_index,
        active_slots,
    });
    let sum = (
        any::<u8>(),
        proptest::option::of(-127i8..=127),
        proptest::option::of(-127i8..=127),
        any::<u8>(),
        any::<u16>(),
        proptest::collection::vec(room, 0..=MAX_ROOMS),
    )
        .prop_map(|(period_h, a, b, battery_low, backlog, rooms)| {
            Uplink::Summary(Summary {
                period_h,
                temp_min_half_c: a,
                temp_max_half_c: b,
                battery_low,
                backlog,
                rooms,
            })
        });
    prop_oneof![alert, tel, sum]
}

fn downlink() -> impl Strategy<Value = Downlink> {
    prop_oneof![
        (any::<u16>(), proptest::option::of(kind()))
            .prop_map(|(device_index, kind)| Downlink::AckIndex { device_index, kind }),
        any::<u32>().prop_map(|seq| Downlink::AckSeq { seq }),
        any::<u8>().prop_map(|token| Downlink::Ping { token }),
        any::<u16>().prop_map(|secs| Downlink::PermitJoin { secs }),
    ]
}

fn sample<T: std::fmt::Debug>(s: impl Strategy<Value = T>, n: usize) -> Vec<T> {
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| s.new_tree(&mut runner).expect("tree").current())
        .collect()
}

#[test]
fn js_decoder_agrees_with_the_rust_encoder_on_random_uplinks() {
    let Some(node) = node() else { return };
    let msgs = sample(uplink(), 500);
    let cases: Vec<Value> = msgs
        .iter()
        .map(|m| {
            let mut b = Vec::new();
            codec::encode(m, &mut b).expect("encodable");
            json!({"bytes": b, "fPort": 10})
        })
        .collect();
    let out = run_node(
        node,
        "console.log(JSON.stringify(input.map(D.decodeUplink)));",
        &json!(cases),
    );
    let out = out.as_array().expect("array");
    assert_eq!(out.len(), msgs.len());
    for (m, o) in msgs.iter().zip(out) {
        assert_eq!(o["errors"], json!([]), "{m:?}");
        assert_eq!(norm(&o["data"]), norm(&m.to_json()), "{m:?}");
    }
}

#[test]
fn js_downlink_encoder_and_decoder_match_the_rust_bytes() {
    let Some(node) = node() else { return };
    let cmds = sample(downlink(), 300);
    let cases: Vec<Value> = cmds
        .iter()
        .map(|d| {
            let mut b = Vec::new();
            codec::encode_downlink(d, &mut b);
            json!({"data": d.to_json(), "bytes": b})
        })
        .collect();
    let out = run_node(
        node,
        "console.log(JSON.stringify(input.map(c => [D.encodeDownlink({data: c.data}), \
         D.decodeDownlink({bytes: c.bytes, fPort: 20})])));",
        &json!(cases),
    );
    for (case, o) in cases.iter().zip(out.as_array().expect("array")) {
        assert_eq!(o[0]["bytes"], case["bytes"], "{case}");
        assert_eq!(o[0]["errors"], json!([]));
        assert_eq!(norm(&o[1]["data"]), norm(&case["data"]), "{case}");
    }
}

#[test]
fn js_decoder_reports_errors_instead_of_throwing() {
    let Some(node) = node() else { return };
    let bad = json!([
        [],
        [0x41, 0, 0, 0],
        [0x3f],
        [0x21, 0xf0, 0, 0],
        [0x21, 0x34],
        [0x26, 24, 0, 0, 0, 0, 0, 30]
    ]);
    let out = run_node(
        node,
        "console.log(JSON.stringify(input.map(b => D.decodeUplink({bytes: b, fPort: 10}))));",
        &bad,
    );
    for o in out.as_array().expect("array") {
        assert_eq!(o["errors"].as_array().map(Vec::len), Some(1), "{o}");
    }
    let enc = run_node(
        node,
        "console.log(JSON.stringify(D.encodeDownlink({data: {command: 'reboot'}})));",
        &json!(null),
    );
    assert_eq!(enc["errors"].as_array().map(Vec::len), Some(1));
}

#[test]
fn js_kind_table_matches_the_model() {
    let Some(node) = node() else { return };
    let out = run_node(node, "console.log(JSON.stringify(D.KINDS));", &json!(null));
    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(out, json!(names));
}
