//! The routing decision on a virtual clock.

use super::*;

fn t(s: i64) -> Time {
    Time(s * 1000)
}

fn router() -> Router {
    Router::new(
        RouterConfig {
            mqtt_grace: Duration::from_secs(5),
            retry_min: Duration::from_secs(30),
            retry_max: Duration::from_secs(120),
            status_every: Duration::from_secs(3600),
            lorawan_only: false,
        },
        t(0),
    )
}

fn drain(r: &mut Router, now: Time) -> Vec<Action> {
    std::iter::from_fn(|| r.poll_action(now)).collect()
}

#[test]
fn alert_goes_by_radio_at_once_while_mqtt_is_down() {
    let mut r = router();
    r.handle_lora(true, t(0));
    r.handle_outbox(&[7], true, t(1));
    assert_eq!(drain(&mut r, t(1)), vec![Action::Lora(LoraJob::Alert(7))]);
    r.handle_lora_result(LoraJob::Alert(7), LoraResult::Acked, t(2));
    assert_eq!(
        drain(&mut r, t(2)),
        vec![Action::Delivered {
            seq: 7,
            via: Via::Lorawan
        }]
    );
    assert_eq!(r.stats().pending, 0);
    assert_eq!(r.stats().lora_alerts_acked, 1);
}

#[test]
fn connected_mqtt_gets_a_grace_and_an_ack_within_it_spares_the_radio() {
    let mut r = router();
    r.handle_lora(true, t(0));
    r.handle_mqtt(true, t(0));
    r.handle_outbox(&[1, 2], true, t(10));
    assert!(drain(&mut r, t(14)).is_empty(), "within the grace");
    assert_eq!(r.next_deadline(), Some(t(15)));
    // MQTT acked seq 1 (the row is gone); seq 2 is still unacknowledged.
    r.handle_outbox(&[2], true, t(14));
    assert_eq!(r.stats().acked_elsewhere, 1);
    assert_eq!(drain(&mut r, t(15)), vec![Action::Lora(LoraJob::Alert(2))]);
}

#[test]
fn mqtt_going_down_makes_waiting_alerts_due_at_once() {
    let mut r = router();
    r.handle_lora(true, t(0));
    r.handle_mqtt(true, t(0));
    r.handle_outbox(&[3], true, t(10));
    assert!(drain(&mut r, t(11)).is_empty());
    r.handle_mqtt(false, t(11));
    assert_eq!(drain(&mut r, t(11)), vec![Action::Lora(LoraJob::Alert(3))]);
}

#[test]
fn one_job_at_a_time_lowest_seq_first() {
    let mut r = router();
    r.handle_lora(true, t(0));
    r.handle_outbox(&[5, 4, 9], false, t(0));
    assert_eq!(drain(&mut r, t(0)), vec![Action::Lora(LoraJob::Alert(4))]);
    assert!(r.is_busy());
    // One alert at a time; only the status summary (MQTT down) may join it.
    assert_eq!(
        r.next_deadline(),
        Some(t(5)),
        "no second alert while the modem has one"
    );
    r.handle_lora_result(LoraJob::Alert(4), LoraResult::Acked, t(1));
    let a = drain(&mut r, t(1));
    assert_eq!(
        a,
        vec![
            Action::Delivered {
                seq: 4,
                via: Via::Lorawan
            },
            Action::Lora(LoraJob::Alert(5))
        ]
    );
}

#[test]
fn failed_radio_sends_back_off_exponentially_up_to_the_cap() {
    let mut r = router();
    r.handle_lora(true, t(0));
    // MQTT up but not acking (a dead link not yet noticed): no summaries.
    r.handle_mqtt(true, t(0));
    r.handle_outbox(&[1], true, t(0));
    let mut now = t(5);
    let mut gaps = Vec::new();
    for _ in 0..4 {
        assert_eq!(drain(&mut r, now), vec![Action::Lora(LoraJob::Alert(1))]);
        r.handle_lora_result(LoraJob::Alert(1), LoraResult::Failed, now);
        let next = r.next_deadline().unwrap();
        gaps.push((next.0 - now.0) / 1000);
        assert!(drain(&mut r, Time(next.0 - 1)).is_empty());
        now = next;
    }
    assert_eq!(gaps, vec![30, 60, 120, 120]);
    assert_eq!(r.stats().pending, 1, "a failed alert is never forgotten");
}

#[test]
fn unconfirmed_alert_is_left_to_mqtt_and_not_repeated_by_radio() {
    let mut r = router();
    r.handle_lora(true, t(0));
    r.handle_outbox(&[1], true, t(0));
    drain(&mut r, t(0));
    r.handle_lora_result(LoraJob::Alert(1), LoraResult::SentUnconfirmed, t(1));
    assert!(
        drain(&mut r, t(10_000))
            .iter()
            .all(|a| *a != Action::Lora(LoraJob::Alert(1)))
    );
    assert_eq!(r.stats().pending, 1, "still waiting for MQTT");
    r.handle_outbox(&[], true, t(20_000));
    assert_eq!(r.stats().pending, 0);
}

#[test]
fn nothing_goes_by_radio_while_lora_is_down_and_everything_waits() {
    let mut r = router();
    r.handle_outbox(&[1, 2], true, t(0));
    assert!(drain(&mut r, t(100)).is_empty());
    assert_eq!(r.next_deadline(), None);
    r.handle_lora(true, t(200));
    // The summary (MQTT down) is handed over with it; the alert first.
    assert_eq!(
        drain(&mut r, t(200)),
        vec![
            Action::Lora(LoraJob::Alert(1)),
            Action::Lora(LoraJob::Status)
        ]
    );
}

#[test]
fn status_summary_goes_by_radio_only_while_mqtt_is_down() {
    let mut r = router();
    r.handle_lora(true, t(0));
    r.handle_mqtt(true, t(0));
    assert!(drain(&mut r, t(100_000)).is_empty());
    r.handle_mqtt(false, t(100_000));
    assert!(drain(&mut r, t(100_004)).is_empty(), "a blip costs nothing");
    assert_eq!(
        drain(&mut r, t(100_005)),
        vec![Action::Lora(LoraJob::Status)]
    );
    r.handle_lora_result(LoraJob::Status, LoraResult::SentUnconfirmed, t(100_006));
    assert_eq!(r.next_deadline(), Some(t(100_006 + 3600)));
    // Alerts go ahead of a due summary (the modem task keeps that order).
    r.handle_outbox(&[8], true, t(110_000));
    assert_eq!(
        drain(&mut r, t(110_000)),
        vec![
            Action::Lora(LoraJob::Alert(8)),
            Action::Lora(LoraJob::Status)
        ]
    );
}

#[test]
fn a_row_on_air_is_not_dropped_by_a_rescan_and_its_late_ack_is_still_recorded() {
    let mut r = router();
    r.handle_lora(true, t(0));
    r.handle_outbox(&[1], true, t(0));
    drain(&mut r, t(0));
    // MQTT reconnected and acked it while the radio was busy with it.
    r.handle_outbox(&[], true, t(1));
    r.handle_lora_result(LoraJob::Alert(1), LoraResult::Acked, t(2));
    // The store ignores the second ack (first one wins); asking is harmless.
    assert_eq!(
        drain(&mut r, t(2)),
        vec![Action::Delivered {
            seq: 1,
            via: Via::Lorawan
        }]
    );
}

#[test]
fn partial_outbox_lists_drop_only_rows_inside_the_listed_range() {
    let mut r = router();
    r.handle_outbox(&[1, 2, 3, 4], true, t(0));
    r.handle_outbox(&[2], false, t(1));
    // 1 is gone; 3 and 4 lie beyond the partial list and stay.
    assert_eq!(r.stats().pending, 3);
    r.handle_gone(3);
    assert_eq!(r.stats().pending, 2);
}

fn lora_only() -> Router {
    let mut r = Router::new(
        RouterConfig {
            lorawan_only: true,
            ..router().cfg
        },
        t(0),
    );
    r.handle_lora(true, t(0));
    r
}

#[test]
fn the_most_severe_due_alert_goes_first_and_a_summary_never_blocks_it() {
    let mut r = router();
    r.handle_lora(true, t(0));
    r.handle_outbox_rows(
        &[
            (1, Severity::Info),
            (2, Severity::Info),
            (3, Severity::Warning),
            (4, Severity::Urgent),
            (5, Severity::Urgent),
        ],
        true,
        t(0),
    );
    // The summary is due (MQTT down past the grace) and handed over too.
    let a = drain(&mut r, t(6));
    assert_eq!(
        a,
        vec![
            Action::Lora(LoraJob::Alert(4)),
            Action::Lora(LoraJob::Status)
        ]
    );
    let mut order = vec![4];
    for _ in 0..4 {
        let last = *order.last().unwrap();
        r.handle_lora_result(LoraJob::Alert(last), LoraResult::Acked, t(7));
        for a in drain(&mut r, t(7)) {
            if let Action::Lora(LoraJob::Alert(s)) = a {
                order.push(s);
            }
        }
    }
    assert_eq!(order, vec![4, 5, 3, 1, 2]);
}

#[test]
fn lorawan_only_an_unconfirmed_alert_is_done_by_its_class_or_by_a_later_ack() {
    let mut r = lora_only();
    r.handle_outbox_rows(&[(1, Severity::Info), (2, Severity::Urgent)], true, t(0));
    assert_eq!(drain(&mut r, t(0))[0], Action::Lora(LoraJob::Alert(2)));
    // Urgent, but the day's downlinks were used up: kept.
    r.handle_lora_result(LoraJob::Alert(2), LoraResult::SentUnconfirmed, t(1));
    assert_eq!(drain(&mut r, t(1)), vec![Action::Lora(LoraJob::Alert(1))]);
    // Info: sent is delivered for its class.
    r.handle_lora_result(LoraJob::Alert(1), LoraResult::SentUnconfirmed, t(2));
    assert_eq!(
        drain(&mut r, t(2)),
        vec![Action::Delivered {
            seq: 1,
            via: Via::Lorawan
        }]
    );
    assert_eq!(r.take_unconfirmed(), Some(vec![2]));
    // A later urgent alert is acknowledged: the kept one is done too.
    r.handle_outbox_rows(&[(2, Severity::Urgent), (3, Severity::Urgent)], true, t(3));
    assert_eq!(drain(&mut r, t(3)), vec![Action::Lora(LoraJob::Alert(3))]);
    r.handle_lora_result(LoraJob::Alert(3), LoraResult::Acked, t(4));
    let a = drain(&mut r, t(4));
    assert!(
        a.contains(&Action::Delivered {
            seq: 2,
            via: Via::Lorawan
        }),
        "{a:?}"
    );
    assert!(
        a.contains(&Action::Delivered {
            seq: 3,
            via: Via::Lorawan
        }),
        "{a:?}"
    );
    assert_eq!(r.take_unconfirmed(), Some(vec![]));
    assert_eq!(r.stats().pending, 0);
}

#[test]
fn unconfirmed_alerts_are_not_sent_again_after_a_restart() {
    let mut r = lora_only();
    r.handle_outbox_rows(&[(7, Severity::Urgent), (8, Severity::Urgent)], true, t(0));
    for s in [7, 8] {
        assert_eq!(drain(&mut r, t(0)), vec![Action::Lora(LoraJob::Alert(s))]);
        r.handle_lora_result(LoraJob::Alert(s), LoraResult::SentUnconfirmed, t(1));
    }
    let saved = r.take_unconfirmed().unwrap();
    assert_eq!(saved, vec![7, 8]);
    // The restart: a new router, the same outbox rows.
    let mut r = lora_only();
    r.restore_unconfirmed(&saved);
    r.handle_outbox_rows(&[(7, Severity::Urgent), (8, Severity::Urgent)], true, t(10));
    assert!(
        !drain(&mut r, t(10))
            .iter()
            .any(|a| matches!(a, Action::Lora(LoraJob::Alert(_)))),
        "no alert sent again"
    );
    // A downlink ack names 8: done.
    r.handle_downlink_ack(8);
    assert_eq!(
        drain(&mut r, t(11)),
        vec![Action::Delivered {
            seq: 8,
            via: Via::Lorawan
        }]
    );
}

#[test]
fn a_dropped_info_alert_is_deleted_lorawan_only_and_left_to_mqtt_otherwise() {
    let mut r = lora_only();
    r.handle_outbox_rows(&[(1, Severity::Info)], true, t(0));
    drain(&mut r, t(0));
    r.handle_lora_result(LoraJob::Alert(1), LoraResult::Dropped, t(1));
    assert_eq!(drain(&mut r, t(1)), vec![Action::Dropped { seq: 1 }]);
    assert_eq!(r.stats().lora_info_dropped, 1);
    let mut r = router();
    r.handle_lora(true, t(0));
    r.handle_outbox_rows(&[(1, Severity::Info)], true, t(0));
    drain(&mut r, t(0));
    r.handle_lora_result(LoraJob::Alert(1), LoraResult::Dropped, t(1));
    assert!(
        !drain(&mut r, t(100))
            .iter()
            .any(|a| matches!(a, Action::Lora(LoraJob::Alert(_))))
    );
    assert_eq!(r.stats().pending, 1, "the row stays for MQTT");
}

#[test]
fn a_panic_is_handed_over_while_the_modem_task_holds_an_info_alert() {
    let mut r = router();
    r.handle_lora(true, t(0));
    r.handle_mqtt(true, t(0));
    r.handle_outbox_rows(&[(1, Severity::Info)], true, t(0));
    assert_eq!(drain(&mut r, t(5)), vec![Action::Lora(LoraJob::Alert(1))]);
    r.handle_outbox_rows(
        &[
            (1, Severity::Info),
            (2, Severity::Info),
            (3, Severity::Urgent),
        ],
        true,
        t(1),
    );
    // Not the second info alert, but the panic, at once.
    assert_eq!(drain(&mut r, t(6)), vec![Action::Lora(LoraJob::Alert(3))]);
    assert!(
        drain(&mut r, t(100)).is_empty(),
        "nothing more severe waits"
    );
}
