//! Uplinks' shell: the router, back-off, the LoRaWAN layers below the port
//! and the uplink types are pure and live in the core crate
//! ([`carebridge_core::uplink`], re-exported here); this module adds the
//! tasks that own sockets and ports: [`mqtt`] (rumqttc, TLS, QoS 1),
//! [`lorawan`] (the AT modem on a serial port) and [`dual`] (the dual-path
//! task between the outbox and the modem).
//!
//! The outbox in [`crate::store`] is the truth: a row is deleted only after
//! the far end acknowledged it.

pub use carebridge_core::uplink::*;

pub mod arc;
pub mod dual;
pub mod lorawan;
pub mod mqtt;
