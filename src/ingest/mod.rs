//! Ingest: turning outside input into [`crate::model::Ingest`] events for the hub.
//!
//! - [`mqtt`]: JSON readings published by Wi-Fi devices to the embedded broker;
//! - [`line`]: the line protocol of simple serial sensor boards;
//! - [`sim`]: the simulated home used by `carebridge demo` and tests.

pub mod line;
pub mod mqtt;
#[cfg(feature = "sim")]
pub mod sim;
