//! Daily windows in local wall-clock time (`"23:00-06:00"`), evaluated in a
//! configured IANA time zone.
//!
//! Invariants:
//! - a window whose end is not after its start crosses midnight (`23:00-06:00`
//!   runs from 23:00 one day to 06:00 the next); `start == end` is refused at
//!   parse time; `24:00` is allowed as an end;
//! - *membership* ([`Window::contains`]) is by wall clock: on the autumn
//!   night the repeated hour 01:00–02:00 is inside `23:00-06:00` twice;
//! - *instances* ([`Window::instance_at_or_after`]) are real instants: the
//!   wall-clock edges are resolved with jiff's "compatible" rule (a time in
//!   the spring gap moves forward, a time in the autumn fold takes the first
//!   occurrence), so a `23:00-06:00` instance lasts 6 h on the spring night
//!   and 8 h on the autumn night;
//! - nothing here reads the clock; times outside jiff's range give `None`.

use std::fmt;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::Time;

const DAY: u32 = 86_400;

/// A daily window `HH:MM-HH:MM` in local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// Seconds after local midnight, `0..86400`.
    pub start: u32,
    /// Seconds after local midnight, `1..=86400`.
    pub end: u32,
}

impl Window {
    pub fn parse(s: &str) -> Result<Window, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?} is not a window like \"23:00-06:00\""))?;
        let start = hhmm(a.trim()).ok_or_else(|| format!("{a:?} is not a time like 07:30"))?;
        let end = hhmm(b.trim()).ok_or_else(|| format!("{b:?} is not a time like 07:30"))?;
        if start >= DAY {
            return Err(format!("window {s:?} cannot start at 24:00"));
        }
        if start == end {
            return Err(format!("window {s:?} is empty (start equals end)"));
        }
        Ok(Window { start, end })
    }

    pub fn crosses_midnight(&self) -> bool {
        self.end <= self.start
    }

    /// Is the local wall-clock time of `t` inside the window?
    pub fn contains(&self, tz: &TimeZone, t: Time) -> bool {
        match local(tz, t) {
            Some(dt) => {
                let s = secs_of_day(dt);
                if self.crosses_midnight() {
                    s >= self.start || s < self.end
                } else {
                    s >= self.start && s < self.end
                }
            }
            None => false,
        }
    }

    /// The instance `[start, end)` containing `t`, or else the next one.
    pub fn instance_at_or_after(&self, tz: &TimeZone, t: Time) -> Option<(Time, Time)> {
        let d = local(tz, t)?.date();
        let mut day = d.yesterday().ok()?;
        for _ in 0..4 {
            if let Some((s, e)) = self.instance_on(tz, day)
                && e > t
            {
                return Some((s, e));
            }
            day = day.tomorrow().ok()?;
        }
        None
    }

    /// The instance that starts on local date `d` (it may end the next day).
    fn instance_on(&self, tz: &TimeZone, d: Date) -> Option<(Time, Time)> {
        let s = at_secs(tz, d, self.start)?;
        let end_day = if self.crosses_midnight() {
            d.tomorrow().ok()?
        } else {
            d
        };
        let e = at_secs(tz, end_day, self.end)?;
        (e > s).then_some((s, e))
    }

    /// When, after `from`, `need` of in-window time has accumulated (used by
    /// inactivity rules that only count waking hours).
    pub fn after_in_window(&self, tz: &TimeZone, from: Time, need: i64) -> Option<Time> {
        let mut t = from;
        let mut remaining = need.max(0);
        // Bounded: a window of at least one minute a day consumes any
        // configurable duration (≤ 400 days) well within this many steps.
        for _ in 0..(400 * 2) {
            let (s, e) = self.instance_at_or_after(tz, t)?;
            let s = s.max(t);
            let len = e.0 - s.0;
            if len >= remaining {
                return Some(Time(s.0 + remaining));
            }
            remaining -= len;
            t = e;
        }
        None
    }
}

/// Local wall-clock seconds after midnight of `t`.
pub fn local_secs(tz: &TimeZone, t: Time) -> Option<u32> {
    local(tz, t).map(secs_of_day)
}

/// The instant of local date `d` plus `secs` of wall-clock time (may spill
/// into the next days), resolved with the "compatible" rule.
pub fn at_secs(tz: &TimeZone, d: Date, secs: u32) -> Option<Time> {
    let dt: DateTime = d.at(0, 0, 0, 0);
    let dt = dt.checked_add(Span::new().seconds(i64::from(secs))).ok()?;
    let ts = tz.to_ambiguous_timestamp(dt).compatible().ok()?;
    Some(Time(ts.as_millisecond()))
}

/// The local date of `t`.
pub fn local_date(tz: &TimeZone, t: Time) -> Option<Date> {
    local(tz, t).map(|dt| dt.date())
}

fn local(tz: &TimeZone, t: Time) -> Option<DateTime> {
    let ts = Timestamp::from_millisecond(t.0).ok()?;
    Some(tz.to_datetime(ts))
}

fn secs_of_day(dt: DateTime) -> u32 {
    let tm = dt.time();
    u32::try_from(
        i32::from(tm.hour()) * 3600 + i32::from(tm.minute()) * 60 + i32::from(tm.second()),
    )
    .unwrap_or(0)
}

/// "07:30" → seconds after midnight (up to 24:00).
pub fn parse_hhmm(s: &str) -> Option<u32> {
    hhmm(s)
}

fn hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 3600 + m * 60)
}

/// Formats seconds after midnight as `HH:MM`.
pub fn fmt_hhmm(secs: u32) -> String {
    format!("{:02}:{:02}", secs / 3600, (secs % 3600) / 60)
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", fmt_hhmm(self.start), fmt_hhmm(self.end))
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Window::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn london() -> TimeZone {
        TimeZone::get("Europe/London").unwrap()
    }
    fn t(s: &str) -> Time {
        Time::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn parses_windows_and_refuses_nonsense() {
        let w = Window::parse("23:00-06:00").unwrap();
        assert!(w.crosses_midnight());
        assert_eq!(w.to_string(), "23:00-06:00");
        assert_eq!(Window::parse("07:00-24:00").unwrap().end, DAY);
        for bad in [
            "",
            "7-11",
            "07:00",
            "25:00-01:00",
            "07:60-08:00",
            "08:00-08:00",
            "24:00-01:00",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn midnight_crossing_window_contains_both_sides_of_midnight() {
        let w = Window::parse("23:00-06:00").unwrap();
        let tz = london();
        assert!(w.contains(&tz, t("2026-11-22T23:30:00Z")));
        assert!(w.contains(&tz, t("2026-11-23T05:59:00Z")));
        assert!(!w.contains(&tz, t("2026-11-23T06:00:00Z")));
        assert!(!w.contains(&tz, t("2026-11-23T22:59:00Z")));
    }

    #[test]
    fn summer_time_shifts_the_window_by_an_hour_in_utc() {
        let w = Window::parse("23:00-06:00").unwrap();
        let tz = london();
        // 22:30Z in July is 23:30 BST.
        assert!(w.contains(&tz, t("2026-07-01T22:30:00Z")));
        assert!(!w.contains(&tz, t("2026-07-02T05:30:00Z")));
    }

    #[test]
    fn spring_forward_night_instance_lasts_six_hours() {
        // 2026-03-29: clocks go 01:00 GMT -> 02:00 BST.
        let w = Window::parse("23:00-06:00").unwrap();
        let (s, e) = w
            .instance_at_or_after(&london(), t("2026-03-29T00:30:00Z"))
            .unwrap();
        assert_eq!(s, t("2026-03-28T23:00:00Z"));
        assert_eq!(e, t("2026-03-29T05:00:00Z"));
    }

    #[test]
    fn fall_back_night_instance_lasts_eight_hours() {
        // 2026-10-25: clocks go 02:00 BST -> 01:00 GMT.
        let w = Window::parse("23:00-06:00").unwrap();
        let (s, e) = w
            .instance_at_or_after(&london(), t("2026-10-25T01:30:00Z"))
            .unwrap();
        assert_eq!(s, t("2026-10-24T22:00:00Z"));
        assert_eq!(e, t("2026-10-25T06:00:00Z"));
        // Both occurrences of 01:30 local are inside.
        assert!(w.contains(&london(), t("2026-10-25T00:30:00Z")));
        assert!(w.contains(&london(), t("2026-10-25T01:30:00Z")));
    }

    #[test]
    fn window_edge_in_the_spring_gap_moves_forward() {
        let w = Window::parse("01:30-03:00").unwrap();
        let (s, e) = w
            .instance_at_or_after(&london(), t("2026-03-29T00:00:00Z"))
            .unwrap();
        // 01:30 does not exist; compatible resolution gives 02:30 BST = 01:30Z.
        assert_eq!(s, t("2026-03-29T01:30:00Z"));
        assert_eq!(e, t("2026-03-29T02:00:00Z"));
    }

    #[test]
    fn in_window_time_skips_the_hours_outside() {
        let w = Window::parse("07:00-22:00").unwrap();
        let tz = london();
        // Last motion 21:00; 4 h of waking time: 1 h tonight, 3 h tomorrow.
        let at = w
            .after_in_window(&tz, t("2026-11-22T21:00:00Z"), 4 * 3_600_000)
            .unwrap();
        assert_eq!(at, t("2026-11-23T10:00:00Z"));
        // Starting at night counts from 07:00.
        let at = w
            .after_in_window(&tz, t("2026-11-23T02:00:00Z"), 3_600_000)
            .unwrap();
        assert_eq!(at, t("2026-11-23T08:00:00Z"));
    }
}
