//! Rendering the exposition text: a pure function of [`Inputs`] (the series
//! are listed in the module header of `metrics`).

use std::fmt::Write as _;

use super::{Inputs, label};
use crate::status::{Status, ZigbeeStatus};

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP carebridge_{name} {help}");
        let _ = writeln!(self.0, "# TYPE carebridge_{name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: impl std::fmt::Display) {
        let _ = write!(self.0, "carebridge_{name}");
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", l.join(","));
        }
        let _ = writeln!(self.0, " {v}");
    }
}

/// The coordinator link's counters (the status document's `zigbee` part,
/// see [`crate::zigbee::ZigbeeCounters`]) as series.
type ZigbeeSeries = (fn(&ZigbeeStatus) -> u64, &'static str, &'static str);
const ZIGBEE_SERIES: [ZigbeeSeries; 6] = [
    (
        |z| z.frames,
        "zigbee_frames_total",
        "ZNP frames decoded from the coordinator stick.",
    ),
    (
        |z| z.frame_errors,
        "zigbee_frame_errors_total",
        "Rejected ZNP frames (bad checksum, length or type) on the serial line.",
    ),
    (
        |z| z.timeouts,
        "zigbee_request_timeouts_total",
        "Requests to the coordinator that got no answer in time.",
    ),
    (
        |z| z.rpc_errors,
        "zigbee_rpc_errors_total",
        "MT RPC errors returned by the coordinator.",
    ),
    (
        |z| z.restarts,
        "zigbee_coordinator_restarts_total",
        "Coordinator sessions that failed and were started again.",
    ),
    (
        |z| z.resets,
        "zigbee_coordinator_resets_total",
        "Unexpected coordinator stick resets (a subset of the restarts).",
    ),
];

/// One uplink as its series show it: (name, up, connects, delivered).
fn uplink_rows(s: &Status) -> Vec<(&'static str, bool, u64, u64)> {
    let mut rows = Vec::with_capacity(2);
    // Sorted by name, as they always were. LoRaWAN is up when joined; it
    // counts no connections (0), and its deliveries are the alerts the
    // store recorded as delivered by radio.
    if let Some(l) = &s.uplinks.lorawan {
        rows.push(("lorawan", l.state == "joined", 0, s.delivered.lorawan));
    }
    let m = &s.uplinks.mqtt;
    rows.push(("mqtt", m.state == "connected", m.connects, m.delivered));
    rows
}

/// The exposition text (pure).
pub fn render(i: &Inputs) -> String {
    let mut o = Out(String::with_capacity(4096));
    let s = &i.status;
    o.family("build_info", "gauge", "Version of the running carebridge.");
    o.sample("build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);
    o.family(
        "uptime_seconds",
        "gauge",
        "Seconds since the gateway started.",
    );
    o.sample("uptime_seconds", &[], s.uptime_s);
    o.family(
        "clock_trusted",
        "gauge",
        "1 when the clock is NTP-synchronised or kept by an RTC (source: ntp, rtc, none).",
    );
    o.sample(
        "clock_trusted",
        &[("source", s.clock.source)],
        u8::from(s.clock.trusted),
    );
    o.family(
        "clock_steps_total",
        "counter",
        "Wall-clock steps the gateway followed.",
    );
    o.sample("clock_steps_total", &[], s.clock.steps);
    o.family(
        "clock_corrections_total",
        "counter",
        "Steps that corrected stamps made while the clock was not trusted.",
    );
    o.sample("clock_corrections_total", &[], s.clock.corrections_total);
    if let Some(st) = s.clock.last_step {
        o.family(
            "clock_last_step_seconds",
            "gauge",
            "Size of the last wall-clock step (negative: backwards).",
        );
        o.sample("clock_last_step_seconds", &[], st.delta_ms as f64 / 1000.0);
        o.family(
            "clock_last_step_timestamp_seconds",
            "gauge",
            "When the last wall-clock step was followed (Unix time, after it).",
        );
        o.sample(
            "clock_last_step_timestamp_seconds",
            &[],
            st.at.as_millis() as f64 / 1000.0,
        );
    }
    o.family("readings_total", "counter", "Readings received, by kind.");
    for (k, n) in &i.by_kind {
        o.sample("readings_total", &[("kind", k.as_str())], n);
    }
    o.family(
        "alerts_total",
        "counter",
        "Alerts raised and cleared, by rule and severity.",
    );
    for ((rule, sev, state), n) in &i.by_rule {
        o.sample(
            "alerts_total",
            &[("rule", rule), ("severity", sev), ("state", state)],
            n,
        );
    }
    let classes = [
        ("alert", &i.store.alert),
        ("status", &i.store.status),
        ("telemetry", &i.store.telemetry),
    ];
    o.family(
        "outbox_rows",
        "gauge",
        "Rows waiting for the uplink, by class.",
    );
    for (c, st) in classes {
        o.sample("outbox_rows", &[("class", c)], st.rows);
    }
    o.family(
        "outbox_bytes",
        "gauge",
        "Bytes waiting for the uplink, by class.",
    );
    for (c, st) in classes {
        o.sample("outbox_bytes", &[("class", c)], st.bytes);
    }
    o.family(
        "outbox_oldest_age_seconds",
        "gauge",
        "Age of the oldest waiting row, by class (0 when empty).",
    );
    for (c, age) in s.oldest_age_s.iter() {
        o.sample("outbox_oldest_age_seconds", &[("class", c)], age);
    }
    o.family(
        "outbox_evicted_total",
        "counter",
        "Rows evicted by the outbox cap, by class.",
    );
    for (c, st) in classes {
        o.sample("outbox_evicted_total", &[("class", c)], st.evicted);
    }
    let ups = uplink_rows(s);
    o.family("uplink_up", "gauge", "1 when the uplink is connected.");
    for (name, up, _, _) in &ups {
        o.sample("uplink_up", &[("uplink", name)], u8::from(*up));
    }
    o.family(
        "uplink_connects_total",
        "counter",
        "Successful connections since start.",
    );
    for (name, _, connects, _) in &ups {
        o.sample("uplink_connects_total", &[("uplink", name)], connects);
    }
    o.family(
        "uplink_reconnects_total",
        "counter",
        "Connections after the first since start.",
    );
    for (name, _, connects, _) in &ups {
        o.sample(
            "uplink_reconnects_total",
            &[("uplink", name)],
            connects.saturating_sub(1),
        );
    }
    o.family(
        "uplink_delivered_total",
        "counter",
        "Rows acknowledged by the far end since start.",
    );
    for (name, _, _, delivered) in &ups {
        o.sample("uplink_delivered_total", &[("uplink", name)], delivered);
    }
    if s.uplinks.mqtt.state != "off" {
        let m = &s.uplinks.mqtt;
        o.family(
            "uplink_failovers_total",
            "counter",
            "MQTT connections made to another broker node than the previous one.",
        );
        o.sample("uplink_failovers_total", &[("uplink", "mqtt")], m.failovers);
        if let (Some(node), true) = (&m.node, m.state == "connected") {
            o.family(
                "uplink_node_info",
                "gauge",
                "The broker node the MQTT uplink is connected to (value 1).",
            );
            o.sample(
                "uplink_node_info",
                &[("uplink", "mqtt"), ("node", node.as_str())],
                1,
            );
        }
    }
    if let Some(l) = &s.uplinks.lorawan {
        o.family(
            "lorawan_airtime_used_seconds",
            "gauge",
            "LoRaWAN uplink airtime used in the last 24 hours.",
        );
        o.sample(
            "lorawan_airtime_used_seconds",
            &[],
            l.airtime_24h_ms as f64 / 1000.0,
        );
        o.family(
            "lorawan_downlinks_24h",
            "gauge",
            "LoRaWAN downlinks (acks and join accepts) in the last 24 hours.",
        );
        o.sample("lorawan_downlinks_24h", &[], l.downlinks_24h);
        o.family(
            "lorawan_data_rate",
            "gauge",
            "The data rate the LoRaWAN modem reports (ADR moves it).",
        );
        o.sample("lorawan_data_rate", &[], l.data_rate);
        o.family(
            "lorawan_joins_total",
            "counter",
            "LoRaWAN join accepts since start.",
        );
        o.sample("lorawan_joins_total", &[], l.joins);
        o.family(
            "lorawan_info_dropped_total",
            "counter",
            "Info alerts dropped from the radio under budget pressure since start.",
        );
        o.sample("lorawan_info_dropped_total", &[], l.info_dropped);
    }
    if let Some(a) = &s.uplinks.arc {
        o.family(
            "arc_up",
            "gauge",
            "1 when the alarm receiving centre answered the last message.",
        );
        o.sample("arc_up", &[], u8::from(a.state == "connected"));
        o.family(
            "arc_queued",
            "gauge",
            "Alerts waiting for the alarm receiving centre's ACK.",
        );
        o.sample("arc_queued", &[], a.queued);
        for (name, help, v) in [
            (
                "arc_delivered_total",
                "Alerts the ARC acknowledged since start.",
                a.delivered,
            ),
            (
                "arc_naks_total",
                "NAKs from the ARC since start (refusals and clock resyncs).",
                a.naks,
            ),
            (
                "arc_nak_resyncs_total",
                "Timestamp NAKs: clock corrected and message resent.",
                a.nak_resyncs,
            ),
            (
                "arc_duh_total",
                "DUH answers (event not understood, dropped) since start.",
                a.duh,
            ),
            (
                "arc_timeouts_total",
                "Exchanges with no usable answer since start.",
                a.timeouts,
            ),
            (
                "arc_failovers_total",
                "Switches to the secondary receiver since start.",
                a.failovers,
            ),
            (
                "arc_supervision_total",
                "NULL link tests sent since start.",
                a.supervision_sent,
            ),
        ] {
            o.family(name, "counter", help);
            o.sample(name, &[], v);
        }
    }
    o.family(
        "link_up",
        "gauge",
        "1 when the link (coordinator, serial board, modem) is up.",
    );
    for (name, l) in &s.links {
        o.sample("link_up", &[("link", name)], u8::from(l.up));
    }
    o.family(
        "link_down_total",
        "counter",
        "Times a link went down (coordinator resets, lost ports, modem loss).",
    );
    for (name, n) in &i.link_downs {
        o.sample("link_down_total", &[("link", name)], n);
    }
    if let Some(z) = &s.zigbee {
        for (read, name, help) in ZIGBEE_SERIES {
            o.family(name, "counter", help);
            o.sample(name, &[], read(z));
        }
    }
    let h = &i.store.commit_latency;
    o.family(
        "store_commit_seconds",
        "histogram",
        "Store transaction (group commit) latency.",
    );
    for (n, bound) in h.buckets.iter().zip(crate::store::CommitLatency::BOUNDS_US) {
        let le = format!("{}", bound as f64 / 1e6);
        o.sample("store_commit_seconds_bucket", &[("le", &le)], n);
    }
    o.sample("store_commit_seconds_bucket", &[("le", "+Inf")], h.count);
    o.sample("store_commit_seconds_sum", &[], h.sum_us as f64 / 1e6);
    o.sample("store_commit_seconds_count", &[], h.count);
    o.family(
        "store_commits_total",
        "counter",
        "Store transactions committed.",
    );
    o.sample("store_commits_total", &[], i.store.commits);
    o.family(
        "store_failed_commits_total",
        "counter",
        "Store commits that failed and were retried.",
    );
    o.sample("store_failed_commits_total", &[], i.store.failed_commits);
    for (name, v) in [
        ("mqtt_ingest_accepted_total", s.counters.mqtt_accepted),
        ("mqtt_ingest_malformed_total", s.counters.mqtt_malformed),
        ("mqtt_ingest_refused_total", s.counters.mqtt_refused),
    ] {
        o.family(name, "counter", "Local MQTT ingest publications.");
        o.sample(name, &[], v);
    }
    o.family(
        "mqtt_shed_total",
        "counter",
        "Messages the MQTT front door dropped under load, by cause.",
    );
    let shed = &s.counters.mqtt_shed;
    for (cause, v) in [
        ("broker_skipped", shed.broker_skipped),
        ("qos0_overload", shed.qos0_overload),
        ("subscriber_slow", shed.subscriber_slow),
    ] {
        o.sample("mqtt_shed_total", &[("cause", cause)], v);
    }
    if let Some(b) = &s.local_broker {
        o.family(
            "local_broker_refused_total",
            "counter",
            "Connections, log-ins, publishes and subscriptions the local broker's access policy refused, by cause.",
        );
        for (cause, v) in &b.refused {
            o.sample("local_broker_refused_total", &[("cause", cause)], v);
        }
        o.family(
            "local_broker_logins_total",
            "counter",
            "Successful log-ins on the local broker (anonymous ones included).",
        );
        o.sample("local_broker_logins_total", &[], b.logins);
        o.family(
            "local_broker_credentials",
            "gauge",
            "Device and service credentials stored for the local broker.",
        );
        o.sample("local_broker_credentials", &[], b.credentials);
        o.family(
            "local_broker_anonymous_on_network",
            "gauge",
            "1 while anyone on the network may use the local broker without a credential.",
        );
        o.sample(
            "local_broker_anonymous_on_network",
            &[],
            u8::from(b.anonymous_on_network),
        );
    }
    o.family(
        "config_version",
        "gauge",
        "Active configuration version, by part.",
    );
    // By part name, sorted, as they always were.
    let cv = &s.config_version;
    for (part, v) in [("config", &cv.config), ("rules", &cv.rules)] {
        o.sample("config_version", &[("part", part)], v.version);
    }
    o.family(
        "rules_life_safety_off",
        "gauge",
        "Life-safety kinds ([rules] life_safety) the active rules raise no alert for (0 when all are covered).",
    );
    o.sample("rules_life_safety_off", &[], s.life_safety_off.len());
    if let Some(rss) = i.rss {
        let _ = writeln!(
            o.0,
            "# HELP process_resident_memory_bytes Resident memory size in bytes."
        );
        let _ = writeln!(o.0, "# TYPE process_resident_memory_bytes gauge");
        let _ = writeln!(o.0, "process_resident_memory_bytes {rss}");
    }
    o.0
}
