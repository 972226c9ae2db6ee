//! `carebridge fleet-sim` against a real Mosquitto, small enough for CI:
//! 20 homes for a few seconds with an outage in the middle (every home's
//! link drops, then they redial: a small reconnect storm). Every alert
//! raised reaches the cloud-side checker, every telemetry row too, and
//! commands are answered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::*;

#[test]
fn twenty_homes_through_an_outage_lose_nothing_and_answer_commands() {
    if !have("mosquitto") {
        return;
    }
    let up = Mosquitto::start();
    let out = Command::new(env!("CARGO_BIN_EXE_carebridge"))
        .args([
            "fleet-sim",
            "--url",
            &format!("mqtt://127.0.0.1:{}", up.port),
        ])
        .args(["--homes", "20", "--duration", "8s", "--outage", "3s+2s"])
        // Simulated time at 3 h per second: the run spans a waking day
        // whatever the hour (the simulated resident presses the pendant
        // only when awake; at speed 1 a night-time run saw no panic).
        .args(["--speed", "10800"])
        .args([
            "--jitter",
            "1s",
            "--panic-per-day",
            "200",
            "--commands-per-s",
            "4",
        ])
        .args(["--drain", "20s", "--json"])
        .output()
        .expect("run fleet-sim");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("OUTAGE"),
        "the progress line shows the outage: {stderr}"
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON summary");
    assert_eq!(s["homes"], 20);
    assert!(
        s["connects"].as_u64().unwrap() >= 40,
        "every home redialled: {s}"
    );
    assert!(s["alerts_raised"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["alerts_lost"], 0, "{s}");
    assert_eq!(s["rows_unsent_at_stop"], 0, "{s}");
    assert!(
        s["telemetry_received"].as_u64() >= s["telemetry_made"].as_u64(),
        "{s}"
    );
    assert!(s["commands_answered"].as_u64().unwrap() > 0, "{s}");
    assert!(s["rss_per_home_kb"].as_f64().unwrap() > 0.0, "{s}");
}

#[test]
fn a_bad_outage_schedule_is_refused_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_carebridge"))
        .args(["fleet-sim", "--outage", "soon"])
        .output()
        .expect("run fleet-sim");
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("--outage \"soon\""), "{e}");
}
