//! Zigbee's shell: the ZNP/ZCL layers and the coordinator state machine are
//! pure and live in the core crate ([`carebridge_core::zigbee`], re-exported
//! here); this module adds the serial port task ([`port`], [`run`]) and the
//! coordinator simulator (`sim`, `sim_stick`, `sim_run`; cargo feature `sim`)
//! used by the demo, `carebridge sim-stick` and the tests.

pub use carebridge_core::zigbee::*;

pub mod port;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "sim")]
pub mod sim_run;
#[cfg(feature = "sim")]
pub mod sim_stick;

pub use port::run;

#[cfg(all(test, feature = "sim"))]
mod loopback_tests;
