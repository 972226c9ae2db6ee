//! Rollback keeps alerts: a release on trial raises an alert while the cloud
//! broker (a real Mosquitto) is down, then fails every start (`kill -9`, a
//! crash); recovery rolls back to the previous release and its database
//! backup — and the alert raised during the trial is still there and is
//! delivered once the previous release runs and the broker is back.
//!
//! The daemon is the real `carebridge run` (both "releases" are this build;
//! what differs is what the OTA state says is on trial).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod ota_support;

use std::time::Duration;

use carebridge::model::Time;
use carebridge::ota::recover::{self, Recovery};
use carebridge::ota::{OtaPaths, install};
use common::*;
use ota_support::{Keyring, bundle, healthy_script, install_bytes, policy};

fn outbox_alerts_from(db: &std::path::Path, device: &str) -> i64 {
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    // Compact bodies since schema v11, whole documents after a rollback.
    try_outbox_alert_docs(&c)
        .unwrap_or_default()
        .iter()
        .filter(|v| v["device"] == device)
        .count() as i64
}

fn alerts_of(col: &Collector, device: &str) -> Vec<serde_json::Value> {
    col.unique("alert")
        .into_iter()
        .filter(|a| a["device"] == device)
        .collect()
}

#[test]
fn an_alert_raised_during_a_failing_trial_is_delivered_after_the_rollback() {
    if !cloud_peers() {
        return;
    }
    let mut up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let kr = Keyring::new(dir.path(), &["ops"]);
    let data = dir.path().join("data");
    let paths = OtaPaths::under(&data);
    std::fs::create_dir_all(&data).unwrap();

    // Release 1.0.0 installed and committed; the gateway runs and delivers.
    install_bytes(
        &paths,
        &kr.store(),
        &bundle(kr.signer(), "1.0.0", &healthy_script("1.0.0")),
    );
    recover::recover(&paths, &policy(), None, Time::from_secs(0)).unwrap();
    recover::commit_now(&paths, Time::from_secs(1)).unwrap();
    let extra = format!("[ota]\nkeys_dir = \"{}\"\n", kr.dir.display());
    let mut gw = Gateway::start(dir.path(), "gw-rb", up.port, &extra);
    assert_eq!(publish(gw.broker_port, &panics("pendant-before", 1)), 1);
    assert!(
        eventually(Duration::from_secs(30), || !alerts_of(
            &col,
            "pendant-before"
        )
        .is_empty()),
        "{}",
        gw.diagnose()
    );
    assert_eq!(gw.stop(), Some(0));

    // Release 2.0.0 goes on trial (the database is backed up now).
    install_bytes(
        &paths,
        &kr.store(),
        &bundle(kr.signer(), "2.0.0", &healthy_script("2.0.0")),
    );
    assert_eq!(install::current_version(&paths).as_deref(), Some("2.0.0"));

    // The cloud broker is down for the whole trial.
    up.stop();
    let mut now = Time::from_secs(100);
    for attempt in 1..=3u32 {
        let r = recover::recover(&paths, &policy(), None, now).unwrap();
        assert_eq!(
            r,
            Recovery::Trial {
                version: "2.0.0".into(),
                attempt
            }
        );
        gw.restart();
        if attempt == 1 {
            // The person presses the pendant during the trial.
            assert_eq!(publish(gw.broker_port, &panics("pendant-trial", 1)), 1);
            assert!(
                eventually(Duration::from_secs(30), || outbox_alerts_from(
                    &gw.db(),
                    "pendant-trial"
                ) == 1),
                "the alert is stored: {}",
                gw.diagnose()
            );
        }
        // The trial release crashes.
        gw.kill9();
        now = now.saturating_add(Duration::from_secs(60));
    }
    let r = recover::recover(&paths, &policy(), None, now).unwrap();
    let Recovery::RolledBack { from, to, reason } = r else {
        panic!("expected a rollback, got {r:?}")
    };
    assert_eq!((from.as_str(), to.as_deref()), ("2.0.0", Some("1.0.0")));
    assert!(!reason.contains("database restore"), "{reason}");
    assert_eq!(install::current_version(&paths).as_deref(), Some("1.0.0"));
    assert_eq!(
        outbox_alerts_from(&paths.db, "pendant-trial"),
        1,
        "the restored database keeps the trial's alert"
    );

    // The previous release runs again, the broker is back: delivered.
    up.restart();
    gw.restart();
    assert!(
        eventually(Duration::from_secs(30), || alerts_of(&col, "pendant-trial")
            .len()
            == 1),
        "alert raised during the trial not delivered after rollback: {}",
        gw.diagnose()
    );
    // Delivered before the update: not sent again (de-duplicated by id at most).
    assert_eq!(alerts_of(&col, "pendant-before").len(), 1);
    let st = recover::status(&paths).unwrap();
    assert_eq!(st.rolled_back.len(), 1);
    assert_eq!(st.rolled_back[0].version, "2.0.0");
}
