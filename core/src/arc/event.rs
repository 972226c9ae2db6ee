//! What an alert says to an alarm receiving centre: its event class, the
//! Contact ID and SIA DCS codes of that class, and the message bodies.
//!
//! | class            | Contact ID | SIA DCS (alarm / restore) | default for                      |
//! |------------------|-----------:|---------------------------|----------------------------------|
//! | `panic`          | 101        | QA / QH                   | reading kind `panic`             |
//! | `medical`        | 100        | MA / MH                   | (per rule)                       |
//! | `fall`           | 100        | MA / MH                   | reading kind `fall`              |
//! | `no_activity`    | 102        | MA / MH                   | rule kinds `inactivity`, `absence`, `routine` |
//! | `fire`           | 110        | FA / FH                   | (per rule)                       |
//! | `smoke`          | 111        | FA / FH                   | reading kind `smoke`             |
//! | `co`             | 162        | GA / GH                   | reading kind `co`                |
//! | `water_leak`     | 154        | WA / WH                   | reading kind `water_leak`        |
//! | `low_battery`    | 384        | XT / XR                   | rule kind `low_battery`, kinds `battery`, `battery_low` |
//! | `gateway_battery`| 302        | YT / YR                   | (per rule)                       |
//! | `silent_device`  | 381        | BZ / BJ                   | rule kind `silent`               |
//! | `tamper`         | 137        | TA / TR                   | reading kind `tamper`            |
//! | `periodic_test`  | 602        | RP / RP                   | the supervision test report      |
//! | `manual_test`    | 601        | RX / RX                   | "send test signal", `cmd/arc_test` |
//! | `other`          | 150        | UA / UR                   | any other **urgent** alert       |
//!
//! Contact ID event qualifier: 1 for a new event, 3 for a restoral (an
//! alert's `cleared`); partition is `[arc] partition`; zone (3 digits) is
//! the device's zone number. SIA DCS: `Nri<zone>/<code><zone:03>` — the
//! zone both as `ri` (where pysiaalarm and Home Assistant read it) and as
//! the code's address field (where DC-03 puts it).

use serde::{Deserialize, Serialize};

use crate::model::{AlertState, Kind, Severity};

/// The kinds of event carebridge reports to an ARC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum EventClass {
    Panic,
    Medical,
    Fall,
    NoActivity,
    Fire,
    Smoke,
    #[serde(rename = "co")]
    CarbonMonoxide,
    WaterLeak,
    LowBattery,
    GatewayBattery,
    SilentDevice,
    Tamper,
    PeriodicTest,
    ManualTest,
    Other,
}

impl EventClass {
    pub const ALL: &'static [EventClass] = &[
        EventClass::Panic,
        EventClass::Medical,
        EventClass::Fall,
        EventClass::NoActivity,
        EventClass::Fire,
        EventClass::Smoke,
        EventClass::CarbonMonoxide,
        EventClass::WaterLeak,
        EventClass::LowBattery,
        EventClass::GatewayBattery,
        EventClass::SilentDevice,
        EventClass::Tamper,
        EventClass::PeriodicTest,
        EventClass::ManualTest,
        EventClass::Other,
    ];

    /// The Contact ID event code (3 digits).
    pub const fn cid(self) -> u16 {
        match self {
            EventClass::Panic => 101,
            EventClass::Medical | EventClass::Fall => 100,
            EventClass::NoActivity => 102,
            EventClass::Fire => 110,
            EventClass::Smoke => 111,
            EventClass::CarbonMonoxide => 162,
            EventClass::WaterLeak => 154,
            EventClass::LowBattery => 384,
            EventClass::GatewayBattery => 302,
            EventClass::SilentDevice => 381,
            EventClass::Tamper => 137,
            EventClass::PeriodicTest => 602,
            EventClass::ManualTest => 601,
            EventClass::Other => 150,
        }
    }

    /// The SIA DCS event code: (alarm, restore).
    pub const fn sia(self) -> (&'static str, &'static str) {
        match self {
            EventClass::Panic => ("QA", "QH"),
            EventClass::Medical | EventClass::Fall | EventClass::NoActivity => ("MA", "MH"),
            EventClass::Fire | EventClass::Smoke => ("FA", "FH"),
            EventClass::CarbonMonoxide => ("GA", "GH"),
            EventClass::WaterLeak => ("WA", "WH"),
            EventClass::LowBattery => ("XT", "XR"),
            EventClass::GatewayBattery => ("YT", "YR"),
            EventClass::SilentDevice => ("BZ", "BJ"),
            EventClass::Tamper => ("TA", "TR"),
            EventClass::PeriodicTest => ("RP", "RP"),
            EventClass::ManualTest => ("RX", "RX"),
            EventClass::Other => ("UA", "UR"),
        }
    }

    /// The snake_case name used in config.
    pub fn as_str(self) -> &'static str {
        match self {
            EventClass::Panic => "panic",
            EventClass::Medical => "medical",
            EventClass::Fall => "fall",
            EventClass::NoActivity => "no_activity",
            EventClass::Fire => "fire",
            EventClass::Smoke => "smoke",
            EventClass::CarbonMonoxide => "co",
            EventClass::WaterLeak => "water_leak",
            EventClass::LowBattery => "low_battery",
            EventClass::GatewayBattery => "gateway_battery",
            EventClass::SilentDevice => "silent_device",
            EventClass::Tamper => "tamper",
            EventClass::PeriodicTest => "periodic_test",
            EventClass::ManualTest => "manual_test",
            EventClass::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<EventClass> {
        EventClass::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

/// The default class of an alert from its rule's kind (when the caller
/// knows it: `silent`, `inactivity`, …), its reading kind and severity.
/// `None`: not for the ARC (a non-urgent alert with no ARC meaning).
pub fn classify(
    rule_kind: Option<&str>,
    kind: Option<Kind>,
    severity: Severity,
) -> Option<EventClass> {
    match rule_kind {
        Some("silent") => return Some(EventClass::SilentDevice),
        Some("inactivity" | "absence" | "routine") => return Some(EventClass::NoActivity),
        Some("low_battery") => return Some(EventClass::LowBattery),
        _ => {}
    }
    let by_kind = match kind {
        Some(Kind::Panic) => Some(EventClass::Panic),
        Some(Kind::Fall) => Some(EventClass::Fall),
        Some(Kind::Smoke) => Some(EventClass::Smoke),
        Some(Kind::CarbonMonoxide) => Some(EventClass::CarbonMonoxide),
        Some(Kind::WaterLeak) => Some(EventClass::WaterLeak),
        Some(Kind::Battery | Kind::BatteryLow) => Some(EventClass::LowBattery),
        Some(Kind::Tamper) => Some(EventClass::Tamper),
        _ => None,
    };
    by_kind.or((severity == Severity::Urgent).then_some(EventClass::Other))
}

/// Which body format to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `ADM-CID`: Ademco Contact ID.
    #[default]
    ContactId,
    /// `SIA-DCS`.
    Sia,
}

/// One event for the ARC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub class: EventClass,
    pub state: AlertState,
    /// 0–99.
    pub partition: u8,
    /// 0–999 (0: the gateway itself).
    pub zone: u16,
}

impl Event {
    /// The body between `[` and `]`, for `account`.
    pub fn body(&self, format: Format, account: &str) -> String {
        let zone = self.zone.min(999);
        match format {
            Format::ContactId => {
                let q = match self.state {
                    AlertState::Raised => 1,
                    AlertState::Cleared => 3,
                };
                format!(
                    "#{account}|{q}{:03} {:02} {zone:03}",
                    self.class.cid(),
                    self.partition.min(99)
                )
            }
            Format::Sia => {
                let (alarm, restore) = self.class.sia();
                let code = match self.state {
                    AlertState::Raised => alarm,
                    AlertState::Cleared => restore,
                };
                format!("#{account}|Nri{zone}/{code}{zone:03}")
            }
        }
    }

    /// The message type token of `format`.
    pub fn msg_type(format: Format) -> super::frame::MsgType {
        match format {
            Format::ContactId => super::frame::MsgType::AdmCid,
            Format::Sia => super::frame::MsgType::SiaDcs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_is_contact_id_1101_and_its_clear_3101() {
        let mut e = Event {
            class: EventClass::Panic,
            state: AlertState::Raised,
            partition: 1,
            zone: 7,
        };
        assert_eq!(e.body(Format::ContactId, "1234"), "#1234|1101 01 007");
        assert_eq!(e.body(Format::Sia, "1234"), "#1234|Nri7/QA007");
        e.state = AlertState::Cleared;
        assert_eq!(e.body(Format::ContactId, "1234"), "#1234|3101 01 007");
        assert_eq!(e.body(Format::Sia, "1234"), "#1234|Nri7/QH007");
    }

    #[test]
    fn alerts_classify_by_rule_kind_then_reading_kind_then_urgency() {
        use Severity::*;
        assert_eq!(
            classify(Some("silent"), Some(Kind::Motion), Warning),
            Some(EventClass::SilentDevice)
        );
        assert_eq!(
            classify(None, Some(Kind::WaterLeak), Warning),
            Some(EventClass::WaterLeak)
        );
        assert_eq!(
            classify(None, Some(Kind::Contact), Urgent),
            Some(EventClass::Other)
        );
        assert_eq!(classify(None, Some(Kind::Temperature), Warning), None);
        assert_eq!(
            classify(Some("inactivity"), None, Urgent),
            Some(EventClass::NoActivity)
        );
    }

    #[test]
    fn every_class_round_trips_its_config_name() {
        for c in EventClass::ALL {
            assert_eq!(EventClass::parse(c.as_str()), Some(*c));
            let (a, r) = c.sia();
            assert_eq!((a.len(), r.len()), (2, 2));
            assert!(c.cid() < 1000);
        }
    }
}
