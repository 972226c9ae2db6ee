//! The rule kinds, one module each, every one a [`RuleKind`]
//! (`eval.rs` holds the trait and picks the kind of a rule):
//!
//! - `immediate`: a reading kind means alert now (also `tamper`);
//! - `threshold`, `window`: a condition that must hold for a time
//!   (the shared state machine: `held.rs`);
//! - `inactivity`, `absence`, `silent`: clocks of activity and messages;
//! - `sequence`: a start step not followed by a cancel step in time;
//! - `low_battery`; `routine`: today later than the learnt usual time;
//! - `dwell`: in one room longer than a limit; `gone_out`: a door opened
//!   and no movement indoors since (probably out: a soft check).
//!
//! Every kind makes its alerts with [`Ctx::emit`](super::ctx::Ctx::emit).
//!
//! [`RuleKind`]: super::eval::RuleKind

pub mod absence;
pub mod dwell;
pub mod gone_out;
mod immediate;
mod inactivity;
mod low_battery;
mod routine;
mod sequence;
mod silent;
mod threshold;
mod window;

pub use absence::Absence;
pub use dwell::Dwell;
pub use gone_out::GoneOut;
pub use immediate::Immediate;
pub use inactivity::Inactivity;
pub use low_battery::LowBattery;
pub use routine::Routine;
pub use sequence::Sequence;
pub use silent::Silent;
pub use threshold::Threshold;
pub use window::Window;
