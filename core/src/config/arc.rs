//! `[arc]`: the alarm receiving centre (SIA DC-09). Absent: no ARC output.
//!
//! Keys, defaults and validation; the codec is [`crate::arc`], the client
//! task lives in the shell crate (`uplink::arc`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Dur, Problem};
use crate::arc::{EventClass, Format};

/// `[arc]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArcConfig {
    /// `tcp://host:port` or `udp://host:port`.
    pub primary: String,
    /// Used while the primary does not answer.
    pub secondary: Option<String>,
    /// Account number at the ARC: 3–16 hex digits.
    pub account: String,
    /// Receiver number (`R`): 1–6 hex digits.
    pub receiver: String,
    /// Line number (`L`): 1–6 hex digits.
    pub line: String,
    /// Contact ID partition (group), 0–99.
    pub partition: u8,
    /// `contact_id` (ADM-CID) or `sia` (SIA-DCS).
    pub format: Format,
    /// `aes` (needs `key_file`) or `none` (plain, only when said).
    pub encryption: String,
    /// The AES-128/192/256 key, as agreed with the ARC.
    pub key_file: Option<PathBuf>,
    /// `hex` (32/48/64 hex digits, DC-09) or `ascii` (16/24/32 characters
    /// used as they are, as pysiaalarm / Home Assistant take them).
    pub key_encoding: String,
    /// A NULL (link test) message this often while idle (`0s`: never).
    pub supervision: Dur,
    /// A periodic test report (Contact ID 602) this often (`0s`: never).
    pub periodic_test: Dur,
    /// How long to wait for the receiver's answer.
    pub ack_timeout: Dur,
    /// Attempts on one receiver before the other is tried.
    pub attempts: u32,
    /// The longest wait between rounds while no receiver answers.
    pub retry_max: Dur,
    /// A NAK whose timestamp differs from our clock by more than this is a
    /// clock problem: take the receiver's time and send again.
    pub time_tolerance: Dur,
    /// Per rule: an event class (`panic`, `silent_device`, … see ARC.md) or `off`.
    pub rules: BTreeMap<String, String>,
    /// Per device: its zone number at the ARC (1–999); others get one in
    /// order of their first event.
    pub zones: BTreeMap<String, u16>,
}

impl Default for ArcConfig {
    fn default() -> Self {
        ArcConfig {
            primary: "tcp://arc.example.org:9000".into(),
            secondary: None,
            account: "1234".into(),
            receiver: "1".into(),
            line: "1".into(),
            partition: 1,
            format: Format::ContactId,
            encryption: "aes".into(),
            key_file: None,
            key_encoding: "hex".into(),
            supervision: Dur::mins(10),
            periodic_test: Dur::mins(24 * 60),
            ack_timeout: Dur::secs(20),
            attempts: 3,
            retry_max: Dur::secs(60),
            time_tolerance: Dur::secs(20),
            rules: BTreeMap::new(),
            zones: BTreeMap::new(),
        }
    }
}

/// A receiver address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArcTarget {
    pub udp: bool,
    /// `host:port`.
    pub addr: String,
}

impl ArcTarget {
    pub fn parse(s: &str) -> Result<ArcTarget, String> {
        let (udp, rest) = if let Some(r) = s.strip_prefix("tcp://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("udp://") {
            (true, r)
        } else {
            return Err(format!("{s:?}: write tcp://host:port or udp://host:port"));
        };
        let Some((host, port)) = rest.rsplit_once(':') else {
            return Err(format!("{s:?}: no port"));
        };
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("{s:?}: needs a host and a port 1-65535"));
        }
        Ok(ArcTarget {
            udp,
            addr: rest.to_string(),
        })
    }
}

fn hex_id(v: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_hexdigit())
}

impl ArcConfig {
    /// The event class `rule` is configured to, `Some(None)` for `off`,
    /// `None` when it is not configured.
    pub fn rule_class(&self, rule: &str) -> Option<Option<EventClass>> {
        let v = self.rules.get(rule)?;
        Some(if v == "off" {
            None
        } else {
            EventClass::parse(v)
        })
    }

    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if let Err(e) = ArcTarget::parse(&self.primary) {
            out.push(Problem::new("primary", e));
        }
        if let Some(s) = &self.secondary
            && let Err(e) = ArcTarget::parse(s)
        {
            out.push(Problem::new("secondary", e));
        }
        if !hex_id(&self.account, 3, 16) {
            out.push(Problem::new(
                "account",
                format!("{:?}: 3 to 16 hex digits", self.account),
            ));
        }
        for (k, v) in [("receiver", &self.receiver), ("line", &self.line)] {
            if !hex_id(v, 1, 6) {
                out.push(Problem::new(k, format!("{v:?}: 1 to 6 hex digits")));
            }
        }
        if self.partition > 99 {
            out.push(Problem::new(
                "partition",
                format!("{}: at most 99", self.partition),
            ));
        }
        match self.encryption.as_str() {
            "aes" if self.key_file.is_none() => out.push(Problem::new(
                "key_file",
                "encryption = \"aes\" needs a key file (or say encryption = \"none\")",
            )),
            "aes" | "none" => {}
            other => out.push(Problem::new(
                "encryption",
                format!("{other:?}: \"aes\" or \"none\""),
            )),
        }
        if !matches!(self.key_encoding.as_str(), "hex" | "ascii") {
            out.push(Problem::new(
                "key_encoding",
                format!("{:?}: \"hex\" or \"ascii\"", self.key_encoding),
            ));
        }
        if self.ack_timeout.0 < std::time::Duration::from_millis(100) {
            out.push(Problem::new("ack_timeout", "must be at least 100ms"));
        }
        if self.attempts == 0 {
            out.push(Problem::new("attempts", "must be at least 1"));
        }
        if self.retry_max.0 < std::time::Duration::from_secs(1) {
            out.push(Problem::new("retry_max", "must be at least 1s"));
        }
        for (rule, v) in &self.rules {
            if v != "off" && EventClass::parse(v).is_none() {
                let names: Vec<_> = EventClass::ALL.iter().map(|c| c.as_str()).collect();
                out.push(Problem::new(
                    format!("rules.{rule}"),
                    format!("{v:?}: one of off, {}", names.join(", ")),
                ));
            }
        }
        for (dev, z) in &self.zones {
            if !(1..=999).contains(z) {
                out.push(Problem::new(
                    format!("zones.{dev}"),
                    format!("{z}: a zone is 1 to 999"),
                ));
            }
        }
        out
    }

    /// Reads the key file: `Ok(None)` with `encryption = "none"`.
    /// (The caller does the reading; this decodes what it read.)
    pub fn decode_key(&self, text: &str) -> Result<Vec<u8>, String> {
        let t = text.trim();
        let bytes = match self.key_encoding.as_str() {
            "ascii" => t.as_bytes().to_vec(),
            _ => hex::decode(t).map_err(|e| format!("not hex: {e}"))?,
        };
        match bytes.len() {
            16 | 24 | 32 => Ok(bytes),
            n => Err(format!("{n} bytes: an AES key is 16, 24 or 32 bytes")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_key_is_named() {
        let c = ArcConfig {
            primary: "arc:9000".into(),
            secondary: Some("udp://x:0".into()),
            account: "12".into(),
            receiver: "G".into(),
            line: "".into(),
            partition: 100,
            encryption: "aes".into(),
            key_encoding: "base64".into(),
            attempts: 0,
            rules: [("panic".to_string(), "loud".to_string())].into(),
            zones: [("hall".to_string(), 0u16)].into(),
            ..ArcConfig::default()
        };
        let keys: Vec<String> = c.validate().into_iter().map(|p| p.key).collect();
        for k in [
            "primary",
            "secondary",
            "account",
            "receiver",
            "line",
            "partition",
            "key_file",
            "key_encoding",
            "attempts",
            "rules.panic",
            "zones.hall",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} not named in {keys:?}");
        }
    }

    #[test]
    fn plain_needs_encryption_none_said_explicitly() {
        let c = ArcConfig::default();
        assert!(c.validate().iter().any(|p| p.key == "key_file"));
        let c = ArcConfig {
            encryption: "none".into(),
            ..ArcConfig::default()
        };
        assert_eq!(c.validate(), vec![]);
    }

    #[test]
    fn keys_decode_as_hex_or_ascii_and_wrong_lengths_are_refused() {
        let mut c = ArcConfig::default();
        assert_eq!(
            c.decode_key("00112233445566778899aabbccddeeff\n")
                .unwrap()
                .len(),
            16
        );
        assert!(c.decode_key("0011").unwrap_err().contains("2 bytes"));
        c.key_encoding = "ascii".into();
        assert_eq!(
            c.decode_key("ABCDEF0123456789").unwrap(),
            b"ABCDEF0123456789"
        );
    }
}
