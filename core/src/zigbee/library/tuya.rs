//! Tuya's manufacturer cluster 0xEF00 ("TS0601" devices): data points (DPs)
//! instead of ZCL attributes, and the time-sync request/response.
//!
//! A DP frame's payload (after the ZCL header) is a 16-bit big-endian
//! sequence number and then data points, each `id: u8, type: u8, len: u16
//! BE, data` with numbers big-endian. Types: 0 raw, 1 bool, 2 value (i32),
//! 3 string, 4 enum (u8), 5 bitmap (1, 2 or 4 bytes).
//!
//! Time sync: the device sends command 0x24 with two bytes (its request
//! number); the gateway answers 0x24 with those two bytes, then UTC and
//! local time in seconds, each u32 big-endian (since 1970, or since 2000
//! for the firmwares that count from there). Facts from
//! zigbee-herdsman-converters' `tuya` library and Tuya's MCU protocol
//! notes; the code is carebridge's own.
//!
//! Invariant: never panics; `decode(encode(seq, dps)) == (seq, dps)`.

/// The manufacturer-specific cluster.
pub const CLUSTER: u16 = 0xEF00;

/// Commands on [`CLUSTER`].
pub mod cmd {
    /// Gateway → device: set data points.
    pub const DATA_REQUEST: u8 = 0x00;
    /// Device → gateway: answer to a request or query.
    pub const DATA_RESPONSE: u8 = 0x01;
    /// Device → gateway: a data point changed.
    pub const DATA_REPORT: u8 = 0x02;
    /// Device → gateway: periodic status report (some firmwares).
    pub const ACTIVE_STATUS_REPORT: u8 = 0x06;
    /// Both ways: time synchronisation.
    pub const TIME_SYNC: u8 = 0x24;
}

/// Data point types.
pub mod dp_type {
    pub const RAW: u8 = 0;
    pub const BOOL: u8 = 1;
    pub const VALUE: u8 = 2;
    pub const STRING: u8 = 3;
    pub const ENUM: u8 = 4;
    pub const BITMAP: u8 = 5;
}

/// Seconds from 1970-01-01 to 2000-01-01.
pub const EPOCH_2000: i64 = 946_684_800;

#[derive(Clone, Debug, PartialEq)]
pub enum DpValue {
    Raw(Vec<u8>),
    Bool(bool),
    Value(i32),
    String(String),
    Enum(u8),
    /// Width in bytes (1, 2 or 4) and bits.
    Bitmap(u8, u32),
}

impl DpValue {
    /// The number a reading is made from (`None` for raw and strings).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            DpValue::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            DpValue::Value(v) => Some(f64::from(*v)),
            DpValue::Enum(e) => Some(f64::from(*e)),
            DpValue::Bitmap(_, b) => Some(f64::from(*b)),
            DpValue::Raw(_) | DpValue::String(_) => None,
        }
    }
    fn ty(&self) -> u8 {
        match self {
            DpValue::Raw(_) => dp_type::RAW,
            DpValue::Bool(_) => dp_type::BOOL,
            DpValue::Value(_) => dp_type::VALUE,
            DpValue::String(_) => dp_type::STRING,
            DpValue::Enum(_) => dp_type::ENUM,
            DpValue::Bitmap(..) => dp_type::BITMAP,
        }
    }
}

/// One data point.
#[derive(Clone, Debug, PartialEq)]
pub struct Dp {
    pub id: u8,
    pub value: DpValue,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TuyaError {
    #[error("Tuya frame truncated at byte {at}: {field} missing")]
    Truncated { at: usize, field: &'static str },
    #[error("Tuya data point {dp} of type {ty} has impossible length {len} (byte {at})")]
    BadLength {
        dp: u8,
        ty: u8,
        len: usize,
        at: usize,
    },
    #[error("Tuya data point {dp} has unknown type {ty} (byte {at})")]
    UnknownType { dp: u8, ty: u8, at: usize },
}

fn take<'a>(
    b: &'a [u8],
    at: &mut usize,
    n: usize,
    field: &'static str,
) -> Result<&'a [u8], TuyaError> {
    let s = b
        .get(*at..at.saturating_add(n))
        .ok_or(TuyaError::Truncated { at: *at, field })?;
    *at += n;
    Ok(s)
}

fn be(b: &[u8]) -> u32 {
    b.iter().fold(0u32, |a, &x| a << 8 | u32::from(x))
}

/// Decodes a data-point payload: the sequence number and every data point.
pub fn decode(payload: &[u8]) -> Result<(u16, Vec<Dp>), TuyaError> {
    let mut at = 0;
    let seq = be(take(payload, &mut at, 2, "sequence number")?) as u16;
    let mut dps = Vec::new();
    while at < payload.len() {
        let start = at;
        let head = take(payload, &mut at, 4, "data point header")?;
        let (id, ty) = (head[0], head[1]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let data = take(payload, &mut at, len, "data point value")?;
        let bad = || TuyaError::BadLength {
            dp: id,
            ty,
            len,
            at: start,
        };
        let value = match ty {
            dp_type::RAW => DpValue::Raw(data.to_vec()),
            dp_type::BOOL if len == 1 => DpValue::Bool(data[0] != 0),
            dp_type::VALUE if len == 4 => DpValue::Value(be(data) as i32),
            dp_type::STRING => DpValue::String(String::from_utf8_lossy(data).into_owned()),
            dp_type::ENUM if len == 1 => DpValue::Enum(data[0]),
            dp_type::BITMAP if matches!(len, 1 | 2 | 4) => DpValue::Bitmap(len as u8, be(data)),
            dp_type::BOOL | dp_type::VALUE | dp_type::ENUM | dp_type::BITMAP => return Err(bad()),
            _ => {
                return Err(TuyaError::UnknownType {
                    dp: id,
                    ty,
                    at: start,
                });
            }
        };
        dps.push(Dp { id, value });
    }
    Ok((seq, dps))
}

/// Encodes data points (what a device sends; the simulator and tests use it).
pub fn encode(seq: u16, dps: &[Dp]) -> Vec<u8> {
    let mut out = seq.to_be_bytes().to_vec();
    for dp in dps {
        let data: Vec<u8> = match &dp.value {
            DpValue::Raw(b) => b.clone(),
            DpValue::Bool(b) => vec![u8::from(*b)],
            DpValue::Value(v) => v.to_be_bytes().to_vec(),
            DpValue::String(s) => s.as_bytes().to_vec(),
            DpValue::Enum(e) => vec![*e],
            DpValue::Bitmap(w, b) => {
                let w = usize::from(*w).clamp(1, 4);
                b.to_be_bytes()[4 - w..].to_vec()
            }
        };
        let data = &data[..data.len().min(usize::from(u16::MAX))];
        out.push(dp.id);
        out.push(dp.value.ty());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    out
}

/// The payload of the time-sync answer to a request whose payload was
/// `request`: its first two bytes echoed, then UTC and local seconds
/// (u32 big-endian) since 1970, or since 2000 when `epoch_2000`.
pub fn time_sync_response(
    request: &[u8],
    utc_secs: i64,
    local_secs: i64,
    epoch_2000: bool,
) -> Vec<u8> {
    let base = if epoch_2000 { EPOCH_2000 } else { 0 };
    let clamp = |s: i64| u32::try_from(s.saturating_sub(base).max(0)).unwrap_or(u32::MAX);
    let mut out = match request.get(..2) {
        Some(r) => r.to_vec(),
        None => vec![0, 8],
    };
    out.extend_from_slice(&clamp(utc_secs).to_be_bytes());
    out.extend_from_slice(&clamp(local_secs).to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_presence_report_decodes_byte_by_byte() {
        // seq 0x0102; dp 1 enum 1 (presence); dp 9 value 150 (cm); dp 104 value 320 lux
        let b = [
            0x01, 0x02, 1, 4, 0, 1, 1, 9, 2, 0, 4, 0, 0, 0, 150, 104, 2, 0, 4, 0, 0, 1, 0x40,
        ];
        let (seq, dps) = decode(&b).unwrap();
        assert_eq!(seq, 0x0102);
        assert_eq!(
            dps,
            vec![
                Dp {
                    id: 1,
                    value: DpValue::Enum(1)
                },
                Dp {
                    id: 9,
                    value: DpValue::Value(150)
                },
                Dp {
                    id: 104,
                    value: DpValue::Value(320)
                },
            ]
        );
        assert_eq!(encode(seq, &dps), b);
    }

    #[test]
    fn negative_values_and_truncation_are_handled() {
        let b = encode(
            7,
            &[Dp {
                id: 1,
                value: DpValue::Value(-55),
            }],
        );
        assert_eq!(decode(&b).unwrap().1[0].value.as_f64(), Some(-55.0));
        assert!(matches!(
            decode(&b[..b.len() - 1]),
            Err(TuyaError::Truncated {
                field: "data point value",
                ..
            })
        ));
        assert!(matches!(
            decode(&[0]),
            Err(TuyaError::Truncated { at: 0, .. })
        ));
        assert!(matches!(
            decode(&[0, 0, 1, 1, 0, 2, 1, 1]),
            Err(TuyaError::BadLength {
                dp: 1,
                ty: 1,
                len: 2,
                at: 2
            })
        ));
        assert!(matches!(
            decode(&[0, 0, 3, 9, 0, 0]),
            Err(TuyaError::UnknownType { dp: 3, ty: 9, .. })
        ));
    }

    #[test]
    fn time_sync_answer_echoes_the_request_and_counts_from_the_right_epoch() {
        let r = time_sync_response(&[0x12, 0x34], 1_700_000_000, 1_700_003_600, false);
        assert_eq!(r[..2], [0x12, 0x34]);
        assert_eq!(u32::from_be_bytes([r[2], r[3], r[4], r[5]]), 1_700_000_000);
        assert_eq!(u32::from_be_bytes([r[6], r[7], r[8], r[9]]), 1_700_003_600);
        let r = time_sync_response(&[], 1_700_000_000, 1_700_000_000, true);
        assert_eq!(r[..2], [0, 8]);
        assert_eq!(
            i64::from(u32::from_be_bytes([r[2], r[3], r[4], r[5]])),
            1_700_000_000 - EPOCH_2000
        );
    }

    fn dp_value() -> impl Strategy<Value = DpValue> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(DpValue::Raw),
            any::<bool>().prop_map(DpValue::Bool),
            any::<i32>().prop_map(DpValue::Value),
            "[a-zA-Z0-9 ]{0,12}".prop_map(DpValue::String),
            any::<u8>().prop_map(DpValue::Enum),
            any::<u8>().prop_map(|b| DpValue::Bitmap(1, u32::from(b))),
            any::<u16>().prop_map(|b| DpValue::Bitmap(2, u32::from(b))),
            any::<u32>().prop_map(|b| DpValue::Bitmap(4, b)),
        ]
    }

    proptest! {
        #[test]
        fn data_points_round_trip(seq in any::<u16>(), dps in proptest::collection::vec((any::<u8>(), dp_value()), 0..6)) {
            let dps: Vec<Dp> = dps.into_iter().map(|(id, value)| Dp { id, value }).collect();
            prop_assert_eq!(decode(&encode(seq, &dps)).unwrap(), (seq, dps));
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&b);
        }
    }
}
