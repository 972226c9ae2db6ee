//! The `[lorawan]` config section and the AppKey file.
//!
//! Owns: keys, defaults and validation of `[lorawan]`, and the AppKey
//! file's error (the shell's `uplink::lorawan::read_app_key` reads it from
//! its own file, never inline, refusing a file other users can read). Region: only EU868 (the airtime budget knows EU868 sub-bands).

use serde::{Deserialize, Serialize};

use super::airtime::{BudgetLimits, eu868_data_rate};
use super::modem::{ModemSettings, Timeouts};
use super::policy::CoreConfig;
use crate::setting::{Dur, Problem};

/// A `[lorawan]` value that passed parsing but cannot be used (normally
/// caught by `validate` first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lorawan.{key}: {reason}")]
pub struct SettingError {
    pub key: &'static str,
    pub reason: &'static str,
}

/// `[lorawan]`: the LoRaWAN modem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LorawanConfig {
    pub port: String,
    /// `rak3172` or `wio-e5`.
    pub modem: String,
    pub baud: u32,
    /// Regional parameters; only `EU868` is supported.
    pub region: String,
    /// 16 hex digits, as printed on the modem.
    pub dev_eui: String,
    /// JoinEUI (AppEUI), 16 hex digits.
    pub join_eui: String,
    /// File holding the AppKey (32 hex digits); must not be world-readable.
    pub app_key_file: String,
    /// Uplink data rate DR0 (SF12) … DR5 (SF7): fixed without ADR, the
    /// starting rate with it.
    pub data_rate: u8,
    /// Adaptive data rate (on: TTN's advice for devices that stay put; a
    /// home with weak coverage gets slower, longer-reaching rates). The
    /// airtime budget follows the data rate the modem reports.
    pub adr: bool,
    /// Retransmissions of an unacknowledged confirmed uplink by the modem
    /// itself (RUI3 `AT+RETY`, 0–7), each booked as airtime; 0: only our
    /// own retries (`confirmed_retries`), which wait for the budget.
    pub modem_retransmissions: u8,
    /// How long an info-level alert may wait for airtime before it is
    /// dropped from the radio (counted).
    pub info_max_wait: Dur,
    /// Send alerts as confirmed uplinks (while the daily downlink cap allows).
    pub confirmed_alerts: bool,
    /// Extra attempts of a confirmed uplink that got no acknowledgement.
    pub confirmed_retries: u8,
    /// Uplink airtime allowed in any 24 h (TTN fair use: 30 s).
    pub daily_airtime: Dur,
    /// Downlinks (acks included) allowed in any 24 h (TTN fair use: 10).
    pub daily_downlinks: u32,
    /// Percent of the daily airtime only alerts may use.
    pub alert_reserve_percent: u8,
    pub port_alert: u8,
    pub port_status: u8,
    pub port_telemetry: u8,
    pub join_backoff_min: Dur,
    pub join_backoff_max: Dur,
    /// How long the modem may take to answer a command.
    pub command_timeout: Dur,
    /// Dual path: how long a connected MQTT link may take to acknowledge an
    /// alert before it also goes by radio (`"0s"`: by radio as soon as the
    /// router sees the row, unless MQTT acknowledged it already).
    pub mqtt_grace: Dur,
    /// Dual path: first wait before an alert that failed by radio is retried
    /// (doubling up to `retry_max`).
    pub retry_min: Dur,
    pub retry_max: Dur,
    /// Dual path: a compact status summary this often while MQTT is down.
    pub status_every: Dur,
}

impl Default for LorawanConfig {
    fn default() -> Self {
        LorawanConfig {
            port: "/dev/carebridge-lora".into(),
            modem: "rak3172".into(),
            baud: 115_200,
            region: "EU868".into(),
            dev_eui: String::new(),
            join_eui: "0000000000000000".into(),
            app_key_file: "/etc/carebridge/lorawan-appkey".into(),
            data_rate: 5,
            adr: true,
            modem_retransmissions: 0,
            info_max_wait: Dur::mins(10),
            confirmed_alerts: true,
            confirmed_retries: 2,
            daily_airtime: Dur::secs(30),
            daily_downlinks: 10,
            alert_reserve_percent: 50,
            port_alert: 10,
            port_status: 11,
            port_telemetry: 12,
            join_backoff_min: Dur::secs(15),
            join_backoff_max: Dur::mins(60),
            command_timeout: Dur::secs(3),
            mqtt_grace: Dur::secs(5),
            retry_min: Dur::secs(30),
            retry_max: Dur::mins(15),
            status_every: Dur::mins(360),
        }
    }
}

fn eui(s: &str) -> Option<[u8; 8]> {
    hex::FromHex::from_hex(s.trim()).ok()
}

impl LorawanConfig {
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if !matches!(self.modem.as_str(), "rak3172" | "wio-e5") {
            out.push(Problem::new("modem", "must be rak3172 or wio-e5"));
        }
        if self.region != "EU868" {
            out.push(Problem::new(
                "region",
                "only EU868 is supported (the airtime budget knows its sub-bands)",
            ));
        }
        if eui(&self.dev_eui).is_none() {
            out.push(Problem::new("dev_eui", "must be 16 hex digits"));
        }
        if eui(&self.join_eui).is_none() {
            out.push(Problem::new("join_eui", "must be 16 hex digits"));
        }
        if self.app_key_file.trim().is_empty() {
            out.push(Problem::new(
                "app_key_file",
                "must name the file holding the AppKey",
            ));
        }
        if self.data_rate > 5 {
            out.push(Problem::new("data_rate", "must be 0 (SF12) to 5 (SF7)"));
        }
        if self.modem_retransmissions > 7 {
            out.push(Problem::new("modem_retransmissions", "must be 0 to 7"));
        }
        if self.daily_airtime.0.is_zero() {
            out.push(Problem::new("daily_airtime", "must be more than zero"));
        }
        if self.alert_reserve_percent > 100 {
            out.push(Problem::new("alert_reserve_percent", "must be 0 to 100"));
        }
        for (k, p) in [
            ("port_alert", self.port_alert),
            ("port_status", self.port_status),
            ("port_telemetry", self.port_telemetry),
        ] {
            if !(1..=223).contains(&p) {
                out.push(Problem::new(k, "must be an application port 1 to 223"));
            }
        }
        if self.join_backoff_min > self.join_backoff_max {
            out.push(Problem::new(
                "join_backoff_min",
                "must not exceed join_backoff_max",
            ));
        }
        if self.command_timeout.0.is_zero() {
            out.push(Problem::new("command_timeout", "must be more than zero"));
        }
        if self.retry_min.0.is_zero() || self.retry_min > self.retry_max {
            out.push(Problem::new(
                "retry_min",
                "must be more than zero and not exceed retry_max",
            ));
        }
        if self.status_every.0 < std::time::Duration::from_secs(60) {
            out.push(Problem::new("status_every", "must be at least 1m"));
        }
        out
    }

    /// Modem settings with the AppKey already read.
    pub fn modem_settings(&self, app_key: [u8; 16]) -> Result<ModemSettings, SettingError> {
        Ok(ModemSettings {
            region: self.region.clone(),
            dev_eui: eui(&self.dev_eui).ok_or(SettingError {
                key: "dev_eui",
                reason: "must be 16 hex digits",
            })?,
            join_eui: eui(&self.join_eui).ok_or(SettingError {
                key: "join_eui",
                reason: "must be 16 hex digits",
            })?,
            app_key,
            data_rate: self.data_rate,
            adr: self.adr,
            retransmissions: self.modem_retransmissions,
        })
    }

    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            command: self.command_timeout.0,
            ..Timeouts::default()
        }
    }

    /// The dual-path routing settings.
    pub fn router_config(&self) -> crate::uplink::router::RouterConfig {
        crate::uplink::router::RouterConfig {
            mqtt_grace: self.mqtt_grace.0,
            retry_min: self.retry_min.0,
            retry_max: self.retry_max.0,
            status_every: self.status_every.0,
            // Set by the wiring, which knows whether MQTT is configured.
            lorawan_only: false,
        }
    }

    pub fn core_config(&self) -> Result<CoreConfig, SettingError> {
        Ok(CoreConfig {
            radio: eu868_data_rate(self.data_rate).ok_or(SettingError {
                key: "data_rate",
                reason: "must be 0 to 5",
            })?,
            data_rate: self.data_rate,
            limits: BudgetLimits {
                daily_airtime: self.daily_airtime.0,
                daily_downlinks: self.daily_downlinks,
                alert_reserve_percent: self.alert_reserve_percent,
            },
            ports: [self.port_alert, self.port_status, self.port_telemetry],
            confirmed_retries: self.confirmed_retries,
            retransmissions: self.modem_retransmissions,
            info_max_wait: self.info_max_wait.0,
            join_backoff_min: self.join_backoff_min.0,
            join_backoff_max: self.join_backoff_max.0,
        })
    }
}

/// Why the AppKey file was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppKeyError {
    #[error("{path}: cannot read the AppKey file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: readable by other users (mode {mode:o}); run chmod 600 on it")]
    WorldReadable { path: String, mode: u32 },
    #[error("{path}: must hold exactly 32 hex digits (the AppKey)")]
    Format { path: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_only_a_dev_eui() {
        let mut c = LorawanConfig::default();
        let p = c.validate();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "dev_eui");
        c.dev_eui = "AC1F09FFFE000001".into();
        assert!(c.validate().is_empty());
    }

    #[test]
    fn bad_values_name_their_keys() {
        let c = LorawanConfig {
            region: "US915".into(),
            data_rate: 6,
            modem_retransmissions: 8,
            port_alert: 0,
            ..LorawanConfig::default()
        };
        let keys: Vec<String> = c.validate().into_iter().map(|p| p.key).collect();
        for k in ["region", "data_rate", "port_alert", "modem_retransmissions"] {
            assert!(keys.contains(&k.to_string()), "{keys:?}");
        }
    }
}
