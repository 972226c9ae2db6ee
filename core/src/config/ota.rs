//! `[ota]`: signed updates (keys, trial, rollback) and where OTA keeps its files.
//!
//! Keys, defaults and validation; the part that uses it lives in the
//! shell crate.

use super::{Dur, Problem};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[ota]`: update settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtaConfig {
    /// Directory of trusted Ed25519 public keys (`<id>.pub`, `<id>.revoked`, `revoked`).
    pub keys_dir: PathBuf,
    /// Where releases are unpacked side by side; default `<gateway.data_dir>/releases`.
    pub releases_dir: Option<PathBuf>,
    /// How long a new release must stay healthy before it commits itself.
    pub trial_period: Dur,
    /// An attempt that has not committed after this long is abandoned.
    pub commit_timeout: Dur,
    /// Starts of a release on trial before it is rolled back.
    pub max_attempts: u32,
    /// Largest accepted bundle payload, in bytes.
    pub max_bundle_size: u64,
    /// Optional URL polled for update commands (the poll timer unit).
    pub poll_url: Option<String>,
    pub poll_interval: Dur,
    /// PEM CA bundle for HTTPS downloads; default: the system store.
    pub ca_file: Option<PathBuf>,
    /// Health checks required for commit besides store and rules.
    pub require_uplink: bool,
    pub require_coordinator: bool,
    /// Releases kept on disk (the current and previous are always kept).
    pub keep_releases: usize,
    /// Fleets this gateway belongs to, matched against a bundle's `fleets`.
    pub fleets: Vec<String>,
    /// A bundle with `expires` installs only once the clock is trusted
    /// (NTP-synchronised or an RTC): a stale clock could let an expired
    /// bundle through. `false`: the clock is checked as it is (a site
    /// whose clock is kept by means the gateway cannot see).
    pub expiry_needs_trusted_clock: bool,
}

impl Default for OtaConfig {
    fn default() -> Self {
        OtaConfig {
            keys_dir: "/etc/carebridge/keys".into(),
            releases_dir: None,
            trial_period: Dur::mins(5),
            commit_timeout: Dur::mins(20),
            max_attempts: 3,
            max_bundle_size: 128 * 1024 * 1024,
            poll_url: None,
            poll_interval: Dur(std::time::Duration::from_secs(6 * 3600)),
            ca_file: None,
            require_uplink: false,
            require_coordinator: false,
            keep_releases: 3,
            fleets: Vec::new(),
            expiry_needs_trusted_clock: true,
        }
    }
}

impl OtaConfig {
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if !self.keys_dir.is_absolute() {
            out.push(Problem::new("keys_dir", "must be an absolute path"));
        }
        if let Some(r) = &self.releases_dir
            && !r.is_absolute()
        {
            out.push(Problem::new("releases_dir", "must be an absolute path"));
        }
        if self.trial_period.0.is_zero() {
            out.push(Problem::new("trial_period", "must be above zero"));
        }
        if self.commit_timeout <= self.trial_period {
            out.push(Problem::new(
                "commit_timeout",
                "must be longer than trial_period",
            ));
        }
        if !(1..=20).contains(&self.max_attempts) {
            out.push(Problem::new("max_attempts", "must be between 1 and 20"));
        }
        if self.max_bundle_size < 1024 {
            out.push(Problem::new(
                "max_bundle_size",
                "must be at least 1024 bytes",
            ));
        }
        if let Some(u) = &self.poll_url
            && super::HttpUrl::parse(u).is_err()
        {
            out.push(Problem::new(
                "poll_url",
                format!("{u:?} is not an https:// URL"),
            ));
        }
        if self.poll_interval.0 < std::time::Duration::from_secs(60) {
            out.push(Problem::new("poll_interval", "must be at least 1m"));
        }
        for f in &self.fleets {
            if f.is_empty() || f.len() > 128 || f.chars().any(char::is_control) {
                out.push(Problem::new(
                    "fleets",
                    format!("{f:?}: a fleet name is 1–128 printable characters"),
                ));
            }
        }
        if self.keep_releases < 2 {
            out.push(Problem::new("keep_releases", "must be at least 2"));
        }
        out
    }

    /// The on-disk layout for a data directory.
    pub fn paths(&self, data_dir: &Path) -> OtaPaths {
        OtaPaths::new(
            data_dir,
            self.releases_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("releases")),
        )
    }
}

/// Where OTA keeps things. Everything is inside the service's state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtaPaths {
    /// `<data_dir>/current` → `<releases>/<version>`.
    pub current: PathBuf,
    pub releases: PathBuf,
    /// Database backups taken before a new release migrates, by version.
    pub backups: PathBuf,
    /// The trial state file.
    pub state: PathBuf,
    /// The live database.
    pub db: PathBuf,
    /// Where a bundle is downloaded (`.partial` while incomplete).
    pub download: PathBuf,
}

impl OtaPaths {
    pub fn new(data_dir: &Path, releases: PathBuf) -> Self {
        OtaPaths {
            current: data_dir.join("current"),
            releases,
            backups: data_dir.join("ota-backups"),
            state: data_dir.join("ota-state.json"),
            db: data_dir.join("carebridge.db"),
            download: data_dir.join("ota-download.cbb"),
        }
    }
    /// Layout under one directory (tests, `--data-dir`).
    pub fn under(data_dir: &Path) -> Self {
        Self::new(data_dir, data_dir.join("releases"))
    }
    pub fn release(&self, version: &str) -> PathBuf {
        self.releases.join(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_validates_and_bad_values_name_their_keys() {
        assert!(OtaConfig::default().validate().is_empty());
        let c = OtaConfig {
            keys_dir: "keys".into(),
            max_attempts: 0,
            commit_timeout: Dur::secs(1),
            ..OtaConfig::default()
        };
        let keys: Vec<String> = c.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["keys_dir", "commit_timeout", "max_attempts"]);
    }
}
