//! Policy tests on a scripted RAK3172 and a virtual clock.

use super::*;
use crate::uplink::lorawan::airtime::eu868_data_rate;
use crate::uplink::lorawan::modem::{ModemSettings, Timeouts};
use crate::uplink::lorawan::rak3172::Rak3172;

fn core() -> Core {
    let settings = ModemSettings {
        region: "EU868".into(),
        dev_eui: [1; 8],
        join_eui: [2; 8],
        app_key: [3; 16],
        data_rate: 5,
        adr: false,
        retransmissions: 0,
    };
    let d = Driver::new(Box::new(Rak3172), settings, Timeouts::default(), Time(0));
    let cfg = CoreConfig {
        radio: eu868_data_rate(5).unwrap_or(Radio {
            sf: 7,
            bw: super::super::airtime::Bandwidth::Khz125,
        }),
        data_rate: 5,
        limits: BudgetLimits::default(),
        ports: [10, 11, 12],
        confirmed_retries: 1,
        join_backoff_min: Duration::from_secs(15),
        join_backoff_max: Duration::from_secs(3600),
        retransmissions: 0,
        info_max_wait: Duration::from_secs(600),
    };
    Core::new(d, cfg, Time(0))
}

/// A scripted RAK3172 that answers everything at once.
fn answer(c: &mut Core, now: i64, ack: bool) {
    while let Some(cmd) = c.poll_transmit() {
        if cmd == "ATZ" {
            continue;
        }
        c.handle_line("OK", Time(now));
        if cmd.starts_with("AT+JOIN") {
            c.handle_line("+EVT:JOINED", Time(now));
        }
        if cmd.starts_with("AT+SEND") {
            let l = if ack {
                "+EVT:SEND_CONFIRMED_OK"
            } else {
                "+EVT:SEND_CONFIRMED_FAILED(4)"
            };
            c.handle_line(l, Time(now));
        }
    }
}

fn events(c: &mut Core) -> Vec<CoreEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

#[test]
fn alert_waits_for_the_join_off_time_then_is_acked() {
    let mut c = core();
    c.handle_timeout(Time(2000));
    answer(&mut c, 2000, true);
    assert!(c.is_joined());
    let msg = Message {
        class: Class::Alert,
        severity: Severity::Urgent,
        payload: vec![0x21, 0x34, 0, 3],
        confirmed: true,
    };
    c.submit(1, msg, Time(2100));
    // The join (61.7 ms at SF7) closed g1 for 6.17 s.
    let wake = c.next_deadline().unwrap();
    assert!(wake > Time(8000) && wake < Time(8200), "{wake:?}");
    c.handle_timeout(wake);
    answer(&mut c, wake.0, true);
    let ev = events(&mut c);
    assert!(
        ev.contains(&CoreEvent::Delivered {
            id: 1,
            delivery: Delivery::Acked
        }),
        "{ev:?}"
    );
    // The join accept and the ack: both downlinks.
    assert_eq!(c.budget().downlinks_24h(wake), 2);
}

#[test]
fn unacked_alert_is_retried_once_then_failed() {
    let mut c = core();
    c.handle_timeout(Time(2000));
    answer(&mut c, 2000, false);
    let msg = Message {
        class: Class::Alert,
        severity: Severity::Urgent,
        payload: vec![1, 2, 3],
        confirmed: true,
    };
    c.submit(1, msg, Time(2100));
    for _ in 0..4 {
        if let Some(t) = c.next_deadline() {
            c.handle_timeout(t);
            answer(&mut c, t.0, false);
        }
    }
    let ev = events(&mut c);
    assert!(
        ev.iter().any(|e| matches!(e,
        CoreEvent::Delivered { id: 1, delivery: Delivery::Failed(w) } if w.contains("2 attempts"))),
        "{ev:?}"
    );
}

#[test]
fn oversized_payload_fails_at_once() {
    let mut c = core();
    let msg = Message {
        class: Class::Telemetry,
        severity: Severity::Info,
        payload: vec![0; 300],
        confirmed: false,
    };
    c.submit(5, msg, Time(0));
    assert!(matches!(
        &events(&mut c)[..],
        [CoreEvent::Delivered {
            id: 5,
            delivery: Delivery::Failed(_)
        }]
    ));
}

/// A RUI3 modem that answers at once: joins (or fails joins), acks
/// confirmed uplinks, `TX_DONE`s the others.
fn rak(fail_joins: bool) -> impl FnMut(&str) -> Vec<String> {
    let mut cfm = false;
    move |cmd: &str| {
        let l: Vec<&str> = if let Some(v) = cmd.strip_prefix("AT+CFM=") {
            cfm = v == "1";
            vec!["OK"]
        } else if cmd.starts_with("AT+JOIN") {
            if fail_joins {
                vec!["OK", "+EVT:JOIN_FAILED_RX_TIMEOUT"]
            } else {
                vec!["OK", "+EVT:JOINED"]
            }
        } else if cmd.starts_with("AT+SEND") {
            if cfm {
                vec!["OK", "+EVT:SEND_CONFIRMED_OK"]
            } else {
                vec!["OK", "+EVT:TX_DONE"]
            }
        } else {
            vec!["OK"]
        };
        l.into_iter().map(String::from).collect()
    }
}

/// Runs the core on a virtual clock until `until` (ms), answering each
/// command with `reply`; returns the commands written with their times.
fn drive(
    c: &mut Core,
    from: i64,
    until: i64,
    reply: &mut impl FnMut(&str) -> Vec<String>,
) -> Vec<(i64, String)> {
    let mut log = Vec::new();
    let mut now = from;
    for _ in 0..100_000 {
        while let Some(cmd) = c.poll_transmit() {
            log.push((now, cmd.clone()));
            for l in reply(&cmd) {
                c.handle_line(&l, Time(now));
            }
        }
        match c.next_deadline() {
            Some(t) if t.0 <= until => {
                now = t.0.max(now + 1);
                c.handle_timeout(Time(now));
            }
            _ => break,
        }
    }
    log
}

fn alert(sev: Severity, tag: u8) -> Message {
    Message {
        class: Class::Alert,
        severity: sev,
        payload: vec![0x21, tag, 0, 3],
        confirmed: true,
    }
}

/// `(tag, confirmed)` of each `AT+SEND` in the log, in order.
fn sends(log: &[(i64, String)]) -> Vec<(u8, bool)> {
    let mut cfm = false;
    let mut out = Vec::new();
    for (_, c) in log {
        if let Some(v) = c.strip_prefix("AT+CFM=") {
            cfm = v == "1";
        }
        if let Some(h) = c.strip_prefix("AT+SEND=") {
            let hex = h.split_once(':').map_or("", |x| x.1);
            let b = hex::decode(hex).unwrap_or_default();
            out.push((b.get(1).copied().unwrap_or(0), cfm));
        }
    }
    out
}

#[test]
fn a_burst_goes_out_urgent_first_and_only_urgent_alerts_ask_for_an_ack() {
    let mut c = core();
    let mut m = rak(false);
    drive(&mut c, 0, 10, &mut m);
    assert!(c.is_joined());
    // The join closed the band for ~6 s: everything below queues.
    for tag in 1..=5 {
        c.submit(u64::from(tag), alert(Severity::Info, tag), Time(20));
    }
    c.submit(6, alert(Severity::Warning, 6), Time(21));
    for tag in 7..=9 {
        c.submit(u64::from(tag), alert(Severity::Urgent, tag), Time(22));
    }
    let log = drive(&mut c, 22, 600_000, &mut m);
    assert_eq!(
        sends(&log),
        vec![
            (7, true),
            (8, true),
            (9, true),
            (6, false),
            (1, false),
            (2, false),
            (3, false),
            (4, false),
            (5, false)
        ]
    );
    let acked = events(&mut c)
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                CoreEvent::Delivered {
                    delivery: Delivery::Acked,
                    ..
                }
            )
        })
        .count();
    assert_eq!(acked, 3);
}

#[test]
fn info_alerts_are_dropped_when_the_budget_has_no_room_for_them_in_time() {
    let mut c = core();
    c.cfg.limits.daily_airtime = Duration::from_millis(600);
    c.budget = Budget::new(c.cfg.limits.clone());
    let mut m = rak(false);
    drive(&mut c, 0, 10, &mut m);
    for tag in 1..=20 {
        c.submit(u64::from(tag), alert(Severity::Info, tag), Time(20));
    }
    c.submit(30, alert(Severity::Urgent, 30), Time(21));
    let log = drive(&mut c, 21, 3_600_000, &mut m);
    let ev = events(&mut c);
    let dropped = ev
        .iter()
        .filter(|e| {
            matches!(
                e,
                CoreEvent::Delivered {
                    delivery: Delivery::Dropped(_),
                    ..
                }
            )
        })
        .count();
    let sent_info = sends(&log).iter().filter(|s| s.0 != 30).count();
    assert!(
        dropped > 0 && sent_info > 0,
        "{dropped} dropped, {sent_info} sent"
    );
    assert_eq!(dropped + sent_info, 20, "each info alert ends once");
    assert_eq!(c.stats().info_dropped, dropped as u64);
    // The urgent one went first, on the alert reserve.
    assert_eq!(sends(&log)[0], (30, true));
}

#[test]
fn joins_are_rate_limited_and_the_limit_survives_a_restore() {
    let mut c = core();
    let mut m = rak(true);
    let log = drive(&mut c, 0, 600_000, &mut m);
    let joins: Vec<i64> = log
        .iter()
        .filter(|(_, c)| c.starts_with("AT+JOIN"))
        .map(|(t, _)| *t)
        .collect();
    // 15 s, 30 s, 60 s, 120 s, 240 s apart: 6 attempts in 10 minutes.
    assert_eq!(joins.len(), 6, "{joins:?}");
    let gaps: Vec<i64> = joins.windows(2).map(|w| (w[1] - w[0]) / 1000).collect();
    assert_eq!(gaps, vec![15, 30, 60, 120, 240]);
    let saved = c.take_persisted().expect("join attempts are persisted");
    // A restart 10 s after the last attempt: the next one still waits.
    let now = Time(joins[5] + 10_000);
    let d = Driver::new(
        Box::new(Rak3172),
        c.driver.settings().clone(),
        Timeouts::default(),
        now,
    );
    let r = Core::restore(d, c.cfg.clone(), &saved, now);
    assert_eq!(r.join_at(), Time(joins[5] + 480_000));
}

#[test]
fn an_urgent_alert_takes_the_modem_from_a_summary_waiting_to_retry() {
    let mut c = core();
    let mut m = rak(false);
    drive(&mut c, 0, 10, &mut m);
    let busy = std::cell::Cell::new(0);
    let mut modem = |cmd: &str| -> Vec<String> {
        if cmd.starts_with("AT+SEND=11:") && busy.get() < 3 {
            busy.set(busy.get() + 1);
            return vec!["AT_BUSY_ERROR".into()];
        }
        m(cmd)
    };
    let summary = Message {
        class: Class::Status,
        severity: Severity::Info,
        payload: vec![0x42; 20],
        confirmed: false,
    };
    // After the join's off time, the summary goes and meets a busy modem.
    drive(&mut c, 10, 6_500, &mut modem);
    c.submit(1, summary, Time(6_500));
    drive(&mut c, 6_500, 6_500, &mut modem);
    assert_eq!(busy.get(), 1);
    c.submit(2, alert(Severity::Urgent, 2), Time(6_600));
    let log = drive(&mut c, 6_600, 60_000, &mut modem);
    let order: Vec<&str> = log
        .iter()
        .filter_map(|(_, c)| c.strip_prefix("AT+SEND="))
        .map(|s| &s[..2])
        .collect();
    assert_eq!(order.first(), Some(&"10"), "the alert first: {order:?}");
    assert!(order.contains(&"11"), "the summary still goes: {order:?}");
    assert_eq!(c.stats().preempted, 1);
}

#[test]
fn the_modems_own_retransmissions_are_booked_at_their_worst_case() {
    let mut c = core();
    c.cfg.retransmissions = 2;
    let mut m = rak(false);
    drive(&mut c, 0, 10, &mut m);
    let before = c.budget().used_24h(Time(10));
    c.submit(1, alert(Severity::Urgent, 1), Time(10));
    drive(&mut c, 10, 60_000, &mut m);
    let one = super::super::airtime::uplink_airtime(c.radio(), 4);
    assert_eq!(
        c.budget().used_24h(Time(60_000)) - before,
        one * 3,
        "one confirmed uplink and the modem's two retransmissions"
    );
    // An unconfirmed one (not urgent) cannot be retransmitted: booked once.
    c.submit(2, alert(Severity::Warning, 2), Time(60_000));
    drive(&mut c, 60_000, 120_000, &mut m);
    assert_eq!(c.budget().used_24h(Time(120_000)) - before, one * 4);
}
