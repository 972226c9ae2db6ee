//! What `carebridge config defaults` says about each section and key: one
//! table keyed by dotted key, in the order the file shows them. The values
//! are not here: they come from each section's `Default` (see `defaults`),
//! and a test checks that every key of every section type has a note.

/// A section of the file, in the order shown.
pub(super) struct Section {
    /// Dotted name; the keys of the section are `name.key`.
    pub name: &'static str,
    /// The header as printed (`[[serial]]`, `[devices.hall-motion]`).
    pub header: &'static str,
    /// Shown commented out: the part stays off until the installer enables it.
    pub off: bool,
    /// Lines above the header.
    pub about: &'static str,
}

const fn on(name: &'static str, header: &'static str, about: &'static str) -> Section {
    Section {
        name,
        header,
        off: false,
        about,
    }
}

const fn off(name: &'static str, header: &'static str, about: &'static str) -> Section {
    Section {
        name,
        header,
        off: true,
        about,
    }
}

/// One key's note: comment lines above it and/or at its end, and an
/// example shown (commented out) instead of a default that says nothing.
pub(super) struct Key {
    pub key: &'static str,
    pub above: &'static str,
    pub after: &'static str,
    pub example: Option<&'static str>,
}

impl Key {
    const fn new(key: &'static str) -> Key {
        Key {
            key,
            above: "",
            after: "",
            example: None,
        }
    }
    const fn above(mut self, text: &'static str) -> Key {
        self.above = text;
        self
    }
    const fn after(mut self, text: &'static str) -> Key {
        self.after = text;
        self
    }
    const fn example(mut self, toml: &'static str) -> Key {
        self.example = Some(toml);
        self
    }
}

const fn k(key: &'static str) -> Key {
    Key::new(key)
}

pub(super) const HEAD: &str = "\
carebridge configuration (/etc/carebridge/carebridge.toml)

Every key shows its default. A section that is absent turns its part off;
a misspelt key is an error (`carebridge config check FILE` says which).
Durations: \"250ms\", \"30s\", \"5m\", \"2h\", \"7d\" (also \"1h30m\", \"2 hours\").";

pub(super) const SECTIONS: &[Section] = &[
    on("gateway", "[gateway]", ""),
    on(
        "local_broker",
        "[local_broker]",
        "The embedded MQTT broker for Wi-Fi devices and sensor bridges. Devices
publish JSON readings to carebridge/in/<device_id>, e.g.
  {\"kind\":\"temperature\",\"value\":21.5,\"at\":\"2026-11-22T10:00:00Z\"}",
    ),
    on(
        "uplink.mqtt",
        "[uplink.mqtt]",
        "The care organisation's MQTT broker. Remove the section to run without it.",
    ),
    on("store", "[store]", ""),
    on("rules", "[rules]", ""),
    on("web", "[web]", ""),
    off(
        "zigbee",
        "[zigbee]",
        "The Zigbee coordinator (TI CC2652 running Z-Stack 3.x). Uncomment to enable.",
    ),
    off(
        "serial",
        "[[serial]]",
        "Serial sensor boards (line protocol), one table per port. Uncomment to enable.",
    ),
    off(
        "lorawan",
        "[lorawan]",
        "A LoRaWAN modem on a serial port. Uncomment to enable.",
    ),
    off(
        "ota",
        "[ota]",
        "Over-the-air updates (signed bundles, trial, automatic rollback).",
    ),
    off(
        "arc",
        "[arc]",
        "An alarm receiving centre (SIA DC-09, Contact ID or SIA DCS). Uncomment to enable.",
    ),
    on("remote", "[remote]", ""),
    on("homeassistant", "[homeassistant]", ""),
    on("metrics", "[metrics]", ""),
    off(
        "simulator",
        "[simulator]",
        "The simulated home of `carebridge demo` (and soak tests); not for a real gateway.",
    ),
    off(
        "devices.*",
        "[devices.hall-motion]",
        "Facts the installer knows about devices, by device id.",
    ),
    on("log", "[log]", ""),
];

pub(super) const KEYS: &[Key] = &[
    k("gateway.id")
        .above("Appears in every upstream topic: <prefix>/<id>/alert. 1-64 of A-Z a-z 0-9 . _ : -"),
    k("gateway.data_dir").above("Database, keys and state live here."),
    k("gateway.timezone").above("IANA time zone for the rules' local-time windows."),
    //
    k("local_broker.listen").after("127.0.0.1: devices on this machine only"),
    k("local_broker.username")
        .above("Deprecated: one log-in shared by every client (use device_credentials):")
        .example("\"sensors\""),
    k("local_broker.password_file")
        .example("\"/etc/carebridge/broker.password\"")
        .after("read at start-up"),
    k("local_broker.max_connections").after("clients at once"),
    k("local_broker.max_payload").after("largest accepted MQTT packet, in bytes"),
    k("local_broker.inflight").after(
        "unacknowledged publications per client before its socket waits (a PUBACK waits for the commit)",
    ),
    k("local_broker.device_credentials")
        .above("Devices log in with a credential of their own, made in the web UI\n(Devices → Wi-Fi device credentials) or pushed by cmd/config. A listener\nreachable from the network must authenticate its clients.")
        .after("device <id> publishes only carebridge/in/<id>"),
    k("local_broker.allow_anonymous")
        .after("true: anyone on the network may connect (not recommended; the UI warns)"),
    k("local_broker.tls_listen")
        .after("TLS with this unit's certificate (its SHA-256 is logged at start)")
        .example("\"0.0.0.0:8883\""),
    k("local_broker.max_connections_per_address").after("loopback not counted"),
    k("local_broker.failures_before_backoff")
        .after("then the address waits 1s, 2s, 4s … before its next try"),
    k("local_broker.backoff_max").after("the longest wait"),
    k("local_broker.alert_after_failures")
        .after("log-in failures within 10 min that raise a warning alert (0: never)"),
    //
    k("uplink.mqtt.url")
        .after("mqtt:// for plain TCP; a list [\"mqtts://node-a:8883\", \"mqtts://node-b:8883\"] for a cluster"),
    k("uplink.mqtt.topic_prefix").after("<prefix>/<gateway id>/alert, /telemetry, /status"),
    k("uplink.mqtt.client_id")
        .after("defaults to gateway.id")
        .example("\"home-0001\""),
    k("uplink.mqtt.keepalive").after("a link silent for 1.5 × this is dropped and redialled"),
    k("uplink.mqtt.ca_file")
        .after("CA bundle for the broker's certificate (mqtts)")
        .example("\"/etc/carebridge/ca.pem\""),
    k("uplink.mqtt.cert_file")
        .after("for brokers that authenticate by certificate")
        .example("\"/etc/carebridge/client.pem\""),
    k("uplink.mqtt.key_file")
        .after("the certificate's private key")
        .example("\"/etc/carebridge/client.key\""),
    k("uplink.mqtt.username")
        .example("\"home-0001\"")
        .after("password login"),
    k("uplink.mqtt.password_file")
        .example("\"/etc/carebridge/uplink.password\"")
        .after("(read at start-up)"),
    k("uplink.mqtt.heartbeat").after("how often the retained status document is published"),
    k("uplink.mqtt.telemetry").after("every reading upstream too (alerts always are)"),
    k("uplink.mqtt.inflight").after("QoS 1 messages sent before waiting for acks"),
    k("uplink.mqtt.backoff_min").after("first wait before redialling a lost link"),
    k("uplink.mqtt.backoff_max").after("longest wait between redials"),
    //
    k("store.history_days")
        .above("Days of reading history kept (for the UI and routine learning)."),
    k("store.outbox_max_mb")
        .above("Outbox cap in MiB; above it the oldest telemetry is evicted. Alerts never are."),
    k("store.batch_max").above("Most writes committed together in one transaction (one fsync)."),
    k("store.queue_capacity")
        .above("Writes queued for the writer thread before producers are slowed down."),
    k("store.commit_delay").above(
        "How long readings nobody waits for (Zigbee, serial, QoS 0) may wait to
be committed together (SD-card wear: a home writes one transaction per
interval, not one per reading; a power cut loses at most this much of them).
Alerts and readings whose device waits for its PUBACK commit at once, and a
web page that reads the history commits them first. \"60s\" (the default) cuts
SD-card writes about fifteenfold at home rates (telemetry of such readings
goes upstream up to this much later); \"0s\" turns grouping off.",
    ),
    k("store.retention_interval").above("How often expired history is deleted (in small chunks)."),
    k("store.busy_timeout").above("How long to wait for a database lock."),
    k("store.disk_reserve_kb").above(
        "KiB of disk held in reserve, released when the disk fills up so that
telemetry can be evicted to make room for alerts.",
    ),
    k("store.startup_check")
        .above("Consistency check at start-up: \"quick\", \"full\" or \"off\"."),
    //
    k("rules.file")
        .example("\"/etc/carebridge/rules.toml\"")
        .after(
            "without it, the built-in safety rules apply
(`carebridge rules check FILE` validates one)",
        ),
    k("rules.life_safety")
        .example("[\"panic\", \"fall\", \"smoke\", \"water_leak\"]")
        .after(
            "the kinds every rule set must alert on (default shown); a rule set
without one is refused unless confirmed, and a warning shows while one is off",
        ),
    //
    k("web.listen")
        .above("Address of the installer/carer UI. HTTPS with a per-device certificate."),
    k("web.tls")
        .above("Serve HTTPS. Plain HTTP is refused off loopback unless allow_plain_http is set."),
    k("web.cert_file")
        .example("\"/etc/carebridge/web.crt\"")
        .after("default: self-signed, made on first boot"),
    k("web.key_file")
        .example("\"/etc/carebridge/web.key\"")
        .after("the certificate's private key"),
    k("web.session_idle").above("A session ends after this long without a request."),
    k("web.allow_plain_http")
        .above("Allow tls = false on a non-loopback address (trusted networks only)."),
    k("web.hosts").above(
        "Extra DNS names for the UI (IP addresses, localhost, *.local and
single-label names always work; other Host headers are refused).",
    ),
    //
    k("zigbee.port").after("the stick's serial port (a udev symlink)"),
    k("zigbee.channel").after("11..26; used when a new network is formed"),
    k("zigbee.baud").after("the stick's serial speed"),
    k("zigbee.request_timeout").after("the stick must answer a request within this"),
    k("zigbee.startup_timeout").after("network formation / start-up callbacks"),
    k("zigbee.interview_timeout").after("per interview step (sleepy devices are slow)"),
    k("zigbee.ping_interval").after("link check"),
    k("zigbee.backoff_min").after("re-initialisation backoff after a link failure"),
    k("zigbee.backoff_max").after("longest wait between re-initialisations"),
    k("zigbee.vibration_is_fall").after("IAS vibration zones report as \"fall\""),
    k("zigbee.outage_alert").after("alert when the coordinator is down this long (\"0s\": never)"),
    k("zigbee.devices_file")
        .above(
            "Your own Zigbee device definitions, extending (or overriding) the built-in
library without a rebuild; same format as the built-in table (README: device library).",
        )
        .example("\"/etc/carebridge/devices.toml\""),
    //
    k("serial.name").after("shown on status pages; empty = the port path"),
    k("serial.port").after("the board's serial port"),
    k("serial.baud").after("the board's serial speed"),
    k("serial.checksum").after("require \"*XX\" XOR checksums on every line"),
    k("serial.reopen_interval").after("retry period when the port vanishes"),
    //
    k("lorawan.port").after("the modem's serial port (a udev symlink)"),
    k("lorawan.modem").after("or \"wio-e5\""),
    k("lorawan.baud").after("the modem's serial speed"),
    k("lorawan.region").after("only EU868 is supported"),
    k("lorawan.dev_eui")
        .example("\"AC1F09FFFE000001\"")
        .after("16 hex digits (required)"),
    k("lorawan.join_eui").after("16 hex digits"),
    k("lorawan.app_key_file").after("32 hex digits, mode 0600"),
    k("lorawan.data_rate").after("DR0 (SF12) .. DR5 (SF7); the start with ADR"),
    k("lorawan.adr").after("adaptive data rate; the budget follows the rate used"),
    k("lorawan.modem_retransmissions").after("the modem's own resends (AT+RETY), booked"),
    k("lorawan.info_max_wait").after("info alerts waiting longer for airtime are dropped"),
    k("lorawan.confirmed_alerts").after("urgent ones, while the daily downlink cap allows"),
    k("lorawan.confirmed_retries").after("resends of an unacknowledged confirmed alert"),
    k("lorawan.daily_airtime").after("TTN fair use: 30 s uplink airtime per 24 h"),
    k("lorawan.daily_downlinks").after("TTN fair use: 10 downlinks (acks count) per 24 h"),
    k("lorawan.alert_reserve_percent").after("share of the airtime only alerts may use"),
    k("lorawan.port_alert").after("LoRaWAN FPort of alerts"),
    k("lorawan.port_status").after("FPort of status messages"),
    k("lorawan.port_telemetry").after("FPort of telemetry"),
    k("lorawan.join_backoff_min").after("first wait before retrying a join"),
    k("lorawan.join_backoff_max").after("longest wait between joins"),
    k("lorawan.command_timeout").after("the modem must answer an AT command within this"),
    k("lorawan.mqtt_grace")
        .above("Dual path (with [uplink.mqtt]): alerts go over both until one acknowledges.")
        .after("connected MQTT's time to ack before radio too"),
    k("lorawan.retry_min").after("an alert that failed by radio: first retry"),
    k("lorawan.retry_max").after("longest wait between radio retries"),
    k("lorawan.status_every").after("compact status by radio while MQTT is down"),
    //
    k("ota.keys_dir").after("<id>.pub trusted, <id>.revoked or `revoked` list refused"),
    k("ota.releases_dir")
        .example("\"/var/lib/carebridge/releases\"")
        .after("default: <data_dir>/releases"),
    k("ota.trial_period").after("healthy this long before a new release commits"),
    k("ota.commit_timeout").after("an attempt not committed by then is abandoned"),
    k("ota.max_attempts").after("starts on trial before rolling back"),
    k("ota.max_bundle_size").after("bytes"),
    k("ota.poll_url")
        .example("\"https://updates.example.org/home-0001/update.json\"")
        .after("default: no polling"),
    k("ota.poll_interval").after("how often poll_url is fetched"),
    k("ota.ca_file")
        .example("\"/etc/carebridge/update-ca.pem\"")
        .after("CA for poll_url's certificate"),
    k("ota.require_uplink").after("commit only with the upstream link up"),
    k("ota.require_coordinator").after("commit only with the Zigbee coordinator up"),
    k("ota.keep_releases").after("installed releases kept for rollback"),
    k("ota.fleets").after("fleet names a bundle's `fleets` may target"),
    k("ota.expiry_needs_trusted_clock")
        .after("a bundle with `expires` waits for an NTP-synchronised clock or an RTC"),
    //
    k("remote.require_signed")
        .above("Refuse cmd/config bodies that are not signed by a trusted key (the OTA keys)."),
    k("remote.keys_dir")
        .example("\"/etc/carebridge/keys\"")
        .after("default: [ota] keys_dir"),
    //
    k("arc.primary").after("tcp://host:port or udp://host:port"),
    k("arc.secondary")
        .after("tried while the primary does not answer")
        .example("\"tcp://arc2.example.org:9000\""),
    k("arc.account").after("the account number at the ARC, 3-16 hex digits"),
    k("arc.receiver").after("receiver number (R), 1-6 hex digits"),
    k("arc.line").after("line number (L), 1-6 hex digits"),
    k("arc.partition").after("Contact ID partition (group), 0-99"),
    k("arc.format").after("\"contact_id\" (ADM-CID) or \"sia\" (SIA-DCS)"),
    k("arc.encryption").after("\"aes\" (needs key_file) or \"none\" (plain, only when said)"),
    k("arc.key_file")
        .after("the AES-128/192/256 key agreed with the ARC")
        .example("\"/etc/carebridge/arc.key\""),
    k("arc.key_encoding").after("\"hex\" (DC-09) or \"ascii\" (key characters used as they are)"),
    k("arc.supervision").after("a NULL link test this often while idle (0s: never)"),
    k("arc.periodic_test").after("a periodic test report (Contact ID 602) this often (0s: never)"),
    k("arc.ack_timeout").after("wait this long for the receiver's ACK"),
    k("arc.attempts").after("tries on one receiver before the other"),
    k("arc.retry_max").after("the longest wait between rounds while no receiver answers"),
    k("arc.time_tolerance").after("a NAK with a clock further off than this: resync and resend"),
    k("arc.rules")
        .above("Per rule: the event class sent (see ARC.md), or \"off\".")
        .example("{ front-door-night = \"other\", hall-silent = \"silent_device\" }"),
    k("arc.zones")
        .above("Per device: its zone number at the ARC (1-999).")
        .example("{ hall-panic = 1, kitchen-smoke = 2 }"),
    //
    k("homeassistant.enabled")
        .above("Publish Home Assistant MQTT discovery on the local broker (needs [local_broker])."),
    k("homeassistant.discovery_prefix").after("where Home Assistant listens for discovery"),
    k("homeassistant.state_prefix").after("where the gateway publishes device states"),
    k("homeassistant.resync").after("discovery re-published this often"),
    //
    k("metrics.public").above(
        "/metrics (Prometheus) is on the web UI server: free for loopback peers,
else a session is needed, unless public = true.",
    ),
    k("metrics.listen")
        .above("A listener of its own, e.g. without the web UI (non-loopback needs public = true):")
        .example("\"127.0.0.1:9464\""),
    //
    k("simulator.speed").after("simulated seconds per real second (demo --speed)"),
    k("simulator.seed").after("the same seed gives the same day"),
    k("simulator.panic_per_day").after("expected panic-button presses per simulated day"),
    k("simulator.temperature_every_s").after("seconds between temperature reports"),
    //
    k("devices.*.name")
        .example("\"Hall motion\"")
        .after("shown in the UI and in alerts"),
    k("devices.*.room")
        .example("\"hall\"")
        .after("named in alerts"),
    k("devices.*.role")
        .example("\"motion\"")
        .after("role in the care plan, e.g. front_door, bed"),
    //
    k("log.level")
        .above("error | warn | info | debug | trace, or e.g. \"info,carebridge::zigbee=debug\""),
    k("log.modules")
        .above("Levels per module (RUST_LOG wins over both):")
        .example("{ \"carebridge::zigbee\" = \"debug\" }"),
];
