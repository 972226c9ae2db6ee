//! Seeed Wio-E5 / LoRa-E5 (STM32WLE5, Seeed AT firmware): how it spells AT commands.
//!
//! Owns only spelling; the conversation is `modem::Driver`. Facts from the
//! LoRa-E5 AT command specification: every answer is `+CMD: …`; `AT+MODE=LWOTAA`,
//! `AT+DR=EU868` selects the band plan, `AT+ID=DevEui,"…"`, `AT+KEY=APPKEY,"…"`,
//! `AT+PORT=<n>` then `AT+MSGHEX="…"` (unconfirmed) or `AT+CMSGHEX="…"`
//! (confirmed) whose transaction ends with `+…: Done`; `AT+RESET` restarts.
//!
//! Where it differs from RUI3 (see `rak3172.rs`): no work-mode switch that
//! restarts (`AT+MODE=LWOTAA` is a plain setting; `AT+MODE=TEST` would be
//! P2P); no join-status query — a kept session shows as `+JOIN: Joined
//! already` answering the join (no request goes out, no airtime);
//! `AT+RETRY=<n>` counts *transmissions* of a confirmed uplink (n < 2:
//! once), so it is retransmissions + 1, and `AT+REPT=1` keeps unconfirmed
//! uplinks to one transmission; ADR is `AT+ADR=ON`/`OFF`; `AT+DR` answers
//! `+DR: DR5` (or with the band plan: `+DR: EU868 DR5 SF7 BW125K`).

use super::at::{self, AtLine};
use super::modem::{Dialect, ModemSettings};

#[derive(Debug, Default, Clone)]
pub struct WioE5;

fn colon_hex(b: &[u8]) -> String {
    let h = hex::encode_upper(b);
    h.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

impl Dialect for WioE5 {
    fn name(&self) -> &'static str {
        "wio-e5"
    }
    fn parse(&self, line: &str) -> AtLine {
        at::parse_wio_e5(line)
    }
    fn split<'a>(&self, line: &'a str) -> Vec<&'a str> {
        at::split_wio_e5(line)
    }
    fn probe(&self) -> String {
        "AT".into()
    }
    fn reset(&self) -> String {
        "AT+RESET".into()
    }
    fn value_ends_command(&self) -> bool {
        true
    }
    fn setup(&self, s: &ModemSettings) -> Vec<String> {
        let mut v = vec![
            "AT+MODE=LWOTAA".to_string(),
            format!("AT+DR={}", s.region),
            "AT+CLASS=A".into(),
            format!("AT+ID=DevEui,\"{}\"", colon_hex(&s.dev_eui)),
            format!("AT+ID=AppEui,\"{}\"", colon_hex(&s.join_eui)),
            format!("AT+KEY=APPKEY,\"{}\"", hex::encode_upper(s.app_key)),
        ];
        v.extend(self.resume(s));
        v.push(format!("AT+DR={}", s.data_rate));
        v
    }
    fn resume(&self, s: &ModemSettings) -> Vec<String> {
        vec![
            format!("AT+RETRY={}", u16::from(s.retransmissions) + 1),
            "AT+REPT=1".into(),
            format!("AT+ADR={}", if s.adr { "ON" } else { "OFF" }),
        ]
    }
    fn data_rate_query(&self) -> String {
        "AT+DR".into()
    }
    fn join(&self) -> String {
        "AT+JOIN".into()
    }
    fn send(&self, port: u8, data: &[u8], confirmed: bool) -> Vec<String> {
        let verb = if confirmed { "CMSGHEX" } else { "MSGHEX" };
        vec![
            format!("AT+PORT={port}"),
            format!("AT+{verb}=\"{}\"", hex::encode_upper(data)),
        ]
    }
    fn ack_ends_send(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmed_send_sets_port_then_uses_cmsghex() {
        assert_eq!(
            WioE5.send(7, &[0xde, 0xad], true),
            vec!["AT+PORT=7".to_string(), "AT+CMSGHEX=\"DEAD\"".to_string()]
        );
        assert_eq!(WioE5.send(7, &[1], false)[1], "AT+MSGHEX=\"01\"");
    }

    #[test]
    fn setup_spells_eui_with_colons_and_key_plain() {
        let s = ModemSettings {
            region: "EU868".into(),
            dev_eui: [0x2c, 0xf7, 0xf1, 0x20, 0x24, 0x90, 0x03, 0x63],
            join_eui: [0; 8],
            app_key: [0xab; 16],
            data_rate: 0,
            adr: false,
            retransmissions: 0,
        };
        let c = WioE5.setup(&s);
        assert!(c.contains(&"AT+ID=DevEui,\"2C:F7:F1:20:24:90:03:63\"".to_string()));
        assert!(c.contains(&format!("AT+KEY=APPKEY,\"{}\"", "AB".repeat(16))));
        assert_eq!(c[1], "AT+DR=EU868");
        assert!(c.contains(&"AT+RETRY=1".to_string()), "one transmission");
        assert!(c.contains(&"AT+ADR=OFF".to_string()));
    }
}
