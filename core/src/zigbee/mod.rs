//! Zigbee through a TI Z-Stack 3.x ZNP coordinator stick (CC2652P/R/RB) on a
//! serial port at 115200 8N1, the way Zigbee2MQTT's zstack adapter talks to it.
//!
//! Layers, bottom up (all pure here; the port, the simulator and the task
//! are in the shell crate's `zigbee`):
//! - [`frame`]: MT/UNPI framing and the resynchronising stream decoder;
//! - [`wire`] + [`sys`], [`zdo`], [`af`], [`app_cnf`], [`util`]: typed MT commands;
//! - [`session`]: one outstanding SREQ, SRSP matching, timeouts, callbacks;
//! - [`startup`]: ping, version, NV check, formation, start, endpoint registration;
//! - [`interview`]: endpoints, descriptors, Basic, bindings, reporting, IAS enrolment;
//! - [`zcl`] + [`zcl_map`]: ZCL frames and what they mean as readings;
//!   [`ias_wd`]: the siren commands (IAS WD Start Warning, Squawk) of pre-alarms
//!   ([`ZigbeeCommand::Warn`]);
//! - [`library`]: the device library (definitions by manufacturer and
//!   model, vendor quirks: Xiaomi 0xFF01, Tuya 0xEF00, buttons); unknown
//!   devices keep the generic [`zcl_map`] path;
//! - [`identify`]: the ZCL Identify command (which device is which);
//! - [`coordinator`]: ties the above together with link supervision policy;
//! - [`outage`]: the coordinator-outage alert (pure; `app` feeds it link changes);
//!
//! Integration: `app` calls the shell's `zigbee::run` with the `[zigbee]` section, the hub's
//! ingest sender, a command receiver ([`ZigbeeCommand::PermitJoin`]), a
//! [`NetworkStore`] over the store's kv table, and the shutdown token. The
//! stored bytes are [`NetworkParams::to_bytes`] (PAN id, extended PAN id,
//! channel, network key, known devices); keep them with the gateway's
//! backups: they are what lets a replacement stick take over the network
//! without re-pairing every sensor.

use serde::{Deserialize, Serialize};

use crate::setting::{Dur, Problem};

pub mod af;
pub mod app_cnf;
pub mod coordinator;
pub mod counters;
pub mod frame;
pub mod ias_wd;
pub mod identify;
pub mod interview;
pub mod library;
pub mod network;
pub mod outage;
pub mod session;
pub mod startup;
pub mod sys;
pub mod util;
pub mod wire;
pub mod zcl;
pub mod zcl_map;
pub mod zdo;

pub use counters::ZigbeeCounters;
pub use network::{KnownDevice, MemoryStore, NetworkParams, NetworkStore};

/// Commands from the rest of the gateway to the coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZigbeeCommand {
    /// Let new devices join for `secs` seconds (at most 254; 0 closes).
    PermitJoin { secs: u16 },
    /// Ask the device with this IEEE address to identify itself (blink or
    /// beep) for `secs` seconds ([`identify`], ZCL Identify).
    Identify { ieee: u64, secs: u16 },
    /// Send a siren (the device with this IEEE address) an IAS WD command
    /// ([`ias_wd`]: Start Warning, Stop, Squawk): a pre-alarm's local
    /// warning (`rules::prealarm`, sent by the hub).
    Warn { ieee: u64, command: ias_wd::Command },
}

/// `[zigbee]`: the coordinator stick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZigbeeConfig {
    pub port: String,
    pub channel: u8,
    pub baud: u32,
    /// How long the stick may take to answer a request (SRSP).
    pub request_timeout: Dur,
    /// How long to wait for formation / start-up callbacks.
    pub startup_timeout: Dur,
    /// How long one interview step waits for a device (sleepy devices are slow).
    pub interview_timeout: Dur,
    /// Period of the SYS_PING link check.
    pub ping_interval: Dur,
    /// First and longest delay before re-initialising after a link failure.
    pub backoff_min: Dur,
    pub backoff_max: Dur,
    /// Treat IAS vibration zones (0x002d) as fall detectors.
    pub vibration_is_fall: bool,
    /// Raise a warning alert when the coordinator has been down this long
    /// (zero: never). See [`outage`].
    pub outage_alert: Dur,
    /// A local device library file extending the built-in one
    /// ([`library`]; read and checked when the configuration is loaded).
    pub devices_file: Option<String>,
}

impl Default for ZigbeeConfig {
    fn default() -> Self {
        ZigbeeConfig {
            port: "/dev/carebridge-zigbee".into(),
            channel: 15,
            baud: 115_200,
            request_timeout: Dur::secs(6),
            startup_timeout: Dur::secs(60),
            interview_timeout: Dur::secs(10),
            ping_interval: Dur::secs(60),
            backoff_min: Dur::secs(1),
            backoff_max: Dur::mins(1),
            vibration_is_fall: true,
            outage_alert: Dur::mins(5),
            devices_file: None,
        }
    }
}

impl ZigbeeConfig {
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if !(11..=26).contains(&self.channel) {
            out.push(Problem::new(
                "channel",
                "must be a Zigbee channel from 11 to 26",
            ));
        }
        if self.port.trim().is_empty() {
            out.push(Problem::new("port", "must name a serial device"));
        }
        if self.baud == 0 {
            out.push(Problem::new("baud", "must be above zero"));
        }
        for (k, d) in [
            ("request_timeout", self.request_timeout),
            ("startup_timeout", self.startup_timeout),
            ("interview_timeout", self.interview_timeout),
            ("ping_interval", self.ping_interval),
            ("backoff_min", self.backoff_min),
        ] {
            if d.0.is_zero() {
                out.push(Problem::new(k, "must be above zero"));
            }
        }
        if self
            .devices_file
            .as_ref()
            .is_some_and(|f| f.trim().is_empty())
        {
            out.push(Problem::new(
                "devices_file",
                "must name a file (or be left out)",
            ));
        }
        if self.backoff_max < self.backoff_min {
            out.push(Problem::new("backoff_max", "must be at least backoff_min"));
        }
        out
    }

    /// The pure coordinator's knobs.
    pub fn coordinator(&self) -> coordinator::CoordinatorConfig {
        coordinator::CoordinatorConfig {
            channel: self.channel,
            srsp_timeout: self.request_timeout.0,
            stall_timeout: std::time::Duration::from_millis(50),
            wait_timeout: self.startup_timeout.0,
            interview_timeout: self.interview_timeout.0,
            ping_interval: self.ping_interval.0,
            vibration_is_fall: self.vibration_is_fall,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        // That `config defaults` shows these defaults: config/defaults_tests.rs.
        assert!(ZigbeeConfig::default().validate().is_empty());
    }

    #[test]
    fn bad_channel_and_backoff_are_named() {
        let c = ZigbeeConfig {
            channel: 27,
            backoff_max: Dur::secs(0),
            ..ZigbeeConfig::default()
        };
        let keys: Vec<_> = c.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, vec!["channel", "backoff_max"]);
    }
}
