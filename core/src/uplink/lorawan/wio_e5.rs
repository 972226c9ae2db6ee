//! Seeed Wio-E5 / LoRa-E5 (STM32WLE5, Seeed AT firmware): how it spells AT commands.
//!
//! Owns only spelling; the conversation is `modem::Driver`. Facts from the
//! LoRa-E5 AT command specification: every answer is `+CMD: …`; `AT+MODE=LWOTAA`,
//! `AT+DR=EU868` selects the band plan, `AT+ID=DevEui,"…"`, `AT+KEY=APPKEY,"…"`,
//! `AT+PORT=<n>` then `AT+MSGHEX="…"` (unconfirmed) or `AT+CMSGHEX="…"`
//! (confirmed) whose transaction ends with `+…: Done`; `AT+RESET` restarts.

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
    fn probe(&self) -> String {
        "AT".into()
    }
    fn reset(&self) -> String {
        "AT+RESET".into()
    }
    fn setup(&self, s: &ModemSettings) -> Vec<String> {
        vec![
            "AT+MODE=LWOTAA".into(),
            format!("AT+DR={}", s.region),
            "AT+CLASS=A".into(),
            format!("AT+ID=DevEui,\"{}\"", colon_hex(&s.dev_eui)),
            format!("AT+ID=AppEui,\"{}\"", colon_hex(&s.join_eui)),
            format!("AT+KEY=APPKEY,\"{}\"", hex::encode_upper(s.app_key)),
            "AT+ADR=OFF".into(),
            format!("AT+DR={}", s.data_rate),
        ]
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
        };
        let c = WioE5.setup(&s);
        assert!(c.contains(&"AT+ID=DevEui,\"2C:F7:F1:20:24:90:03:63\"".to_string()));
        assert!(c.contains(&format!("AT+KEY=APPKEY,\"{}\"", "AB".repeat(16))));
        assert_eq!(c[1], "AT+DR=EU868");
    }
}
