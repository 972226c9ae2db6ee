//! Simulated end devices: what each kind of device is (clusters, IAS zone
//! type, model) and how it answers ZCL requests and sends reports.
//! A child of [`super`] so it can extend `Stick` with the device side.

use std::collections::HashSet;

use super::Stick;
use crate::zigbee::af::{DataRequest, IncomingMsg};
use crate::zigbee::frame::Frame;
use crate::zigbee::ias_wd;
use crate::zigbee::identify;
use crate::zigbee::library::tuya;
use crate::zigbee::wire::{Field, Msg, Reader};
use crate::zigbee::zcl::{self, Value, cmd, ty};
use crate::zigbee::zcl_map::{cluster, zone};

/// Kinds of simulated devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimDeviceKind {
    /// IAS zone, motion (0x000d).
    Motion,
    /// IAS zone, contact (0x0015).
    Contact,
    /// Temperature + humidity sensor.
    Temperature,
    /// IAS zone, personal emergency (0x002c).
    PanicButton,
    /// Aqara MCCGQ11LM door contact: contact on genOnOff, 0xFF01 keep-alive.
    AqaraDoor,
    /// Tuya TS0601 mmWave presence radar: data points on cluster 0xEF00,
    /// asks for the time when it joins.
    TuyaPresence,
    /// Frient SOSZB-110 panic button: IAS zone, the press on alarm2.
    FrientPanic,
    /// An indoor siren / strobe: IAS zone (warning device 0x0225) and IAS
    /// WD (0x0502); it records the warnings it is sent (pre-alarms). Not in
    /// the demo's household ([`SimDeviceKind::ALL`]): add it by name.
    Siren,
}

impl SimDeviceKind {
    /// Every kind the demo adds, in its order (all but the siren).
    pub const ALL: [SimDeviceKind; 7] = [
        SimDeviceKind::Motion,
        SimDeviceKind::Contact,
        SimDeviceKind::Temperature,
        SimDeviceKind::PanicButton,
        SimDeviceKind::AqaraDoor,
        SimDeviceKind::TuyaPresence,
        SimDeviceKind::FrientPanic,
    ];

    /// The name used on the command line (`motion`, `contact`,
    /// `temperature`, `panic`, `aqara-door`, `tuya-presence`, `frient-panic`,
    /// `siren`).
    pub const fn as_str(self) -> &'static str {
        match self {
            SimDeviceKind::Motion => "motion",
            SimDeviceKind::Contact => "contact",
            SimDeviceKind::Temperature => "temperature",
            SimDeviceKind::PanicButton => "panic",
            SimDeviceKind::AqaraDoor => "aqara-door",
            SimDeviceKind::TuyaPresence => "tuya-presence",
            SimDeviceKind::FrientPanic => "frient-panic",
            SimDeviceKind::Siren => "siren",
        }
    }

    /// The Basic cluster's manufacturer name and model id the device answers.
    pub const fn identity(self) -> (&'static str, &'static str) {
        match self {
            SimDeviceKind::Motion => ("carebridge-sim", "SIM-PIR"),
            SimDeviceKind::Contact => ("carebridge-sim", "SIM-DOOR"),
            SimDeviceKind::Temperature => ("carebridge-sim", "SIM-TH"),
            SimDeviceKind::PanicButton => ("carebridge-sim", "SIM-SOS"),
            SimDeviceKind::AqaraDoor => ("LUMI", "lumi.sensor_magnet.aq2"),
            SimDeviceKind::TuyaPresence => ("_TZE200_ztc6ggyl", "TS0601"),
            SimDeviceKind::FrientPanic => ("frient A/S", "SOSZB-110"),
            SimDeviceKind::Siren => ("carebridge-sim", "SIM-SIREN"),
        }
    }
}

impl std::str::FromStr for SimDeviceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let every = || SimDeviceKind::ALL.into_iter().chain([SimDeviceKind::Siren]);
        every().find(|k| k.as_str() == s).ok_or_else(|| {
            let all: Vec<_> = every().map(|k| k.as_str()).collect();
            format!("unknown simulated device {s:?} ({})", all.join(", "))
        })
    }
}

#[derive(Clone, Debug)]
pub struct SimDevice {
    pub ieee: u64,
    pub kind: SimDeviceKind,
    /// Assigned when the device joins.
    pub nwk: Option<u16>,
    pub cie: Option<u64>,
    pub enrolled: bool,
    pub bound: HashSet<u16>,
    pub configured: HashSet<u16>,
    pub(super) seq: u8,
    /// The identify time of the last ZCL Identify it received (it "blinks").
    pub identify_secs: Option<u16>,
    /// What a siren was told: IAS WD commands received and decoded.
    pub siren: SirenLog,
}

/// The IAS WD commands a simulated siren received (each acknowledged with
/// a Default Response).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SirenLog {
    /// Start Warning commands (a stop is one, mode 0).
    pub warnings: u32,
    /// The last Start Warning: its mode says whether it sounds now.
    pub last: Option<ias_wd::StartWarning>,
    /// Squawk commands.
    pub squawks: u32,
}

impl SimDevice {
    pub(super) fn zone_type(&self) -> Option<u16> {
        match self.kind {
            SimDeviceKind::Motion => Some(zone::MOTION),
            SimDeviceKind::Contact => Some(zone::CONTACT),
            SimDeviceKind::PanicButton | SimDeviceKind::FrientPanic => {
                Some(zone::PERSONAL_EMERGENCY)
            }
            SimDeviceKind::Siren => Some(zone::WARNING_DEVICE),
            SimDeviceKind::Temperature | SimDeviceKind::AqaraDoor | SimDeviceKind::TuyaPresence => {
                None
            }
        }
    }
    pub(super) fn clusters(&self) -> Vec<u16> {
        match self.kind {
            SimDeviceKind::Temperature => vec![
                cluster::BASIC,
                cluster::POWER_CFG,
                identify::CLUSTER,
                cluster::TEMPERATURE,
                cluster::HUMIDITY,
            ],
            // As the real ones: Basic, Identify, LUMI's 0xFFFF, On/Off.
            SimDeviceKind::AqaraDoor => vec![cluster::BASIC, 0x0003, 0xFFFF, cluster::ON_OFF],
            // Basic, Groups, Scenes, Tuya.
            SimDeviceKind::TuyaPresence => vec![cluster::BASIC, 0x0004, 0x0005, 0xEF00],
            SimDeviceKind::Siren => vec![
                cluster::BASIC,
                cluster::POWER_CFG,
                identify::CLUSTER,
                cluster::IAS_ZONE,
                ias_wd::CLUSTER,
            ],
            _ => vec![
                cluster::BASIC,
                cluster::POWER_CFG,
                identify::CLUSTER,
                cluster::IAS_ZONE,
            ],
        }
    }
}

impl Stick {
    pub(super) fn incoming(nwk: u16, cl: u16, data: Vec<u8>) -> Frame {
        IncomingMsg {
            group: 0,
            cluster: cl,
            src: nwk,
            src_endpoint: 1,
            dst_endpoint: 1,
            was_broadcast: 0,
            lqi: 120,
            security_use: 0,
            timestamp: 0,
            tsn: 0,
            data,
            mac_src: Some(nwk),
            radius: Some(0),
        }
        .to_frame()
    }

    pub(super) fn device_zcl(&mut self, d: &DataRequest, out: &mut Vec<Frame>) {
        let Some(dev) = self.device_mut(d.dst) else {
            return;
        };
        let nwk = d.dst;
        let Ok((h, _)) = zcl::decode(d.cluster, &d.data) else {
            return;
        };
        if h.cluster_specific {
            if d.cluster == identify::CLUSTER
                && let Ok((seq, secs)) = identify::decode_identify(&d.data)
            {
                // A real device blinks; the simulated one says so and
                // acknowledges with a default response (success).
                dev.identify_secs = Some(secs);
                let ieee = dev.ieee;
                self.stats.identifies += 1;
                tracing::info!(
                    device = %crate::zigbee::zcl_map::device_id(ieee),
                    secs,
                    "simulated device identifying (blinking)"
                );
                let mut rsp = Vec::new();
                zcl::Header {
                    cluster_specific: false,
                    manufacturer: None,
                    server_to_client: true,
                    disable_default_rsp: true,
                    seq,
                    command: cmd::DEFAULT_RSP,
                }
                .encode(&mut rsp);
                rsp.extend_from_slice(&[identify::IDENTIFY, 0]);
                out.push(Self::incoming(nwk, d.cluster, rsp));
            } else if d.cluster == ias_wd::CLUSTER && dev.kind == SimDeviceKind::Siren {
                Self::siren_command(dev, nwk, &d.data, out);
                self.stats.warnings += 1;
            } else if d.cluster == cluster::IAS_ZONE && h.command == cmd::ZONE_ENROLL_RESPONSE {
                dev.enrolled = true;
                self.stats.enroll_responses += 1;
            }
            if d.cluster == tuya::CLUSTER && h.command == tuya::cmd::TIME_SYNC {
                self.stats
                    .time_sync_answers
                    .push(d.data.get(3..).unwrap_or(&[]).to_vec());
            }
            return;
        }
        let mut r = Reader::new(d.data.get(3..).unwrap_or(&[]), "sim");
        match h.command {
            cmd::READ_ATTRIBUTES => {
                let mut attrs = Vec::new();
                while let Ok(a) = u16::get(&mut r, "attribute") {
                    let v = match (d.cluster, a) {
                        (cluster::BASIC, 0x0004) => {
                            Some((ty::CHAR_STRING, Value::String(dev.kind.identity().0.into())))
                        }
                        (cluster::BASIC, 0x0005) => {
                            Some((ty::CHAR_STRING, Value::String(dev.kind.identity().1.into())))
                        }
                        (cluster::IAS_ZONE, 0x0001) => dev
                            .zone_type()
                            .map(|z| (ty::ENUM16, Value::Uint(u64::from(z)))),
                        (cluster::POWER_CFG, 0x0021) => Some((ty::U8, Value::Uint(180))),
                        _ => None,
                    };
                    attrs.push((a, v));
                }
                let asks_time =
                    d.cluster == cluster::BASIC && dev.kind == SimDeviceKind::TuyaPresence;
                let ieee = dev.ieee;
                out.push(Self::incoming(
                    nwk,
                    d.cluster,
                    zcl::read_attributes_rsp(h.seq, &attrs),
                ));
                // Tuya devices ask for the time once the gateway knows them.
                if asks_time && let Some(f) = self.tuya_time_request(ieee) {
                    out.push(f);
                }
            }
            cmd::WRITE_ATTRIBUTES => {
                let attr = u16::get(&mut r, "attribute").unwrap_or(0);
                if d.cluster == cluster::IAS_ZONE && attr == 0x0010 {
                    dev.cie = d
                        .data
                        .get(6..14)
                        .map(|b| b.iter().rev().fold(0u64, |a, &x| a << 8 | u64::from(x)));
                }
                out.push(Self::incoming(
                    nwk,
                    d.cluster,
                    zcl::status_rsp(h.seq, cmd::WRITE_ATTRIBUTES_RSP, 0),
                ));
                if d.cluster == cluster::IAS_ZONE
                    && attr == 0x0010
                    && let Some(z) = dev.zone_type()
                {
                    dev.seq = dev.seq.wrapping_add(1);
                    let mut p = z.to_le_bytes().to_vec();
                    p.extend_from_slice(&0x1234u16.to_le_bytes());
                    out.push(Self::incoming(
                        nwk,
                        d.cluster,
                        zcl::zone_command(dev.seq, cmd::ZONE_ENROLL_REQUEST, &p),
                    ));
                }
            }
            cmd::CONFIGURE_REPORTING => {
                dev.configured.insert(d.cluster);
                out.push(Self::incoming(
                    nwk,
                    d.cluster,
                    zcl::status_rsp(h.seq, cmd::CONFIGURE_REPORTING_RSP, 0),
                ));
            }
            _ => {}
        }
    }

    /// A siren's IAS WD command: decoded, recorded, acknowledged with a
    /// Default Response (success; a frame it cannot read: malformed command,
    /// 0x80, and nothing recorded).
    fn siren_command(dev: &mut SimDevice, nwk: u16, data: &[u8], out: &mut Vec<Frame>) {
        let (seq, command, status) = match ias_wd::decode(data) {
            Ok((seq, c)) => {
                match c {
                    ias_wd::Command::StartWarning(w) => {
                        dev.siren.warnings += 1;
                        dev.siren.last = Some(w);
                    }
                    ias_wd::Command::Squawk(_) => dev.siren.squawks += 1,
                }
                tracing::info!(
                    device = %crate::zigbee::zcl_map::device_id(dev.ieee),
                    command = ?c,
                    "simulated siren"
                );
                let id = match c {
                    ias_wd::Command::StartWarning(_) => ias_wd::START_WARNING,
                    ias_wd::Command::Squawk(_) => ias_wd::SQUAWK,
                };
                (seq, id, 0x00)
            }
            Err(e) => {
                tracing::warn!(error = %e, "simulated siren: unreadable command");
                (
                    data.get(1).copied().unwrap_or(0),
                    data.get(2).copied().unwrap_or(0),
                    0x80,
                )
            }
        };
        let mut rsp = Vec::new();
        zcl::Header {
            cluster_specific: false,
            manufacturer: None,
            server_to_client: true,
            disable_default_rsp: true,
            seq,
            command: cmd::DEFAULT_RSP,
        }
        .encode(&mut rsp);
        rsp.extend_from_slice(&[command, status]);
        out.push(Self::incoming(nwk, ias_wd::CLUSTER, rsp));
    }

    /// A zone status change from an IAS device (alarm1 = `active`).
    /// The devices with quirks send their own frames instead (see
    /// `quirky`): the Aqara door its genOnOff report, the Tuya radar a data
    /// point, the Frient button alarm2.
    pub fn zone_alarm(&mut self, ieee: u64, active: bool, tamper: bool) -> Option<Frame> {
        let d = self.devices.iter_mut().find(|d| d.ieee == ieee)?;
        let nwk = d.nwk?;
        match d.kind {
            SimDeviceKind::AqaraDoor => return self.aqara_door(ieee, active),
            SimDeviceKind::TuyaPresence => return self.tuya_presence(ieee, active, 120),
            _ => {}
        }
        d.zone_type()?;
        d.seq = d.seq.wrapping_add(1);
        let alarm_bit = if d.kind == SimDeviceKind::FrientPanic {
            1
        } else {
            0
        };
        let status: u16 = u16::from(active) << alarm_bit | u16::from(tamper) << 2;
        let mut p = status.to_le_bytes().to_vec();
        p.extend_from_slice(&[0, 1, 0, 0]);
        Some(Self::incoming(
            nwk,
            cluster::IAS_ZONE,
            zcl::zone_command(d.seq, cmd::ZONE_STATUS_CHANGE, &p),
        ))
    }

    /// A temperature (and humidity) report.
    pub fn temperature(&mut self, ieee: u64, celsius: f64, humidity: f64) -> Vec<Frame> {
        let Some(d) = self
            .devices
            .iter_mut()
            .find(|d| d.ieee == ieee && d.kind == SimDeviceKind::Temperature)
        else {
            return vec![];
        };
        let Some(nwk) = d.nwk else { return vec![] };
        d.seq = d.seq.wrapping_add(1);
        let t = zcl::report_attributes(
            d.seq,
            &[(0, ty::I16, Value::Int((celsius * 100.0).round() as i64))],
        );
        let h = zcl::report_attributes(
            d.seq,
            &[(0, ty::U16, Value::Uint((humidity * 100.0).round() as u64))],
        );
        vec![
            Self::incoming(nwk, cluster::TEMPERATURE, t),
            Self::incoming(nwk, cluster::HUMIDITY, h),
        ]
    }
}
