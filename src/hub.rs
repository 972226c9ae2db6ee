//! (hub)
