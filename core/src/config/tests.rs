use super::*;

#[test]
fn durations_parse_and_print() {
    assert_eq!(Dur::parse("30s").unwrap(), Dur::secs(30));
    assert_eq!(Dur::parse("5m").unwrap(), Dur::mins(5));
    assert_eq!(Dur::parse("250ms").unwrap().0, Duration::from_millis(250));
    assert_eq!(Dur::parse("2h").unwrap().to_string(), "2h");
    assert!(Dur::parse("30").is_err());
    assert!(Dur::parse("5 parsecs").is_err());
    assert!(Dur::parse("99999999999999999999d").is_err());
}

#[test]
fn every_duration_spelling_accepted_before_jiff_still_is() {
    for (text, ms) in [
        ("250ms", 250),
        ("0s", 0),
        ("30s", 30_000),
        ("5m", 300_000),
        ("5min", 300_000),
        ("2h", 7_200_000),
        ("7d", 604_800_000),
        ("400d", 34_560_000_000),
        (" 10m ", 600_000),
    ] {
        assert_eq!(
            Dur::parse(text).map(|d| d.0),
            Ok(Duration::from_millis(ms)),
            "{text}"
        );
    }
}

#[test]
fn duration_errors_say_what_is_expected() {
    for bad in ["30", "5 parsecs", "-5m", "5m ago", "1mo", "2y", ""] {
        let e = Dur::parse(bad).unwrap_err();
        assert!(e.contains(&format!("{:?}", bad.trim())), "{e}");
        assert!(e.contains("\"30s\", \"5m\""), "{e}");
    }
}

#[test]
fn a_bad_duration_in_the_file_names_key_line_and_what_is_expected() {
    let text = "[uplink.mqtt]\nkeepalive = \"30 parsecs\"\n";
    let e = Config::parse(text, "c.toml").unwrap_err().to_string();
    assert!(e.starts_with("c.toml:2:"), "{e}");
    assert!(e.contains("uplink.mqtt.keepalive: "), "{e}");
    assert!(e.contains("\"7d\""), "{e}");
}

#[test]
fn broker_urls() {
    let u = BrokerUrl::parse("mqtts://broker.example.org").unwrap();
    assert_eq!(
        (u.tls, u.host.as_str(), u.port),
        (true, "broker.example.org", 8883)
    );
    let u = BrokerUrl::parse("mqtt://127.0.0.1:1884").unwrap();
    assert_eq!((u.tls, u.port), (false, 1884));
    let u = BrokerUrl::parse("mqtt://[::1]:1884").unwrap();
    assert_eq!(u.host, "::1");
    for bad in [
        "http://x",
        "mqtt://",
        "mqtt://h:0",
        "mqtt://h:70000",
        "mqtt://u:p@h",
        "mqtt://h/t",
    ] {
        assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_default_file_parses_and_validates() {
    let text = defaults_toml();
    let cfg = Config::parse(&text, "defaults").unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.local_broker.is_some());
    assert!(cfg.uplink.mqtt.is_some());
}

#[test]
fn an_empty_file_turns_optional_parts_off() {
    let cfg = Config::parse("", "empty").unwrap();
    assert!(cfg.local_broker.is_none() && cfg.uplink.mqtt.is_none() && cfg.zigbee.is_none());
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let text = "[gateway]\nid = \"a\"\n\n[uplink.mqtt]\nurl = \"mqtt://h\"\nkeepalve = \"30s\"\n";
    let e = Config::parse(text, "/etc/c.toml").unwrap_err().to_string();
    assert!(e.starts_with("/etc/c.toml:6:"), "{e}");
    assert!(e.contains("uplink.mqtt.keepalve"), "{e}");
    assert!(e.contains("unknown field"), "{e}");
}

#[test]
fn wrong_type_names_the_key() {
    let text = "[local_broker]\nmax_connections = \"many\"\n";
    let e = Config::parse(text, "c.toml").unwrap_err().to_string();
    assert!(e.starts_with("c.toml:2:"), "{e}");
    assert!(e.contains("local_broker.max_connections"), "{e}");
}

#[test]
fn rust_type_names_become_words() {
    assert_eq!(
        crate::setting::locate::plain_words("invalid type: string \"cold\", expected f64"),
        "invalid type: string \"cold\", expected a number"
    );
    assert_eq!(
        crate::setting::locate::plain_words("invalid value: integer `-1`, expected u32"),
        "invalid value: integer `-1`, expected a whole number of 0 or more"
    );
    assert_eq!(
        crate::setting::locate::plain_words("invalid value: integer `70000`, expected u16"),
        "invalid value: integer `70000`, expected a whole number from 0 to 65535"
    );
    assert_eq!(
        crate::setting::locate::plain_words("expected a boolean"),
        "expected a boolean"
    );
    assert_eq!(
        crate::setting::locate::plain_words("expected u160x"),
        "expected u160x"
    );
}

#[test]
fn bad_url_is_reported_with_its_line() {
    let text = "[uplink.mqtt]\ntopic_prefix = \"x\"\nurl = \"http://example.org\"\n";
    let e = Config::parse(text, "c.toml").unwrap_err().to_string();
    assert!(e.contains("c.toml:3: uplink.mqtt.url"), "{e}");
}

#[test]
fn bad_time_zone_and_gateway_id() {
    let text = "[gateway]\nid = \"a/b\"\ntimezone = \"Mars/Olympus\"\n";
    let e = Config::parse(text, "c.toml").unwrap_err().to_string();
    assert!(e.contains("c.toml:2: gateway.id"), "{e}");
    assert!(e.contains("c.toml:3: gateway.timezone"), "{e}");
}

#[test]
fn problems_in_the_second_array_table_and_quoted_keys_name_their_own_line() {
    let text = "[[serial]]\nport = \"/dev/a\"\n\n[[serial]]\nport = \"/dev/b\"\nbaud = 0\n\n[devices.\"a/b\"]\nroom = \"x\"\n";
    let e = Config::parse(text, "c.toml").unwrap_err().to_string();
    assert!(e.contains("c.toml:6: serial[1].baud"), "{e}");
    assert!(e.contains("c.toml:8: devices.a/b"), "{e}");
}

#[test]
fn a_type_error_in_an_array_table_names_its_index() {
    let text = "[[serial]]\nport = \"/dev/a\"\nbaud = \"fast\"\n";
    let e = Config::parse(text, "c.toml").unwrap_err().to_string();
    assert!(e.starts_with("c.toml:3:8: serial[0].baud: "), "{e}");
}

#[test]
fn a_list_of_broker_urls_names_the_bad_entry_with_its_line() {
    let text = "[uplink.mqtt]\ntopic_prefix = \"x\"\nurl = [\n  \"mqtt://node-a:1883\",\n  \"mqtt://node-b:99999\",\n]\n";
    let e = Config::parse(text, "c.toml").unwrap_err().to_string();
    assert!(e.contains("c.toml:5: uplink.mqtt.url[1]"), "{e}");
    assert!(e.contains("99999"), "{e}");
    let mixed = "[uplink.mqtt]\nurl = [\"mqtt://a\", \"mqtts://b\"]\n";
    let e = Config::parse(mixed, "c.toml").unwrap_err().to_string();
    assert!(
        e.contains("uplink.mqtt.url[1]") && e.contains("one scheme"),
        "{e}"
    );
    let empty = "[uplink.mqtt]\nurl = []\n";
    let e = Config::parse(empty, "c.toml").unwrap_err().to_string();
    assert!(
        e.contains("uplink.mqtt.url") && e.contains("empty list"),
        "{e}"
    );
    let number = "[uplink.mqtt]\nurl = 5\n";
    let e = Config::parse(number, "c.toml").unwrap_err().to_string();
    assert!(e.contains("a broker URL or a list of broker URLs"), "{e}");
}

#[test]
fn a_list_of_broker_urls_is_read_and_written_back_as_a_list() {
    let text = "[uplink.mqtt]\nurl = [\"mqtt://node-a:1883\", \"mqtt://node-b:1884\"]\n";
    let cfg = Config::parse(text, "c.toml").unwrap_or_else(|e| panic!("{e}"));
    let m = cfg.uplink.mqtt.unwrap();
    let nodes = m.url.parse_all().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!((nodes[1].host.as_str(), nodes[1].port), ("node-b", 1884));
    let back = toml::to_string(&m).unwrap();
    assert!(
        back.contains("url = [\"mqtt://node-a:1883\", \"mqtt://node-b:1884\"]"),
        "{back}"
    );
    let one = MqttUplinkConfig::default();
    let back = toml::to_string(&one).unwrap();
    assert!(
        back.contains("url = \"mqtts://broker.example.org:8883\""),
        "{back}"
    );
}
