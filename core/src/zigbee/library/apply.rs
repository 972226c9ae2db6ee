//! Readings from one incoming ZCL frame, through a device's definition
//! (or the generic ZCL path in [`zcl_map`] when there is none).
//!
//! Order for a defined device: the definition's maps for the frame's
//! source win; attributes it does not map go the generic way (with the
//! definition's battery scaling); Xiaomi 0xFF01/0x00F7 structures and
//! Tuya data points are decoded here; Tuya time-sync requests get an
//! answer. Invariant: never panics; every reading is finite.

use std::time::Duration;

use super::table::{Definition, Map, Quirk, Source};
use super::{tuya, xiaomi};
use crate::model::{DeviceId, Kind, Reading, Time};
use crate::zigbee::zcl::{self, Attr, Header, Message};
use crate::zigbee::zcl_map::{self, cluster};

/// What one frame means.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    pub readings: Vec<Reading>,
    /// Set these binary kinds back to 0 after so long, unless another 1
    /// comes first (devices that never report "clear").
    pub clears: Vec<(Kind, Duration)>,
    /// A ZCL frame to send back to the device on the same cluster and
    /// endpoint (the Tuya time-sync answer).
    pub reply: Option<Vec<u8>>,
}

struct Out<'a> {
    dev: &'a DeviceId,
    at: Time,
    d: Decoded,
}

impl Out<'_> {
    fn push(&mut self, kind: Kind, value: f64) {
        if let Ok(r) = Reading::new(self.dev.clone(), kind, value, self.at) {
            self.d.readings.push(r);
        }
    }
    /// Applies one map to a raw value.
    fn apply(&mut self, m: &Map, raw: f64, on_time: Option<Duration>) {
        if !raw.is_finite() || m.when.is_some_and(|w| w != raw) {
            return;
        }
        let mut v = match m.value {
            Some(v) => v,
            None if m.kind.is_binary() => {
                if raw * m.scale != 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            None => raw * m.scale,
        };
        if m.invert {
            v = 1.0 - v;
        }
        self.push(m.kind, v);
        if m.kind.is_binary() && v >= 0.5 {
            let after = if m.clear_after_on_time {
                on_time.or(m.clear_after)
            } else {
                m.clear_after
            };
            if let Some(a) = after {
                self.d.clears.push((m.kind, a));
            }
        }
    }
}

fn maps(def: &Definition, src: Source) -> impl Iterator<Item = &Map> {
    def.maps.iter().filter(move |m| m.source == src)
}

/// Readings (and any answer) from one ZCL frame `data` of `cluster`,
/// already decoded into `h` and `m`.
#[allow(clippy::too_many_arguments)]
pub fn decode(
    def: Option<&Definition>,
    dev: &DeviceId,
    cl: u16,
    data: &[u8],
    h: &Header,
    m: &Message,
    zone_type: Option<u16>,
    vibration_is_fall: bool,
    at: Time,
) -> Decoded {
    let Some(def) = def else {
        return Decoded {
            readings: zcl_map::readings(dev, cl, m, zone_type, vibration_is_fall, at),
            ..Decoded::default()
        };
    };
    let mut o = Out {
        dev,
        at,
        d: Decoded::default(),
    };
    let header_len = if h.manufacturer.is_some() { 5 } else { 3 };
    let payload = data.get(header_len..).unwrap_or(&[]);
    match m {
        Message::Attributes { attrs, .. } => {
            for a in attrs {
                attribute(def, cl, a, zone_type, vibration_is_fall, &mut o);
            }
            if cl == cluster::BASIC {
                for (id, raw) in xiaomi::raw_strings(data) {
                    if id == xiaomi::ATTR_FF01 || id == xiaomi::ATTR_F7 {
                        xiaomi_struct(def, &raw, &mut o);
                    }
                }
            }
        }
        Message::ZoneStatusChange { zone_status, .. } => {
            zone(def, zone_type, *zone_status, vibration_is_fall, &mut o)
        }
        _ if h.cluster_specific && cl == tuya::CLUSTER => tuya_frame(def, h, payload, &mut o),
        _ if h.cluster_specific => {
            // On with timed off (IKEA motion): on/off control, on time in
            // tenths of a second, off wait time.
            let on_time = payload
                .get(1..3)
                .map(|b| Duration::from_millis(u64::from(u16::from_le_bytes([b[0], b[1]])) * 100));
            for mp in maps(
                def,
                Source::Command {
                    cluster: cl,
                    command: h.command,
                },
            ) {
                o.apply(mp, 1.0, on_time);
            }
        }
        _ => {}
    }
    o.d
}

fn attribute(
    def: &Definition,
    cl: u16,
    a: &Attr,
    zone_type: Option<u16>,
    vib: bool,
    o: &mut Out<'_>,
) {
    if cl == cluster::BASIC && (a.id == xiaomi::ATTR_FF01 || a.id == xiaomi::ATTR_F7) {
        return;
    }
    let x = a.value.as_f64();
    let mut mapped = false;
    for mp in maps(
        def,
        Source::Attr {
            cluster: cl,
            attr: a.id,
        },
    ) {
        mapped = true;
        if let Some(x) = x {
            o.apply(mp, x, None);
        }
    }
    if mapped {
        return;
    }
    match (cl, a.id, x) {
        (cluster::POWER_CFG, 0x0021, Some(x)) if def.battery_percent_scale.is_some() => {
            if x != 255.0 {
                let s = def.battery_percent_scale.unwrap_or(2.0);
                o.push(Kind::Battery, (x / s).min(100.0));
            }
        }
        (cluster::POWER_CFG, 0x0020, Some(x))
            if def.battery_mv.is_some() && x != 0.0 && x != 255.0 =>
        {
            voltage(def, x * 100.0, o);
        }
        (cluster::IAS_ZONE, 0x0002, Some(x)) => zone(def, zone_type, x as u16, vib, o),
        _ => {
            let mut rs = Vec::new();
            zcl_map::attr_readings(o.dev, cl, a, zone_type, vib, o.at, &mut rs);
            o.d.readings.extend(rs);
        }
    }
}

fn voltage(def: &Definition, mv: f64, o: &mut Out<'_>) {
    o.push(Kind::Voltage, (mv / 10.0).round() / 100.0);
    if let Some((empty, full)) = def.battery_mv
        && let Some(p) = xiaomi::battery_percent(mv, empty, full)
    {
        o.push(Kind::Battery, p);
    }
}

fn zone(def: &Definition, zone_type: Option<u16>, status: u16, vib: bool, o: &mut Out<'_>) {
    let bit_maps: Vec<&Map> = def
        .maps
        .iter()
        .filter(|m| matches!(m.source, Source::ZoneBit(_)))
        .collect();
    if bit_maps.is_empty() {
        let mut rs = Vec::new();
        zcl_map::zone_status_readings(o.dev, zone_type, status, vib, o.at, &mut rs);
        o.d.readings.extend(rs);
        return;
    }
    let bit = |n: u8| if status & (1 << n) != 0 { 1.0 } else { 0.0 };
    for mp in &bit_maps {
        if let Source::ZoneBit(n) = mp.source {
            o.apply(mp, bit(n), None);
        }
    }
    let has = |n: u8| bit_maps.iter().any(|m| m.source == Source::ZoneBit(n));
    if !has(2) {
        o.push(Kind::Tamper, bit(2));
    }
    if !has(3) {
        o.push(Kind::BatteryLow, bit(3));
    }
}

fn xiaomi_struct(def: &Definition, raw: &[u8], o: &mut Out<'_>) {
    let Ok(entries) = xiaomi::decode(raw) else {
        return;
    };
    for e in entries {
        let Some(x) = e.value.as_f64() else { continue };
        let mut mapped = false;
        for mp in maps(def, Source::Xiaomi(e.tag)) {
            mapped = true;
            o.apply(mp, x, None);
        }
        if !mapped && e.tag == xiaomi::tag::BATTERY_MV && x > 0.0 {
            voltage(def, x, o);
        }
    }
}

fn tuya_frame(def: &Definition, h: &Header, payload: &[u8], o: &mut Out<'_>) {
    match h.command {
        tuya::cmd::DATA_RESPONSE | tuya::cmd::DATA_REPORT | tuya::cmd::ACTIVE_STATUS_REPORT => {
            let Ok((_, dps)) = tuya::decode(payload) else {
                return;
            };
            for dp in dps {
                let Some(x) = dp.value.as_f64() else { continue };
                for mp in maps(def, Source::TuyaDp(dp.id)) {
                    o.apply(mp, x, None);
                }
            }
        }
        tuya::cmd::TIME_SYNC if def.has(Quirk::TuyaTimeSync) => {
            // Local time is sent as UTC: the core has no time zone here
            // (the devices that show time are displays, not alarms).
            let utc = o.at.0.div_euclid(1000);
            let body =
                tuya::time_sync_response(payload, utc, utc, def.has(Quirk::TuyaTimeEpoch2000));
            let mut out = Vec::with_capacity(3 + body.len());
            Header {
                cluster_specific: true,
                manufacturer: None,
                server_to_client: false,
                disable_default_rsp: true,
                seq: h.seq,
                command: tuya::cmd::TIME_SYNC,
            }
            .encode(&mut out);
            out.extend_from_slice(&body);
            o.d.reply = Some(out);
        }
        _ => {}
    }
}

/// What one `AF_INCOMING_MSG` frame means for a device with definition
/// `def` (`None`: the generic path), as the coordinator decodes it.
pub fn decode_frame(
    frame: &crate::zigbee::frame::Frame,
    def: Option<&Definition>,
    ieee: u64,
    zone_type: Option<u16>,
    at: Time,
) -> Decoded {
    use crate::zigbee::wire::Msg;
    let Ok(m) = crate::zigbee::af::IncomingMsg::from_frame(frame) else {
        return Decoded::default();
    };
    let Ok((h, msg)) = zcl::decode(m.cluster, &m.data) else {
        return Decoded::default();
    };
    let dev = zcl_map::device_id(ieee);
    decode(def, &dev, m.cluster, &m.data, &h, &msg, zone_type, true, at)
}
