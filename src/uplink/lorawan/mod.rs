//! LoRaWAN uplink through a serial AT modem (RAK3172 RUI3 or Seeed Wio-E5).
//!
//! Layers, bottom up (each pure except the last):
//! - [`at`]: modem output → lines → typed [`at::AtLine`]s, for both dialects;
//! - [`modem`]: the AT conversation ([`modem::Driver`]), spelled by
//!   [`rak3172`] or [`wio_e5`];
//! - [`airtime`]: time on air and the EU868 duty-cycle / daily budget;
//! - [`codec`]: the compact payload format (`decoder.js` is its network-server twin);
//! - [`policy`]: queues by class, budget, retries, join backoff;
//! - this module: the config section and the async task [`run`] that owns
//!   the serial port (a reader thread; writes are inline) and the [`policy::Core`].
//!
//! The integrator hands messages over with [`LoraUplink::send`] and gets a
//! [`Delivery`] back; join state, airtime and downlink commands arrive as
//! [`LoraEvent`]s. [`sim`] is a modem simulator on a pseudo-terminal.

pub mod airtime;
pub mod at;
pub mod codec;
pub mod modem;
pub mod policy;
pub mod rak3172;
pub mod sim;
pub mod wio_e5;

mod settings;
mod task;

pub use self::policy::{Delivery, Message};
pub use self::settings::{LorawanConfig, read_app_key};
pub use self::task::{LoraClosed, LoraEvent, LoraQueue, LoraUplink, channel, run};
