//! The frames of the simulated devices with vendor quirks, byte for byte as
//! the real ones send them: the Aqara door's genOnOff report and 0xFF01
//! keep-alive, the Tuya radar's data points and time-sync request. (The
//! Frient button's alarm2 press is a plain IAS frame: `device`.)

use super::{SimDeviceKind, Stick};
use crate::zigbee::frame::Frame;
use crate::zigbee::library::{tuya, xiaomi};
use crate::zigbee::wire::Field;
use crate::zigbee::zcl::{self, Header, Value, cmd, ty};
use crate::zigbee::zcl_map::cluster;

impl Stick {
    fn quirky(&mut self, ieee: u64, kind: SimDeviceKind) -> Option<(u16, u8)> {
        let d = self
            .devices
            .iter_mut()
            .find(|d| d.ieee == ieee && d.kind == kind)?;
        let nwk = d.nwk?;
        d.seq = d.seq.wrapping_add(1);
        Some((nwk, d.seq))
    }

    /// The Aqara door's state change: genOnOff attribute 0, 1 = open.
    pub fn aqara_door(&mut self, ieee: u64, open: bool) -> Option<Frame> {
        let (nwk, seq) = self.quirky(ieee, SimDeviceKind::AqaraDoor)?;
        let data = zcl::report_attributes(seq, &[(0x0000, ty::BOOL, Value::Bool(open))]);
        Some(Self::incoming(nwk, cluster::ON_OFF, data))
    }

    /// The Aqara door's hourly keep-alive: the Basic cluster's 0xFF01
    /// structure (manufacturer-specific header, LUMI's code) with the
    /// battery voltage in mV and the door state.
    pub fn xiaomi_keepalive(&mut self, ieee: u64, battery_mv: u16, open: bool) -> Option<Frame> {
        let (nwk, seq) = self.quirky(ieee, SimDeviceKind::AqaraDoor)?;
        let tlv = xiaomi::encode(&[
            xiaomi::Entry {
                tag: 0x01,
                ty: ty::U16,
                value: Value::Uint(u64::from(battery_mv)),
            },
            xiaomi::Entry {
                tag: 0x03,
                ty: 0x28,
                value: Value::Int(22),
            },
            xiaomi::Entry {
                tag: 0x04,
                ty: ty::U16,
                value: Value::Uint(0x13A8),
            },
            xiaomi::Entry {
                tag: 0x05,
                ty: ty::U16,
                value: Value::Uint(9),
            },
            xiaomi::Entry {
                tag: 0x64,
                ty: ty::BOOL,
                value: Value::Bool(open),
            },
        ]);
        let mut data = Vec::new();
        Header {
            cluster_specific: false,
            manufacturer: Some(xiaomi::MANUFACTURER_CODE),
            server_to_client: true,
            disable_default_rsp: true,
            seq,
            command: cmd::REPORT_ATTRIBUTES,
        }
        .encode(&mut data);
        xiaomi::ATTR_FF01.put(&mut data);
        data.push(ty::CHAR_STRING);
        zcl::write_value(&mut data, ty::CHAR_STRING, &Value::Bytes(tlv));
        Some(Self::incoming(nwk, cluster::BASIC, data))
    }

    fn tuya_frame(nwk: u16, seq: u8, command: u8, payload: &[u8]) -> Frame {
        let mut data = Vec::new();
        Header {
            cluster_specific: true,
            manufacturer: None,
            server_to_client: true,
            disable_default_rsp: false,
            seq,
            command,
        }
        .encode(&mut data);
        data.extend_from_slice(payload);
        Self::incoming(nwk, tuya::CLUSTER, data)
    }

    /// The Tuya radar's report: data point 1 (presence, bool) and 104
    /// (illuminance, lux).
    pub fn tuya_presence(&mut self, ieee: u64, present: bool, lux: i32) -> Option<Frame> {
        let (nwk, seq) = self.quirky(ieee, SimDeviceKind::TuyaPresence)?;
        let payload = tuya::encode(
            u16::from(seq),
            &[
                tuya::Dp {
                    id: 1,
                    value: tuya::DpValue::Bool(present),
                },
                tuya::Dp {
                    id: 104,
                    value: tuya::DpValue::Value(lux),
                },
            ],
        );
        Some(Self::tuya_frame(nwk, seq, tuya::cmd::DATA_REPORT, &payload))
    }

    /// The Tuya radar asks for the time (command 0x24, its request number).
    pub fn tuya_time_request(&mut self, ieee: u64) -> Option<Frame> {
        let (nwk, seq) = self.quirky(ieee, SimDeviceKind::TuyaPresence)?;
        Some(Self::tuya_frame(
            nwk,
            seq,
            tuya::cmd::TIME_SYNC,
            &[0x00, seq],
        ))
    }
}
