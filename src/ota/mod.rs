//! Over-the-air updates: signed bundles, side-by-side install, trial with
//! health commit, automatic rollback, and the systemd glue.
//!
//! Parts (one concern each):
//! - [`version`] — release versions and their order;
//! - [`keys`] — Ed25519 key generation, trusted keys dir, revocation;
//! - [`archive`] — the payload archive of named files (streamed);
//! - [`bundle`] — the signed bundle format and streaming verification;
//! - [`sign`] — making and signing a bundle;
//! - [`fsutil`] — atomic file writes, directory fsync, atomic symlink switch;
//! - [`install`] — releases side by side, database backup, `current` switch;
//! - [`installer`] — a received bundle (web upload): verify, then install, one at a time;
//! - [`trial`] — the pure trial/commit/rollback state machine;
//! - [`recover`] — the persisted state file and the recovery/commit API;
//! - [`rollback_db`] — the database rollback that keeps the trial's rows;
//! - [`download`] — resumable, size-capped HTTP(S) download;
//! - [`update`] — the `cmd/update` flow: download, install, progress/result;
//! - [`notify`] — systemd `sd_notify` (READY, WATCHDOG, STATUS);
//! - [`cli`] — `carebridge bundle …` and `carebridge ota …`.
//!
//! Invariant across all of them: at every instant (power cut included)
//! `<data_dir>/current` points at a complete release, and a release on trial
//! that does not commit itself is rolled back to the previous one (the
//! packaged binary on a first install) with its database backup, keeping
//! every reading and outbox row the trial stored. One install at a time
//! (`install::lock`), and a rolled-back version is never installed again
//! automatically.

pub mod archive;
pub mod bundle;
pub mod cli;
pub mod daemon;
pub mod download;
pub mod fsutil;
pub mod install;
pub mod installer;
pub mod keys;
pub mod notify;
pub mod recover;
pub mod rollback_db;
pub mod sign;
pub mod trial;
pub mod update;
pub mod version;

pub use crate::config::{OtaConfig, OtaPaths};
pub use installer::Installer;

/// Whether this gateway's clock can be believed for a bundle's `expires`:
/// NTP-synchronised or an RTC (see [`crate::app::TrustProbe`]), or the
/// configuration says the clock is checked as it is.
pub fn clock_trusted(cfg: &OtaConfig) -> bool {
    !cfg.expiry_needs_trusted_clock || crate::app::TrustProbe::default().check().0
}
