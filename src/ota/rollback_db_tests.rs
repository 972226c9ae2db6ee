//! Tests of `rollback_db`: merges of real SQLite files.

use super::*;

fn db_with(path: &Path, sql: &str) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE history (device TEXT NOT NULL, kind INTEGER NOT NULL, value REAL NOT NULL, at INTEGER NOT NULL);
         CREATE TABLE outbox (class INTEGER NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, at INTEGER NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (class, seq)) WITHOUT ROWID;
         CREATE TABLE seq (class INTEGER PRIMARY KEY NOT NULL, next INTEGER NOT NULL);
         CREATE TABLE counters (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
         CREATE TABLE alert_delivery (seq INTEGER PRIMARY KEY NOT NULL, id TEXT NOT NULL, via TEXT NOT NULL, queued_at INTEGER NOT NULL, delivered_at INTEGER NOT NULL);
         CREATE TABLE devices (id TEXT PRIMARY KEY NOT NULL, name TEXT);",
    )
    .unwrap();
    c.execute_batch(sql).unwrap();
}

fn ids(db: &Path) -> Vec<(i64, i64, String)> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT class, seq, id FROM outbox ORDER BY class, seq")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn rows_of_the_trial_survive_and_delivered_alerts_are_not_sent_again() {
    let d = tempfile::tempdir().unwrap();
    let (db, backup) = (d.path().join("c.db"), d.path().join("b.db"));
    let before = "INSERT INTO history VALUES ('d1', 1, 20.0, 1000);
         INSERT INTO outbox VALUES (0, 1, 'a-old', 1000, 'x'), (2, 1, 't-old', 1000, 'y');
         INSERT INTO seq VALUES (0, 2), (2, 2);
         INSERT INTO counters VALUES ('rows.alert', 1), ('evicted.telemetry', 3);
         INSERT INTO devices VALUES ('d1', 'lounge');";
    db_with(&backup, before);
    // The trial: delivered a-old, raised a-new, stored a reading, paired d2,
    // and (a schema quirk) reused telemetry seq 1 for its own row.
    db_with(
        &db,
        "INSERT INTO history VALUES ('d1', 1, 20.0, 1000), ('d1', 1, 21.0, 2000);
         INSERT INTO outbox VALUES (0, 2, 'a-new', 2000, 'z'),
             (2, 1, 't-new', 2000, CAST('{\"device\":\"d1\",\"kind\":\"temperature\",\"value\":21.0}' AS BLOB));
         INSERT INTO alert_delivery VALUES (1, 'a-old', 'mqtt', 1000, 1500);
         INSERT INTO seq VALUES (0, 3), (2, 2);
         INSERT INTO counters VALUES ('rows.alert', 1), ('evicted.telemetry', 5);
         INSERT INTO devices VALUES ('d1', 'lounge'), ('d2', 'hall');",
    );
    let kept = restore_keeping_trial_rows(&backup, &db).unwrap();
    assert_eq!(
        kept,
        Kept {
            history: 1,
            outbox: 2,
            devices: 1
        }
    );
    assert_eq!(
        ids(&db),
        vec![
            (0, 2, "a-new".to_string()),
            (2, 1, "t-old".to_string()),
            (2, 2, "t-new".to_string())
        ]
    );
    let c = Connection::open(&db).unwrap();
    // The trial's telemetry row kept only its body (schema v8): the
    // release going back gets it whole, with the seq it now has.
    let payload = |seq: i64| -> Vec<u8> {
        c.query_row(
            "SELECT payload FROM outbox WHERE class = 2 AND seq = ?1",
            [seq],
            |r| Ok(r.get_ref(0)?.as_bytes()?.to_vec()),
        )
        .unwrap()
    };
    assert_eq!(
        payload(2),
        br#"{"id":"t-new","seq":2,"device":"d1","kind":"temperature","value":21.0}"#.to_vec()
    );
    assert_eq!(
        payload(1),
        b"y".to_vec(),
        "the backup's own rows stay as they were"
    );
    let n: i64 = c
        .query_row("SELECT count(*) FROM history", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    let next: i64 = c
        .query_row("SELECT next FROM seq WHERE class = 2", [], |r| r.get(0))
        .unwrap();
    assert_eq!(next, 3);
    let ev: i64 = c
        .query_row(
            "SELECT value FROM counters WHERE name = 'evicted.telemetry'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ev, 5);
    let rows: i64 = c
        .query_row(
            "SELECT count(*) FROM counters WHERE name LIKE 'rows.%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 0, "recounted at open");
    drop(c);
    // Again (a power cut before the trial state was cleared): same result.
    restore_keeping_trial_rows(&backup, &db).unwrap();
    assert_eq!(ids(&db).len(), 3);
}

/// A backup from v9 on has no ARC trigger: the trial's alerts merged
/// into its outbox reach its ARC queue all the same (capture on), and
/// an alert the backup already had is not queued for the ARC again.
#[test]
fn merged_alerts_reach_the_arc_queue_of_a_backup_without_the_trigger() {
    let d = tempfile::tempdir().unwrap();
    let (db, backup) = (d.path().join("c.db"), d.path().join("b.db"));
    let arc = "CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL);
         CREATE TABLE arc_queue (seq INTEGER PRIMARY KEY NOT NULL, id TEXT NOT NULL, at INTEGER NOT NULL, payload BLOB NOT NULL, dc09_seq INTEGER);
         INSERT INTO kv VALUES ('arc.capture', x'31');";
    db_with(
        &backup,
        &format!("{arc} INSERT INTO outbox VALUES (0, 1, 'a-old', 1000, 'x');"),
    );
    db_with(
        &db,
        &format!(
            "{arc} INSERT INTO outbox VALUES (0, 1, 'a-old', 1000, 'x'), (0, 2, 'a-new', 2000, 'z'),
                 (2, 1, 't-new', 2000, CAST('{{}}' AS BLOB));"
        ),
    );
    restore_keeping_trial_rows(&backup, &db).unwrap();
    let c = Connection::open(&db).unwrap();
    let queued: Vec<(i64, String)> = c
        .prepare("SELECT seq, id FROM arc_queue ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(queued, vec![(2, "a-new".to_string())]);
    drop(c);
    // Capture off in the backup: nothing is queued.
    let off = d.path().join("off.db");
    db_with(
        &off,
        &format!("{arc} DELETE FROM kv; INSERT INTO outbox VALUES (0, 1, 'a-old', 1000, 'x');"),
    );
    let trial = d.path().join("t2.db");
    db_with(
        &trial,
        &format!("{arc} INSERT INTO outbox VALUES (0, 5, 'a-5', 5000, 'q');"),
    );
    restore_keeping_trial_rows(&off, &trial).unwrap();
    let c = Connection::open(&trial).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM arc_queue", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn an_unreadable_trial_database_is_kept_aside_and_the_backup_restored() {
    let d = tempfile::tempdir().unwrap();
    let (db, backup) = (d.path().join("c.db"), d.path().join("b.db"));
    db_with(&backup, "INSERT INTO history VALUES ('d1', 1, 20.0, 1000);");
    fs::write(&db, vec![0x5a; 8192]).unwrap();
    let e = restore_keeping_trial_rows(&backup, &db).unwrap_err();
    let RestoreError::TrialUnreadable { aside, .. } = e else {
        panic!("{e}")
    };
    assert_eq!(fs::read(&aside).unwrap(), vec![0x5a; 8192]);
    let c = Connection::open(&db).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM history", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

/// A trial on schema v10 (the registry without a rowid) rolled back to a
/// v9 backup: the devices paired during the trial reach the backup's own
/// table, every column, and the backup keeps the schema it knows.
#[test]
fn devices_of_a_trial_without_a_rowid_merge_into_a_v9_backup() {
    use crate::store::schema::{MIGRATIONS, create_at};
    let d = tempfile::tempdir().unwrap();
    let (db, backup) = (d.path().join("c.db"), d.path().join("b.db"));
    let make = |path: &Path, steps: usize, rows: &str| {
        create_at(path, steps).execute_batch(rows).unwrap();
    };
    make(
        &backup,
        9,
        "INSERT INTO devices (id, name) VALUES ('d1', 'lounge');",
    );
    assert!(MIGRATIONS.len() >= 10, "the trial is on v10 or later");
    make(
        &db,
        MIGRATIONS.len(),
        "INSERT INTO devices VALUES
             ('d1', 'lounge', NULL, NULL, NULL, NULL, NULL, NULL, 900, NULL, NULL),
             ('d2', 'Front door', 'hall', 'front_door', '0x00124b0012345678', 4660,
              'SONOFF', 'SNZB-04', 1500, 90.0, 200);",
    );
    let kept = restore_keeping_trial_rows(&backup, &db).unwrap();
    assert_eq!(kept.devices, 1);
    let c = Connection::open(&db).unwrap();
    let d2: (String, String, String, i64, String, i64, f64, i64) = c
        .query_row(
            "SELECT name, room, role, nwk, model, last_seen, battery, lqi FROM devices WHERE id = 'd2'",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        d2,
        (
            "Front door".into(),
            "hall".into(),
            "front_door".into(),
            4660,
            "SNZB-04".into(),
            1500,
            90.0,
            200
        )
    );
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let sql: String = c
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'devices'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, 9);
    assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
}

/// A trial on schema v11 stores alert rows as compact bodies; rolled back
/// to a v8 backup (whose ARC capture trigger copies rows as they are
/// merged), every merged alert is its whole published document again, in
/// the outbox and in the ARC's queue, with the seq it has now.
#[tokio::test]
async fn alert_bodies_of_the_trial_are_whole_documents_after_a_rollback() {
    use crate::store::schema::create_at;
    use crate::store::{Store, StoreConfig, Write};
    let d = tempfile::tempdir().unwrap();
    let (db, backup) = (d.path().join("c.db"), d.path().join("b.db"));
    {
        let c = create_at(&backup, 8);
        // The backup already used alert seq 1: the trial's row moves to 2.
        c.execute_batch(
            "INSERT INTO kv (key, value) VALUES ('arc.capture', x'31');
             INSERT INTO outbox (class, seq, id, at, payload) VALUES (0, 1, 'a-old', 1000, '{}');
             INSERT INTO seq (class, next) VALUES (0, 2);",
        )
        .unwrap();
    }
    let s = Store::open(&db, &StoreConfig::default()).unwrap();
    let a = crate::model::Alert {
        uid: None,
        rule: "panic".into(),
        severity: crate::model::Severity::Urgent,
        state: crate::model::AlertState::Raised,
        device: crate::model::DeviceId::new("hall-panic").unwrap(),
        room: Some("hall".into()),
        at: crate::model::Time::from_millis(2_000),
        message: "Panic button pressed".into(),
        value: Some(1.0),
        kind: Some(crate::model::Kind::Panic),
        time_trusted: true,
        instance: None,
    };
    s.submit(Write::Alert(Box::new(a.clone()))).await.unwrap();
    s.flush().await.unwrap();
    let sent = s
        .outbox_fetch(crate::model::Class::Alert, 0, 10)
        .await
        .unwrap();
    s.close().await.unwrap();
    let (id, seq) = (sent[0].id.clone(), sent[0].seq);
    assert_eq!(seq, 1);
    {
        let c = Connection::open(&db).unwrap();
        let stored: Vec<u8> = c
            .query_row("SELECT payload FROM outbox WHERE class = 0", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(stored[0], 1, "the trial stored a compact body");
    }
    restore_keeping_trial_rows(&backup, &db).unwrap();
    let c = Connection::open(&db).unwrap();
    let want = crate::store::outbox::alert_payload(&id, 2, &a).unwrap();
    let merged: Vec<u8> = c
        .query_row(
            "SELECT payload FROM outbox WHERE class = 0 AND id = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        String::from_utf8(merged).unwrap(),
        String::from_utf8(want.clone()).unwrap()
    );
    let queued: Vec<u8> = c
        .query_row("SELECT payload FROM arc_queue WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(queued, want);
}

/// A trial at schema v12 records the uplinks' deliveries as runs
/// (`store::delivery`): rolled back to a backup without that table, the
/// backup's alerts the trial delivered are not sent again, and each alert
/// of a run becomes an `alert_delivery` row; to a backup with it, the runs
/// are kept as runs.
#[test]
fn delivery_runs_of_the_trial_reach_a_backup_with_or_without_them() {
    const RUN: &str = "CREATE TABLE delivery_run (first INTEGER PRIMARY KEY NOT NULL, last INTEGER NOT NULL, \
         via TEXT NOT NULL, delivered_at INTEGER NOT NULL, alerts TEXT NOT NULL);";
    let trial_rows = "INSERT INTO outbox VALUES (0, 4, 'a-new', 2000, 'z');
         INSERT INTO delivery_run VALUES (1, 3, 'lorawan', 1600, '[[1,\"a-old\",1000],[3,\"a-mid\",1200]]');
         INSERT INTO seq VALUES (0, 5);";
    let backup_rows =
        "INSERT INTO outbox VALUES (0, 1, 'a-old', 1000, 'x'), (0, 2, 'a-two', 1100, 'y');
         INSERT INTO seq VALUES (0, 3);";
    let delivered = |db: &Path, sql: &str| -> Vec<(i64, String, String, i64, i64)> {
        let c = Connection::open(db).unwrap();
        let mut st = c.prepare(sql).unwrap();
        st.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    for backup_has_runs in [false, true] {
        let d = tempfile::tempdir().unwrap();
        let (db, backup) = (d.path().join("c.db"), d.path().join("b.db"));
        let extra = if backup_has_runs { RUN } else { "" };
        db_with(&backup, &format!("{extra}{backup_rows}"));
        db_with(&db, &format!("{RUN}{trial_rows}"));
        restore_keeping_trial_rows(&backup, &db).unwrap();
        assert_eq!(
            ids(&db),
            vec![(0, 2, "a-two".to_string()), (0, 4, "a-new".to_string())],
            "a-old was delivered during the trial (runs in the backup: {backup_has_runs})"
        );
        if backup_has_runs {
            let c = Connection::open(&db).unwrap();
            let runs: Vec<(i64, String)> = c
                .prepare("SELECT first, alerts FROM delivery_run")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(runs.len(), 1);
            assert_eq!(runs[0].0, 1);
        } else {
            assert_eq!(
                delivered(
                    &db,
                    "SELECT seq, id, via, queued_at, delivered_at FROM alert_delivery ORDER BY seq"
                ),
                vec![
                    (1, "a-old".into(), "lorawan".into(), 1000, 1600),
                    (3, "a-mid".into(), "lorawan".into(), 1200, 1600)
                ]
            );
        }
        // Again (a power cut before the trial state was cleared): same result.
        restore_keeping_trial_rows(&backup, &db).unwrap();
        assert_eq!(ids(&db).len(), 2);
    }
}
