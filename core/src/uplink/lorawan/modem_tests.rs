//! Dialogue tests of the driver against scripted modem answers (both dialects).

use super::*;
use crate::uplink::lorawan::rak3172::Rak3172;
use crate::uplink::lorawan::wio_e5::WioE5;

fn settings() -> ModemSettings {
    ModemSettings {
        region: "EU868".into(),
        dev_eui: [1; 8],
        join_eui: [2; 8],
        app_key: [3; 16],
        data_rate: 5,
        adr: false,
        retransmissions: 0,
    }
}

fn t(ms: i64) -> Time {
    Time(ms)
}

/// Drains the lines the driver wants written.
fn sent(d: &mut Driver) -> Vec<String> {
    std::iter::from_fn(|| d.poll_transmit()).collect()
}

fn events(d: &mut Driver) -> Vec<ModemEvent> {
    std::iter::from_fn(|| d.poll_event()).collect()
}

/// Boots and configures a driver, answering every setup command with `ok`.
fn ready(dialect: Box<dyn Dialect>, ok: &str) -> Driver {
    let mut d = Driver::new(dialect, settings(), Timeouts::default(), t(0));
    assert_eq!(sent(&mut d), vec!["AT"], "a probe first, no reset");
    d.handle_line(ok, t(1));
    for _ in 0..20 {
        if sent(&mut d).is_empty() {
            break;
        }
        d.handle_line(ok, t(2001));
    }
    assert!(d.is_ready());
    assert!(events(&mut d).contains(&ModemEvent::Ready));
    d
}

#[test]
fn rak_joins_and_sends_unconfirmed() {
    let mut d = ready(Box::new(Rak3172), "OK");
    d.join(t(3000)).unwrap();
    assert_eq!(sent(&mut d), vec!["AT+JOIN=1:0:8:1"]);
    d.handle_line("OK", t(3001));
    d.handle_line("+EVT:JOINED", t(9000));
    assert_eq!(
        events(&mut d),
        vec![ModemEvent::TxStarted { phy_len: 23 }, ModemEvent::Joined]
    );
    d.send(7, 2, &[0x21, 0x34, 0, 3], false, t(10_000)).unwrap();
    assert_eq!(sent(&mut d), vec!["AT+CFM=0"]);
    d.handle_line("OK", t(10_001));
    assert_eq!(sent(&mut d), vec!["AT+SEND=2:21340003"]);
    d.handle_line("OK", t(10_002));
    d.handle_line("+EVT:TX_DONE", t(10_100));
    assert_eq!(
        events(&mut d),
        vec![
            ModemEvent::TxStarted { phy_len: 17 },
            ModemEvent::Sent {
                id: 7,
                outcome: SendOutcome::Sent
            }
        ]
    );
    assert!(d.is_ready());
}

fn joined(dialect: Box<dyn Dialect>, ok: &str, joined_line: &str) -> Driver {
    let mut d = ready(dialect, ok);
    d.join(t(3000)).unwrap();
    sent(&mut d);
    d.handle_line(joined_line, t(3100));
    events(&mut d);
    assert!(d.is_joined());
    d
}

#[test]
fn rak_confirmed_send_reports_ack_and_downlink() {
    let mut d = joined(Box::new(Rak3172), "OK", "+EVT:JOINED");
    d.send(1, 2, &[1], true, t(5000)).unwrap();
    d.handle_line("OK", t(5001));
    d.handle_line("OK", t(5002));
    d.handle_line("+EVT:RX_1:-70:8:UNICAST:3:3278", t(6000));
    d.handle_line("+EVT:SEND_CONFIRMED_OK", t(6001));
    let ev = events(&mut d);
    assert!(
        ev.iter()
            .any(|e| matches!(e, ModemEvent::Downlink(rx) if rx.port == 3))
    );
    assert!(ev.contains(&ModemEvent::Sent {
        id: 1,
        outcome: SendOutcome::Acked
    }));
}

#[test]
fn rak_busy_is_retried_then_fails_after_max_retries() {
    let mut d = joined(Box::new(Rak3172), "OK", "+EVT:JOINED");
    d.send(9, 2, &[1], false, t(5000)).unwrap();
    d.handle_line("OK", t(5001));
    let mut now = 5002;
    for _ in 0..3 {
        sent(&mut d);
        d.handle_line("AT_BUSY_ERROR", t(now));
        let due = d.next_deadline().unwrap();
        assert_eq!(due, t(now + 2000));
        now += 2000;
        d.handle_timeout(t(now));
        assert_eq!(sent(&mut d), vec!["AT+SEND=2:01"]);
    }
    d.handle_line("AT_BUSY_ERROR", t(now));
    assert_eq!(
        events(&mut d),
        vec![ModemEvent::Sent {
            id: 9,
            outcome: SendOutcome::Failed("modem busy".into())
        }]
    );
}

#[test]
fn silent_modem_is_probed_then_reset_and_forgets_the_join() {
    let mut d = joined(Box::new(Rak3172), "OK", "+EVT:JOINED");
    d.send(4, 2, &[1], false, t(5000)).unwrap();
    let mut cmds = sent(&mut d);
    let mut ev = Vec::new();
    let mut now = t(5000);
    for _ in 0..20 {
        let Some(due) = d.next_deadline() else { break };
        now = due;
        d.handle_timeout(now);
        cmds.extend(sent(&mut d));
        ev.extend(events(&mut d));
        if ev.iter().any(|e| matches!(e, ModemEvent::Reset(_))) {
            break;
        }
    }
    // The preparation command is tried 1 + 3 times, then a probe, then the reset.
    assert_eq!(
        cmds,
        vec!["AT+CFM=0", "AT+CFM=0", "AT+CFM=0", "AT+CFM=0", "AT", "ATZ"],
        "{ev:?}"
    );
    assert!(matches!(
        &ev[..],
        [
            ModemEvent::Sent {
                id: 4,
                outcome: SendOutcome::Failed(_)
            },
            ModemEvent::Reset(_)
        ]
    ));
    assert!(!d.is_joined());
    assert_eq!(d.resets(), 1);
    assert!(now < t(5000 + 6 * 3000 + 1));
}

#[test]
fn not_joined_answer_drops_the_join_state() {
    let mut d = joined(Box::new(Rak3172), "OK", "+EVT:JOINED");
    d.send(5, 2, &[1], false, t(5000)).unwrap();
    d.handle_line("OK", t(5001));
    d.handle_line("AT_NO_NETWORK_JOINED", t(5002));
    assert!(!d.is_joined());
    assert!(matches!(
        &events(&mut d)[..],
        [ModemEvent::Sent {
            id: 5,
            outcome: SendOutcome::Failed(_)
        }]
    ));
}

#[test]
fn wio_join_failure_then_success() {
    let mut d = ready(Box::new(WioE5), "+AT: OK");
    d.join(t(3000)).unwrap();
    assert_eq!(sent(&mut d), vec!["AT+JOIN"]);
    for l in [
        "+JOIN: Start",
        "+JOIN: NORMAL",
        "+JOIN: Join failed",
        "+JOIN: Done",
    ] {
        d.handle_line(l, t(4000));
    }
    let ev = events(&mut d);
    assert!(
        ev.contains(&ModemEvent::JoinFailed("Join failed".into())),
        "{ev:?}"
    );
    d.join(t(20_000)).unwrap();
    for l in [
        "+JOIN: Start",
        "+JOIN: Network joined",
        "+JOIN: NetID 000013 DevAddr 26:01:02:03",
        "+JOIN: Done",
    ] {
        d.handle_line(l, t(21_000));
    }
    assert!(d.is_joined() && d.is_ready());
}

#[test]
fn wio_confirmed_send_waits_for_done_after_ack() {
    let mut d = joined(Box::new(WioE5), "+AT: OK", "+JOIN: Network joined");
    d.send(3, 5, &[0xab], true, t(5000)).unwrap();
    assert_eq!(sent(&mut d), vec!["AT+PORT=5"]);
    d.handle_line("+PORT: 5", t(5001));
    assert_eq!(sent(&mut d), vec!["AT+CMSGHEX=\"AB\""]);
    for l in [
        "+CMSGHEX: Start",
        "+CMSGHEX: Wait ACK",
        "+CMSGHEX: ACK Received",
        "+CMSGHEX: PORT: 3; RX: \"3200\"",
        "+CMSGHEX: RXWIN1, RSSI -43, SNR 10.0",
    ] {
        d.handle_line(l, t(6000));
    }
    assert!(!d.is_ready(), "still waiting for Done");
    d.handle_line("+CMSGHEX: Done", t(6001));
    let ev = events(&mut d);
    assert!(
        ev.contains(&ModemEvent::Sent {
            id: 3,
            outcome: SendOutcome::Acked
        }),
        "{ev:?}"
    );
}

#[test]
fn wio_duty_cycle_wait_comes_from_the_modem() {
    let mut d = joined(Box::new(WioE5), "+AT: OK", "+JOIN: Network joined");
    d.send(3, 5, &[0xab], false, t(5000)).unwrap();
    d.handle_line("+PORT: 5", t(5001));
    sent(&mut d);
    d.handle_line("+MSGHEX: No band in 4000ms", t(5002));
    assert_eq!(d.next_deadline(), Some(t(9102)));
    d.handle_timeout(t(9102));
    assert_eq!(sent(&mut d), vec!["AT+MSGHEX=\"AB\""]);
    d.handle_line("+MSGHEX: Start", t(9103));
    d.handle_line("+MSGHEX: Done", t(9200));
    assert!(events(&mut d).contains(&ModemEvent::Sent {
        id: 3,
        outcome: SendOutcome::Sent
    }));
}

#[test]
fn send_before_join_is_refused_without_touching_the_modem() {
    let mut d = ready(Box::new(WioE5), "+AT: OK");
    assert_eq!(d.send(1, 1, &[1], false, t(1)), Err(DriverError::NotJoined));
    assert!(sent(&mut d).is_empty());
}

#[test]
fn a_modem_that_reboots_by_itself_fails_the_send_and_is_set_up_again() {
    let mut d = joined(Box::new(Rak3172), "OK", "+EVT:JOINED");
    d.send(8, 2, &[1], false, t(5000)).unwrap();
    d.handle_line("OK", t(5001));
    d.handle_line("RAKwireless RAK3172-E Example", t(5002));
    let ev = events(&mut d);
    assert!(
        ev.iter().any(|e| matches!(
            e,
            ModemEvent::Sent {
                id: 8,
                outcome: SendOutcome::Failed(_)
            }
        )),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, ModemEvent::Reset(w) if w.contains("on its own")))
    );
    assert!(!d.is_joined());
    // It restarted already: no ATZ on top, a probe once it has booted.
    assert_eq!(sent(&mut d), vec!["AT+CFM=0", "AT+SEND=2:01"]);
    d.handle_timeout(t(6502));
    assert_eq!(sent(&mut d), vec!["AT"]);
    assert_eq!(d.resets(), 0);
}

#[test]
fn a_refused_setup_is_reported_and_tried_again_after_a_doubling_back_off() {
    let mut d = Driver::new(Box::new(WioE5), settings(), Timeouts::default(), t(0));
    assert_eq!(sent(&mut d), vec!["AT"]);
    d.handle_line("+AT: OK", t(1));
    assert_eq!(sent(&mut d), vec!["AT+MODE=LWOTAA"]);
    d.handle_line("+MODE: ERROR(-1)", t(2));
    assert!(sent(&mut d).is_empty(), "no reset loop");
    assert_eq!(
        events(&mut d),
        vec![ModemEvent::SetupRefused {
            command: "AT+MODE=LWOTAA".into(),
            error: "parameter refused".into(),
            retry_in: Duration::from_secs(5)
        }]
    );
    assert_eq!(d.next_deadline(), Some(t(5002)));
    d.handle_timeout(t(5002));
    assert_eq!(sent(&mut d), vec!["AT"]);
    d.handle_line("+AT: OK", t(5003));
    sent(&mut d);
    d.handle_line("+MODE: ERROR(-1)", t(5004));
    assert!(matches!(
        &events(&mut d)[..],
        [ModemEvent::SetupRefused { retry_in, .. }] if *retry_in == Duration::from_secs(10)
    ));
    assert_eq!(d.resets(), 0);
}

#[test]
fn rak_keeps_the_session_the_modem_still_has() {
    let mut d = Driver::new(Box::new(Rak3172), settings(), Timeouts::default(), t(0));
    assert_eq!(sent(&mut d), vec!["AT"]);
    d.handle_line("OK", t(1));
    assert_eq!(sent(&mut d), vec!["AT+NJS=?"]);
    d.handle_line("AT+NJS=1", t(2));
    assert!(sent(&mut d).is_empty(), "the value is followed by OK");
    d.handle_line("OK", t(3));
    let mut setup = Vec::new();
    for i in 0..10 {
        let s = sent(&mut d);
        if s.is_empty() {
            break;
        }
        setup.extend(s);
        d.handle_line("OK", t(4 + i));
    }
    assert_eq!(setup, vec!["AT+RETY=0", "AT+ADR=0", "AT+DR=5"]);
    assert_eq!(
        events(&mut d),
        vec![ModemEvent::Ready, ModemEvent::SessionKept]
    );
    assert!(d.is_joined() && d.is_ready());
    assert_eq!(d.resets(), 0);
}

#[test]
fn rak_in_p2p_mode_is_switched_to_lorawan_and_set_up_after_its_reboot() {
    let mut d = Driver::new(Box::new(Rak3172), settings(), Timeouts::default(), t(0));
    sent(&mut d);
    d.handle_line("OK", t(1));
    sent(&mut d);
    // P2P: the session query is not supported.
    d.handle_line("AT_MODE_NO_SUPPORT", t(2));
    assert_eq!(sent(&mut d), vec!["AT+NWM=1"]);
    d.handle_line("OK", t(3));
    assert_eq!(sent(&mut d), vec!["AT+BAND=4"]);
    d.handle_line("Current Work Mode: LoRaWAN.", t(4));
    assert!(sent(&mut d).is_empty());
    d.handle_timeout(t(1504));
    assert_eq!(sent(&mut d), vec!["AT"]);
    d.handle_line("OK", t(1505));
    assert_eq!(sent(&mut d), vec!["AT+NJS=?"]);
    d.handle_line("AT+NJS=0", t(1506));
    d.handle_line("OK", t(1507));
    for i in 0..12 {
        if sent(&mut d).is_empty() {
            break;
        }
        d.handle_line("OK", t(1508 + i));
    }
    assert!(d.is_ready() && !d.is_joined());
    assert_eq!(d.resets(), 0);
}

#[test]
fn a_damaged_setup_answer_resends_that_one_command_not_a_reset() {
    let mut d = Driver::new(Box::new(Rak3172), settings(), Timeouts::default(), t(0));
    sent(&mut d);
    d.handle_line("OK", t(1));
    sent(&mut d);
    d.handle_line("OK", t(2));
    assert_eq!(sent(&mut d), vec!["AT+NWM=1"]);
    d.handle_line("O\u{fffd}", t(3));
    assert_eq!(
        d.next_deadline(),
        Some(t(303)),
        "settle, not the 3 s time-out"
    );
    d.handle_timeout(t(303));
    assert_eq!(sent(&mut d), vec!["AT+NWM=1"]);
    // Two replies glued by a lost line ending still count once each.
    d.handle_line("OK", t(304));
    assert_eq!(sent(&mut d), vec!["AT+BAND=4"]);
    d.handle_line("OKAT_BUSY_ERROR", t(305));
    assert_eq!(sent(&mut d), vec!["AT+NJM=1"]);
    assert!(events(&mut d).is_empty());
    assert_eq!(d.resets(), 0);
}

#[test]
fn a_lost_tx_done_counts_as_sent_without_a_stall_or_a_second_uplink() {
    let mut d = joined(Box::new(Rak3172), "OK", "+EVT:JOINED");
    d.send(6, 2, &[1], false, t(5000)).unwrap();
    d.handle_line("OK", t(5001));
    d.handle_line("OK", t(5002));
    assert_eq!(sent(&mut d), vec!["AT+CFM=0", "AT+SEND=2:01"]);
    d.handle_line("+EVT:TX_D\u{fffd}NE", t(5100));
    assert_eq!(d.next_deadline(), Some(t(5400)));
    d.handle_timeout(t(5400));
    let ev = events(&mut d);
    assert!(
        ev.contains(&ModemEvent::Sent {
            id: 6,
            outcome: SendOutcome::Sent
        }),
        "{ev:?}"
    );
    assert!(!sent(&mut d).iter().any(|c| c.starts_with("AT+SEND")));
    // The OK itself lost: the TX_DONE still ends it, with its airtime booked.
    d.handle_line("OK", t(5401));
    d.send(7, 2, &[1], false, t(6000)).unwrap();
    d.handle_line("OK", t(6001));
    d.handle_line("\u{fffd}K", t(6002));
    d.handle_line("+EVT:TX_DONE", t(6100));
    let ev = events(&mut d);
    assert!(
        ev.contains(&ModemEvent::TxStarted { phy_len: 14 }),
        "{ev:?}"
    );
    assert!(ev.contains(&ModemEvent::Sent {
        id: 7,
        outcome: SendOutcome::Sent
    }));
}

#[test]
fn a_send_waiting_to_retry_can_be_taken_back() {
    let mut d = joined(Box::new(Rak3172), "OK", "+EVT:JOINED");
    d.send(1, 11, &[1; 20], false, t(5000)).unwrap();
    d.handle_line("OK", t(5001));
    d.handle_line("AT_BUSY_ERROR", t(5002));
    assert_eq!(d.preempt(), Some(1));
    assert!(d.is_ready());
    assert!(events(&mut d).is_empty(), "no Sent for a send taken back");
    d.send(2, 10, &[2], true, t(5003)).unwrap();
    d.handle_line("OK", t(5004));
    assert_eq!(d.preempt(), None, "not while its command is in flight");
}

mod props {
    use super::*;
    use proptest::prelude::*;

    const LINES: &[&str] = &[
        "OK",
        "AT_BUSY_ERROR",
        "AT_NO_NETWORK_JOINED",
        "AT_PARAM_ERROR",
        "AT_ERROR",
        "+EVT:JOINED",
        "+EVT:JOIN_FAILED_RX_TIMEOUT",
        "+EVT:TX_DONE",
        "+EVT:SEND_CONFIRMED_OK",
        "+EVT:SEND_CONFIRMED_FAILED(4)",
        "+EVT:RX_1:-70:8:UNICAST:20:3302",
        "RAKwireless RAK3172",
        "+AT: OK",
        "+JOIN: Start",
        "+JOIN: Network joined",
        "+JOIN: Join failed",
        "+JOIN: Done",
        "+MSGHEX: Start",
        "+MSGHEX: Done",
        "+CMSGHEX: ACK Received",
        "+CMSGHEX: Done",
        "+MSGHEX: No band in 1200ms",
        "+MSGHEX: Please join network first",
        "+PORT: 2",
        "+MODE: LWOTAA",
        "+RESET: OK",
        "garbage",
    ];

    #[derive(Debug, Clone)]
    enum Step {
        Line(usize),
        Wait(u32),
        Join,
        Send(bool),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..LINES.len()).prop_map(Step::Line),
            2 => (0u32..50_000).prop_map(Step::Wait),
            1 => Just(Step::Join),
            2 => any::<bool>().prop_map(Step::Send),
        ]
    }

    proptest! {
        /// Whatever the modem says and whenever, every accepted send ends in
        /// exactly one `Sent` event, and the driver never panics.
        #[test]
        fn every_accepted_send_ends_exactly_once(
            rak in any::<bool>(),
            steps in proptest::collection::vec(step(), 1..200),
        ) {
            let dialect: Box<dyn Dialect> = if rak { Box::new(Rak3172) } else { Box::new(WioE5) };
            let mut d = Driver::new(dialect, settings(), Timeouts::default(), t(0));
            let mut now = 0i64;
            let mut accepted = Vec::new();
            let mut ended: std::collections::HashMap<u64, u32> = Default::default();
            let mut id = 0;
            let drain = |d: &mut Driver, ended: &mut std::collections::HashMap<u64, u32>| {
                while d.poll_transmit().is_some() {}
                while let Some(e) = d.poll_event() {
                    if let ModemEvent::Sent { id, .. } = e {
                        *ended.entry(id).or_default() += 1;
                    }
                }
            };
            for s in steps {
                match s {
                    Step::Line(i) => d.handle_line(LINES[i], t(now)),
                    Step::Wait(ms) => {
                        now += i64::from(ms);
                        d.handle_timeout(t(now));
                    }
                    Step::Join => {
                        let _ = d.join(t(now));
                    }
                    Step::Send(c) => {
                        id += 1;
                        if d.send(id, 2, &[1, 2], c, t(now)).is_ok() {
                            accepted.push(id);
                        }
                    }
                }
                drain(&mut d, &mut ended);
            }
            // A silent modem from here on: every time-out fires.
            for _ in 0..50 {
                now += 60_000;
                d.handle_timeout(t(now));
                drain(&mut d, &mut ended);
            }
            for a in &accepted {
                prop_assert_eq!(ended.get(a).copied(), Some(1), "send {} ended {:?}", a, ended.get(a));
            }
            prop_assert_eq!(ended.len(), accepted.len());
        }
    }
}
