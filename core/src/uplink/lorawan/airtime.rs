//! Time on air and the airtime budget for EU868.
//!
//! Owns: the Semtech SX127x/SX126x time-on-air formula ([`time_on_air`]), the
//! EU868 data-rate table, the ETSI sub-bands, and [`Budget`], which decides
//! when an uplink may start.
//!
//! Invariants enforced by [`Budget::earliest`] (checked over 30 simulated
//! days in `tests/lorawan_budget.rs`):
//! - per sub-band, after a transmission of `T` the band stays closed until
//!   `start + T / duty` (the LoRaMAC off-time rule, which is what the modem
//!   itself enforces, so the modem never has to refuse us);
//! - per sub-band, the airtime in any sliding hour stays within
//!   `duty × 3600 s` (the ETSI observation window);
//! - the airtime in any sliding 24 h stays within the daily cap (TTN fair
//!   use: 30 s), and what classes other than alerts use in any 24 h stays
//!   within the share not reserved for alerts (so alerts always find at
//!   least the reserve);
//! - downlinks (a confirmed uplink's ack is one) in any sliding 24 h stay
//!   within the daily downlink cap: [`Budget::may_confirm`] says when an
//!   alert must go unconfirmed instead.
//!
//! The ledger outlives the process: [`Budget::ledger`] / [`Budget::restore`]
//! give it as plain data with wall-clock times (the shell keeps it in the
//! store's kv), so the sliding 24 h windows — the day boundary — continue
//! across restarts.
//!
//! Pure: time is passed in; no clock.

use std::collections::VecDeque;
use std::time::Duration;

use crate::model::{Class, Time};

/// LoRa channel bandwidth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bandwidth {
    Khz125,
    Khz250,
}

impl Bandwidth {
    pub const fn hz(self) -> u32 {
        match self {
            Bandwidth::Khz125 => 125_000,
            Bandwidth::Khz250 => 250_000,
        }
    }
}

/// A LoRa modulation setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Radio {
    /// Spreading factor 7–12.
    pub sf: u8,
    pub bw: Bandwidth,
}

/// LoRaWAN MAC overhead of an uplink without FOpts: MHDR 1 + FHDR 7 + FPort 1 + MIC 4.
pub const MAC_OVERHEAD: usize = 13;

/// EU868 data rates DR0–DR6 (LoRa only).
pub fn eu868_data_rate(dr: u8) -> Option<Radio> {
    let (sf, bw) = match dr {
        0 => (12, Bandwidth::Khz125),
        1 => (11, Bandwidth::Khz125),
        2 => (10, Bandwidth::Khz125),
        3 => (9, Bandwidth::Khz125),
        4 => (8, Bandwidth::Khz125),
        5 => (7, Bandwidth::Khz125),
        6 => (7, Bandwidth::Khz250),
        _ => return None,
    };
    Some(Radio { sf, bw })
}

/// Largest application payload (bytes) at an EU868 data rate, no repeater.
pub fn eu868_max_payload(dr: u8) -> usize {
    match dr {
        0..=2 => 51,
        3 => 115,
        _ => 222,
    }
}

/// Time on air of a LoRa frame with `phy_len` PHY payload bytes: preamble 8,
/// explicit header, CRC on, coding rate 4/5, low data rate optimisation when
/// the symbol time reaches 16 ms (SF11/SF12 at 125 kHz).
pub fn time_on_air(radio: Radio, phy_len: usize) -> Duration {
    let sf = i64::from(radio.sf.clamp(6, 12));
    let bw = i64::from(radio.bw.hz());
    // Symbol time in nanoseconds: 2^SF / BW.
    let t_sym_ns = (1i64 << sf) * 1_000_000_000 / bw;
    let de = i64::from(t_sym_ns >= 16_000_000);
    let pl = i64::try_from(phy_len).unwrap_or(i64::MAX / 16);
    let (crc, header_implicit, cr) = (1, 0, 1);
    let num = 8 * pl - 4 * sf + 28 + 16 * crc - 20 * header_implicit;
    let den = 4 * (sf - 2 * de);
    let blocks = if num > 0 { (num + den - 1) / den } else { 0 };
    let payload_symbols = 8 + blocks * (cr + 4);
    // Preamble: (8 + 4.25) symbols, kept in quarter symbols to stay integral.
    let total_quarter_symbols = (8 * 4 + 17) + payload_symbols * 4;
    let ns = total_quarter_symbols * t_sym_ns / 4;
    Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

/// Time on air of an uplink carrying `app_len` application bytes.
pub fn uplink_airtime(radio: Radio, app_len: usize) -> Duration {
    time_on_air(radio, MAC_OVERHEAD + app_len)
}

/// An ETSI EN 300 220 sub-band of EU868.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubBand {
    pub name: &'static str,
    pub lo_hz: u32,
    pub hi_hz: u32,
    /// Duty cycle as a fraction (0.01 = 1 %).
    pub duty: f64,
}

/// The EU868 sub-bands LoRaWAN uses (ETSI EN 300 220, as in LoRaMAC and
/// chirpstack-concentratord's `regulation/dutycycle.rs`).
pub const EU868_SUB_BANDS: [SubBand; 5] = [
    SubBand {
        name: "g",
        lo_hz: 863_000_000,
        hi_hz: 868_000_000,
        duty: 0.01,
    },
    SubBand {
        name: "g1",
        lo_hz: 868_000_000,
        hi_hz: 868_600_000,
        duty: 0.01,
    },
    SubBand {
        name: "g2",
        lo_hz: 868_700_000,
        hi_hz: 869_200_000,
        duty: 0.001,
    },
    SubBand {
        name: "g3",
        lo_hz: 869_400_000,
        hi_hz: 869_650_000,
        duty: 0.1,
    },
    SubBand {
        name: "g4",
        lo_hz: 869_700_000,
        hi_hz: 870_000_000,
        duty: 0.01,
    },
];

/// The three default EU868 channels (868.1/868.3/868.5 MHz) all sit in g1;
/// the modem picks among them, so the budget books every uplink against g1.
pub const DEFAULT_UPLINK_HZ: u32 = 868_100_000;

/// Index of the sub-band holding `hz`, if any.
pub fn sub_band_of(hz: u32) -> Option<usize> {
    EU868_SUB_BANDS
        .iter()
        .position(|b| hz >= b.lo_hz && hz < b.hi_hz)
}

/// Budget limits.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetLimits {
    /// Uplink airtime allowed in any 24 h.
    pub daily_airtime: Duration,
    /// Downlinks (including acks) allowed in any 24 h.
    pub daily_downlinks: u32,
    /// Share of `daily_airtime` (percent) only alerts may use.
    pub alert_reserve_percent: u8,
}

impl Default for BudgetLimits {
    fn default() -> Self {
        BudgetLimits {
            daily_airtime: Duration::from_secs(30),
            daily_downlinks: 10,
            alert_reserve_percent: 50,
        }
    }
}

/// Why an uplink can never be sent under the limits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BudgetError {
    #[error("uplink of {airtime:?} exceeds the {class} allowance of {allowance:?} per 24 h")]
    TooLong {
        class: Class,
        airtime: Duration,
        allowance: Duration,
    },
    #[error("frequency {0} Hz is outside every EU868 sub-band")]
    NoSubBand(u32),
}

const DAY: Duration = Duration::from_secs(86_400);
const HOUR: Duration = Duration::from_secs(3_600);

#[derive(Debug, Clone, Copy)]
struct Tx {
    start: Time,
    airtime: Duration,
    band: usize,
    alert: bool,
}

/// The ledger as data, for keeping across restarts: times in wall-clock
/// milliseconds, airtime in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ledger {
    /// `(start ms, airtime µs, sub-band index, booked as alert)`.
    pub uplinks: Vec<(i64, u64, u8, bool)>,
    /// Downlink times (ms).
    pub downlinks: Vec<i64>,
    /// Per sub-band: closed until (ms).
    pub band_off_until: Vec<i64>,
}

/// The airtime ledger and admission rule. Keeps 24 h of history.
#[derive(Debug, Clone)]
pub struct Budget {
    limits: BudgetLimits,
    txs: VecDeque<Tx>,
    downlinks: VecDeque<Time>,
    band_off_until: [Time; EU868_SUB_BANDS.len()],
}

impl Budget {
    pub fn new(limits: BudgetLimits) -> Self {
        Budget {
            limits,
            txs: VecDeque::new(),
            downlinks: VecDeque::new(),
            band_off_until: [Time(i64::MIN); EU868_SUB_BANDS.len()],
        }
    }

    pub fn limits(&self) -> &BudgetLimits {
        &self.limits
    }

    /// The ledger as data (see [`Budget::restore`]).
    pub fn ledger(&self) -> Ledger {
        Ledger {
            uplinks: self
                .txs
                .iter()
                .map(|t| {
                    let us = u64::try_from(t.airtime.as_micros()).unwrap_or(u64::MAX);
                    (t.start.0, us, u8::try_from(t.band).unwrap_or(1), t.alert)
                })
                .collect(),
            downlinks: self.downlinks.iter().map(|t| t.0).collect(),
            band_off_until: self.band_off_until.iter().map(|t| t.0).collect(),
        }
    }

    /// A budget that continues a saved ledger at `now`. Entries older than
    /// 24 h are dropped; a sub-band's off time is capped at one hour from
    /// `now` (the longest any single transmission can close it), so a wall
    /// clock that stepped back cannot close the radio for long.
    pub fn restore(limits: BudgetLimits, ledger: &Ledger, now: Time) -> Budget {
        let mut b = Budget::new(limits);
        let mut ups: Vec<_> = ledger.uplinks.clone();
        ups.sort_by_key(|u| u.0);
        for (start, us, band, alert) in ups {
            let start = Time(start);
            if now.since(start) >= DAY {
                continue;
            }
            b.txs.push_back(Tx {
                start,
                airtime: Duration::from_micros(us),
                band: usize::from(band).min(EU868_SUB_BANDS.len() - 1),
                alert,
            });
        }
        let mut downs: Vec<i64> = ledger.downlinks.clone();
        downs.sort_unstable();
        b.downlinks = downs
            .into_iter()
            .map(Time)
            .filter(|t| now.since(*t) < DAY)
            .collect();
        for (slot, off) in b.band_off_until.iter_mut().zip(&ledger.band_off_until) {
            *slot = Time(*off).min(now.saturating_add(HOUR));
        }
        b
    }

    /// The 24 h airtime a class may use.
    pub fn allowance(&self, class: Class) -> Duration {
        if class == Class::Alert {
            self.limits.daily_airtime
        } else {
            self.limits.daily_airtime * u32::from(100 - self.limits.alert_reserve_percent.min(100))
                / 100
        }
    }

    /// The earliest time ≥ `now` at which an uplink of `airtime` on `hz`
    /// may start, or why it never can.
    pub fn earliest(
        &self,
        class: Class,
        airtime: Duration,
        hz: u32,
        now: Time,
    ) -> Result<Time, BudgetError> {
        let band = sub_band_of(hz).ok_or(BudgetError::NoSubBand(hz))?;
        let allowance = self.allowance(class);
        let hourly = Duration::from_secs_f64(EU868_SUB_BANDS[band].duty * 3600.0);
        if airtime > allowance || airtime > hourly {
            return Err(BudgetError::TooLong {
                class,
                airtime,
                allowance: allowance.min(hourly),
            });
        }
        let cap = self.limits.daily_airtime;
        let mut t = now.max(self.band_off_until[band]);
        // Every window only relaxes as time goes on, so iterate to a fixpoint.
        loop {
            let own = if class == Class::Alert {
                t
            } else {
                // Other classes are held to their share, counting their own use.
                window_earliest(
                    self.txs.iter().copied().filter(|x| !x.alert),
                    DAY,
                    allowance,
                    airtime,
                    t,
                )
            };
            let d = window_earliest(self.txs.iter().copied(), DAY, cap, airtime, own);
            let h = window_earliest(
                self.txs.iter().copied().filter(|x| x.band == band),
                HOUR,
                hourly,
                airtime,
                d,
            );
            if h == t {
                return Ok(t);
            }
            t = h;
        }
    }

    /// Books a transmission of `class` that started at `start` (book a
    /// join as an alert: it is there to let alerts through).
    pub fn record_uplink(&mut self, class: Class, start: Time, airtime: Duration, hz: u32) {
        let band = sub_band_of(hz).unwrap_or(1);
        let duty = EU868_SUB_BANDS[band].duty;
        // Rounded up to the millisecond clock, so the off time is never short.
        let off_ns = airtime.as_secs_f64() / duty * 1e9;
        let off = Duration::from_millis((off_ns / 1e6).ceil() as u64);
        self.band_off_until[band] = self.band_off_until[band].max(start.saturating_add(off));
        self.txs.push_back(Tx {
            start,
            airtime,
            band,
            alert: class == Class::Alert,
        });
        self.prune(start);
    }

    /// Books a received downlink (an ack counts).
    pub fn record_downlink(&mut self, at: Time) {
        self.downlinks.push_back(at);
        self.prune(at);
    }

    /// Whether one more downlink (the ack of a confirmed uplink) fits in 24 h.
    pub fn may_confirm(&self, now: Time) -> bool {
        let n = self
            .downlinks
            .iter()
            .filter(|t| now.since(**t) < DAY)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX) < self.limits.daily_downlinks
    }

    /// Uplink airtime used in the 24 h before `now`.
    pub fn used_24h(&self, now: Time) -> Duration {
        self.txs
            .iter()
            .filter(|t| t.start <= now && now.since(t.start) < DAY)
            .map(|t| t.airtime)
            .sum()
    }

    /// Downlinks received in the 24 h before `now`.
    pub fn downlinks_24h(&self, now: Time) -> u32 {
        let n = self
            .downlinks
            .iter()
            .filter(|t| now.since(**t) < DAY)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    fn prune(&mut self, now: Time) {
        while self.txs.front().is_some_and(|t| now.since(t.start) >= DAY) {
            self.txs.pop_front();
        }
        while self.downlinks.front().is_some_and(|t| now.since(*t) >= DAY) {
            self.downlinks.pop_front();
        }
    }
}

/// Earliest `t ≥ from` such that the airtime of transmissions started in
/// `(t - window, t]` plus `airtime` stays within `allowance`.
fn window_earliest(
    txs: impl Iterator<Item = Tx> + Clone,
    window: Duration,
    allowance: Duration,
    airtime: Duration,
    from: Time,
) -> Time {
    let mut t = from;
    loop {
        let in_window = txs
            .clone()
            .filter(|x| x.start <= t && t.since(x.start) < window);
        let used: Duration = in_window.clone().map(|x| x.airtime).sum();
        if used + airtime <= allowance {
            return t;
        }
        // Wait until the oldest transmission in the window falls out of it.
        match in_window.map(|x| x.start).min() {
            Some(oldest) => t = oldest.saturating_add(window),
            None => return t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_ledger_keeps_the_day_window_and_the_band_off_time() {
        let mut b = Budget::new(BudgetLimits::default());
        let sf7 = eu868_data_rate(5).unwrap();
        let day = 86_400_000;
        // One uplink 23 h ago, one now; two downlinks.
        b.record_uplink(
            Class::Alert,
            Time(0),
            time_on_air(sf7, 20),
            DEFAULT_UPLINK_HZ,
        );
        let now = Time(23 * 3_600_000);
        b.record_uplink(Class::Status, now, time_on_air(sf7, 30), DEFAULT_UPLINK_HZ);
        b.record_downlink(Time(10));
        b.record_downlink(now);
        let json = serde_json::to_string(&b.ledger()).unwrap();
        let back: Ledger = serde_json::from_str(&json).unwrap();
        let r = Budget::restore(BudgetLimits::default(), &back, now);
        assert_eq!(r.used_24h(now), b.used_24h(now));
        assert_eq!(r.downlinks_24h(now), 2);
        let air = time_on_air(sf7, 20);
        assert_eq!(
            r.earliest(Class::Alert, air, DEFAULT_UPLINK_HZ, now),
            b.earliest(Class::Alert, air, DEFAULT_UPLINK_HZ, now),
            "the sub-band stays closed after a restart"
        );
        // An hour later the first uplink and downlink have left the window.
        let later = Time(day + 3_600_000);
        let r = Budget::restore(BudgetLimits::default(), &back, later);
        assert_eq!(r.downlinks_24h(later), 1);
        assert_eq!(r.used_24h(later), time_on_air(sf7, 30));
    }

    #[test]
    fn a_ledger_from_the_future_cannot_close_the_band_for_long() {
        let l = Ledger {
            uplinks: vec![],
            downlinks: vec![],
            band_off_until: vec![i64::MAX / 2; EU868_SUB_BANDS.len()],
        };
        let r = Budget::restore(BudgetLimits::default(), &l, Time(0));
        let sf7 = eu868_data_rate(5).unwrap();
        let t = r
            .earliest(
                Class::Alert,
                time_on_air(sf7, 17),
                DEFAULT_UPLINK_HZ,
                Time(0),
            )
            .unwrap();
        assert_eq!(t, Time(3_600_000));
    }

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1000.0
    }

    #[test]
    fn time_on_air_matches_the_semtech_calculator() {
        // 20-byte PHY payload (7 application bytes): Semtech LoRa calculator values.
        let sf7 = eu868_data_rate(5).unwrap();
        let sf12 = eu868_data_rate(0).unwrap();
        assert!((ms(time_on_air(sf7, 20)) - 56.576).abs() < 0.01);
        assert!((ms(time_on_air(sf12, 20)) - 1318.912).abs() < 0.01);
        // 51-byte payload at SF12 (64 PHY bytes), low data rate optimisation on.
        assert!((ms(time_on_air(sf12, 64)) - 2793.472).abs() < 0.01);
        // SF7 at 250 kHz is half the symbol time of SF7/125.
        let sf7w = eu868_data_rate(6).unwrap();
        assert!((ms(time_on_air(sf7w, 20)) - 28.288).abs() < 0.01);
    }

    #[test]
    fn data_rate_table_rejects_unknown_rates() {
        assert_eq!(eu868_data_rate(7), None);
        assert_eq!(eu868_max_payload(2), 51);
    }

    #[test]
    fn band_stays_closed_for_99_times_the_airtime_after_a_send() {
        let mut b = Budget::new(BudgetLimits::default());
        let at = Duration::from_millis(1000);
        b.record_uplink(Class::Alert, Time(0), at, DEFAULT_UPLINK_HZ);
        let t = b
            .earliest(Class::Alert, at, DEFAULT_UPLINK_HZ, Time(10))
            .unwrap();
        assert_eq!(t, Time(100_000));
        // Another sub-band (g3, 10 %) is free at once.
        assert_eq!(
            b.earliest(Class::Alert, at, 869_525_000, Time(10)).unwrap(),
            Time(10)
        );
    }

    #[test]
    fn daily_cap_defers_until_the_oldest_send_leaves_the_24h_window() {
        let limits = BudgetLimits {
            daily_airtime: Duration::from_secs(2),
            ..BudgetLimits::default()
        };
        let mut b = Budget::new(limits);
        b.record_uplink(
            Class::Alert,
            Time(0),
            Duration::from_millis(1500),
            869_525_000,
        );
        let t = b
            .earliest(
                Class::Alert,
                Duration::from_millis(600),
                869_525_000,
                Time::from_secs(60),
            )
            .unwrap();
        assert_eq!(t, Time::from_secs(86_400));
    }

    #[test]
    fn telemetry_cannot_eat_the_alert_reserve() {
        let mut b = Budget::new(BudgetLimits::default());
        b.record_uplink(
            Class::Telemetry,
            Time(0),
            Duration::from_secs(15),
            869_525_000,
        );
        let now = Time::from_secs(3_600 * 2);
        let tel = b
            .earliest(
                Class::Telemetry,
                Duration::from_millis(100),
                869_525_000,
                now,
            )
            .unwrap();
        assert_eq!(tel, Time::from_secs(86_400));
        let alert = b
            .earliest(Class::Alert, Duration::from_millis(100), 869_525_000, now)
            .unwrap();
        assert_eq!(alert, now);
    }

    #[test]
    fn an_uplink_longer_than_the_allowance_is_refused_not_deferred() {
        let b = Budget::new(BudgetLimits {
            daily_airtime: Duration::from_millis(500),
            ..BudgetLimits::default()
        });
        let e = b.earliest(
            Class::Alert,
            Duration::from_secs(1),
            DEFAULT_UPLINK_HZ,
            Time(0),
        );
        assert!(matches!(e, Err(BudgetError::TooLong { .. })));
        assert!(matches!(
            b.earliest(Class::Alert, Duration::from_millis(1), 915_000_000, Time(0)),
            Err(BudgetError::NoSubBand(915_000_000))
        ));
    }

    #[test]
    fn confirmation_stops_when_the_downlink_cap_is_reached() {
        let mut b = Budget::new(BudgetLimits::default());
        for i in 0..10 {
            assert!(b.may_confirm(Time::from_secs(i)));
            b.record_downlink(Time::from_secs(i));
        }
        assert!(!b.may_confirm(Time::from_secs(100)));
        assert!(b.may_confirm(Time::from_secs(86_400)));
    }

    proptest::proptest! {
        /// Whatever arrives, booking every uplink at `earliest` keeps the
        /// 24 h cap, the class share and the hourly duty cycle.
        #[test]
        fn uplinks_booked_at_earliest_never_break_a_limit(
            arrivals in proptest::collection::vec((0i64..3_600_000, 0usize..52, 0u8..3, 0u8..6), 1..120)
        ) {
            let mut b = Budget::new(BudgetLimits::default());
            let mut now = Time(0);
            let mut log: Vec<(Time, Duration, bool)> = Vec::new();
            for (gap, len, class, dr) in arrivals {
                now = now.saturating_add(Duration::from_millis(gap as u64));
                let class = Class::from_code(class).unwrap_or(Class::Alert);
                let air = uplink_airtime(eu868_data_rate(dr).unwrap(), len);
                if let Ok(t) = b.earliest(class, air, DEFAULT_UPLINK_HZ, now) {
                    proptest::prop_assert!(t >= now);
                    b.record_uplink(class, t, air, DEFAULT_UPLINK_HZ);
                    log.push((t, air, class == Class::Alert));
                    now = t;
                }
            }
            for (t, _, _) in &log {
                let within = |w: i64| log.iter().filter(move |(s, _, _)| s <= t && t.0 - s.0 < w);
                let day: Duration = within(86_400_000).map(|x| x.1).sum();
                let other: Duration = within(86_400_000).filter(|x| !x.2).map(|x| x.1).sum();
                let hour: Duration = within(3_600_000).map(|x| x.1).sum();
                proptest::prop_assert!(day <= Duration::from_secs(30));
                proptest::prop_assert!(other <= Duration::from_secs(15));
                proptest::prop_assert!(hour <= Duration::from_secs(36));
            }
        }
    }
}
