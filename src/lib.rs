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
//!  Wi-Fi device ─MQTT──► frontdoor (ingest::mqtt) ─┤  (PUBACK after commit;
//!                        └─► broker (rumqttd): local subscribers, HA)
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
//! Two crates (see `DESIGN.md`): `carebridge-core` holds everything pure —
//! [`model`], config types and validation, the rule engine, Zigbee ZNP/ZCL
//! up to the coordinator state machine, the LoRaWAN layers, the uplink
//! router, the line parser — with no tokio, no I/O and no wall clock, so the
//! compiler keeps it pure. This crate holds the I/O shells around it (ports,
//! sockets, tasks), the store, the web UI, OTA and the binary; its
//! `config`, `rules`, `zigbee` and `uplink` modules re-export the core's
//! and add their shell parts, so one path names each thing. [`app`] wires
//! the parts; [`wall`] is the only place the wall clock is read.

pub mod app;
pub mod broker;
pub mod cli;
pub mod commands;
pub mod config;
pub mod devauth;
pub mod diagnostics;
#[cfg(feature = "sim")]
pub mod fleet_sim;
pub mod frontdoor;
pub mod ha;
pub mod hub;
pub mod ids;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod ota;
pub mod private;
pub mod provision;
pub mod remote_config;
pub mod rules;
pub mod store;
pub mod uplink;
pub mod wall;
pub mod web;
pub mod zigbee;

pub use carebridge_core::life_safety;
pub use carebridge_core::{clock, line, model, status};
