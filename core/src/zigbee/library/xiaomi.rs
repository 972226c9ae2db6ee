//! Xiaomi / Aqara ("LUMI") manufacturer structure: the Basic cluster's
//! attribute 0xFF01 (a character string that is really binary) or 0x00F7
//! (an octet string, newer Aqara devices), sent about once an hour as the
//! device's keep-alive. Its content is a list of `tag: u8, ZCL type: u8,
//! value` entries (values little-endian, as in ZCL).
//!
//! Tags carebridge uses (facts from zigbee-herdsman-converters and zigpy's
//! Xiaomi quirks): 0x01 battery voltage in mV (u16), 0x03 device
//! temperature in °C (i8), 0x64 the device's main state (door: 1 = open;
//! water leak: 1 = wet; temperature sensors: °C × 100), 0x65 humidity ×
//! 100, 0x66 pressure. Which tag means what depends on the model: the
//! device library maps them per definition.
//!
//! Invariant: never panics; `decode(&encode(e)) == e` for entries of the
//! integer, boolean and string types.

use super::super::wire::{Field, Reader};
use super::super::zcl::{self, Value};

/// Manufacturer code of Xiaomi/LUMI in ZCL headers.
pub const MANUFACTURER_CODE: u16 = 0x115F;
/// The Basic cluster attributes holding the structure.
pub const ATTR_FF01: u16 = 0xFF01;
pub const ATTR_F7: u16 = 0x00F7;
/// Well-known tags.
pub mod tag {
    pub const BATTERY_MV: u8 = 0x01;
    pub const DEVICE_TEMPERATURE: u8 = 0x03;
    pub const STATE: u8 = 0x64;
}

/// One entry of the structure.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub tag: u8,
    pub ty: u8,
    pub value: Value,
}

/// Decodes the structure. Entries after an undecodable one are dropped
/// (its size is unknown); an error only when not even the first decodes.
pub fn decode(b: &[u8]) -> Result<Vec<Entry>, zcl::ZclError> {
    let mut r = Reader::new(b, "Xiaomi structure");
    let mut out = Vec::new();
    while !r.is_empty() {
        let head = match r.take(2, "tag and type") {
            Ok(h) => h,
            Err(_) if !out.is_empty() => break,
            Err(e) => return Err(e.into()),
        };
        let (tag, ty) = (head[0], head[1]);
        match zcl::read_value(&mut r, ty, u16::from(tag)) {
            Ok(value) => out.push(Entry { tag, ty, value }),
            Err(_) if !out.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Encodes entries (what a device sends; the simulator and tests use it).
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.push(e.tag);
        out.push(e.ty);
        zcl::write_value(&mut out, e.ty, &e.value);
    }
    out
}

/// The raw bytes of the string-typed (0x41 octet, 0x42 character)
/// attributes in a report or read response `data` (a whole ZCL frame):
/// manufacturers carry binary structures in them (Xiaomi's 0xFF01), which
/// [`zcl::decode`] would turn into lossy text. Stops at the first record it
/// cannot size; empty for other frames.
pub fn raw_strings(data: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut r = Reader::new(data, "ZCL");
    let Ok(h) = zcl::Header::decode(&mut r) else {
        return out;
    };
    let report = h.command == zcl::cmd::REPORT_ATTRIBUTES;
    if h.cluster_specific || !(report || h.command == zcl::cmd::READ_ATTRIBUTES_RSP) {
        return out;
    }
    while !r.is_empty() {
        let Ok(id) = u16::get(&mut r, "attribute") else {
            break;
        };
        if !report {
            match u8::get(&mut r, "status") {
                Ok(0) => {}
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        let Ok(t) = u8::get(&mut r, "type") else {
            break;
        };
        if t == 0x41 || t == 0x42 {
            let Ok(n) = u8::get(&mut r, "length") else {
                break;
            };
            let n = if n == 0xFF { 0 } else { usize::from(n) };
            let Ok(b) = r.take(n, "value") else { break };
            out.push((id, b.to_vec()));
        } else if zcl::read_value(&mut r, t, id).is_err() {
            break;
        }
    }
    out
}

/// Battery % from a voltage in mV, linear between `empty` and `full` mV.
pub fn battery_percent(mv: f64, empty: f64, full: f64) -> Option<f64> {
    if !mv.is_finite() || mv <= 0.0 || full <= empty {
        return None;
    }
    Some(
        ((mv - empty) / (full - empty) * 100.0)
            .clamp(0.0, 100.0)
            .round(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zigbee::zcl::ty;
    use proptest::prelude::*;

    #[test]
    fn a_door_sensors_keep_alive_decodes() {
        // 01 21 b80b: 3000 mV; 03 28 19: 25 °C; 04 21 a813; 05 21 0900;
        // 06 24 0100000000; 0a 21 0000 (parent); 64 10 01: open
        let b = [
            0x01, 0x21, 0xB8, 0x0B, 0x03, 0x28, 0x19, 0x04, 0x21, 0xA8, 0x13, 0x05, 0x21, 0x09,
            0x00, 0x06, 0x24, 0x01, 0x00, 0x00, 0x00, 0x00, 0x0A, 0x21, 0x00, 0x00, 0x64, 0x10,
            0x01,
        ];
        let e = decode(&b).unwrap();
        assert_eq!(e.len(), 7);
        assert_eq!(e[0].value, Value::Uint(3000));
        assert_eq!(e[1].value, Value::Int(25));
        assert_eq!(
            e[6],
            Entry {
                tag: 0x64,
                ty: ty::BOOL,
                value: Value::Bool(true)
            }
        );
        assert_eq!(encode(&e), b);
    }

    #[test]
    fn garbage_after_good_entries_keeps_the_good_ones() {
        let e = decode(&[0x01, 0x21, 0xB8, 0x0B, 0x07, 0xFE, 1, 2]).unwrap();
        assert_eq!(e.len(), 1);
        assert!(decode(&[0x07, 0xFE, 1, 2]).is_err());
        assert!(decode(&[0x01]).is_err());
    }

    #[test]
    fn battery_scaling_is_linear_and_clamped() {
        assert_eq!(battery_percent(3000.0, 2850.0, 3000.0), Some(100.0));
        assert_eq!(battery_percent(2925.0, 2850.0, 3000.0), Some(50.0));
        assert_eq!(battery_percent(2700.0, 2850.0, 3000.0), Some(0.0));
        assert_eq!(battery_percent(0.0, 2850.0, 3000.0), None);
    }

    fn entry() -> impl Strategy<Value = Entry> {
        prop_oneof![
            (any::<u8>(), any::<bool>()).prop_map(|(t, b)| Entry {
                tag: t,
                ty: ty::BOOL,
                value: Value::Bool(b)
            }),
            (any::<u8>(), any::<u8>()).prop_map(|(t, v)| Entry {
                tag: t,
                ty: ty::U8,
                value: Value::Uint(u64::from(v))
            }),
            (any::<u8>(), any::<u16>()).prop_map(|(t, v)| Entry {
                tag: t,
                ty: ty::U16,
                value: Value::Uint(u64::from(v))
            }),
            (any::<u8>(), any::<u32>()).prop_map(|(t, v)| Entry {
                tag: t,
                ty: ty::U32,
                value: Value::Uint(u64::from(v))
            }),
            (any::<u8>(), any::<i8>()).prop_map(|(t, v)| Entry {
                tag: t,
                ty: 0x28,
                value: Value::Int(i64::from(v))
            }),
            (any::<u8>(), any::<i16>()).prop_map(|(t, v)| Entry {
                tag: t,
                ty: ty::I16,
                value: Value::Int(i64::from(v))
            }),
            (any::<u8>(), 0u64..(1 << 40)).prop_map(|(t, v)| Entry {
                tag: t,
                ty: 0x24,
                value: Value::Uint(v)
            }),
        ]
    }

    proptest! {
        #[test]
        fn entries_round_trip(e in proptest::collection::vec(entry(), 0..8)) {
            prop_assert_eq!(decode(&encode(&e)).unwrap(), e);
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&b);
        }
    }
}
