//! # carebridge-core — the pure core of the carebridge gateway
//!
//! Everything here is a value or a state machine driven by its caller:
//! no tokio, no sockets, no files, no serial ports and no wall clock (time
//! comes in as an argument, [`clock::Clock`] is how a shell hands it over). The
//! `carebridge` crate wraps these in I/O shells. Keeping them in their own
//! crate lets the compiler hold the line that used to be held by habit, and
//! lets tests drive days of a home through the core in milliseconds.
//!
//! - [`arc`]: the alarm receiving centre codec (SIA DC-09, Contact ID, SIA DCS);
//! - [`model`]: devices, readings, alerts — the shared vocabulary;
//! - [`setting`]: what every config section speaks (problems, errors, durations, locations);
//! - [`config`]: the TOML configuration's types, defaults and validation;
//! - [`rules`]: the alert rule engine;
//! - [`zigbee`]: Z-Stack ZNP framing, MT commands, ZCL, interview and the
//!   coordinator state machine;
//! - [`uplink`]: the dual-path router, back-off, and the LoRaWAN codec, AT
//!   dialects, modem conversation, airtime budget and queue policy;
//! - [`life_safety`]: which life-safety kinds a rule set leaves without an alert;
//! - [`line`]: the serial sensor boards' line protocol;
//! - [`devauth`]: the local broker's access policy (topic permissions,
//!   per-address limits, the guessing alert, credential records);
//! - [`status`]: the typed status document (heartbeat, UI, metrics, diagnostics);
//! - [`clock`]: the [`clock::Clock`] trait and a manual clock for tests.

pub mod arc;
pub mod clock;
pub mod config;
pub mod devauth;
pub mod life_safety;
pub mod line;
pub mod model;
pub mod rules;
pub mod setting;
pub mod status;
pub mod uplink;
pub mod zigbee;
