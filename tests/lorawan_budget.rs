//! 30 simulated days of a busy home through the LoRaWAN policy core on a
//! virtual clock: the uplink airtime never exceeds the 30 s / 24 h cap, the
//! 1 % duty cycle of the g1 sub-band (off time and hourly window) holds, the
//! downlink cap (10 / 24 h, acks included) holds, and alerts go first.
//!
//! The modem is a scripted RAK3172 that answers at once and loses a share
//! of uplinks; every transmission it is asked for is logged and checked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use carebridge::model::{Class, Severity, Time};
use carebridge::uplink::lorawan::airtime::{
    BudgetLimits, Radio, eu868_data_rate, time_on_air, uplink_airtime,
};
use carebridge::uplink::lorawan::modem::{Driver, ModemSettings, Timeouts};
use carebridge::uplink::lorawan::policy::{Core, CoreConfig, CoreEvent, Delivery, Message};
use carebridge::uplink::lorawan::rak3172::Rak3172;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The busy home's messages, sorted by time.
fn workload(days: i64, alerts_per_day: u64, rng: &mut Rng) -> Vec<(Time, Message)> {
    let mut v = Vec::new();
    for d in 0..days {
        let day0 = d * DAY;
        for _ in 0..alerts_per_day {
            let len = if rng.below(2) == 0 { 4 } else { 6 };
            v.push((Time(day0 + rng.below(DAY as u64) as i64), alert(len)));
        }
        // A burst: a fall, then the panic button, then the door, within two minutes.
        let b = day0 + rng.below(DAY as u64 - 120_000) as i64;
        for i in 0..6 {
            v.push((Time(b + i * 20_000), alert(7)));
        }
        v.push((
            Time(day0),
            Message {
                class: Class::Status,
                severity: Severity::Info,
                payload: vec![0; 28],
                confirmed: false,
            },
        ));
        for h in (0..24).step_by(2) {
            let t = Time(day0 + h * HOUR + 60_000);
            v.push((
                t,
                Message {
                    class: Class::Telemetry,
                    severity: Severity::Info,
                    payload: vec![0; 47],
                    confirmed: false,
                },
            ));
        }
    }
    v.sort_by_key(|(t, _)| *t);
    v
}

fn alert(len: usize) -> Message {
    Message {
        class: Class::Alert,
        severity: Severity::Urgent,
        payload: vec![0x21; len],
        confirmed: true,
    }
}

#[derive(Debug, Default)]
struct Outcome {
    /// (start, airtime) of every transmission the modem was asked for.
    txs: Vec<(Time, Duration)>,
    acks: Vec<Time>,
    delivered: [u32; 3],
    unconfirmed_alerts: u32,
    failed: [u32; 3],
    alert_latency_max: Duration,
    alert_latency_sum: Duration,
}

fn simulate(dr: u8, days: i64, alerts_per_day: u64, loss_percent: u64, reserve: u8) -> Outcome {
    let radio: Radio = eu868_data_rate(dr).expect("dr");
    let settings = ModemSettings {
        region: "EU868".into(),
        dev_eui: [1; 8],
        join_eui: [2; 8],
        app_key: [3; 16],
        data_rate: dr,
        adr: false,
        retransmissions: 0,
    };
    let mut t = Time(0);
    let driver = Driver::new(Box::new(Rak3172), settings, Timeouts::default(), t);
    let cfg = CoreConfig {
        radio,
        data_rate: dr,
        limits: BudgetLimits {
            alert_reserve_percent: reserve,
            ..BudgetLimits::default()
        },
        ports: [10, 11, 12],
        confirmed_retries: 2,
        join_backoff_min: Duration::from_secs(15),
        join_backoff_max: Duration::from_secs(3600),
        retransmissions: 0,
        info_max_wait: Duration::from_secs(600),
    };
    let mut core = Core::new(driver, cfg, t);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let work = workload(days, alerts_per_day, &mut rng);
    let mut submitted_at = std::collections::HashMap::new();
    let mut classes = std::collections::HashMap::new();
    let mut next = 0usize;
    let mut out = Outcome::default();
    let mut confirm = false;
    let end = Time(days * DAY);
    let mut stuck = 0;
    while t < end {
        let nm = work.get(next).map(|(t, _)| *t);
        let nd = core.next_deadline();
        let nt = [nm, nd, Some(end)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end)
            .max(t);
        stuck = if nt == t { stuck + 1 } else { 0 };
        assert!(stuck < 10_000, "no progress at {t:?}");
        t = nt;
        while work.get(next).is_some_and(|(wt, _)| *wt <= t) {
            let (_, m) = work[next].clone();
            let id = next as u64;
            submitted_at.insert(id, t);
            classes.insert(id, m.class);
            core.submit(id, m, t);
            next += 1;
        }
        if nd.is_some_and(|d| d <= t) {
            core.handle_timeout(t);
        }
        // The scripted modem.
        while let Some(cmd) = core.poll_transmit() {
            if cmd == "ATZ" {
                continue;
            }
            core.handle_line("OK", t);
            if cmd.starts_with("AT+JOIN") {
                out.txs.push((t, time_on_air(radio, 23)));
                core.handle_line("+EVT:JOINED", t);
            } else if let Some(v) = cmd.strip_prefix("AT+CFM=") {
                confirm = v == "1";
            } else if let Some(v) = cmd.strip_prefix("AT+SEND=") {
                let len = v.split_once(':').map_or(0, |(_, h)| h.len() / 2);
                out.txs.push((t, uplink_airtime(radio, len)));
                let lost = rng.below(100) < loss_percent;
                let l = match (confirm, lost) {
                    (false, _) => "+EVT:TX_DONE",
                    (true, false) => {
                        out.acks.push(t);
                        "+EVT:SEND_CONFIRMED_OK"
                    }
                    (true, true) => "+EVT:SEND_CONFIRMED_FAILED(4)",
                };
                core.handle_line(l, t);
            }
        }
        while let Some(ev) = core.poll_event() {
            if let CoreEvent::Delivered { id, delivery } = ev {
                let c = classes[&id] as usize;
                match delivery {
                    Delivery::Failed(_) => out.failed[c] += 1,
                    d => {
                        out.delivered[c] += 1;
                        if c == 0 {
                            if d == Delivery::SentUnconfirmed {
                                out.unconfirmed_alerts += 1;
                            }
                            let lat = t.since(submitted_at[&id]);
                            out.alert_latency_max = out.alert_latency_max.max(lat);
                            out.alert_latency_sum += lat;
                        }
                    }
                }
            }
        }
    }
    out
}

fn check_limits(o: &Outcome) {
    let cap = Duration::from_secs(30);
    for (i, (start, air)) in o.txs.iter().enumerate() {
        // Off time: the next transmission in g1 starts ≥ 100× airtime later.
        if let Some((next, _)) = o.txs.get(i + 1) {
            assert!(
                next.since(*start) >= *air * 100,
                "off time violated at {start:?}"
            );
        }
        // Sliding 24 h and 1 h windows ending at each start.
        let day: Duration = o
            .txs
            .iter()
            .filter(|(s, _)| s <= start && start.since(*s).as_millis() < DAY as u128)
            .map(|(_, a)| *a)
            .sum();
        assert!(day <= cap, "{day:?} in the 24 h before {start:?}");
        let hour: Duration = o
            .txs
            .iter()
            .filter(|(s, _)| s <= start && start.since(*s).as_millis() < HOUR as u128)
            .map(|(_, a)| *a)
            .sum();
        assert!(
            hour <= Duration::from_secs(36),
            "{hour:?} in the hour before {start:?}"
        );
    }
    for a in &o.acks {
        let n = o
            .acks
            .iter()
            .filter(|b| *b <= a && a.since(**b).as_millis() < DAY as u128)
            .count();
        assert!(n <= 10, "{n} downlinks in the 24 h before {a:?}");
    }
}

#[test]
fn busy_home_at_sf7_for_30_days_stays_within_every_limit_and_delivers_every_alert() {
    let o = simulate(5, 30, 36, 5, 50);
    check_limits(&o);
    let alerts = 30 * (36 + 6);
    // With 5 % loss an alert fails only when all 3 attempts are lost (the
    // outbox keeps it and hands it over again).
    assert_eq!(o.failed[0] + o.delivered[0], alerts);
    assert!(o.failed[0] <= 3, "{}", o.failed[0]);
    let used: Duration = o.txs.iter().map(|(_, a)| *a).sum();
    println!(
        "FIGURE SF7 30 days: {} alerts delivered, {} failed after 3 lost attempts ({} unconfirmed past the downlink cap), max latency {:?}, mean {:?}; summaries {}/{}; telemetry batches {}/{}; airtime {:.1} s/day",
        o.delivered[0],
        o.failed[0],
        o.unconfirmed_alerts,
        o.alert_latency_max,
        o.alert_latency_sum / o.delivered[0],
        o.delivered[1],
        30,
        o.delivered[2],
        30 * 12,
        used.as_secs_f64() / 30.0
    );
    assert!(o.delivered[1] >= 29, "summaries fit when alerts leave room");
}

#[test]
fn busy_home_at_sf12_for_30_days_stays_within_every_limit_with_alerts_first() {
    // At SF12 an alert costs 1.3 s and only 22 fit in any 24 h: this home
    // (14 alerts a day on average, in bursts) keeps 80 % of the budget for
    // alerts. A 24 h window that happens to hold more alerts than fit makes
    // the later ones wait for the window to slide, never past it.
    let o = simulate(0, 30, 8, 5, 80);
    check_limits(&o);
    assert_eq!(o.failed[0] + o.delivered[0], 30 * 14);
    assert!(
        o.alert_latency_max < Duration::from_secs(86_400),
        "{:?}",
        o.alert_latency_max
    );
    let used: Duration = o.txs.iter().map(|(_, a)| *a).sum();
    println!(
        "FIGURE SF12 30 days (alert reserve 80 %): {} alerts delivered, {} failed, max latency {:?}, mean {:?}; summaries {}/30; telemetry batches {}/360 (the rest wait: budget); airtime {:.1} s/day",
        o.delivered[0],
        o.failed[0],
        o.alert_latency_max,
        o.alert_latency_sum / o.delivered[0],
        o.delivered[1],
        o.delivered[2],
        used.as_secs_f64() / 30.0
    );
}

#[test]
fn alerts_per_day_that_fit_30_s_of_airtime() {
    for (dr, name) in [(5u8, "SF7"), (0, "SF12")] {
        let r = eu868_data_rate(dr).expect("dr");
        for len in [4usize, 7] {
            let air = uplink_airtime(r, len);
            let n = (30.0 / air.as_secs_f64()).floor();
            println!(
                "FIGURE {name}: a {len}-byte alert takes {:.1} ms on air; {n} fit in 30 s",
                air.as_secs_f64() * 1000.0
            );
        }
    }
    let sf12 = eu868_data_rate(0).expect("dr");
    assert_eq!((30.0 / uplink_airtime(sf12, 7).as_secs_f64()).floor(), 22.0);
}
