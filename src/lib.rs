//! # carebridge — a home-care edge gateway
//!
//! carebridge runs on a Raspberry Pi in a person's home. It reads the sensors
//! around them, decides at the edge when something is wrong, and delivers
//! alerts and telemetry upstream without ever losing an alert while the
//! uplink is away.
//!
//! ```text
//!  Zigbee stick ─serial─► zigbee (ZNP frames, ZCL) ─┐
//!  serial board ─serial─► ingest::line ─────────────┤
//!  Wi-Fi device ─MQTT──► broker ─► ingest::mqtt ────┤
//!  simulator ───────────► ingest::sim ──────────────┤
//!                                                   ▼
//!                                      hub (one task owns the state)
//!                                      ├─► rules::Engine (pure)  → alerts
//!                                      ├─► store (SQLite writer thread, group commit)
//!                                      │     history · registry · outbox
//!                                      └─► live view (broadcast)
//!                                                   │
//!                       uplink (reads the outbox, deletes only on acknowledgement)
//!                       ├─► uplink::mqtt     (rumqttc, TLS, QoS 1)
//!                       └─► uplink::lorawan  (AT modem, compact codec, airtime budget)
//! ```
//!
//! Module ownership (see `DESIGN.md`): [`model`] is the shared vocabulary and
//! depends on nothing; [`config`] parses and validates the TOML; [`app`] wires
//! the parts; every protocol codec and state machine is pure and driven by
//! the caller with an explicit `now`.

pub mod app;
pub mod broker;
pub mod clock;
pub mod commands;
pub mod config;
pub mod diagnostics;
pub mod ha;
pub mod hub;
pub mod ids;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod ota;
pub mod remote_config;
pub mod rules;
pub mod status;
pub mod store;
pub mod uplink;
pub mod web;
pub mod zigbee;
