//! Tests of `delivery`: the runs, the ring, the view.

use super::super::tests::{alert, db};
use super::super::{Store, StoreConfig, Write};
use super::*;
use crate::model::Class;

#[tokio::test]
async fn first_acknowledging_path_is_recorded_and_the_second_ack_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    for i in 0..3 {
        s.submit(Write::Alert(Box::new(alert("panic", i))))
            .await
            .unwrap();
    }
    s.flush().await.unwrap();
    let rows = s.outbox_fetch(Class::Alert, 0, 10).await.unwrap();
    let ack = |via, seq| Write::Delivered {
        via,
        rows: vec![(Class::Alert, seq)],
    };
    s.submit(ack(Via::Lorawan, 1)).await.unwrap();
    s.submit(ack(Via::Mqtt, 1)).await.unwrap();
    s.submit(ack(Via::Mqtt, 2)).await.unwrap();
    s.flush().await.unwrap();
    assert_eq!(s.stats().alert.rows, 1, "seq 3 is still waiting");
    let d = s.stats().delivered;
    assert_eq!((d.mqtt, d.lorawan), (1, 1));
    assert_eq!(d.last.as_ref().map(|l| l.seq), Some(2));
    let log = s.alert_deliveries(10).await.unwrap();
    let mut by_seq: Vec<(u64, Via, String)> =
        log.iter().map(|l| (l.seq, l.via, l.id.clone())).collect();
    by_seq.sort();
    assert_eq!(
        by_seq,
        vec![
            (1, Via::Lorawan, rows[0].id.clone()),
            (2, Via::Mqtt, rows[1].id.clone())
        ]
    );
    s.close().await.unwrap();
    // Counters and records survive a restart.
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    let d = s.stats().delivered;
    assert_eq!((d.mqtt, d.lorawan), (1, 1));
    assert_eq!(s.alert_deliveries(10).await.unwrap().len(), 2);
    s.close().await.unwrap();
}

#[tokio::test]
async fn an_alert_keeps_the_uuid_it_was_raised_with_and_is_found_by_it_once_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
    let mut a = alert("panic", 1);
    a.uid = Some("5f0c8b52-3c1e-4d2a-9b7e-0a1b2c3d4e5f".into());
    s.submit(Write::Alert(Box::new(a))).await.unwrap();
    s.submit(Write::Alert(Box::new(alert("panic", 2))))
        .await
        .unwrap();
    s.flush().await.unwrap();
    let rows = s.outbox_fetch(Class::Alert, 0, 10).await.unwrap();
    assert_eq!(rows[0].id, "5f0c8b52-3c1e-4d2a-9b7e-0a1b2c3d4e5f");
    let payload = String::from_utf8(rows[0].payload.clone()).unwrap();
    assert!(
        payload.contains("\"id\":\"5f0c8b52-3c1e-4d2a-9b7e-0a1b2c3d4e5f\""),
        "{payload}"
    );
    assert_eq!(rows[1].id.len(), 36, "the store gives one when missing");
    let want = vec![rows[0].id.clone(), rows[1].id.clone(), "never-sent".into()];
    assert!(
        s.alert_deliveries_of(want.clone())
            .await
            .unwrap()
            .is_empty()
    );
    s.submit(Write::Delivered {
        via: Via::Lorawan,
        rows: vec![(Class::Alert, rows[0].seq)],
    })
    .await
    .unwrap();
    s.flush().await.unwrap();
    let got = s.alert_deliveries_of(want).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].id.as_str(), got[0].via),
        (rows[0].id.as_str(), Via::Lorawan)
    );
    s.close().await.unwrap();
}

#[test]
fn the_ring_keeps_the_newest_record_of_each_slot_and_a_repeat_changes_nothing() {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(MIGRATION_V2).unwrap();
    c.execute_batch(
        "INSERT INTO alert_delivery VALUES (1, 'a-1', 'mqtt', 10, 11), (2, 'a-2', 'lorawan', 20, 21),
             (10001, 'a-10001', 'mqtt', 30, 31);",
    )
    .unwrap();
    c.execute_batch(MIGRATION_V7).unwrap();
    c.execute_batch(MIGRATION_V12).unwrap();
    let rows = |c: &Connection| -> Vec<(i64, i64, String)> {
        let mut st = c
            .prepare("SELECT slot, seq, via FROM alert_delivery ORDER BY slot")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    // Seq 1 and 10001 share slot 1: the newer one stayed.
    assert_eq!(
        rows(&c),
        vec![(1, 10001, "mqtt".into()), (2, 2, "lorawan".into())]
    );
    let t = Time::from_millis;
    // The same seq again (the other path's late ack): nothing changes.
    assert!(!upsert(&c, 2, "a-2", Via::Mqtt, t(20), t(99)).unwrap());
    // An older seq than the slot holds: not recorded.
    assert!(!upsert(&c, 1, "a-1", Via::Lorawan, t(10), t(99)).unwrap());
    // A newer seq overwrites in place; a new slot is added.
    assert!(upsert(&c, 10002, "a-10002", Via::Arc, t(40), t(41)).unwrap());
    assert!(upsert(&c, 3, "a-3", Via::Mqtt, t(50), t(51)).unwrap());
    assert_eq!(
        rows(&c),
        vec![
            (1, 10001, "mqtt".into()),
            (2, 10002, "arc".into()),
            (3, 3, "mqtt".into())
        ]
    );
    assert_eq!(recent(&c, 1).unwrap()[0].seq, 3);
}

#[tokio::test]
async fn delivered_telemetry_is_deleted_but_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&db(&dir), &StoreConfig::default()).unwrap();
    let r = super::super::tests::reading("k-temp", crate::model::Kind::Temperature, 20.0, 1);
    s.submit(Write::Reading(r)).await.unwrap();
    s.flush().await.unwrap();
    s.submit(Write::Delivered {
        via: Via::Mqtt,
        rows: vec![(Class::Telemetry, 1)],
    })
    .await
    .unwrap();
    s.flush().await.unwrap();
    assert_eq!(s.stats().telemetry.rows, 0);
    assert_eq!(s.stats().delivered.mqtt, 0);
    assert!(s.alert_deliveries(10).await.unwrap().is_empty());
    s.close().await.unwrap();
}

/// An acknowledged run whose newest alert and one in its middle the ARC
/// delivered first (recorded from its own connection, as `uplink::arc`
/// does): the uplink's run records and counts all five (it delivered
/// them), the view keeps the earliest delivery of each seq (the ARC's
/// for 3 and 5), and a later acknowledgement over the same seqs by the
/// other uplink finds no row and records nothing.
#[tokio::test]
async fn a_run_is_one_row_and_the_earliest_delivery_of_each_alert_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    for i in 0..5 {
        s.submit(Write::Alert(Box::new(alert("panic", i))))
            .await
            .unwrap();
    }
    s.flush().await.unwrap();
    let rows = s.outbox_fetch(Class::Alert, 0, 10).await.unwrap();
    let arc = Connection::open(&path).unwrap();
    for seq in [3u64, 5] {
        let id = &rows[seq as usize - 1].id;
        let at = Time::from_millis(7);
        assert!(upsert(&arc, seq, id, Via::Arc, at, at).unwrap());
    }
    s.submit(Write::Delivered {
        via: Via::Mqtt,
        rows: (1..=5).map(|q| (Class::Alert, q)).collect(),
    })
    .await
    .unwrap();
    s.flush().await.unwrap();
    let d = s.stats().delivered;
    assert_eq!(d.mqtt, 5);
    let last = d.last.expect("a newest record");
    assert_eq!((last.seq, last.via, &last.id), (5, Via::Mqtt, &rows[4].id));
    assert_eq!(s.stats().alert.rows, 0);
    let runs: Vec<(i64, i64, String)> = arc
        .prepare("SELECT first, last, via FROM delivery_run")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        runs,
        vec![(1, 5, "mqtt".to_string())],
        "one row for the run"
    );
    let mut shown: Vec<(u64, Via, String, Time)> = s
        .alert_deliveries(10)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.seq, l.via, l.id, l.queued_at))
        .collect();
    shown.sort_by_key(|r| r.0);
    let want: Vec<(u64, Via, String, Time)> = [Via::Mqtt, Via::Mqtt, Via::Arc, Via::Mqtt, Via::Arc]
        .into_iter()
        .enumerate()
        .map(|(i, via)| {
            let queued = if via == Via::Arc {
                Time::from_millis(7)
            } else {
                rows[i].at
            };
            (i as u64 + 1, via, rows[i].id.clone(), queued)
        })
        .collect();
    assert_eq!(shown, want);
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut found = s.alert_deliveries_of(ids).await.unwrap();
    found.sort_by_key(|d| d.seq);
    let vias: Vec<Via> = found.iter().map(|d| d.via).collect();
    assert_eq!(vias, [Via::Mqtt, Via::Mqtt, Via::Arc, Via::Mqtt, Via::Arc]);
    s.submit(Write::Delivered {
        via: Via::Lorawan,
        rows: (1..=5).map(|q| (Class::Alert, q)).collect(),
    })
    .await
    .unwrap();
    s.flush().await.unwrap();
    assert_eq!(s.stats().delivered.lorawan, 0);
    s.close().await.unwrap();
    // Counters, the newest record and the runs survive a restart.
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    assert_eq!(s.stats().delivered.mqtt, 5);
    assert_eq!(s.alert_deliveries(10).await.unwrap().len(), 5);
    s.close().await.unwrap();
}

/// Damaged runs (not JSON, elements of the wrong shape) cost only
/// their own records: the store still opens, the other records show.
#[tokio::test]
async fn a_damaged_run_is_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    s.close().await.unwrap();
    let c = Connection::open(&path).unwrap();
    c.execute_batch(
        "INSERT INTO delivery_run VALUES
             (1, 2, 'mqtt', 100, '[[1,\"a-1\",50],[2,\"a-2\",60]]'),
             (3, 3, 'mqtt', 110, 'not json'),
             (4, 6, 'lorawan', 120, '[[4,5,6],{\"seq\":5},[6,\"a-6\",\"x\"],7]');",
    )
    .unwrap();
    drop(c);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    let mut seqs: Vec<u64> = s
        .alert_deliveries(10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.seq)
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(s.stats().delivered.last.map(|l| l.seq), Some(2));
    let found = s.alert_deliveries_of(vec!["a-2".into()]).await.unwrap();
    assert_eq!(found.len(), 1);
    s.close().await.unwrap();
}
