//! RAKwireless RAK3172 with RUI3 firmware: how it spells AT commands.
//!
//! Owns only spelling; the conversation is `modem::Driver`. Facts from the
//! RUI3 AT command manual: status lines `OK` / `AT_*_ERROR`, asynchronous
//! `+EVT:` lines, `AT+SEND=<port>:<hex>`, confirmation switched by `AT+CFM`,
//! `AT+JOIN=<join>:<auto>:<interval>:<attempts>`, `ATZ` restarts the MCU.
//! Region EU868 is band 4 (`AT+BAND=4`).

use super::at::{self, AtLine};
use super::modem::{Dialect, ModemSettings};

/// RUI3 `AT+BAND` number of a region name.
pub fn band_number(region: &str) -> Option<u8> {
    Some(match region {
        "EU433" => 0,
        "CN470" => 1,
        "RU864" => 2,
        "IN865" => 3,
        "EU868" => 4,
        "US915" => 5,
        "AU915" => 6,
        "KR920" => 7,
        "AS923" => 8,
        _ => return None,
    })
}

#[derive(Debug, Default, Clone)]
pub struct Rak3172;

impl Dialect for Rak3172 {
    fn name(&self) -> &'static str {
        "rak3172"
    }
    fn parse(&self, line: &str) -> AtLine {
        at::parse_rak3172(line)
    }
    fn probe(&self) -> String {
        "AT".into()
    }
    fn reset(&self) -> String {
        "ATZ".into()
    }
    fn setup(&self, s: &ModemSettings) -> Vec<String> {
        vec![
            format!("AT+BAND={}", band_number(&s.region).unwrap_or(4)),
            "AT+NJM=1".into(),
            "AT+CLASS=A".into(),
            format!("AT+DEVEUI={}", hex::encode_upper(s.dev_eui)),
            format!("AT+APPEUI={}", hex::encode_upper(s.join_eui)),
            format!("AT+APPKEY={}", hex::encode_upper(s.app_key)),
            "AT+ADR=0".into(),
            format!("AT+DR={}", s.data_rate),
        ]
    }
    fn join(&self) -> String {
        // Join now, no auto-join at boot, 8 s between attempts, one attempt:
        // retries are ours (with backoff and budget), not the modem's.
        "AT+JOIN=1:0:8:1".into()
    }
    fn send(&self, port: u8, data: &[u8], confirmed: bool) -> Vec<String> {
        vec![
            format!("AT+CFM={}", u8::from(confirmed)),
            format!("AT+SEND={port}:{}", hex::encode_upper(data)),
        ]
    }
    fn ack_ends_send(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_switches_confirmation_then_sends_port_and_hex() {
        assert_eq!(
            Rak3172.send(2, &[0x21, 0x34], true),
            vec!["AT+CFM=1".to_string(), "AT+SEND=2:2134".to_string()]
        );
    }

    #[test]
    fn setup_selects_eu868_otaa_and_the_keys() {
        let s = ModemSettings {
            region: "EU868".into(),
            dev_eui: [0xac, 0x1f, 0x09, 0xff, 0xfe, 0, 0, 1],
            join_eui: [0; 8],
            app_key: [0x11; 16],
            data_rate: 5,
        };
        let c = Rak3172.setup(&s);
        assert_eq!(c[0], "AT+BAND=4");
        assert!(c.contains(&"AT+DEVEUI=AC1F09FFFE000001".to_string()));
        assert!(c.contains(&format!("AT+APPKEY={}", "11".repeat(16))));
        assert_eq!(c.last().map(String::as_str), Some("AT+DR=5"));
    }
}
