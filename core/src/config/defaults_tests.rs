use std::collections::BTreeSet;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::*;
use crate::config::Config;

/// The configuration the default file describes: the defaults, with the
/// parts it shows enabled set to their defaults.
fn shown_enabled() -> Config {
    let mut cfg = Config {
        local_broker: Some(LocalBrokerConfig::default()),
        web: Some(crate::config::WebConfig::default()),
        ..Config::default()
    };
    cfg.uplink.mqtt = Some(MqttUplinkConfig::default());
    cfg
}

/// The field names a `#[derive(Deserialize)]` struct declares, read by
/// asking it to deserialise from a deserializer that only records them.
fn fields<T: Deserialize<'static>>() -> BTreeSet<&'static str> {
    struct Fields(Vec<&'static str>);
    impl<'de> Deserializer<'de> for &mut Fields {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.extend(fields);
            Err(de::Error::custom("fields recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut f = Fields(Vec::new());
    let _ = T::deserialize(&mut f);
    f.0.into_iter().collect()
}

/// Every section the file shows, with the fields of its type.
fn sections() -> Vec<(&'static str, BTreeSet<&'static str>)> {
    vec![
        ("gateway", fields::<GatewayConfig>()),
        ("local_broker", fields::<LocalBrokerConfig>()),
        ("uplink.mqtt", fields::<MqttUplinkConfig>()),
        ("store", fields::<crate::config::StoreConfig>()),
        ("rules", fields::<crate::rules::RulesConfig>()),
        ("web", fields::<crate::config::WebConfig>()),
        ("zigbee", fields::<crate::zigbee::ZigbeeConfig>()),
        ("serial", fields::<crate::line::SerialBoardConfig>()),
        ("lorawan", fields::<crate::uplink::lorawan::LorawanConfig>()),
        ("arc", fields::<crate::config::ArcConfig>()),
        ("ota", fields::<crate::config::OtaConfig>()),
        ("remote", fields::<crate::config::RemoteConfig>()),
        ("homeassistant", fields::<crate::config::HaConfig>()),
        ("metrics", fields::<crate::config::MetricsConfig>()),
        ("simulator", fields::<crate::config::SimConfig>()),
        ("devices.*", fields::<super::super::DeviceConfig>()),
        ("log", fields::<LogConfig>()),
    ]
}

#[test]
fn the_field_reader_reads_a_struct() {
    assert_eq!(
        fields::<crate::config::MetricsConfig>(),
        BTreeSet::from(["listen", "public"])
    );
}

#[test]
fn every_part_of_config_has_a_section_in_the_file() {
    let shown: BTreeSet<&str> = SECTIONS.iter().map(|s| s.name).collect();
    let listed: BTreeSet<&str> = sections().iter().map(|(n, _)| *n).collect();
    assert_eq!(shown, listed, "sections() lists the file's sections");
    for top in fields::<Config>() {
        let nested: Vec<String> = match top {
            "uplink" => fields::<super::super::UplinkConfig>()
                .into_iter()
                .map(|f| format!("uplink.{f}"))
                .collect(),
            "devices" => vec!["devices.*".to_string()],
            other => vec![other.to_string()],
        };
        for name in nested {
            assert!(shown.contains(name.as_str()), "[{name}] is not in the file");
        }
    }
}

#[test]
fn every_key_of_every_section_has_a_comment_and_appears() {
    let text = defaults_toml();
    let mut noted: BTreeSet<String> = KEYS.iter().map(|k| k.key.to_string()).collect();
    for (section, keys) in sections() {
        for key in keys {
            let dotted = format!("{section}.{key}");
            let note = KEYS.iter().find(|k| k.key == dotted);
            let note = note.unwrap_or_else(|| panic!("{dotted} has no note in config/notes.rs"));
            assert!(
                !(note.above.is_empty() && note.after.is_empty()),
                "{dotted} has no comment"
            );
            let shown = text
                .lines()
                .map(|l| l.trim_start_matches("# "))
                .any(|l| l.starts_with(&format!("{key} = ")));
            assert!(shown, "{dotted} does not appear in the file");
            noted.remove(&dotted);
        }
    }
    assert!(noted.is_empty(), "notes for keys no type has: {noted:?}");
}

#[test]
fn the_default_file_parses_to_the_defaults_with_the_shown_sections_on() {
    let text = defaults_toml();
    let cfg = Config::parse(&text, "defaults").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg, shown_enabled());
}

#[test]
fn with_every_section_on_the_file_parses_to_every_default() {
    let text = render(true);
    let cfg: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut want = shown_enabled();
    want.zigbee = Some(Default::default());
    want.serial = vec![Default::default()];
    want.lorawan = Some(Default::default());
    want.arc = Some(Default::default());
    want.ota = Some(Default::default());
    want.simulator = Some(Default::default());
    want.devices
        .insert("hall-motion".into(), super::super::DeviceConfig::default());
    assert_eq!(cfg, want);
}

#[test]
fn the_examples_parse_and_validate_when_uncommented() {
    // Every `# key = value` line of a hidden section, uncommented, plus the
    // header: the examples are valid values, not placeholders.
    let text = defaults_toml();
    let mut on = String::new();
    for line in text.lines() {
        match line.strip_prefix("# ") {
            Some(l) if l.starts_with('[') || is_setting(l) => {
                on.push_str(l);
                on.push('\n');
            }
            _ if line.starts_with('[') || line.contains(" = ") => {
                on.push_str(line);
                on.push('\n');
            }
            _ => {}
        }
    }
    let cfg = Config::parse(&on, "uncommented").unwrap_or_else(|e| panic!("{e}\n{on}"));
    assert_eq!(
        cfg.lorawan.as_ref().map(|l| l.dev_eui.as_str()),
        Some("AC1F09FFFE000001")
    );
    assert!(cfg.zigbee.is_some() && cfg.ota.is_some() && cfg.serial.len() == 1);
}

/// `key = value`, not a sentence that happens to contain " = ".
fn is_setting(line: &str) -> bool {
    line.split_once(" = ")
        .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}
