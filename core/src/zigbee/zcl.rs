//! ZCL (Zigbee Cluster Library) frames carried in `AF_INCOMING_MSG`: the
//! header, attribute values, and the few commands carebridge sends or
//! receives. Pure; never panics on any input.
//!
//! What this module owns: byte layouts. What a cluster's attribute *means*
//! (a temperature, a door opening) is in [`super::zcl_map`].

use super::wire::{Field, PayloadError, Reader};

/// Global (profile-wide) command ids.
pub mod cmd {
    pub const READ_ATTRIBUTES: u8 = 0x00;
    pub const READ_ATTRIBUTES_RSP: u8 = 0x01;
    pub const WRITE_ATTRIBUTES: u8 = 0x02;
    pub const WRITE_ATTRIBUTES_RSP: u8 = 0x04;
    pub const CONFIGURE_REPORTING: u8 = 0x06;
    pub const CONFIGURE_REPORTING_RSP: u8 = 0x07;
    pub const REPORT_ATTRIBUTES: u8 = 0x0A;
    pub const DEFAULT_RSP: u8 = 0x0B;
    /// IAS Zone, server → client.
    pub const ZONE_STATUS_CHANGE: u8 = 0x00;
    /// IAS Zone, server → client.
    pub const ZONE_ENROLL_REQUEST: u8 = 0x01;
    /// IAS Zone, client → server.
    pub const ZONE_ENROLL_RESPONSE: u8 = 0x00;
}

/// ZCL data type ids used when writing.
pub mod ty {
    pub const BOOL: u8 = 0x10;
    pub const BITMAP8: u8 = 0x18;
    pub const BITMAP16: u8 = 0x19;
    pub const U8: u8 = 0x20;
    pub const U16: u8 = 0x21;
    pub const U32: u8 = 0x23;
    pub const U48: u8 = 0x25;
    pub const I16: u8 = 0x29;
    pub const ENUM8: u8 = 0x30;
    pub const ENUM16: u8 = 0x31;
    pub const CHAR_STRING: u8 = 0x42;
    pub const IEEE: u8 = 0xF0;
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ZclError {
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("attribute {attr:#06x} has unsupported data type {ty:#04x}")]
    UnsupportedType { attr: u16, ty: u8 },
}

/// The ZCL frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Header {
    /// `true` for cluster-specific commands, `false` for global ones.
    pub cluster_specific: bool,
    pub manufacturer: Option<u16>,
    /// Direction bit: `true` when sent by the cluster's server (the device).
    pub server_to_client: bool,
    pub disable_default_rsp: bool,
    pub seq: u8,
    pub command: u8,
}

impl Header {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let fc = u8::from(self.cluster_specific)
            | u8::from(self.manufacturer.is_some()) << 2
            | u8::from(self.server_to_client) << 3
            | u8::from(self.disable_default_rsp) << 4;
        out.push(fc);
        if let Some(m) = self.manufacturer {
            m.put(out);
        }
        out.push(self.seq);
        out.push(self.command);
    }
    pub fn decode(r: &mut Reader<'_>) -> Result<Header, PayloadError> {
        let fc = u8::get(r, "frame_control")?;
        let manufacturer = if fc & 0x04 != 0 {
            Some(u16::get(r, "manufacturer")?)
        } else {
            None
        };
        Ok(Header {
            cluster_specific: fc & 0x03 == 0x01,
            manufacturer,
            server_to_client: fc & 0x08 != 0,
            disable_default_rsp: fc & 0x10 != 0,
            seq: u8::get(r, "seq")?,
            command: u8::get(r, "command")?,
        })
    }
}

/// An attribute value, decoded by its ZCL type.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Unsigned integers, enums and bitmaps of any width.
    Uint(u64),
    Int(i64),
    Float(f64),
    String(String),
    Bytes(Vec<u8>),
}

impl Value {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Uint(u) => Some(*u as f64),
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Bool(b) => Some(u64::from(*b)),
            Value::Uint(u) => Some(*u),
            _ => None,
        }
    }
}

fn sign_extend(v: u64, bytes: usize) -> i64 {
    let shift = 64 - 8 * bytes as u32;
    ((v << shift) as i64) >> shift
}

/// Reads one value of type `t` (for attribute `attr`, named in errors).
pub fn read_value(r: &mut Reader<'_>, t: u8, attr: u16) -> Result<Value, ZclError> {
    let f = "value";
    Ok(match t {
        0x00 => Value::Null,
        0x10 => Value::Bool(u8::get(r, f)? != 0),
        // data8..data64, bitmap8..64, uint8..64, enum8/16, clusterId, attrId, UTC, IEEE
        0x08..=0x0F => Value::Uint(r.uint(usize::from(t - 0x07), f)?),
        0x18..=0x1F => Value::Uint(r.uint(usize::from(t - 0x17), f)?),
        0x20..=0x27 => Value::Uint(r.uint(usize::from(t - 0x1F), f)?),
        0x28..=0x2F => {
            let n = usize::from(t - 0x27);
            Value::Int(sign_extend(r.uint(n, f)?, n))
        }
        0x30 => Value::Uint(r.uint(1, f)?),
        0x31 => Value::Uint(r.uint(2, f)?),
        0x39 => Value::Float(f64::from(f32::from_bits(u32::get(r, f)?))),
        0x3A => Value::Float(f64::from_bits(u64::get(r, f)?)),
        0xE2 | 0xE8 | 0xE9 | 0xEA => {
            let n = if t == 0xE2 || t == 0xEA { 4 } else { 2 };
            Value::Uint(r.uint(n, f)?)
        }
        0xF0 => Value::Uint(u64::get(r, f)?),
        0x41 | 0x42 => {
            let n = usize::from(u8::get(r, f)?);
            // 0xFF length means "invalid value": no bytes follow.
            let b = if n == 0xFF { &[][..] } else { r.take(n, f)? };
            if t == 0x42 {
                Value::String(
                    String::from_utf8_lossy(b)
                        .trim_end_matches('\0')
                        .to_string(),
                )
            } else {
                Value::Bytes(b.to_vec())
            }
        }
        0x43 | 0x44 => {
            let n = usize::from(u16::get(r, f)?);
            let b = if n == 0xFFFF { &[][..] } else { r.take(n, f)? };
            if t == 0x44 {
                Value::String(String::from_utf8_lossy(b).to_string())
            } else {
                Value::Bytes(b.to_vec())
            }
        }
        _ => return Err(ZclError::UnsupportedType { attr, ty: t }),
    })
}

/// Writes `v` as ZCL type `t` (the inverse of [`read_value`] for the types we send).
pub fn write_value(out: &mut Vec<u8>, t: u8, v: &Value) {
    let width = match t {
        0x08..=0x0F => usize::from(t - 0x07),
        0x18..=0x1F => usize::from(t - 0x17),
        0x20..=0x27 => usize::from(t - 0x1F),
        0x28..=0x2F => usize::from(t - 0x27),
        0x10 | 0x30 => 1,
        0x31 | 0xE8 | 0xE9 => 2,
        0xE2 | 0xEA => 4,
        0xF0 => 8,
        _ => 0,
    };
    match v {
        Value::String(s) => {
            let b = &s.as_bytes()[..s.len().min(254)];
            out.push(b.len() as u8);
            out.extend_from_slice(b);
        }
        Value::Bytes(b) => {
            let b = &b[..b.len().min(254)];
            out.push(b.len() as u8);
            out.extend_from_slice(b);
        }
        Value::Float(x) if t == 0x39 => out.extend_from_slice(&(*x as f32).to_le_bytes()),
        Value::Float(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Null => {}
        Value::Bool(_) | Value::Uint(_) | Value::Int(_) => {
            let raw = match v {
                Value::Bool(b) => u64::from(*b),
                Value::Uint(u) => *u,
                Value::Int(i) => *i as u64,
                _ => 0,
            };
            out.extend_from_slice(&raw.to_le_bytes()[..width.min(8)]);
        }
    }
}

/// One attribute with its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Attr {
    pub id: u16,
    pub value: Value,
}

/// The ZCL messages carebridge understands.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// Report attributes (0x0a) and the successful records of a read
    /// attributes response (0x01). Records after an undecodable one are
    /// dropped; those before it are kept.
    Attributes {
        report: bool,
        attrs: Vec<Attr>,
    },
    /// IAS Zone status change notification.
    ZoneStatusChange {
        zone_status: u16,
        extended: u8,
        zone_id: u8,
        delay: u16,
    },
    /// IAS Zone enroll request: the device wants a zone id.
    ZoneEnrollRequest {
        zone_type: u16,
        manufacturer: u16,
    },
    WriteAttributesRsp {
        status: u8,
    },
    ConfigureReportingRsp {
        status: u8,
    },
    DefaultRsp {
        command: u8,
        status: u8,
    },
    /// Anything else (kept for matching by sequence number).
    Other,
}

pub const CLUSTER_IAS_ZONE: u16 = 0x0500;

/// Decodes a ZCL frame received on `cluster`.
pub fn decode(cluster: u16, data: &[u8]) -> Result<(Header, Message), ZclError> {
    let mut r = Reader::new(data, "ZCL");
    let h = Header::decode(&mut r)?;
    let m = if !h.cluster_specific {
        match h.command {
            cmd::REPORT_ATTRIBUTES | cmd::READ_ATTRIBUTES_RSP => {
                let report = h.command == cmd::REPORT_ATTRIBUTES;
                let mut attrs = Vec::new();
                while !r.is_empty() {
                    let id = u16::get(&mut r, "attribute")?;
                    if !report {
                        let status = u8::get(&mut r, "status")?;
                        if status != 0 {
                            continue;
                        }
                    }
                    let t = u8::get(&mut r, "type")?;
                    match read_value(&mut r, t, id) {
                        Ok(value) => attrs.push(Attr { id, value }),
                        // Keep what decoded; a later record cannot be found
                        // without knowing this one's size.
                        Err(_) if !attrs.is_empty() => break,
                        Err(e) => return Err(e),
                    }
                }
                Message::Attributes { report, attrs }
            }
            cmd::WRITE_ATTRIBUTES_RSP => Message::WriteAttributesRsp {
                status: u8::get(&mut r, "status")?,
            },
            cmd::CONFIGURE_REPORTING_RSP => Message::ConfigureReportingRsp {
                status: u8::get(&mut r, "status")?,
            },
            cmd::DEFAULT_RSP => Message::DefaultRsp {
                command: u8::get(&mut r, "command")?,
                status: u8::get(&mut r, "status")?,
            },
            _ => Message::Other,
        }
    } else if cluster == CLUSTER_IAS_ZONE && h.server_to_client {
        match h.command {
            cmd::ZONE_STATUS_CHANGE => Message::ZoneStatusChange {
                zone_status: u16::get(&mut r, "zone_status")?,
                extended: Option::<u8>::get(&mut r, "extended_status")?.unwrap_or(0),
                zone_id: Option::<u8>::get(&mut r, "zone_id")?.unwrap_or(0),
                delay: Option::<u16>::get(&mut r, "delay")?.unwrap_or(0),
            },
            cmd::ZONE_ENROLL_REQUEST => Message::ZoneEnrollRequest {
                zone_type: u16::get(&mut r, "zone_type")?,
                manufacturer: u16::get(&mut r, "manufacturer")?,
            },
            _ => Message::Other,
        }
    } else {
        Message::Other
    };
    Ok((h, m))
}

fn global(seq: u8, command: u8, server_to_client: bool) -> Vec<u8> {
    let mut out = Vec::new();
    Header {
        cluster_specific: false,
        manufacturer: None,
        server_to_client,
        disable_default_rsp: true,
        seq,
        command,
    }
    .encode(&mut out);
    out
}

/// Read attributes request (client → server).
pub fn read_attributes(seq: u8, attrs: &[u16]) -> Vec<u8> {
    let mut out = global(seq, cmd::READ_ATTRIBUTES, false);
    for a in attrs {
        a.put(&mut out);
    }
    out
}

/// Write one attribute (client → server).
pub fn write_attribute(seq: u8, attr: u16, t: u8, v: &Value) -> Vec<u8> {
    let mut out = global(seq, cmd::WRITE_ATTRIBUTES, false);
    attr.put(&mut out);
    out.push(t);
    write_value(&mut out, t, v);
    out
}

/// Configure reporting of one attribute. `change` is only sent for analogue
/// types (the spec omits it for discrete ones).
pub fn configure_reporting(
    seq: u8,
    attr: u16,
    t: u8,
    min: u16,
    max: u16,
    change: Option<&Value>,
) -> Vec<u8> {
    let mut out = global(seq, cmd::CONFIGURE_REPORTING, false);
    out.push(0x00); // direction: reported by the server
    attr.put(&mut out);
    out.push(t);
    min.put(&mut out);
    max.put(&mut out);
    if let Some(c) = change {
        write_value(&mut out, t, c);
    }
    out
}

/// IAS Zone enroll response (client → server): code 0 = success.
pub fn zone_enroll_response(seq: u8, code: u8, zone_id: u8) -> Vec<u8> {
    let mut out = Vec::new();
    Header {
        cluster_specific: true,
        seq,
        command: cmd::ZONE_ENROLL_RESPONSE,
        ..Header::default()
    }
    .encode(&mut out);
    out.push(code);
    out.push(zone_id);
    out
}

/// Report attributes (server → client); used by the simulator.
pub fn report_attributes(seq: u8, attrs: &[(u16, u8, Value)]) -> Vec<u8> {
    let mut out = global(seq, cmd::REPORT_ATTRIBUTES, true);
    for (id, t, v) in attrs {
        id.put(&mut out);
        out.push(*t);
        write_value(&mut out, *t, v);
    }
    out
}

/// Read attributes response (server → client); `None` = unsupported (0x86).
pub fn read_attributes_rsp(seq: u8, attrs: &[(u16, Option<(u8, Value)>)]) -> Vec<u8> {
    let mut out = global(seq, cmd::READ_ATTRIBUTES_RSP, true);
    for (id, v) in attrs {
        id.put(&mut out);
        match v {
            Some((t, v)) => {
                out.push(0);
                out.push(*t);
                write_value(&mut out, *t, v);
            }
            None => out.push(0x86),
        }
    }
    out
}

/// A one-status global response (write / configure reporting rsp), server → client.
pub fn status_rsp(seq: u8, command: u8, status: u8) -> Vec<u8> {
    let mut out = global(seq, command, true);
    out.push(status);
    out
}

/// IAS zone cluster-specific command from the device (server → client).
pub fn zone_command(seq: u8, command: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Header {
        cluster_specific: true,
        server_to_client: true,
        seq,
        command,
        ..Header::default()
    }
    .encode(&mut out);
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_temperature_report_of_21_5_degrees() {
        // fc=0x18 (global, s→c, no default rsp), seq 7, report, attr 0, int16 2150
        let b = [0x18, 0x07, 0x0A, 0x00, 0x00, 0x29, 0x66, 0x08];
        let (h, m) = decode(0x0402, &b).unwrap();
        assert_eq!(h.seq, 7);
        assert_eq!(
            m,
            Message::Attributes {
                report: true,
                attrs: vec![Attr {
                    id: 0,
                    value: Value::Int(2150)
                }]
            }
        );
    }

    #[test]
    fn read_response_skips_unsupported_records_and_reads_strings() {
        let b = read_attributes_rsp(
            3,
            &[
                (
                    0x0004,
                    Some((ty::CHAR_STRING, Value::String("carebridge".into()))),
                ),
                (0x0006, None),
                (
                    0x0005,
                    Some((ty::CHAR_STRING, Value::String("PIR-1".into()))),
                ),
            ],
        );
        let (_, m) = decode(0, &b).unwrap();
        let Message::Attributes {
            report: false,
            attrs,
        } = m
        else {
            panic!("{m:?}")
        };
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[1].value, Value::String("PIR-1".into()));
    }

    #[test]
    fn negative_int16_and_manufacturer_header_decode() {
        let b = [0x1C, 0x5F, 0x11, 0x01, 0x0A, 0x00, 0x00, 0x29, 0x18, 0xFC];
        let (h, m) = decode(0x0402, &b).unwrap();
        assert_eq!(h.manufacturer, Some(0x115F));
        assert_eq!(
            m,
            Message::Attributes {
                report: true,
                attrs: vec![Attr {
                    id: 0,
                    value: Value::Int(-1000)
                }]
            }
        );
    }

    #[test]
    fn zone_status_change_and_enroll_request_decode() {
        let b = zone_command(
            9,
            cmd::ZONE_STATUS_CHANGE,
            &[0x05, 0x00, 0x00, 0x01, 0x00, 0x00],
        );
        assert_eq!(
            decode(0x0500, &b).unwrap().1,
            Message::ZoneStatusChange {
                zone_status: 5,
                extended: 0,
                zone_id: 1,
                delay: 0
            }
        );
        let b = zone_command(1, cmd::ZONE_ENROLL_REQUEST, &[0x2C, 0x00, 0x34, 0x12]);
        assert_eq!(
            decode(0x0500, &b).unwrap().1,
            Message::ZoneEnrollRequest {
                zone_type: 0x2C,
                manufacturer: 0x1234
            }
        );
    }

    #[test]
    fn truncated_report_names_the_field() {
        let e = decode(0x0402, &[0x18, 0x07, 0x0A, 0x00, 0x00, 0x29, 0x66]).unwrap_err();
        assert!(e.to_string().contains("value"), "{e}");
    }

    #[test]
    fn unsupported_type_is_an_error_naming_the_attribute() {
        let e = decode(0x0402, &[0x18, 0x07, 0x0A, 0x34, 0x12, 0x4C, 0x00]).unwrap_err();
        assert_eq!(
            e,
            ZclError::UnsupportedType {
                attr: 0x1234,
                ty: 0x4C
            }
        );
    }

    fn arb_typed() -> impl Strategy<Value = (u8, Value)> {
        prop_oneof![
            any::<bool>().prop_map(|b| (ty::BOOL, Value::Bool(b))),
            any::<u8>().prop_map(|v| (ty::U8, Value::Uint(u64::from(v)))),
            any::<u16>().prop_map(|v| (ty::U16, Value::Uint(u64::from(v)))),
            any::<u32>().prop_map(|v| (ty::U32, Value::Uint(u64::from(v)))),
            (0u64..1 << 48).prop_map(|v| (ty::U48, Value::Uint(v))),
            any::<i16>().prop_map(|v| (ty::I16, Value::Int(i64::from(v)))),
            any::<u8>().prop_map(|v| (ty::ENUM8, Value::Uint(u64::from(v)))),
            any::<u16>().prop_map(|v| (ty::BITMAP16, Value::Uint(u64::from(v)))),
            "[a-zA-Z0-9 ]{0,30}".prop_map(|s| (ty::CHAR_STRING, Value::String(s))),
        ]
    }

    proptest! {
        #[test]
        fn attribute_reports_round_trip(seq in any::<u8>(), attrs in proptest::collection::vec((any::<u16>(), arb_typed()), 0..8)) {
            let list: Vec<_> = attrs.iter().map(|(id, (t, v))| (*id, *t, v.clone())).collect();
            let b = report_attributes(seq, &list);
            let (h, m) = decode(0x0402, &b).unwrap();
            prop_assert_eq!(h.seq, seq);
            let want: Vec<_> = attrs.into_iter().map(|(id, (_, value))| Attr { id, value }).collect();
            prop_assert_eq!(m, Message::Attributes { report: true, attrs: want });
        }

        #[test]
        fn decode_never_panics(cluster in any::<u16>(), b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(cluster, &b);
        }
    }
}
