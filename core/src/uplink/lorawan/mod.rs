//! LoRaWAN uplink through a serial AT modem (RAK3172 RUI3 or Seeed Wio-E5).
//!
//! Layers, bottom up (each pure except the last):
//! - [`at`]: modem output → lines → typed [`at::AtLine`]s, for both dialects;
//! - [`modem`]: the AT conversation ([`modem::Driver`]), spelled by
//!   [`rak3172`] or [`wio_e5`] through [`dialect::Dialect`];
//! - [`airtime`]: time on air and the EU868 duty-cycle / daily budget;
//! - [`codec`]: the compact payload format (`decoder.js` is its network-server twin);
//! - [`policy`]: queues by class, budget, retries, join backoff;
//! - [`settings`]: the `[lorawan]` config section.
//!
//! All pure; the shell crate's `uplink::lorawan` owns the serial port and
//! the task that drives [`policy::Core`].

pub mod airtime;
pub mod at;
pub mod codec;
pub mod dialect;
pub mod modem;
pub mod policy;
pub mod rak3172;
pub mod settings;
pub mod wio_e5;

pub use self::policy::{Delivery, Message};
pub use self::settings::{AppKeyError, LorawanConfig};
