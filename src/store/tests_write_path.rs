//! Tests of the write path's cost cutters: schema v3 (no per-device history
//! index) migrated from a v2 file, `last_seen` gathered across batches, and
//! group commit gathering without holding alerts back.

use std::time::{Duration, Instant};

use super::tests::{alert, db, dev, put_temp, reading};
use super::*;
use crate::model::Kind;

/// A database exactly as the v2 schema wrote it, with rows in every table
/// the product fills.
fn write_v2_database(path: &std::path::Path) {
    let c = schema::create_at(path, 2);
    c.execute_batch(
        "INSERT INTO devices (id, name, room, last_seen, battery) VALUES
             ('hall-pir', 'Hall sensor', 'hall', 1500, 90.0),
             ('k-temp', NULL, 'kitchen', 1600, NULL);
         INSERT INTO history (device, kind, value, at) VALUES
             ('hall-pir', 1, 1.0, 1000), ('k-temp', 3, 21.5, 1100),
             ('hall-pir', 1, 0.0, 1200), ('k-temp', 3, 21.0, 1300),
             ('hall-pir', 1, 1.0, 1500), ('k-temp', 3, 20.5, 1600);
         INSERT INTO outbox (class, seq, id, at, payload) VALUES
             (0, 1, 'a-1', 1000, x'7b7d'), (2, 7, 't-7', 1100, x'7b7d');
         INSERT INTO seq (class, next) VALUES (0, 2), (2, 8);
         INSERT INTO kv (key, value) VALUES ('rules.state', x'0102');
         INSERT INTO alert_delivery (seq, id, via, queued_at, delivered_at)
             VALUES (5, 'a-5', 'mqtt', 900, 950);",
    )
    .unwrap();
}

fn count(c: &rusqlite::Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn a_v2_database_migrates_to_v3_keeping_every_row_and_dropping_only_the_device_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    write_v2_database(&path);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();

    let h = s.history(Time(0), Time(10_000), 100).await.unwrap();
    assert_eq!(h.len(), 6);
    assert_eq!(
        h.iter().map(|r| r.at.0).collect::<Vec<_>>(),
        vec![1000, 1100, 1200, 1300, 1500, 1600]
    );
    let pir = s
        .history_of(&dev("hall-pir"), Time(0), Time(10_000), 100)
        .await
        .unwrap();
    assert_eq!(pir.iter().map(|r| (r.kind, r.value)).collect::<Vec<_>>(), {
        let k = Kind::from_code(1).unwrap();
        vec![(k, 1.0), (k, 0.0), (k, 1.0)]
    });
    let d = s.device(&dev("hall-pir")).await.unwrap().unwrap();
    assert_eq!(d.name.as_deref(), Some("Hall sensor"));
    assert_eq!(d.last_seen, Some(Time(1500)));
    assert_eq!(s.devices().await.unwrap().len(), 2);
    let alerts = s.outbox_fetch(Class::Alert, 0, 10).await.unwrap();
    assert_eq!((alerts.len(), alerts[0].id.as_str()), (1, "a-1"));
    let tel = s.outbox_fetch(Class::Telemetry, 0, 10).await.unwrap();
    assert_eq!((tel.len(), tel[0].seq), (1, 7));
    assert_eq!(s.kv_get("rules.state").await.unwrap(), Some(vec![1u8, 2]));
    assert_eq!(s.alert_deliveries(10).await.unwrap().len(), 1);
    // New writes continue the sequences of the old file.
    s.submit(Write::Alert(Box::new(alert("panic", 2_000))))
        .await
        .unwrap();
    s.flush().await.unwrap();
    let alerts = s.outbox_fetch(Class::Alert, 0, 10).await.unwrap();
    assert_eq!(alerts.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    s.close().await.unwrap();

    let c = rusqlite::Connection::open(&path).unwrap();
    // Every migration since v2 applied (v3 here; v4 added the ARC queue).
    assert_eq!(
        count(&c, "PRAGMA user_version"),
        super::schema::MIGRATIONS.len() as i64
    );
    // v9 dropped the ARC trigger (the writer captures alerts itself).
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM sqlite_schema WHERE name = 'arc_capture'"
        ),
        0
    );
    assert_eq!(count(&c, "SELECT count(*) FROM history"), 6);
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM sqlite_schema WHERE name = 'history_device_at'"
        ),
        0
    );
    // v6 keys history by time: no index at all.
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'history'"
        ),
        0
    );
    assert_eq!(
        c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .unwrap(),
        "ok"
    );
}

#[tokio::test]
async fn last_seen_of_unflushed_readings_reaches_the_registry_within_the_flush_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    // Readings committed as they come (no grouping), as on a busy site.
    let cfg = StoreConfig {
        commit_delay: crate::config::Dur::secs(0),
        ..StoreConfig::default()
    };
    let s = Store::open(&path, &cfg).unwrap();
    // Committed once, so the writer is idle afterwards with facts pending.
    s.submit(Write::ReadingNoTelemetry(reading(
        "lounge-pir",
        Kind::Motion,
        1.0,
        5_000,
    )))
    .await
    .unwrap();
    // No flush: wait for the history row (committed with its batch), then
    // for the registry (written within about a second, by the idle writer).
    let c = rusqlite::Connection::open(&path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&c, "SELECT count(*) FROM history") == 0 {
        assert!(Instant::now() < deadline, "history row never committed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last_seen = || -> Option<i64> {
        c.query_row(
            "SELECT last_seen FROM devices WHERE id = 'lounge-pir'",
            [],
            |r| r.get(0),
        )
        .ok()
    };
    while last_seen() != Some(5_000) {
        assert!(Instant::now() < deadline, "last_seen never written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(c);
    s.close().await.unwrap();
}

#[tokio::test]
async fn a_registry_write_wins_over_older_gathered_facts_in_later_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
    s.submit(Write::Reading(reading("b-pir", Kind::Battery, 80.0, 1_000)))
        .await
        .unwrap();
    s.submit(Write::Device(Box::new(DeviceInfo {
        id: Some(dev("b-pir")),
        battery: Some(40.0),
        ..Default::default()
    })))
    .await
    .unwrap();
    s.submit(Write::ReadingNoTelemetry(reading(
        "b-pir",
        Kind::Motion,
        1.0,
        2_000,
    )))
    .await
    .unwrap();
    s.flush().await.unwrap();
    let d = s.device(&dev("b-pir")).await.unwrap().unwrap();
    assert_eq!(d.battery, Some(40.0));
    assert_eq!(d.last_seen, Some(Time(2_000)));
}

#[tokio::test]
async fn dropping_the_last_handle_writes_pending_last_seen() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    for i in 0..50 {
        s.submit(Write::ReadingNoTelemetry(reading(
            &format!("d-{i}"),
            Kind::Motion,
            1.0,
            10_000 + i,
        )))
        .await
        .unwrap();
    }
    tokio::task::spawn_blocking(move || drop(s)).await.unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(
        count(&c, "SELECT count(*) FROM devices WHERE last_seen >= 10000"),
        50
    );
}

#[test]
fn an_alert_behind_a_few_readings_commits_without_waiting_for_more() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
    // Readings alone, then an alert: the alert must be committed and
    // visible even though no flush is asked for (the gathering wait ends
    // when it sees the alert; bounded anyway).
    for i in 0..3 {
        s.submit_blocking(Write::ReadingNoTelemetry(reading(
            "g-pir",
            Kind::Motion,
            1.0,
            i,
        )))
        .unwrap();
    }
    s.submit_blocking(Write::Alert(Box::new(alert("panic", 10))))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.outbox_len(Class::Alert) == 0 {
        assert!(Instant::now() < deadline, "alert never committed");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[tokio::test]
async fn a_v4_database_moves_its_rule_journal_out_of_kv_in_order_keeping_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    {
        let c = schema::create_at(&path, 4);
        c.execute_batch(
            "INSERT INTO kv (key, value) VALUES
                 ('rules.state', x'0102'),
                 ('rules.journal/00000000000000000010', x'0a'),
                 ('rules.journal/00000000000000000009', x'09'),
                 ('rules.journalx', x'ff'),
                 ('arc.capture', x'01');",
        )
        .unwrap();
    }
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    assert_eq!(s.kv_get("rules.state").await.unwrap(), Some(vec![1u8, 2]));
    assert_eq!(
        s.rule_journal().await.unwrap(),
        vec![vec![9u8], vec![10u8]],
        "deltas in seq order"
    );
    assert!(s.kv_scan("rules.journal/").await.unwrap().is_empty());
    assert_eq!(s.kv_get("rules.journalx").await.unwrap(), Some(vec![0xff]));
    // A new delta goes to the table; a full save empties it.
    s.submit(Write::State(StateWrite {
        key: "rules.state",
        saved: crate::rules::Saved::Delta {
            seq: 11,
            bytes: vec![11],
        },
        lazy: false,
    }))
    .await
    .unwrap();
    s.flush().await.unwrap();
    assert_eq!(s.rule_journal().await.unwrap().len(), 3);
    // ARC capture, switched on in the old `kv`, still copies alerts (v9:
    // the writer does, the trigger is gone).
    s.submit(Write::Alert(Box::new(alert("panic", 2_000))))
        .await
        .unwrap();
    s.flush().await.unwrap();
    s.close().await.unwrap();

    let c = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(
        count(&c, "PRAGMA user_version"),
        schema::MIGRATIONS.len() as i64
    );
    assert_eq!(count(&c, "SELECT count(*) FROM kv"), 3);
    assert_eq!(count(&c, "SELECT count(*) FROM arc_queue"), 1);
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[tokio::test]
async fn a_v5_history_is_keyed_by_time_keeping_every_row_and_same_millisecond_rows_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    {
        let c = schema::create_at(&path, 5);
        // Inserted out of time order; three rows share one millisecond.
        c.execute_batch(
            "INSERT INTO history (device, kind, value, at) VALUES
                 ('k-temp', 3, 21.0, 3000), ('hall-pir', 1, 1.0, 1000),
                 ('k-temp', 3, 20.0, 2000), ('hall-pir', 1, 0.0, 2000),
                 ('door', 2, 1.0, 2000);",
        )
        .unwrap();
    }
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    let h = s.history(Time(0), Time(10_000), 100).await.unwrap();
    assert_eq!(
        h.iter()
            .map(|r| (r.device.as_str().to_string(), r.at.0))
            .collect::<Vec<_>>(),
        vec![
            ("hall-pir".to_string(), 1000),
            ("k-temp".to_string(), 2000),
            ("hall-pir".to_string(), 2000),
            ("door".to_string(), 2000),
            ("k-temp".to_string(), 3000),
        ],
        "time order; rows of one millisecond in the order they were written"
    );
    // Bounds are exact: [2000, 3000) holds the three rows of 2000 only.
    assert_eq!(
        s.history(Time(2000), Time(3000), 100).await.unwrap().len(),
        3
    );
    assert_eq!(
        s.history(Time(2001), Time(3000), 100).await.unwrap().len(),
        0
    );
    // New readings in a millisecond that already has rows take the next keys.
    for v in [5.0, 6.0] {
        s.submit(Write::Reading(reading(
            "k-temp",
            Kind::Temperature,
            v,
            2000,
        )))
        .await
        .unwrap();
    }
    s.submit(Write::Reading(reading(
        "k-temp",
        Kind::Temperature,
        7.0,
        500,
    )))
    .await
    .unwrap();
    s.flush().await.unwrap();
    let k = s
        .history_of(&dev("k-temp"), Time(0), Time(10_000), 100)
        .await
        .unwrap();
    assert_eq!(
        k.iter().map(|r| (r.at.0, r.value)).collect::<Vec<_>>(),
        vec![
            (500, 7.0),
            (2000, 20.0),
            (2000, 5.0),
            (2000, 6.0),
            (3000, 21.0)
        ]
    );
    let latest = s.latest_per_device(Time(0)).await.unwrap();
    assert!(
        latest
            .iter()
            .any(|r| r.device.as_str() == "k-temp" && r.at.0 == 3000)
    );
    s.close().await.unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM history"), 8);
    assert_eq!(
        count(&c, "SELECT count(*) FROM history WHERE t / 65536 != at"),
        0,
        "every key encodes its row's time"
    );
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[tokio::test]
async fn a_millisecond_with_every_history_key_taken_still_stores_the_next_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    put_temp(&s, 1.0, 4000).await;
    s.flush().await.unwrap();
    {
        // Fill the rest of the millisecond's keys behind the store's back.
        let c = rusqlite::Connection::open(&path).unwrap();
        let lo = schema::history_key(4000);
        c.execute(
            "UPDATE history SET t = ?1 WHERE at = 4000",
            [lo + schema::HISTORY_SLOTS - 1],
        )
        .unwrap();
    }
    // Reopened: the writer learns the newest key from the file (it trusts
    // what it inserted itself while open; see `history`).
    s.close().await.unwrap();
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    put_temp(&s, 2.0, 4000).await;
    s.flush().await.unwrap();
    s.close().await.unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM history WHERE at = 4000"), 2);
}

/// The live stream's readings take their history key from what the writer
/// knows (no b-tree seek); older readings, readings of one millisecond and
/// a restart in between still get each row its own key, in arrival order
/// within a millisecond.
#[tokio::test]
async fn history_keys_follow_arrival_within_a_millisecond_across_old_readings_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    for (v, at) in [
        (1.0, 5000),
        (2.0, 5000),
        (3.0, 3000),
        (4.0, 5000),
        (5.0, 3000),
    ] {
        put_temp(&s, v, at).await;
    }
    s.flush().await.unwrap();
    put_temp(&s, 6.0, 6000).await;
    s.close().await.unwrap();
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    for (v, at) in [(7.0, 5000), (8.0, 7000), (9.0, 7000), (10.0, 3000)] {
        put_temp(&s, v, at).await;
    }
    s.close().await.unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    let rows: Vec<(i64, f64, i64)> = c
        .prepare("SELECT t, value, at FROM history ORDER BY t")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let values: Vec<f64> = rows.iter().map(|r| r.1).collect();
    assert_eq!(
        values,
        vec![3.0, 5.0, 10.0, 1.0, 2.0, 4.0, 7.0, 6.0, 8.0, 9.0],
        "time order, arrival order within a millisecond"
    );
    for (t, _, at) in &rows {
        let lo = schema::history_key(*at);
        assert!(
            (lo..lo + schema::HISTORY_SLOTS).contains(t),
            "{t} outside {at}'s keys"
        );
    }
}

/// A row written into `history` behind the open writer's back at the very
/// key the writer would give next: the reading is still stored (the writer
/// falls back to asking the table), nothing of its batch is lost.
#[tokio::test]
async fn a_history_key_taken_behind_the_writers_back_still_stores_the_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    put_temp(&s, 1.0, 8000).await;
    s.flush().await.unwrap();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute(
            "INSERT INTO history (t, device, kind, value, at) VALUES (?1, 'intruder', 1, 0.0, 8000)",
            [schema::history_key(8000) + 1],
        )
        .unwrap();
    }
    put_temp(&s, 2.0, 8000).await;
    s.submit(Write::Alert(Box::new(alert("panic", 8000))))
        .await
        .unwrap();
    s.flush().await.unwrap();
    s.close().await.unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM history WHERE at = 8000"), 3);
    assert_eq!(
        count(&c, "SELECT count(*) FROM history WHERE value = 2.0"),
        1
    );
    assert_eq!(count(&c, "SELECT count(*) FROM outbox WHERE class = 0"), 1);
}

#[tokio::test]
async fn a_v9_registry_migrates_to_one_b_tree_keeping_every_column_and_new_and_known_devices_are_written()
 {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    {
        let c = schema::create_at(&path, 9);
        c.execute_batch(
            "INSERT INTO devices VALUES
                 ('b-door', 'Front door', 'hall', 'front_door', '0x00124b0012345678', 4660,
                  'SONOFF', 'SNZB-04', 1500, 90.0, 200),
                 ('d-pir', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
        )
        .unwrap();
    }
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    let door = s.device(&dev("b-door")).await.unwrap().unwrap();
    assert_eq!(
        (
            door.name.as_deref(),
            door.room.as_deref(),
            door.role.as_deref()
        ),
        (Some("Front door"), Some("hall"), Some("front_door"))
    );
    assert_eq!(door.ieee.as_deref(), Some("0x00124b0012345678"));
    assert_eq!((door.nwk, door.lqi), (Some(4660), Some(200)));
    assert_eq!(
        (door.manufacturer.as_deref(), door.model.as_deref()),
        (Some("SONOFF"), Some("SNZB-04"))
    );
    assert_eq!(
        (door.last_seen, door.battery),
        (Some(Time(1500)), Some(90.0))
    );
    // One flush with new and known devices alternating in id order: the
    // writer's guess (insert first after a new device, update first after
    // a known one) is wrong at every step, and every fact still lands.
    for (d, kind, v) in [
        ("a-new", Kind::Motion, 1.0),
        ("b-door", Kind::Battery, 55.0),
        ("c-new", Kind::Battery, 40.0),
        ("d-pir", Kind::Motion, 1.0),
        ("e-new", Kind::Motion, 0.0),
    ] {
        s.submit(Write::Reading(reading(d, kind, v, 3_000)))
            .await
            .unwrap();
    }
    s.flush().await.unwrap();
    let all = s.devices().await.unwrap();
    let facts: Vec<_> = all
        .iter()
        .map(|d| (d.id.as_ref().unwrap().as_str(), d.last_seen, d.battery))
        .collect();
    assert_eq!(
        facts,
        vec![
            ("a-new", Some(Time(3_000)), None),
            ("b-door", Some(Time(3_000)), Some(55.0)),
            ("c-new", Some(Time(3_000)), Some(40.0)),
            ("d-pir", Some(Time(3_000)), None),
            ("e-new", Some(Time(3_000)), None),
        ]
    );
    assert_eq!(
        s.device(&dev("b-door"))
            .await
            .unwrap()
            .unwrap()
            .name
            .as_deref(),
        Some("Front door"),
        "a gathered fact leaves the paired facts alone"
    );
    s.close().await.unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    let sql: String = c
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'devices'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sql.ends_with("WITHOUT ROWID"), "{sql}");
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'devices'"
        ),
        0,
        "the id is the table's key: no second b-tree"
    );
    assert_eq!(
        c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .unwrap(),
        "ok"
    );
}
