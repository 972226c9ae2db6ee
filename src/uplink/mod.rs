//! Uplinks: deliver the outbox upstream.
pub mod lorawan;
