//! Behaviour tests of the store through its public handle.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::model::{AlertState, Kind, Severity};

pub(super) fn dev(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

pub(super) fn reading(d: &str, kind: Kind, value: f64, at_ms: i64) -> Reading {
    Reading::new(dev(d), kind, value, Time::from_millis(at_ms)).unwrap()
}

/// Submits a temperature reading of `k-temp` (value, time in ms).
pub(super) async fn put_temp(s: &Store, value: f64, at_ms: i64) {
    s.submit(Write::Reading(reading(
        "k-temp",
        Kind::Temperature,
        value,
        at_ms,
    )))
    .await
    .unwrap();
}

pub(super) fn alert(rule: &str, at_ms: i64) -> Alert {
    Alert {
        uid: None,
        rule: rule.into(),
        severity: Severity::Urgent,
        state: AlertState::Raised,
        device: dev("hall-panic"),
        room: Some("hall".into()),
        at: Time::from_millis(at_ms),
        message: format!("{rule} fired"),
        value: Some(1.0),
        kind: Some(Kind::Panic),
        time_trusted: true,
        instance: None,
    }
}

pub(super) fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data").join("carebridge.db")
}

async fn all_rows(s: &Store, class: Class) -> Vec<OutboxRow> {
    s.outbox_fetch(class, 0, usize::MAX).await.unwrap()
}

#[tokio::test]
async fn open_creates_directories_wal_file_and_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    s.close().await.unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, schema::MIGRATIONS.len() as i64);
}

#[tokio::test]
async fn reading_writes_history_telemetry_row_and_registry_last_seen() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
    let mut changed = s.outbox_changed();
    let before = *changed.borrow_and_update();
    s.submit(Write::Reading(reading(
        "k-temp",
        Kind::Temperature,
        21.5,
        1_000,
    )))
    .await
    .unwrap();
    s.submit(Write::Reading(reading(
        "k-temp",
        Kind::Battery,
        87.0,
        2_000,
    )))
    .await
    .unwrap();
    s.submit(Write::ReadingNoTelemetry(reading(
        "k-temp",
        Kind::Humidity,
        40.0,
        3_000,
    )))
    .await
    .unwrap();
    s.flush().await.unwrap();
    assert!(
        *changed.borrow_and_update() > before,
        "commit with outbox rows bumps the watch"
    );

    let h = s.history(Time(0), Time(10_000), 10).await.unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h[0].kind, Kind::Temperature);
    let rows = all_rows(&s, Class::Telemetry).await;
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    let doc: serde_json::Value = serde_json::from_slice(&rows[0].payload).unwrap();
    assert_eq!(doc["id"], rows[0].id.as_str());
    assert_eq!(doc["seq"], 1);
    assert_eq!(doc["value"], 21.5);
    let d = s.device(&dev("k-temp")).await.unwrap().unwrap();
    assert_eq!(d.last_seen, Some(Time(3_000)));
    assert_eq!(d.battery, Some(87.0));
    let st = s.stats();
    assert_eq!(st.telemetry.rows, 2);
    assert_eq!(
        st.telemetry.bytes,
        // What the rows store: the documents without `"id":…,"seq":…,`.
        rows.iter()
            .map(
                |r| (r.payload.len() - format!(r#""id":"{}","seq":{},"#, r.id, r.seq).len()) as u64
            )
            .sum::<u64>()
    );
    assert!(st.telemetry.oldest_at.is_some());
    assert!(st.commits >= 1);
}

#[tokio::test]
async fn alert_keeps_id_and_seq_across_reopen_and_seq_never_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let cfg = StoreConfig::default();
    let s = Store::open(&path, &cfg).unwrap();
    for i in 0..3 {
        s.submit(Write::Alert(Box::new(alert("panic", i))))
            .await
            .unwrap();
    }
    s.flush().await.unwrap();
    let first = all_rows(&s, Class::Alert).await;
    s.close().await.unwrap();

    let s = Store::open(&path, &cfg).unwrap();
    assert_eq!(all_rows(&s, Class::Alert).await, first);
    // Acknowledge everything, reopen: the next alert still gets seq 4.
    let acks = first.iter().map(|r| (Class::Alert, r.seq)).collect();
    s.submit(Write::Ack(acks)).await.unwrap();
    s.close().await.unwrap();
    let s = Store::open(&path, &cfg).unwrap();
    assert_eq!(s.stats().alert.rows, 0);
    s.submit(Write::Alert(Box::new(alert("fall", 9))))
        .await
        .unwrap();
    s.flush().await.unwrap();
    let rows = all_rows(&s, Class::Alert).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].seq, 4);
    let doc: serde_json::Value = serde_json::from_slice(&rows[0].payload).unwrap();
    assert_eq!(doc["rule"], "fall");
    assert_eq!(doc["room"], "hall");
    assert_eq!(doc["kind"], "panic");
}

#[tokio::test]
async fn ack_is_idempotent_and_fetch_pages_after_seq() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
    for i in 0..10 {
        s.submit(Write::Reading(reading("m", Kind::Motion, 1.0, i)))
            .await
            .unwrap();
    }
    s.flush().await.unwrap();
    let page = s.outbox_fetch(Class::Telemetry, 3, 4).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![4, 5, 6, 7]
    );
    let acks: Vec<_> = (1..=5).map(|q| (Class::Telemetry, q)).collect();
    s.submit(Write::Ack(acks.clone())).await.unwrap();
    s.submit(Write::Ack(acks)).await.unwrap();
    s.submit(Write::Ack(vec![(Class::Alert, 99)]))
        .await
        .unwrap();
    s.flush().await.unwrap();
    let rest = all_rows(&s, Class::Telemetry).await;
    assert_eq!(
        rest.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![6, 7, 8, 9, 10]
    );
    assert_eq!(s.stats().telemetry.rows, 5);
    assert_eq!(s.stats().telemetry.evicted, 0);
}

#[tokio::test]
async fn a_new_status_supersedes_older_unacknowledged_ones() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
    for up in 0..3 {
        let mut m = serde_json::Map::new();
        m.insert("uptime".into(), serde_json::json!(up));
        s.submit(Write::Status(m)).await.unwrap();
    }
    s.flush().await.unwrap();
    let rows = all_rows(&s, Class::Status).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].seq, 3);
    let doc: serde_json::Value = serde_json::from_slice(&rows[0].payload).unwrap();
    assert_eq!(doc["uptime"], 2);
    let st = s.stats();
    assert_eq!(st.superseded, 2);
    assert_eq!(st.status.evicted, 0);
}

#[tokio::test]
async fn cap_evicts_oldest_telemetry_then_status_but_never_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let cap = 2_000;
    let s = Store::open_with_cap(&path, &StoreConfig::default(), cap).unwrap();
    let mut m = serde_json::Map::new();
    m.insert("uptime".into(), serde_json::json!(1));
    s.submit(Write::Status(m)).await.unwrap();
    for i in 0..40 {
        s.submit(Write::Reading(reading("t", Kind::Temperature, 20.0, i)))
            .await
            .unwrap();
    }
    s.flush().await.unwrap();
    let st = s.stats();
    assert!(st.telemetry.evicted > 0);
    assert_eq!(st.status.rows, 1, "status stays while telemetry can go");
    assert!(st.alert.bytes + st.status.bytes + st.telemetry.bytes <= cap);
    let tele = all_rows(&s, Class::Telemetry).await;
    assert_eq!(tele.last().unwrap().seq, 40, "the newest telemetry is kept");
    assert_eq!(
        tele.first().unwrap().seq,
        40 - tele.len() as u64 + 1,
        "the oldest went first"
    );

    // Alerts alone over the cap (50 compact bodies of ~56 bytes):
    // everything else goes, every alert stays.
    for i in 0..50 {
        s.submit(Write::Alert(Box::new(alert("panic", i))))
            .await
            .unwrap();
    }
    s.flush().await.unwrap();
    let st = s.stats();
    assert_eq!(st.alert.rows, 50);
    assert!(st.alert.bytes > cap, "the alerts alone are over the cap");
    assert_eq!(st.alert.evicted, 0);
    assert_eq!(st.telemetry.rows, 0);
    assert_eq!(st.status.rows, 0);
    assert_eq!(st.status.evicted, 1);
    let evicted = st.telemetry.evicted;
    s.close().await.unwrap();
    // Counters are persisted.
    let s = Store::open_with_cap(&path, &StoreConfig::default(), cap).unwrap();
    assert_eq!(s.stats().telemetry.evicted, evicted);
    assert_eq!(s.stats().status.evicted, 1);
    assert_eq!(s.stats().alert.rows, 50);
}

#[tokio::test]
async fn device_upsert_merges_only_given_fields_and_remove_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
    s.submit(Write::Device(Box::new(DeviceInfo {
        id: Some(dev("front")),
        name: Some("Front door".into()),
        room: Some("hall".into()),
        nwk: Some(0x1234),
        lqi: Some(200),
        ..Default::default()
    })))
    .await
    .unwrap();
    s.submit(Write::Device(Box::new(DeviceInfo {
        id: Some(dev("front")),
        room: Some("porch".into()),
        ..Default::default()
    })))
    .await
    .unwrap();
    s.submit(Write::Device(Box::default())).await.unwrap();
    s.submit(Write::Device(Box::new(DeviceInfo {
        id: Some(dev("gone")),
        ..Default::default()
    })))
    .await
    .unwrap();
    s.submit(Write::RemoveDevice(dev("gone"))).await.unwrap();
    s.flush().await.unwrap();
    let all = s.devices().await.unwrap();
    assert_eq!(all.len(), 1);
    let d = &all[0];
    assert_eq!(d.name.as_deref(), Some("Front door"));
    assert_eq!(d.room.as_deref(), Some("porch"));
    assert_eq!(d.nwk, Some(0x1234));
    assert_eq!(d.lqi, Some(200));
    assert!(s.device(&dev("gone")).await.unwrap().is_none());
}

#[tokio::test]
async fn kv_puts_overwrites_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
    s.submit(Write::Kv("rules.timer".into(), Some(b"a".to_vec())))
        .await
        .unwrap();
    s.submit(Write::Kv("rules.timer".into(), Some(b"b".to_vec())))
        .await
        .unwrap();
    s.flush().await.unwrap();
    assert_eq!(s.kv_get("rules.timer").await.unwrap(), Some(b"b".to_vec()));
    s.submit(Write::Kv("rules.timer".into(), None))
        .await
        .unwrap();
    s.flush().await.unwrap();
    assert_eq!(s.kv_get("rules.timer").await.unwrap(), None);
    for k in ["rules.a", "rules.b", "rulesx", "web.session"] {
        s.submit(Write::Kv(k.into(), Some(k.as_bytes().to_vec())))
            .await
            .unwrap();
    }
    s.flush().await.unwrap();
    let keys: Vec<String> = s
        .kv_scan("rules.")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec!["rules.a", "rules.b"]);
}

#[tokio::test]
async fn rule_state_deltas_append_in_order_and_a_full_save_ends_the_journal() {
    use crate::rules::Saved;
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
    let st = |saved: Saved, lazy: bool| StateWrite {
        key: "rules.state",
        saved,
        lazy,
    };
    let delta = |seq: u64| Saved::Delta {
        seq,
        bytes: format!("d{seq}").into_bytes(),
    };
    s.submit(Write::State(st(Saved::Full(b"f1".to_vec()), false)))
        .await
        .unwrap();
    // Another kv key is never touched by the journal.
    s.submit(Write::Kv("rules.journalx".into(), Some(b"keep".to_vec())))
        .await
        .unwrap();
    for seq in [2, 3, 9, 10, 11] {
        s.submit(Write::State(st(delta(seq), seq % 2 == 0)))
            .await
            .unwrap();
    }
    s.flush().await.unwrap();
    assert_eq!(s.kv_get("rules.state").await.unwrap(), Some(b"f1".to_vec()));
    let j = s.rule_journal().await.unwrap();
    // Numeric order (9 before 10).
    let want: Vec<Vec<u8>> = ["d2", "d3", "d9", "d10", "d11"]
        .iter()
        .map(|d| d.as_bytes().to_vec())
        .collect();
    assert_eq!(j, want);
    // A full save with alerts: the journal is gone in the same commit.
    s.submit(Write::AlertsWithState {
        alerts: vec![alert("panic", 5)],
        state: st(Saved::Full(b"f12".to_vec()), false),
    })
    .await
    .unwrap();
    s.flush().await.unwrap();
    assert_eq!(
        s.kv_get("rules.state").await.unwrap(),
        Some(b"f12".to_vec())
    );
    assert!(s.rule_journal().await.unwrap().is_empty());
    assert_eq!(
        s.kv_get("rules.journalx").await.unwrap(),
        Some(b"keep".to_vec())
    );
    assert_eq!(all_rows(&s, Class::Alert).await.len(), 1);
}

/// Full snapshots go in place through incremental blob I/O (see
/// `apply::put_kv_large`): a multi-megabyte one reads back byte for byte,
/// a smaller one after it leaves nothing of the larger, an empty one
/// works, and what was committed is there after a reopen.
#[tokio::test]
async fn a_large_rule_snapshot_is_stored_exactly_and_replaced_exactly() {
    use crate::rules::Saved;
    let dir = tempfile::tempdir().unwrap();
    let st = |bytes: Vec<u8>| {
        Write::State(StateWrite {
            key: "rules.state",
            saved: Saved::Full(bytes),
            lazy: false,
        })
    };
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let small = b"{\"v\":2}".to_vec();
    {
        let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
        for value in [big.clone(), small.clone(), Vec::new(), big.clone()] {
            s.submit(st(value.clone())).await.unwrap();
            s.flush().await.unwrap();
            assert_eq!(s.kv_get("rules.state").await.unwrap(), Some(value));
        }
        s.submit(st(small.clone())).await.unwrap();
        s.close().await.unwrap();
    }
    let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
    assert_eq!(s.kv_get("rules.state").await.unwrap(), Some(small));
}

#[tokio::test]
async fn retention_deletes_only_history_older_than_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        history_days: 1,
        retention_interval: crate::config::Dur(Duration::from_millis(20)),
        ..Default::default()
    };
    let s = Store::open(&db(&dir), &cfg).unwrap();
    let now = crate::wall::now().as_millis();
    for i in 0..5000 {
        s.submit(Write::ReadingNoTelemetry(reading(
            "m",
            Kind::Motion,
            1.0,
            now - 3 * 86_400_000 + i,
        )))
        .await
        .unwrap();
    }
    s.submit(Write::ReadingNoTelemetry(reading(
        "m",
        Kind::Motion,
        0.0,
        now,
    )))
    .await
    .unwrap();
    s.flush().await.unwrap();
    for _ in 0..200 {
        if s.stats().history_expired == 5000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.stats().history_expired, 5000);
    let left = s.history(Time(0), Time(i64::MAX), 100).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].at, Time(now));
}

#[tokio::test]
async fn submit_after_close_reports_closed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
    let other = s.clone();
    s.close().await.unwrap();
    let r = other.submit(Write::Kv("k".into(), None)).await;
    assert!(matches!(r, Err(StoreError::Closed)), "{r:?}");
}

#[tokio::test]
async fn a_newer_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    Store::open(&path, &StoreConfig::default())
        .unwrap()
        .close()
        .await
        .unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let r = Store::open(&path, &StoreConfig::default());
    assert!(
        matches!(r, Err(StoreError::TooNew { found: 99, .. })),
        "{r:?}"
    );
}

#[test]
fn submit_blocking_and_flush_blocking_work_from_a_plain_thread() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
    let s2 = s.clone();
    std::thread::spawn(move || {
        for i in 0..100 {
            s2.submit_blocking(Write::Alert(Box::new(alert("panic", i))))
                .unwrap();
        }
        s2.flush_blocking().unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(s.outbox_len(Class::Alert), 100);
    let rows = s.outbox_fetch_blocking(Class::Alert, 0, 1000).unwrap();
    assert_eq!(rows.len(), 100);
    let ids: std::collections::HashSet<_> = rows.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 100, "ids are unique");
}

#[test]
fn default_config_validates_and_one_bad_key_is_one_problem() {
    // That `config defaults` shows these defaults: config/defaults_tests.rs.
    let cfg = StoreConfig::default();
    assert!(cfg.validate().is_empty());
    let bad = StoreConfig {
        batch_max: 0,
        ..Default::default()
    };
    assert_eq!(bad.validate().len(), 1);
}

#[tokio::test]
async fn a_write_sqlite_refuses_is_dropped_alone_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    s.submit(Write::Alert(Box::new(alert("before", 1))))
        .await
        .unwrap();
    // Bypasses Reading::new: NaN is stored as NULL and breaks NOT NULL.
    let mut bad = reading("t", Kind::Temperature, 1.0, 2);
    bad.value = f64::NAN;
    s.submit(Write::ReadingNoTelemetry(bad)).await.unwrap();
    s.submit(Write::Alert(Box::new(alert("after", 3))))
        .await
        .unwrap();
    s.flush().await.unwrap();
    let rows = all_rows(&s, Class::Alert).await;
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(s.stats().rejected, 1);
    s.close().await.unwrap();
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    assert_eq!(s.stats().rejected, 1, "persisted");
}

#[tokio::test]
async fn startup_check_off_opens_without_reading_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        startup_check: StartupCheck::Off,
        ..Default::default()
    };
    let s = Store::open(&db(&dir), &cfg).unwrap();
    s.integrity_check().await.unwrap();
    s.close().await.unwrap();
    let full = StoreConfig {
        startup_check: StartupCheck::Full,
        ..Default::default()
    };
    Store::open(&db(&dir), &full)
        .unwrap()
        .close()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submitters_get_contiguous_seqs_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        queue_capacity: 16,
        batch_max: 64,
        ..Default::default()
    };
    let s = Store::open(&db(&dir), &cfg).unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..250 {
                s.submit(Write::Alert(Box::new(alert(&format!("t{t}-{i}"), i))))
                    .await
                    .unwrap();
            }
            s.flush().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rows = all_rows(&s, Class::Alert).await;
    assert_eq!(rows.len(), 2000);
    assert!(rows.iter().enumerate().all(|(k, r)| r.seq == k as u64 + 1));
    let rules: std::collections::HashSet<String> = rows
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
            v["rule"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(rules.len(), 2000, "each alert exactly once");
    assert!(s.stats().commits < 2000, "group commit batched the writes");
}

#[tokio::test]
async fn history_of_one_device_uses_its_own_rows_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
    for i in 0..10 {
        let d = if i % 2 == 0 { "a" } else { "b" };
        s.submit(Write::ReadingNoTelemetry(reading(d, Kind::Contact, 1.0, i)))
            .await
            .unwrap();
    }
    s.flush().await.unwrap();
    let a = s
        .history_of(&dev("a"), Time(2), Time(9), 100)
        .await
        .unwrap();
    assert_eq!(
        a.iter().map(|r| r.at.0).collect::<Vec<_>>(),
        vec![2, 4, 6, 8]
    );
    assert!(a.iter().all(|r| r.device == dev("a")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_makes_writes_wait_with_back_pressure_not_vanish() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let cfg = StoreConfig {
        queue_capacity: 4,
        batch_max: 2,
        busy_timeout: crate::config::Dur(Duration::from_millis(20)),
        ..Default::default()
    };
    let s = Store::open(&path, &cfg).unwrap();
    // Another process holds the write lock.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let producer = {
        let s = s.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                s.submit(Write::Alert(Box::new(alert(&format!("r{i}"), i))))
                    .await
                    .unwrap();
            }
        })
    };
    // The producer is held back by the bounded queue while commits fail.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!producer.is_finished(), "a full queue pushes back");
    let st = s.stats();
    assert!(st.error.is_some(), "the failing state is reported: {st:?}");
    assert!(st.failed_commits > 0);
    assert_eq!(st.alert.rows, 0);
    other.execute_batch("COMMIT").unwrap();
    drop(other);
    producer.await.unwrap();
    s.flush().await.unwrap();
    let rows = all_rows(&s, Class::Alert).await;
    assert_eq!(rows.len(), 20);
    assert!(rows.iter().enumerate().all(|(k, r)| r.seq == k as u64 + 1));
    assert_eq!(s.stats().error, None);
}

#[tokio::test]
async fn wiping_history_keeps_rows_still_waiting_for_the_uplink() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
    for i in 0..10 {
        s.submit(Write::Reading(reading(
            "w-temp",
            Kind::Temperature,
            20.0,
            1_000 + i,
        )))
        .await
        .unwrap();
    }
    s.flush().await.unwrap();
    let all = |s: &Store| {
        let s = s.clone();
        async move {
            s.history(Time::from_millis(0), Time::from_millis(i64::MAX / 2), 100)
                .await
                .unwrap()
        }
    };
    assert_eq!(all(&s).await.len(), 10);
    s.submit(Write::WipeHistory).await.unwrap();
    s.flush().await.unwrap();
    assert!(all(&s).await.is_empty(), "history left after the wipe");
    assert_eq!(all_rows(&s, Class::Telemetry).await.len(), 10);
}

#[tokio::test]
async fn while_the_clock_is_untrusted_telemetry_and_the_gateways_own_warnings_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
    s.set_clock_trusted(false).await.unwrap();
    s.submit(Write::Reading(reading(
        "k1",
        Kind::Temperature,
        19.0,
        1_000,
    )))
    .await
    .unwrap();
    let warn = Alert::gateway(
        "disk-full",
        "gateway",
        AlertState::Raised,
        "x".into(),
        Time(1_000),
    )
    .unwrap();
    s.submit(Write::Alert(Box::new(warn.clone())))
        .await
        .unwrap();
    s.set_clock_trusted(true).await.unwrap();
    s.submit(Write::Reading(reading(
        "k1",
        Kind::Temperature,
        19.5,
        2_000,
    )))
    .await
    .unwrap();
    s.submit(Write::Alert(Box::new(warn))).await.unwrap();
    s.flush().await.unwrap();
    let text = |r: &OutboxRow| String::from_utf8_lossy(&r.payload).into_owned();
    let t: Vec<String> = all_rows(&s, Class::Telemetry)
        .await
        .iter()
        .map(text)
        .collect();
    let a: Vec<String> = all_rows(&s, Class::Alert).await.iter().map(text).collect();
    assert!(t[0].contains(r#""time_trusted":false"#), "{t:?}");
    assert!(!t[1].contains("time_trusted"), "{t:?}");
    assert!(a[0].contains(r#""time_trusted":false"#), "{a:?}");
    assert!(!a[1].contains("time_trusted"), "{a:?}");
    s.close().await.unwrap();
}

/// Every queued message takes the size of the largest `Write` variant,
/// and the queue holds up to `queue_capacity` (8,192) of them in a burst:
/// the rare, large variants (alerts outside the hub's batches, registry
/// upserts) are boxed so a reading's message stays small.
#[test]
fn a_queued_write_stays_small() {
    assert!(
        std::mem::size_of::<super::Msg>() <= 80,
        "{}",
        std::mem::size_of::<super::Msg>()
    );
}
