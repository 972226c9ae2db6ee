//! A full disk for real (tmpfs): the cause of the old stall, alerts held
//! in memory for the uplinks, and a bounded close on a disk that refuses.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::crash_test::{contiguous_from_one, tmpfs};
use super::tests::{alert, reading};
use super::*;
use crate::model::Kind;

/// Fills the file system holding `dir` to the last block; returns the file.
fn fill_up(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5au8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    path
}

fn flush_within(s: &Store, limit: Duration) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let s2 = s.clone();
    std::thread::spawn(move || {
        let _ = tx.send(s2.flush_blocking());
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("flush did not complete within {limit:?}")),
    }
}

/// The stall of issue 22, at store level: on an 8 MiB disk with the default
/// configuration (an 8 MiB reserve that cannot exist, a WAL allowed 4 MiB)
/// a stream of readings filled the disk while the WAL held pages past the
/// end of the main file; no checkpoint and no evicting DELETE could run
/// again, and every later alert waited forever.
#[test]
fn a_stream_of_readings_cannot_wedge_the_wal_on_an_8_mib_disk_and_alerts_still_commit() {
    let Some((dir, _fs)) = tmpfs("8m") else {
        return;
    };
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let path = dir.path().join("carebridge.db");
    let cfg = StoreConfig::default();
    let s = Store::open(&path, &cfg).unwrap();
    // The WAL limit follows the reserve fitted to the disk, not the 8 MiB asked for.
    let c = rusqlite::Connection::open(&path).unwrap();
    let limit: i64 = c
        .query_row("PRAGMA journal_size_limit", [], |r| r.get(0))
        .unwrap();
    drop(c);
    assert!(
        limit <= 1 << 19,
        "journal_size_limit {limit} on an 8 MiB disk"
    );
    // Readings until the store has had to evict, then 2 s more of them.
    let mut full_at = None;
    for i in 0..3_000_000i64 {
        s.submit_blocking(Write::Reading(reading("t", Kind::Temperature, 20.0, i)))
            .unwrap();
        if i % 1000 == 0 {
            let st = s.stats();
            if full_at.is_none() && st.disk_full.is_some() {
                full_at = Some(Instant::now());
            }
            if full_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
                break;
            }
        }
    }
    assert!(full_at.is_some(), "the disk never filled: {:?}", s.stats());
    for i in 0..20 {
        s.submit_blocking(Write::Alert(Box::new(alert(&format!("r{i}"), i))))
            .unwrap();
        s.submit_blocking(Write::Reading(reading("t", Kind::Temperature, 20.0, i)))
            .unwrap();
    }
    flush_within(&s, Duration::from_secs(20)).expect("alerts commit on a full disk");
    let alerts = s
        .outbox_fetch_blocking(Class::Alert, 0, usize::MAX)
        .unwrap();
    assert!(contiguous_from_one(&alerts));
    let rules: Vec<String> = alerts
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap()["rule"].to_string()
        })
        .collect();
    assert_eq!(
        rules[0], "\"disk-full\"",
        "the disk-full warning comes first: {rules:?}"
    );
    assert_eq!(alerts.len(), 21, "{rules:?}");
    let st = s.stats();
    assert!(st.history_evicted > 0, "history goes first: {st:?}");
    assert_eq!(st.held_alerts, 0);
    drop(s);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = Store::open(&path, &cfg).unwrap();
        s.integrity_check().await.unwrap();
        assert_eq!(s.stats().alert.rows, 21);
        s.close().await.unwrap();
    });
}

/// A store on a 2 MiB tmpfs with no reserve, one alert committed, the WAL
/// checkpointed to nothing and the disk then filled by someone else: the
/// next write cannot get a single block.
fn refusing_store(dir: &Path) -> (Store, PathBuf, PathBuf) {
    let path = dir.join("carebridge.db");
    let cfg = StoreConfig {
        disk_reserve_kb: 0,
        ..Default::default()
    };
    let s = Store::open(&path, &cfg).unwrap();
    s.submit_blocking(Write::Alert(Box::new(alert("before", 0))))
        .unwrap();
    s.flush_blocking().unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    drop(c);
    let filler = fill_up(dir);
    (s, path, filler)
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn an_alert_the_disk_refuses_is_served_from_memory_then_written_with_the_same_id_and_seq() {
    let Some((dir, _fs)) = tmpfs("2m") else {
        return;
    };
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let (s, _path, filler) = refusing_store(dir.path());
    s.submit_blocking(Write::Alert(Box::new(alert("held", 1))))
        .unwrap();
    let mut held = Vec::new();
    assert!(
        wait_for(Duration::from_secs(10), || {
            held = s.outbox_fetch_blocking(Class::Alert, 1, 10).unwrap();
            !held.is_empty()
        }),
        "the refused alert was never served: {:?}",
        s.stats()
    );
    let st = s.stats();
    assert!(st.error.is_some() && st.disk_full.is_some(), "{st:?}");
    assert!(st.held_alerts >= 1, "{st:?}");
    let panic_row = held
        .iter()
        .find(|r| String::from_utf8_lossy(&r.payload).contains("\"held\""))
        .expect("the held alert is served")
        .clone();
    // Space comes back: the alert is written under the identity it was sent with.
    std::fs::remove_file(filler).unwrap();
    flush_within(&s, Duration::from_secs(10)).unwrap();
    let rows = s.outbox_fetch_blocking(Class::Alert, 0, 10).unwrap();
    let written = rows
        .iter()
        .find(|r| r.id == panic_row.id)
        .expect("the held alert is written");
    assert_eq!(written.seq, panic_row.seq);
    assert_eq!(written.payload, panic_row.payload);
    assert!(contiguous_from_one(&rows));
    let st = s.stats();
    assert_eq!((st.held_alerts, st.error.clone()), (0, None), "{st:?}");
}

#[test]
fn close_within_returns_in_time_on_a_refusing_disk_and_abandons_the_batch_whole() {
    let Some((dir, _fs)) = tmpfs("2m") else {
        return;
    };
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let (s, path, filler) = refusing_store(dir.path());
    for i in 0..50 {
        s.submit_blocking(Write::Alert(Box::new(alert(&format!("lost{i}"), i))))
            .unwrap();
    }
    assert!(wait_for(Duration::from_secs(10), || s
        .stats()
        .error
        .is_some()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let r = rt.block_on(s.close_within(Duration::from_secs(1)));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "close took {took:?}");
    assert!(matches!(r, Err(StoreError::Abandoned { .. })), "{r:?}");
    std::fs::remove_file(filler).unwrap();
    rt.block_on(async {
        let s = Store::open(&path, &StoreConfig::default()).unwrap();
        s.integrity_check().await.unwrap();
        let rows = s.outbox_fetch(Class::Alert, 0, 100).await.unwrap();
        // What was committed is there; the abandoned batch left no trace.
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(String::from_utf8_lossy(&rows[0].payload).contains("\"before\""));
        s.close().await.unwrap();
    });
}
