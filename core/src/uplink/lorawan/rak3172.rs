//! RAKwireless RAK3172 with RUI3 firmware: how it spells AT commands.
//!
//! Owns only spelling; the conversation is `modem::Driver`. Facts from the
//! RUI3 AT command manual: status lines `OK` / `AT_*_ERROR`, asynchronous
//! `+EVT:` lines, `AT+SEND=<port>:<hex>`, confirmation switched by `AT+CFM`,
//! `AT+JOIN=<join>:<auto>:<interval>:<attempts>`, `ATZ` restarts the MCU.
//! Region EU868 is band 4 (`AT+BAND=4`).
//!
//! Where RUI3 differs from the Wio-E5 (see `wio_e5.rs`):
//! - work mode: `AT+NWM=1` selects LoRaWAN (0 is LoRa P2P, 2 FSK); a
//!   module left in P2P answers LoRaWAN commands with `AT_ERROR` /
//!   `AT_MODE_NO_SUPPORT`, and switching restarts it (the driver starts
//!   over after the boot banner). The Wio-E5 says `AT+MODE=LWOTAA` and
//!   does not restart;
//! - session: `AT+NJS=?` answers `AT+NJS=1` (joined) then `OK`; the
//!   Wio-E5 has no such query;
//! - retransmissions: `AT+RETY=<n>` is the number of *re*transmissions of
//!   a confirmed uplink (0–7); Wio-E5 `AT+RETRY=<n>` counts transmissions;
//! - answers: a query echoes `AT+KEY=value` and is followed by `OK`; the
//!   Wio-E5's `+KEY: value` is the whole answer;
//! - data rate: `AT+DR=?` answers `AT+DR=3`; ADR is `AT+ADR=1`/`0`.

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
    fn split<'a>(&self, line: &'a str) -> Vec<&'a str> {
        at::split_rak3172(line)
    }
    fn probe(&self) -> String {
        "AT".into()
    }
    fn reset(&self) -> String {
        "ATZ".into()
    }
    fn session_query(&self) -> Option<String> {
        Some("AT+NJS=?".into())
    }
    fn session_joined(&self, key: &str, value: &str) -> bool {
        key == "NJS" && value.trim() == "1"
    }
    fn value_ends_command(&self) -> bool {
        false
    }
    fn setup(&self, s: &ModemSettings) -> Vec<String> {
        let mut v = vec![
            // LoRaWAN, not P2P (a switch restarts the module).
            "AT+NWM=1".to_string(),
            format!("AT+BAND={}", band_number(&s.region).unwrap_or(4)),
            "AT+NJM=1".into(),
            "AT+CLASS=A".into(),
            format!("AT+DEVEUI={}", hex::encode_upper(s.dev_eui)),
            format!("AT+APPEUI={}", hex::encode_upper(s.join_eui)),
            format!("AT+APPKEY={}", hex::encode_upper(s.app_key)),
        ];
        v.extend(self.resume(s));
        if s.adr {
            // The starting rate; the network moves it from here.
            v.push(format!("AT+DR={}", s.data_rate));
        }
        v
    }
    fn resume(&self, s: &ModemSettings) -> Vec<String> {
        let mut v = vec![
            format!("AT+RETY={}", s.retransmissions.min(7)),
            format!("AT+ADR={}", u8::from(s.adr)),
        ];
        if !s.adr {
            v.push(format!("AT+DR={}", s.data_rate));
        }
        v
    }
    fn data_rate_query(&self) -> String {
        "AT+DR=?".into()
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
            adr: false,
            retransmissions: 0,
        };
        let c = Rak3172.setup(&s);
        assert_eq!(c[0], "AT+NWM=1", "LoRaWAN work mode first");
        assert_eq!(c[1], "AT+BAND=4");
        assert!(c.contains(&"AT+RETY=0".to_string()));
        assert!(c.contains(&"AT+ADR=0".to_string()));
        assert!(c.contains(&"AT+DEVEUI=AC1F09FFFE000001".to_string()));
        assert!(c.contains(&format!("AT+APPKEY={}", "11".repeat(16))));
        assert_eq!(c.last().map(String::as_str), Some("AT+DR=5"));
    }

    #[test]
    fn a_kept_session_is_not_touched_by_resume() {
        let s = ModemSettings {
            region: "EU868".into(),
            dev_eui: [1; 8],
            join_eui: [0; 8],
            app_key: [0x11; 16],
            data_rate: 3,
            adr: true,
            retransmissions: 2,
        };
        let r = Rak3172.resume(&s);
        assert_eq!(r, vec!["AT+RETY=2".to_string(), "AT+ADR=1".to_string()]);
        assert!(Rak3172.session_joined("NJS", "1"));
        assert!(!Rak3172.session_joined("NJS", "0"));
    }
}
