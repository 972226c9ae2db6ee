//! Tests of the per-row cost and SD-card wear cutters: acknowledgements
//! deleted by runs, delivery counters kept in memory, `commit_delay`, the
//! page size of a new file, a home's outbox in one page (the outbox's
//! `next.<class>` and size bookkeeping: `tests_outbox_seq`).

use std::time::{Duration, Instant};

use super::tests::{alert, db, reading};
use super::*;
use crate::model::Kind;

/// A store in `dir` whose commits are grouped by `delay` (`commit_delay`).
pub(super) fn with_delay(dir: &tempfile::TempDir, delay: crate::config::Dur) -> (PathBuf, Store) {
    let path = db(dir);
    let cfg = StoreConfig {
        commit_delay: delay,
        ..StoreConfig::default()
    };
    let s = Store::open(&path, &cfg).unwrap();
    (path, s)
}

pub(super) fn count(path: &Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn acknowledgements_out_of_order_with_gaps_and_repeats_delete_exactly_the_named_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    for i in 0..12 {
        s.submit(Write::Alert(Box::new(alert("panic", i))))
            .await
            .unwrap();
        s.submit(Write::Reading(reading(
            "k-temp",
            Kind::Temperature,
            20.0,
            i,
        )))
        .await
        .unwrap();
    }
    s.flush().await.unwrap();
    let acked_alerts = [7u64, 1, 2, 3, 9, 2, 10, 11];
    let mut rows: Vec<(Class, u64)> = acked_alerts.iter().map(|&q| (Class::Alert, q)).collect();
    rows.extend([
        (Class::Telemetry, 5),
        (Class::Telemetry, 4),
        (Class::Telemetry, 99),
    ]);
    s.submit(Write::Delivered {
        via: Via::Mqtt,
        rows,
    })
    .await
    .unwrap();
    s.flush().await.unwrap();

    let left = |class: Class| {
        let c = rusqlite::Connection::open(&path).unwrap();
        let mut st = c
            .prepare("SELECT seq FROM outbox WHERE class = ?1 ORDER BY seq")
            .unwrap();
        st.query_map([class as u8], |r| r.get::<_, i64>(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(left(Class::Alert), vec![4, 5, 6, 8, 12]);
    assert_eq!(
        left(Class::Telemetry),
        vec![1, 2, 3, 6, 7, 8, 9, 10, 11, 12]
    );
    let st = s.stats();
    assert_eq!((st.alert.rows, st.telemetry.rows), (5, 10));
    assert!(st.alert.oldest_at.is_some());
    assert_eq!(st.delivered.mqtt, 7, "each alert row counted once");
    assert_eq!(st.delivered.last.as_ref().map(|l| l.seq), Some(11));
    assert_eq!(count(&path, "SELECT count(*) FROM deliveries"), 7);
    assert_eq!(
        count(&path, "SELECT count(*) FROM delivery_run"),
        3,
        "runs 1-3, 7 and 9-11: one row each"
    );
    s.close().await.unwrap();

    // What was kept in memory is what a restart reads back.
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    let again = s.stats();
    assert_eq!(again.delivered, st.delivered);
    assert_eq!((again.alert.rows, again.telemetry.rows), (5, 10));
    assert_eq!(again.alert.oldest_at, st.alert.oldest_at);
    s.close().await.unwrap();
}

/// The records kept cover the newest [`delivery::KEEP`] alerts and not
/// much more: runs whose alerts are all older are pruned, by whole runs,
/// once the oldest kept is [`delivery::PRUNE_EVERY`] seqs past the bound.
/// The counters count every delivery.
#[tokio::test]
async fn delivery_records_are_pruned_to_about_the_newest_keep() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let cfg = StoreConfig {
        batch_max: 100_000,
        ..StoreConfig::default()
    };
    let s = Store::open(&path, &cfg).unwrap();
    let keep = delivery::KEEP as u64;
    let n = keep + 2_750;
    for i in 0..n {
        s.submit(Write::Alert(Box::new(alert("panic", i as i64))))
            .await
            .unwrap();
    }
    s.flush().await.unwrap();
    let seqs: Vec<u64> = (1..=n).collect();
    for chunk in seqs.chunks(500) {
        s.submit(Write::Delivered {
            via: Via::Lorawan,
            rows: chunk.iter().map(|&q| (Class::Alert, q)).collect(),
        })
        .await
        .unwrap();
        s.flush().await.unwrap();
    }
    assert_eq!(s.stats().delivered.lorawan, n);
    assert_eq!(s.stats().alert.rows, 0);
    assert_eq!(s.stats().alert.oldest_at, None);
    let kept = count(&path, "SELECT count(*) FROM deliveries") as u64;
    let oldest = count(&path, "SELECT min(seq) FROM deliveries") as u64;
    assert!(
        oldest <= n - keep + 1,
        "the newest KEEP are kept (oldest {oldest})"
    );
    assert!(
        kept < keep + delivery::PRUNE_EVERY + 500,
        "{kept} records kept for {n} alerts"
    );
    assert!(oldest > 1, "older runs were pruned");
    assert_eq!(count(&path, "SELECT max(seq) FROM deliveries") as u64, n);
    s.close().await.unwrap();
}

#[tokio::test]
async fn with_a_commit_delay_readings_wait_and_an_alert_commits_them_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (path, s) = with_delay(&dir, crate::config::Dur::secs(30));
    let commits = s.stats().commits;
    for i in 0..10 {
        s.submit(Write::Reading(reading(
            "k-temp",
            Kind::Temperature,
            20.0,
            i,
        )))
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.stats().commits, commits, "readings are still waiting");
    assert_eq!(count(&path, "SELECT count(*) FROM history"), 0);

    let t0 = Instant::now();
    s.submit(Write::Alert(Box::new(alert("panic", 50))))
        .await
        .unwrap();
    let mut changed = s.outbox_changed();
    tokio::time::timeout(Duration::from_secs(5), changed.changed())
        .await
        .expect("the alert is committed without waiting for the delay")
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(s.stats().commits, commits + 1, "one commit for all eleven");
    assert_eq!(s.stats().alert.rows, 1);
    assert_eq!(s.stats().telemetry.rows, 10);
    assert_eq!(count(&path, "SELECT count(*) FROM history"), 10);
    // `last_seen` went in the same commit as its readings' history.
    s.close().await.unwrap();
}

#[tokio::test]
async fn with_a_commit_delay_a_quiet_stream_commits_once_per_delay_and_flush_ends_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let (path, s) = with_delay(&dir, crate::config::Dur::secs(1));
    let commits = s.stats().commits;
    for i in 0..12 {
        s.submit(Write::Reading(reading(
            "k-temp",
            Kind::Temperature,
            20.0,
            i,
        )))
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let n = s.stats().commits - commits;
    assert!(
        (1..=2).contains(&n),
        "12 readings over 0.6 s in {n} commits"
    );
    assert_eq!(count(&path, "SELECT count(*) FROM history"), 12);
    // `last_seen` waits for its own, longer interval (one page less per
    // commit), and no commit of its own follows meanwhile.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(s.stats().commits - commits, n);
    assert_eq!(count(&path, "SELECT count(*) FROM devices"), 0);

    s.submit(Write::Reading(reading(
        "k-temp",
        Kind::Temperature,
        20.0,
        12,
    )))
    .await
    .unwrap();
    let t0 = Instant::now();
    s.flush().await.unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "flush does not wait for the delay"
    );
    assert_eq!(count(&path, "SELECT count(*) FROM history"), 13);
    // A flush writes `last_seen` too.
    assert_eq!(
        count(&path, "SELECT last_seen FROM devices WHERE id = 'k-temp'"),
        12
    );
    s.close().await.unwrap();
}

#[tokio::test]
async fn a_new_database_gets_the_chosen_page_size_and_an_existing_one_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    s.close().await.unwrap();
    assert_eq!(count(&path, "PRAGMA page_size"), schema::PAGE_SIZE);

    let old = dir.path().join("old.db");
    {
        let c = rusqlite::Connection::open(&old).unwrap();
        c.pragma_update(None, "page_size", 2048).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.execute_batch("CREATE TABLE before_us (x)").unwrap();
    }
    let s = Store::open(&old, &StoreConfig::default()).unwrap();
    s.submit(Write::Reading(reading(
        "k-temp",
        Kind::Temperature,
        20.0,
        1,
    )))
    .await
    .unwrap();
    s.close().await.unwrap();
    assert_eq!(count(&old, "PRAGMA page_size"), 2048);
    assert_eq!(count(&old, "SELECT count(*) FROM history"), 1);
}

/// Records when each ack fired and how many history rows were committed then.
struct Fired {
    path: PathBuf,
    at: std::sync::Mutex<Vec<(u32, Instant, i64)>>,
}

impl AckSink for Fired {
    fn committed(&self, token: u32) {
        let n = count(&self.path, "SELECT count(*) FROM history");
        self.at.lock().unwrap().push((token, Instant::now(), n));
    }
}

#[tokio::test]
async fn with_commit_grouping_a_batch_holding_an_ack_waiter_commits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (path, s) = with_delay(&dir, crate::config::Dur::secs(30));
    // Readings nobody waits for (Zigbee, QoS 0) wait for the delay…
    for i in 0..5 {
        s.submit(Write::Reading(reading(
            "k-temp",
            Kind::Temperature,
            20.0,
            i,
        )))
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&path, "SELECT count(*) FROM history"), 0);
    // …a reading whose sender waits for its PUBACK takes them along at once.
    let fired = std::sync::Arc::new(Fired {
        path: path.clone(),
        at: Default::default(),
    });
    let t0 = Instant::now();
    s.submit(Write::Reading(reading("pendant", Kind::Panic, 1.0, 10)))
        .await
        .unwrap();
    s.submit_ack(AckTo::new(fired.clone(), 7)).await.unwrap();
    let ok = wait(Duration::from_secs(5), || {
        !fired.at.lock().unwrap().is_empty()
    })
    .await;
    assert!(ok, "the ack fired without waiting out the 30 s delay");
    let (token, when, rows) = fired.at.lock().unwrap()[0];
    assert_eq!(token, 7);
    assert!(when - t0 < Duration::from_secs(2), "{:?}", when - t0);
    assert_eq!(
        rows, 6,
        "the acked reading and the five waiting ones are committed"
    );
    s.close().await.unwrap();
}

#[tokio::test]
async fn with_commit_grouping_an_alert_still_commits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // Opt-in: the UI reads history and the registry from the file, so a
    // default delay would hide a new device or a commissioning event.
    let (path, s) = with_delay(&dir, crate::config::Dur::secs(30));
    s.submit(Write::Reading(reading(
        "k-temp",
        Kind::Temperature,
        20.0,
        1,
    )))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count(&path, "SELECT count(*) FROM history"), 0);
    let mut changed = s.outbox_changed();
    changed.borrow_and_update();
    let t0 = Instant::now();
    s.submit(Write::Alert(Box::new(alert("panic", 2))))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(2), changed.changed())
        .await
        .expect("the alert commits at once")
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(
        count(&path, "SELECT count(*) FROM outbox WHERE class = 0"),
        1
    );
    assert_eq!(count(&path, "SELECT count(*) FROM history"), 1);
    s.close().await.unwrap();
}

/// Polls `cond` every 5 ms until it holds or `limit` passed.
pub(super) async fn wait(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while !cond() {
        if t0.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// SD-card wear at a home's rate: every grouped commit adds the ~20
/// telemetry rows of its minute and deletes the ~20 acknowledged since the
/// last one. Stored without their `id` and `seq` (the row's own columns),
/// they fit in one outbox page, so these commits never split or merge
/// outbox pages — which also wrote the freelist trunk and the header page
/// every time. Each commit then writes the outbox page and the history
/// leaf, plus a new leaf with its parent, header and freelist page when the
/// leaf fills (every few commits).
#[tokio::test]
async fn a_homes_grouped_commits_keep_the_outbox_in_one_page() {
    let dir = tempfile::tempdir().unwrap();
    let (path, s) = with_delay(&dir, crate::config::Dur(Duration::from_millis(150)));
    let wal = path.with_file_name(format!(
        "{}-wal",
        path.file_name().unwrap().to_string_lossy()
    ));
    let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    let t0 = 1_796_000_000_000i64;
    let mut acked: Vec<(Class, u64)> = Vec::new();
    let (mut frames, rounds) = (0, 12u64);
    for round in 0..rounds {
        let (before, commits) = (wal_len(), s.stats().commits);
        // The uplink's acknowledgements arrive right after a commit.
        if !acked.is_empty() {
            s.submit(Write::Ack(std::mem::take(&mut acked)))
                .await
                .unwrap();
        }
        for k in 0..20i64 {
            // Zigbee-style ids, times to the millisecond: a real home's rows.
            let at = t0 + (round as i64 * 20 + k) * 3_001 + 7;
            let r = reading(
                &format!("0x00124b0024c1a2{k:02x}"),
                Kind::Temperature,
                19.5,
                at,
            );
            s.submit(Write::Reading(r)).await.unwrap();
        }
        assert!(
            wait(Duration::from_secs(10), || s.stats().commits > commits).await,
            "round {round} committed"
        );
        // Only the grouped commit (nothing else pending).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rows = s
            .outbox_fetch(Class::Telemetry, 0, usize::MAX)
            .await
            .unwrap();
        assert_eq!(rows.len(), 20, "round {round}: the acked rows are gone");
        acked = rows.iter().map(|r| (Class::Telemetry, r.seq)).collect();
        if round > 0 {
            frames += (wal_len() - before) / (schema::PAGE_SIZE as u64 + 24);
        }
        assert_eq!(
            count(&path, "SELECT count(*) FROM dbstat WHERE name = 'outbox'"),
            1,
            "round {round}: the outbox is one page"
        );
    }
    let per_commit = frames as f64 / (rounds - 1) as f64;
    assert!(
        per_commit <= 3.5,
        "{per_commit:.2} pages per grouped commit ({frames} in {} commits)",
        rounds - 1
    );
    s.close().await.unwrap();
}

/// The writer's and the uplink reader's per-class statements are compiled
/// once and run many times (see `stmts::per_class`): run on a store's
/// own file with changing values, SQLite never re-prepares them.
#[tokio::test]
async fn hot_statements_are_compiled_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = Store::open(&path, &StoreConfig::default()).unwrap();
    store.close().await.unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    let mut checked = 0;
    for sql in super::stmts::OLDEST_SQL
        .into_iter()
        .chain(super::stmts::ACKED_SQL)
        .chain(super::stmts::DELETE_SQL)
        .chain(super::reader::FETCH_SQL)
    {
        for i in 0..5i64 {
            let mut st = c.prepare_cached(sql).unwrap();
            let values: Vec<i64> = (0..st.parameter_count()).map(|_| i).collect();
            let mut rows = st.query(rusqlite::params_from_iter(values)).unwrap();
            while rows.next().unwrap().is_some() {}
        }
        let st = c.prepare_cached(sql).unwrap();
        assert_eq!(
            st.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "{sql}"
        );
        checked += 1;
    }
    assert_eq!(checked, 12);
}

/// No table of the store has a trigger: a trigger on a table makes every
/// INSERT into it open SQLite's statement journal (a copy of each page it
/// writes, at every row). The ARC's capture of alerts was one, on `outbox`,
/// until schema v9 (`uplink::arc::queue::capture` does it now).
#[tokio::test]
async fn no_table_has_a_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = Store::open(&path, &StoreConfig::default()).unwrap();
    store.close().await.unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    let triggers: Vec<String> = c
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(triggers.is_empty(), "triggers: {triggers:?}");
}
