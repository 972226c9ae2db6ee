//! Zigbee's shell: the ZNP/ZCL layers and the coordinator state machine are
//! pure and live in the core crate ([`carebridge_core::zigbee`], re-exported
//! here); this module adds the serial port task ([`port`], [`run`]) and the
//! coordinator simulator ([`sim`], [`sim_stick`], [`sim_run`]) used by the
//! demo, `carebridge sim-stick` and the tests.

pub use carebridge_core::zigbee::*;

pub mod port;
pub mod sim;
pub mod sim_run;
pub mod sim_stick;

pub use port::run;

#[cfg(test)]
mod loopback_tests;
