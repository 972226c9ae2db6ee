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
    assert!(ev.iter().any(|e| matches!(e,
        CoreEvent::Delivered { id: 1, delivery: Delivery::Failed(w) } if w.contains("2 attempts"))), "{ev:?}");
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
