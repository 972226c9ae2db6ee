//! Tests of the outbox's bookkeeping written only when it changed: the
//! next seq of a class only when its newest row is gone (never reused,
//! across restarts and crashes), the row and byte totals only at a clean
//! close (recounted at open after a crash).

use super::tests::{alert, db, reading};
use super::tests_wear::{count, with_delay};
use super::*;
use crate::model::Kind;

/// A trigger that counts every write of a `next.<class>` counter (the old
/// `seq` table counts 100: it is no longer written at all).
fn count_next_writes(path: &Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE seq_writes (n INTEGER);
         CREATE TRIGGER seq_w AFTER UPDATE ON counters WHEN new.name LIKE 'next.%' BEGIN INSERT INTO seq_writes VALUES (1); END;
         CREATE TRIGGER seq_i AFTER INSERT ON counters WHEN new.name LIKE 'next.%' BEGIN INSERT INTO seq_writes VALUES (1); END;
         CREATE TRIGGER old_w AFTER UPDATE ON seq BEGIN INSERT INTO seq_writes VALUES (100); END;
         CREATE TRIGGER old_i AFTER INSERT ON seq BEGIN INSERT INTO seq_writes VALUES (100); END;",
    )
    .unwrap();
}

#[tokio::test]
async fn the_next_seq_is_written_only_when_the_newest_row_is_gone_and_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    count_next_writes(&path);
    let temp = |at| Write::Reading(reading("k-temp", Kind::Temperature, 20.0, at));
    // New rows carry the newest seq themselves: no counter write.
    for at in 1..=3 {
        s.submit(temp(at)).await.unwrap();
    }
    s.flush().await.unwrap();
    assert_eq!(count(&path, "SELECT count(*) FROM seq_writes"), 0);
    // An older row acknowledged: the newest is still there.
    s.submit(Write::Ack(vec![(Class::Telemetry, 1)]))
        .await
        .unwrap();
    s.flush().await.unwrap();
    assert_eq!(count(&path, "SELECT count(*) FROM seq_writes"), 0);
    // The newest row acknowledged (out of order): now it is written.
    s.submit(Write::Ack(vec![(Class::Telemetry, 3)]))
        .await
        .unwrap();
    s.flush().await.unwrap();
    assert_eq!(count(&path, "SELECT sum(n) FROM seq_writes"), 1);
    assert_eq!(
        count(
            &path,
            "SELECT value FROM counters WHERE name = 'next.telemetry'"
        ),
        4
    );
    s.submit(Write::Ack(vec![(Class::Telemetry, 2)]))
        .await
        .unwrap();
    s.flush().await.unwrap();
    assert_eq!(s.stats().telemetry.rows, 0);
    assert_eq!(count(&path, "SELECT sum(n) FROM seq_writes"), 1);
    s.close().await.unwrap();
    // A restart, with the class empty, continues after the last seq.
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    assert_eq!(s.stats().telemetry.rows, 0);
    assert_eq!(s.stats().telemetry.next_seq, 4, "a seq is never reused");
    s.close().await.unwrap();
}

#[tokio::test]
async fn a_grouped_commit_that_acks_the_newest_row_and_adds_newer_ones_writes_no_next_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (path, s) = with_delay(&dir, crate::config::Dur::secs(60));
    let temp = |at| Write::Reading(reading("k-temp", Kind::Temperature, 20.0, at));
    s.submit(temp(1)).await.unwrap();
    s.flush().await.unwrap();
    count_next_writes(&path);
    // As at a home: the ack of the last commit's rows, then the next
    // minute's readings, all in one grouped commit.
    s.submit(Write::Ack(vec![(Class::Telemetry, 1)]))
        .await
        .unwrap();
    s.submit(temp(2)).await.unwrap();
    s.submit(temp(3)).await.unwrap();
    s.flush().await.unwrap();
    assert_eq!(s.stats().telemetry.rows, 2);
    assert_eq!(count(&path, "SELECT count(*) FROM seq_writes"), 0);
    s.close().await.unwrap();
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    assert_eq!(s.stats().telemetry.next_seq, 4);
    s.close().await.unwrap();
}

/// The database files as a power cut would leave them at this moment.
fn crash_copy(from: &Path, to: &Path) {
    for suffix in ["", "-wal"] {
        let mut f = from.as_os_str().to_owned();
        f.push(suffix);
        let mut t = to.as_os_str().to_owned();
        t.push(suffix);
        if Path::new(&f).exists() {
            std::fs::copy(&f, &t).unwrap();
        }
    }
}

#[tokio::test]
async fn after_a_crash_the_outbox_sizes_are_recounted_and_seqs_continue_without_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    for at in 1..=5 {
        s.submit(Write::Reading(reading(
            "k-temp",
            Kind::Temperature,
            20.0,
            at,
        )))
        .await
        .unwrap();
    }
    s.submit(Write::Alert(Box::new(alert("panic", 6))))
        .await
        .unwrap();
    s.flush().await.unwrap();
    // The newest telemetry row acknowledged, then one more reading.
    s.submit(Write::Ack(vec![
        (Class::Telemetry, 5),
        (Class::Telemetry, 1),
    ]))
    .await
    .unwrap();
    s.flush().await.unwrap();
    let live = s.stats();
    assert_eq!((live.telemetry.rows, live.alert.rows), (3, 1));
    // Sizes are not kept on disk while running (one page less a commit).
    assert_eq!(
        count(
            &path,
            "SELECT count(*) FROM counters WHERE name LIKE 'rows.%' OR name LIKE 'bytes.%'"
        ),
        0
    );
    let crashed = dir.path().join("crashed.db");
    crash_copy(&path, &crashed);
    s.close().await.unwrap();
    // A clean close writes them, exact.
    assert_eq!(
        count(
            &path,
            "SELECT value FROM counters WHERE name = 'rows.telemetry'"
        ),
        3
    );
    assert_eq!(
        count(
            &path,
            "SELECT value FROM counters WHERE name = 'bytes.telemetry'"
        ),
        live.telemetry.bytes as i64
    );

    // The crashed copy: counted again, the same figures; seqs go on.
    let s = Store::open(&crashed, &StoreConfig::default()).unwrap();
    let again = s.stats();
    assert_eq!(
        (
            again.telemetry.rows,
            again.telemetry.bytes,
            again.alert.rows,
            again.alert.bytes
        ),
        (
            live.telemetry.rows,
            live.telemetry.bytes,
            live.alert.rows,
            live.alert.bytes
        )
    );
    assert_eq!(
        again.telemetry.next_seq, 6,
        "seq 5 was used, even though acked"
    );
    s.submit(Write::Reading(reading(
        "k-temp",
        Kind::Temperature,
        20.0,
        7,
    )))
    .await
    .unwrap();
    s.flush().await.unwrap();
    assert_eq!(
        count(&crashed, "SELECT max(seq) FROM outbox WHERE class = 2"),
        6
    );
    s.close().await.unwrap();
}

#[tokio::test]
async fn a_database_that_kept_its_next_seq_in_the_seq_table_keeps_counting_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    s.close().await.unwrap();
    {
        // As a release before 2026-12 left it: an empty class, its next seq
        // in `seq` only.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "DELETE FROM counters WHERE name LIKE 'next.%';
             INSERT INTO seq (class, next) VALUES (2, 41) ON CONFLICT(class) DO UPDATE SET next = 41;",
        )
        .unwrap();
    }
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    assert_eq!(s.stats().telemetry.next_seq, 41);
    s.submit(Write::Reading(reading(
        "k-temp",
        Kind::Temperature,
        20.0,
        1,
    )))
    .await
    .unwrap();
    s.flush().await.unwrap();
    assert_eq!(
        count(&path, "SELECT max(seq) FROM outbox WHERE class = 2"),
        41
    );
    s.close().await.unwrap();
}
