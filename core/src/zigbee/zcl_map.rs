//! What ZCL attributes and IAS zone notifications mean for carebridge:
//! cluster + attribute (or zone type + status bits) → [`Reading`]s.
//!
//! Invariants: every reading produced has a finite value; invalid-value
//! sentinels (0x8000 for temperature, 0xFFFF for humidity, 0xFF for battery)
//! produce nothing; an unknown cluster or attribute produces nothing.

use super::zcl::{Attr, Message};
use crate::model::{DeviceId, Kind, Reading, Time};

pub mod cluster {
    pub const BASIC: u16 = 0x0000;
    pub const POWER_CFG: u16 = 0x0001;
    pub const ON_OFF: u16 = 0x0006;
    pub const LEVEL: u16 = 0x0008;
    pub const MULTISTATE_INPUT: u16 = 0x0012;
    pub const ILLUMINANCE: u16 = 0x0400;
    pub const TEMPERATURE: u16 = 0x0402;
    pub const PRESSURE: u16 = 0x0403;
    pub const HUMIDITY: u16 = 0x0405;
    pub const OCCUPANCY: u16 = 0x0406;
    pub const IAS_ZONE: u16 = 0x0500;
    pub const IAS_ACE: u16 = 0x0501;
    pub const METERING: u16 = 0x0702;
    pub const ELECTRICAL: u16 = 0x0B04;
}

/// IAS zone types (attribute 0x0001 of cluster 0x0500).
pub mod zone {
    pub const MOTION: u16 = 0x000D;
    pub const CONTACT: u16 = 0x0015;
    pub const FIRE: u16 = 0x0028;
    pub const WATER: u16 = 0x002A;
    pub const CO: u16 = 0x002B;
    pub const PERSONAL_EMERGENCY: u16 = 0x002C;
    pub const VIBRATION: u16 = 0x002D;
    /// A siren / strobe (IAS WD): no reading of its own.
    pub const WARNING_DEVICE: u16 = 0x0225;
}

/// The Zigbee device id carebridge uses: `zb-` and 16 lower-case hex digits.
pub fn device_id(ieee: u64) -> DeviceId {
    // Always 19 characters of [a-z0-9-], so `new` cannot fail; the parse of a
    // literal is the non-panicking fallback the type system asks for.
    DeviceId::new(&format!("zb-{ieee:016x}"))
        .or_else(|_| "zb-0000000000000000".parse())
        .unwrap_or_else(|_| device_id(0))
}

/// The IEEE address in a Zigbee device id (`zb-` and 16 hex digits, as
/// [`device_id`] makes them); `None` for any other id.
pub fn ieee_of(id: &DeviceId) -> Option<u64> {
    let hex = id.as_str().strip_prefix("zb-")?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The kind an IAS zone's alarm1 bit means, by zone type. A vibration
/// zone is treated as a fall detector when `vibration_is_fall`.
pub fn zone_kind(zone_type: u16, vibration_is_fall: bool) -> Option<Kind> {
    Some(match zone_type {
        zone::MOTION => Kind::Motion,
        zone::CONTACT => Kind::Contact,
        zone::FIRE => Kind::Smoke,
        zone::WATER => Kind::WaterLeak,
        zone::CO => Kind::CarbonMonoxide,
        zone::PERSONAL_EMERGENCY => Kind::Panic,
        zone::VIBRATION if vibration_is_fall => Kind::Fall,
        zone::VIBRATION => Kind::Vibration,
        _ => return None,
    })
}

/// Readings from an IAS zone status bitmap: alarm1 → the zone's kind,
/// tamper (bit 2) → Tamper, battery low (bit 3) → BatteryLow.
pub fn zone_status_readings(
    dev: &DeviceId,
    zone_type: Option<u16>,
    status: u16,
    vibration_is_fall: bool,
    at: Time,
    out: &mut Vec<Reading>,
) {
    let bit = |n: u16| if status & (1 << n) != 0 { 1.0 } else { 0.0 };
    if let Some(kind) = zone_type.and_then(|z| zone_kind(z, vibration_is_fall)) {
        push(out, dev, kind, bit(0), at);
    }
    push(out, dev, Kind::Tamper, bit(2), at);
    push(out, dev, Kind::BatteryLow, bit(3), at);
}

fn push(out: &mut Vec<Reading>, dev: &DeviceId, kind: Kind, value: f64, at: Time) {
    if let Ok(r) = Reading::new(dev.clone(), kind, value, at) {
        out.push(r);
    }
}

/// Readings from one attribute of `cluster`.
pub fn attr_readings(
    dev: &DeviceId,
    cluster: u16,
    a: &Attr,
    zone_type: Option<u16>,
    vibration_is_fall: bool,
    at: Time,
    out: &mut Vec<Reading>,
) {
    let v = a.value.as_f64();
    let u = a.value.as_u64();
    match (cluster, a.id, v) {
        (cluster::TEMPERATURE, 0x0000, Some(x)) if x != -32768.0 => {
            push(out, dev, Kind::Temperature, x / 100.0, at)
        }
        (cluster::HUMIDITY, 0x0000, Some(x)) if x != 65535.0 => {
            push(out, dev, Kind::Humidity, x / 100.0, at)
        }
        (cluster::PRESSURE, 0x0000, Some(x)) if x != -32768.0 => {
            push(out, dev, Kind::Pressure, x, at)
        }
        (cluster::OCCUPANCY, 0x0000, _) => {
            if let Some(b) = u {
                push(out, dev, Kind::Occupancy, (b & 1) as f64, at);
            }
        }
        (cluster::ON_OFF, 0x0000, Some(x)) => {
            push(out, dev, Kind::Switch, if x != 0.0 { 1.0 } else { 0.0 }, at)
        }
        (cluster::POWER_CFG, 0x0021, Some(x)) if x != 255.0 => {
            push(out, dev, Kind::Battery, (x / 2.0).min(100.0), at)
        }
        (cluster::POWER_CFG, 0x0020, Some(x)) if x != 255.0 && x != 0.0 => {
            push(out, dev, Kind::Voltage, x / 10.0, at)
        }
        (cluster::ILLUMINANCE, 0x0000, Some(x)) if x != 65535.0 => {
            let lux = if x <= 0.0 {
                0.0
            } else {
                10f64.powf((x - 1.0) / 10000.0)
            };
            push(
                out,
                dev,
                Kind::Illuminance,
                (lux * 100.0).round() / 100.0,
                at,
            );
        }
        // Instantaneous demand; most plugs report W with multiplier/divisor 1.
        (cluster::METERING, 0x0400, Some(x)) => push(out, dev, Kind::Power, x, at),
        // Summation delivered, in Wh on most plugs (divisor 1000 → kWh).
        (cluster::METERING, 0x0000, Some(x)) => push(out, dev, Kind::Energy, x / 1000.0, at),
        (cluster::ELECTRICAL, 0x050B, Some(x)) if x != -32768.0 => {
            push(out, dev, Kind::Power, x, at)
        }
        (cluster::IAS_ZONE, 0x0002, _) => {
            if let Some(s) = u {
                zone_status_readings(dev, zone_type, s as u16, vibration_is_fall, at, out);
            }
        }
        _ => {}
    }
}

/// Readings from a decoded ZCL message of `cluster` from device `dev`.
pub fn readings(
    dev: &DeviceId,
    cluster: u16,
    m: &Message,
    zone_type: Option<u16>,
    vibration_is_fall: bool,
    at: Time,
) -> Vec<Reading> {
    let mut out = Vec::new();
    match m {
        Message::Attributes { attrs, .. } => {
            for a in attrs {
                attr_readings(dev, cluster, a, zone_type, vibration_is_fall, at, &mut out);
            }
        }
        Message::ZoneStatusChange { zone_status, .. } => zone_status_readings(
            dev,
            zone_type,
            *zone_status,
            vibration_is_fall,
            at,
            &mut out,
        ),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zigbee::zcl::{self, Value, cmd};

    fn dev() -> DeviceId {
        device_id(0x00124B0012345678)
    }

    #[test]
    fn a_zigbee_device_id_gives_back_its_ieee_and_other_ids_none() {
        assert_eq!(ieee_of(&dev()), Some(0x00124B0012345678));
        assert_eq!(ieee_of(&device_id(u64::MAX)), Some(u64::MAX));
        for other in [
            "pendant",
            "zb-12",
            "zb-00124b001234567z",
            "zb-00124b00123456789",
        ] {
            assert_eq!(ieee_of(&DeviceId::new(other).unwrap()), None, "{other}");
        }
    }

    fn one(cluster: u16, data: &[u8], zone: Option<u16>) -> Vec<(Kind, f64)> {
        let (_, m) = zcl::decode(cluster, data).unwrap();
        readings(&dev(), cluster, &m, zone, true, Time(0))
            .into_iter()
            .map(|r| (r.kind, r.value))
            .collect()
    }

    #[test]
    fn device_ids_are_zb_and_sixteen_hex_digits() {
        assert_eq!(dev().as_str(), "zb-00124b0012345678");
    }

    #[test]
    fn panic_button_zone_alarm_becomes_panic_with_tamper_and_battery_flags() {
        let b = zcl::zone_command(1, cmd::ZONE_STATUS_CHANGE, &[0x0D, 0x00, 0, 1, 0, 0]);
        assert_eq!(
            one(0x0500, &b, Some(zone::PERSONAL_EMERGENCY)),
            vec![
                (Kind::Panic, 1.0),
                (Kind::Tamper, 1.0),
                (Kind::BatteryLow, 1.0)
            ]
        );
    }

    #[test]
    fn zone_types_map_to_kinds() {
        assert_eq!(zone_kind(zone::MOTION, true), Some(Kind::Motion));
        assert_eq!(zone_kind(zone::CONTACT, true), Some(Kind::Contact));
        assert_eq!(zone_kind(zone::FIRE, true), Some(Kind::Smoke));
        assert_eq!(zone_kind(zone::WATER, true), Some(Kind::WaterLeak));
        assert_eq!(zone_kind(zone::CO, true), Some(Kind::CarbonMonoxide));
        assert_eq!(zone_kind(zone::VIBRATION, true), Some(Kind::Fall));
        assert_eq!(zone_kind(zone::VIBRATION, false), Some(Kind::Vibration));
        assert_eq!(zone_kind(0x0225, true), None);
    }

    #[test]
    fn analogue_clusters_scale_to_units() {
        let r = |c, id, t, v| one(c, &zcl::report_attributes(0, &[(id, t, v)]), None);
        assert_eq!(
            r(0x0402, 0, zcl::ty::I16, Value::Int(-550)),
            vec![(Kind::Temperature, -5.5)]
        );
        assert_eq!(r(0x0402, 0, zcl::ty::I16, Value::Int(-32768)), vec![]);
        assert_eq!(
            r(0x0405, 0, zcl::ty::U16, Value::Uint(4550)),
            vec![(Kind::Humidity, 45.5)]
        );
        assert_eq!(
            r(0x0001, 0x21, zcl::ty::U8, Value::Uint(150)),
            vec![(Kind::Battery, 75.0)]
        );
        assert_eq!(
            r(0x0001, 0x20, zcl::ty::U8, Value::Uint(30)),
            vec![(Kind::Voltage, 3.0)]
        );
        assert_eq!(
            r(0x0400, 0, zcl::ty::U16, Value::Uint(10001)),
            vec![(Kind::Illuminance, 10.0)]
        );
        assert_eq!(
            r(0x0406, 0, zcl::ty::BITMAP8, Value::Uint(1)),
            vec![(Kind::Occupancy, 1.0)]
        );
        assert_eq!(
            r(0x0006, 0, zcl::ty::BOOL, Value::Bool(true)),
            vec![(Kind::Switch, 1.0)]
        );
        assert_eq!(
            r(0x0B04, 0x050B, zcl::ty::I16, Value::Int(1800)),
            vec![(Kind::Power, 1800.0)]
        );
    }
}
