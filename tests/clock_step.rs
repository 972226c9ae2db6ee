//! The wall clock of a running carebridge steps (libfaketime, Debian
//! `faketime`: the process reads its wall clock from a file the test
//! rewrites; monotonic time stays real, as under an NTP step). A Pi booted
//! on a clock three days stale, a door left open at night, NTP steps the
//! clock +3 days while the door's 10 s `for` runs: one alert, after the
//! true 10 s, dated at the true local night time; the status document
//! shows the step.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

const LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const DAY: i64 = 86_400;
/// 2026-11-29 23:30:00 in London (GMT in November): the true time.
const NIGHT: i64 = 1_795_995_000;

fn faketime_lib() -> Option<PathBuf> {
    let arch = std::env::consts::ARCH;
    [
        PathBuf::from(LIB),
        PathBuf::from(format!(
            "/usr/lib/{arch}-linux-gnu/faketime/libfaketime.so.1"
        )),
    ]
    .into_iter()
    .find(|p| p.exists())
}

fn real_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Sets the faked wall clock to run from `at` (Unix seconds) on: an
/// offset from the real clock, which libfaketime re-reads at every call.
fn set_wall(file: &Path, at: i64) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{:+}\n", at - real_now())).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

struct Faked(Child);

impl Drop for Faked {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_night_door_alert_after_a_three_day_step_is_dated_at_the_true_night_time_and_fires_once() {
    let Some(lib) = faketime_lib() else {
        assert!(
            !strict(),
            "libfaketime is required (apt-get install faketime)"
        );
        return;
    };
    if !cloud_peers() {
        return;
    }
    let up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let broker_port = free_port();
    std::fs::write(
        dir.path().join("rules.toml"),
        "[[rule]]\nid = \"night-door\"\ntype = \"window\"\nkind = \"contact\"\n\
         devices = [\"front\"]\nwindow = \"23:00-06:00\"\nfor = \"10s\"\n",
    )
    .unwrap();
    let config = dir.path().join("carebridge.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"gw-clock\"\ndata_dir = \"{data}\"\ntimezone = \"Europe/London\"\n\n\
             [rules]\nfile = \"{rules}\"\n\n\
             [local_broker]\nlisten = \"127.0.0.1:{broker_port}\"\n\n\
             [uplink.mqtt]\nurl = \"mqtt://127.0.0.1:{up}\"\ntopic_prefix = \"cb\"\n\
             keepalive = \"5s\"\nbackoff_min = \"100ms\"\nbackoff_max = \"1s\"\nheartbeat = \"1s\"\n",
            data = dir.path().join("data").display(),
            rules = dir.path().join("rules.toml").display(),
            up = up.port,
        ),
    )
    .unwrap();
    // Booted on fake-hwclock's time: three days stale (same time of day).
    let wall = dir.path().join("faketime");
    set_wall(&wall, NIGHT - 3 * DAY);
    let _gw = Faked(
        Command::new(env!("CARGO_BIN_EXE_carebridge"))
            .args(["run", "--config"])
            .arg(&config)
            .env("LD_PRELOAD", &lib)
            .env("FAKETIME_TIMESTAMP_FILE", &wall)
            .env("FAKETIME_NO_CACHE", "1")
            .env("DONT_FAKE_MONOTONIC", "1")
            .env("TZ", "UTC")
            .env("RUST_LOG", "warn,carebridge=info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn carebridge under libfaketime"),
    );
    assert!(
        wait_port(broker_port, Duration::from_secs(20)),
        "carebridge did not listen"
    );
    // The door opens at 23:30 by the stale clock; 3 s later NTP steps it.
    // Timed from before the publish: the gateway may take the reading (and
    // start its 10 s) before `open_door` has its acknowledgement and returns
    // (one CI run saw the alert 9.993 s after the return).
    let opened = Instant::now();
    open_door(broker_port, "front");
    std::thread::sleep(Duration::from_secs(3));
    set_wall(&wall, NIGHT + 3);
    let alert = || {
        col.unique("alert")
            .into_iter()
            .filter(|a| a["rule"] == "night-door")
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(Duration::from_secs(20), || !alert().is_empty()),
        "no night-door alert upstream"
    );
    let fired = opened.elapsed();
    assert!(fired >= Duration::from_secs(10), "early: after {fired:?}");
    let a = alert().remove(0);
    // This container's kernel clock is not NTP-synchronised and has no
    // RTC: when that is so, the alert says its time is not trusted.
    let trusted = s_trusted(&col);
    let at = jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%.fZ", a["at"].as_str().unwrap())
        .or_else(|_| a["at"].as_str().unwrap().parse::<jiff::Timestamp>())
        .unwrap()
        .as_second();
    assert!(
        (at - (NIGHT + 10)).abs() <= 3,
        "alert dated {} — not the true 23:30:10 (step not followed?)",
        a["at"]
    );
    // One timer, once: nothing more in the next 15 s (the stale frame's
    // deadline would have been 3 days back; a double fire shows here).
    std::thread::sleep(Duration::from_secs(15));
    assert_eq!(alert().len(), 1, "{:?}", alert());
    // The status document shows the step.
    let stepped = col
        .unique("status")
        .into_iter()
        .rev()
        .find(|s| s["clock"]["steps"] == 1);
    let s = stepped.expect("a status document with the step");
    let d = s["clock"]["last_step"]["delta_ms"].as_i64().unwrap();
    assert!((d - 3 * DAY * 1000).abs() < 2_000, "step {d} ms");
    assert_eq!(a.get("time_trusted").is_none(), trusted, "{a}");
    if !trusted {
        // What was stamped before the step (the door's telemetry at the
        // stale 23:30) is listed upstream as corrected by the step.
        let c = &s["clock"]["corrections"][0];
        let cd = c["delta_ms"].as_i64().unwrap_or_default();
        assert!(
            (cd - 3 * DAY * 1000).abs() < 2_000,
            "no correction listed: {s}"
        );
        assert_eq!(s["clock"]["corrections_total"], 1, "{s}");
    }
}

/// Whether the gateway's status says its clock is trusted.
fn s_trusted(col: &Collector) -> bool {
    let st = col.unique("status");
    let last = st.last().expect("a status document");
    last["clock"]["trusted"]
        .as_bool()
        .expect("clock.trusted in the status")
}
