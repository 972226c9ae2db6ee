//! The persisted OTA state and the operations around a service start:
//! recovery (ExecStartPre), health reports and commit (the running daemon),
//! the guard check (timer), status and report acknowledgement.
//!
//! Invariants:
//! - every read-modify-write of `ota-state.json` holds an exclusive lock on
//!   `ota-state.lock`, so the daemon's commit and the guard never lose each
//!   other's update; the file itself is replaced atomically (fsutil);
//! - recovery runs from the stable system binary (`/usr/bin/carebridge ota
//!   recover`), never from the release on trial;
//! - recovery holds the install lock ([`install::lock`]), so it never sees
//!   an install between recording the trial and switching `current`;
//! - a rollback lands on the previous release, or on the packaged (factory)
//!   binary when there is none, never on the failed release; the database
//!   comes back from the backup with the trial's rows kept
//!   ([`super::rollback_db`]); the version is remembered as rolled back;
//! - after [`recover`] returns `Ok`, `current` names a complete release.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::fsutil::{self, PathError, at};
use super::install;
use super::rollback_db;
use super::trial::{
    CheckDecision, HealthDecision, HealthReport, RolledBack, StartDecision, StateFile, Trial,
    TrialPolicy, UpdateReport,
};
use super::version::Version;
use super::{OtaConfig, OtaPaths};
use crate::model::Time;

/// The state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Fs(#[from] PathError),
    #[error("{path}: corrupt OTA state: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("no release to run: {0} has no complete release and no factory binary was given")]
    NoRelease(PathBuf),
    #[error("an install still holds {0} after {1:?}; recovery left everything as it was")]
    InstallBusy(PathBuf, std::time::Duration),
}

/// How long recovery waits for a running install to finish (the unit's
/// `TimeoutStartSec` is 120 s).
pub const RECOVER_WAITS_FOR_INSTALL: std::time::Duration = std::time::Duration::from_secs(90);

/// Reads the state file; a missing file is the idle state.
pub fn load_state(path: &Path) -> Result<StateFile, StateError> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| StateError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StateFile::default()),
        Err(e) => Err(at(path)(e).into()),
    }
}

/// Writes the state file atomically and durably.
pub fn save_state(path: &Path, s: &StateFile) -> Result<(), StateError> {
    let json = serde_json::to_vec_pretty(s).map_err(|e| StateError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(at(dir))?;
    }
    fsutil::atomic_write(path, &json)?;
    Ok(())
}

/// Runs `f` on the state under the state lock and saves it if it changed
/// (the install's read-modify-write of the trial).
pub(crate) fn update_state<T>(
    paths: &OtaPaths,
    f: impl FnOnce(&mut StateFile) -> Result<T, StateError>,
) -> Result<T, StateError> {
    with_state(paths, f)
}

/// Runs `f` on the state under the lock and saves it if it changed.
fn with_state<T>(
    paths: &OtaPaths,
    f: impl FnOnce(&mut StateFile) -> Result<T, StateError>,
) -> Result<T, StateError> {
    let lock_path = paths.state.with_extension("lock");
    if let Some(dir) = lock_path.parent() {
        fs::create_dir_all(dir).map_err(at(dir))?;
    }
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(at(&lock_path))?;
    lock.lock().map_err(at(&lock_path))?;
    let mut s = match load_state(&paths.state) {
        Ok(s) => s,
        Err(StateError::Corrupt { path, reason }) => {
            // Availability first: keep the unreadable file for inspection,
            // carry on from idle, and say so in a report.
            let aside = path.with_extension("corrupt");
            let _ = fs::rename(&path, &aside);
            tracing::error!(path = %path.display(), %reason, "OTA state unreadable, moved aside");
            StateFile::default()
        }
        Err(e) => return Err(e),
    };
    let before = s.clone();
    let out = f(&mut s)?;
    if s != before {
        save_state(&paths.state, &s)?;
    }
    Ok(out)
}

/// What recovery did before this start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Recovery {
    /// Nothing pending; `current` runs.
    Normal { current: String },
    /// `current` is on trial; this start is attempt `attempt`.
    Trial { version: String, attempt: u32 },
    /// The trial failed; `current` is back on `to` with its database.
    RolledBack {
        from: String,
        to: Option<String>,
        reason: String,
    },
    /// An install died before switching; the old release runs.
    Interrupted { version: String, current: String },
}

/// The newest complete release that was not rolled back here.
fn newest_release(paths: &OtaPaths, avoid: &[String]) -> Option<String> {
    let mut best: Option<Version> = None;
    for e in fs::read_dir(&paths.releases).ok()?.flatten() {
        let Some(v) = e.file_name().to_str().and_then(|n| Version::parse(n).ok()) else {
            continue;
        };
        if !e.path().join("release.json").is_file() || avoid.contains(&v.to_string()) {
            continue;
        }
        if best.as_ref().is_none_or(|b| v > *b) {
            best = Some(v);
        }
    }
    best.map(|v| v.to_string())
}

/// Whether the release directory `version` holds the factory binary
/// (seeded by [`seed_factory`]), not a release installed from a bundle.
fn is_factory(paths: &OtaPaths, version: &str) -> bool {
    install::release_manifest(paths, version).is_ok_and(|m| m.key_id == FACTORY_KEY_ID)
}

/// The `key_id` of the release made from the packaged binary.
pub const FACTORY_KEY_ID: &str = "factory";

/// Installs the packaged (factory) binary as a release, so that `current`
/// always exists, even before the first update, and a failed first update
/// has something to fall back to. A bundle release of the same version is
/// reused, unless it is `failed` (the release being rolled back): then the
/// factory binary replaces it. Called with the install lock held.
fn seed_factory(paths: &OtaPaths, exe: &Path, failed: Option<&str>) -> Result<String, StateError> {
    let version = env!("CARGO_PKG_VERSION").to_string();
    let dir = paths.release(&version);
    let usable = dir.join("release.json").is_file()
        && (failed != Some(version.as_str()) || is_factory(paths, &version));
    if !usable {
        let staging = paths
            .releases
            .join(format!(".staging-factory-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(staging.join("bin")).map_err(at(&staging))?;
        let bin = staging.join("bin/carebridge");
        fs::copy(exe, &bin).map_err(at(exe))?;
        fs::File::open(&bin)
            .and_then(|f| f.sync_all())
            .map_err(at(&bin))?;
        let manifest = super::bundle::Manifest {
            format: super::bundle::FORMAT,
            version: version.clone(),
            arch: std::env::consts::ARCH.into(),
            min_version: None,
            payload_size: 0,
            payload_sha256: "0".repeat(64),
            created: crate::wall::now().to_rfc3339(),
            allow_downgrade: false,
            key_id: FACTORY_KEY_ID.into(),
            expires: None,
            gateways: Vec::new(),
            fleets: Vec::new(),
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| StateError::Corrupt {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        fsutil::atomic_write(&staging.join("release.json"), &json)?;
        fsutil::fsync_dir(&staging.join("bin"))?;
        if dir.exists() {
            // `current` may dangle from here to the rename: a power cut in
            // between repeats the rollback (the state is still "trial"),
            // and `ensure_current` repairs a dangling link in any case.
            fs::remove_dir_all(&dir).map_err(at(&dir))?;
        }
        fs::rename(&staging, &dir).map_err(at(&dir))?;
        fsutil::fsync_dir(&paths.releases)?;
    }
    Ok(version)
}

/// Makes sure `current` names a complete release: keeps it, else the newest
/// complete release not rolled back, else the factory binary.
fn ensure_current(
    paths: &OtaPaths,
    factory_exe: Option<&Path>,
    rolled_back: &[String],
) -> Result<String, StateError> {
    if let Some(v) = install::current_version(paths) {
        return Ok(v);
    }
    fs::create_dir_all(&paths.releases).map_err(at(&paths.releases))?;
    let v = match (newest_release(paths, rolled_back), factory_exe) {
        (Some(v), _) => v,
        (None, Some(exe)) => seed_factory(paths, exe, None)?,
        (None, None) => return Err(StateError::NoRelease(paths.releases.clone())),
    };
    tracing::warn!(release = %v, "current was missing or broken; pointing it at {v}");
    install::switch_to(paths, &v)?;
    Ok(v)
}

/// Run before every service start (ExecStartPre): repairs `current`, counts
/// a trial attempt, or rolls a failed trial back with its database.
pub fn recover(
    paths: &OtaPaths,
    policy: &TrialPolicy,
    factory_exe: Option<&Path>,
    now: Time,
) -> Result<Recovery, StateError> {
    // An install (the poll timer, `ota install`) may be between recording
    // the trial and switching `current`: wait for it, or this start would
    // call the trial "interrupted" and drop it.
    let Some(_install) = install::lock_within(paths, RECOVER_WAITS_FOR_INSTALL)? else {
        return Err(StateError::InstallBusy(
            paths.state.with_file_name("ota-install.lock"),
            RECOVER_WAITS_FOR_INSTALL,
        ));
    };
    fsutil::clean_temps(&paths.current);
    fsutil::clean_temps(&paths.state);
    with_state(paths, |s| {
        let current = install::current_version(paths);
        let avoid: Vec<String> = s.rolled_back.iter().map(|r| r.version.clone()).collect();
        match s.on_start(policy, current.as_deref(), now) {
            StartDecision::Run => Ok(Recovery::Normal {
                current: ensure_current(paths, factory_exe, &avoid)?,
            }),
            StartDecision::RunTrial { version, attempt } => {
                Ok(Recovery::Trial { version, attempt })
            }
            StartDecision::Interrupted { version } => Ok(Recovery::Interrupted {
                version,
                current: ensure_current(paths, factory_exe, &avoid)?,
            }),
            StartDecision::RollBack {
                version,
                to,
                db_backup,
                reason,
            } => {
                // Order: database first, then the switch; both idempotent, and the
                // state stays "trial" until both are done, so a power cut repeats them.
                let mut reason = reason;
                if let Some(b) = &db_backup
                    && b.is_file()
                {
                    match rollback_db::restore_keeping_trial_rows(b, &paths.db) {
                        Ok(kept) => {
                            tracing::info!(?kept, "database restored with the trial's rows kept");
                        }
                        Err(e) => {
                            // Still switch back: the old release on a newer schema is a
                            // better bet than the release that just failed.
                            tracing::error!(error = %e, "database restore");
                            reason = format!("{reason}; database restore: {e}");
                        }
                    }
                }
                let to = match &to {
                    Some(prev)
                        if *prev != version
                            && paths.release(prev).join("release.json").is_file() =>
                    {
                        install::switch_to(paths, prev)?;
                        Some(prev.clone())
                    }
                    // A first install (nothing before it) or a previous
                    // release gone: back to the packaged binary.
                    _ => match factory_exe {
                        Some(exe) => {
                            let v = seed_factory(paths, exe, Some(&version))?;
                            install::switch_to(paths, &v)?;
                            Some(v)
                        }
                        None => {
                            tracing::error!(%version, "no previous release and no factory binary to roll back to");
                            reason = format!(
                                "{reason}; no previous release and no factory binary: {version} keeps running"
                            );
                            None
                        }
                    },
                };
                s.finish_rollback(&reason, now);
                let mut avoid = avoid;
                avoid.push(version.clone());
                ensure_current(paths, factory_exe, &avoid)?;
                tracing::error!(%version, ?to, %reason, "update rolled back");
                Ok(Recovery::RolledBack {
                    from: version,
                    to,
                    reason,
                })
            }
        }
    })
}

/// The running daemon's periodic health report (every few seconds). On
/// `Commit` the trial is over; on `GiveUp` the caller exits non-zero.
pub fn report_health(
    paths: &OtaPaths,
    cfg: &OtaConfig,
    health: &HealthReport,
    now: Time,
) -> Result<HealthDecision, StateError> {
    let verdict = health.verdict(cfg.require_uplink, cfg.require_coordinator);
    let d = with_state(paths, |s| {
        Ok(s.on_health(&TrialPolicy::from(cfg), verdict, now))
    })?;
    if let HealthDecision::Commit { version } = &d {
        tracing::info!(%version, "update committed");
        if let Err(e) = install::prune_releases(paths, cfg.keep_releases) {
            tracing::warn!(error = %e, "could not prune old releases");
        }
    }
    Ok(d)
}

/// The guard's check (timer unit, independent of the release on trial).
pub fn check(
    paths: &OtaPaths,
    policy: &TrialPolicy,
    now: Time,
) -> Result<CheckDecision, StateError> {
    with_state(paths, |s| Ok(s.on_check(policy, now)))
}

/// Commits the release on trial now (operator command `carebridge ota commit`).
pub fn commit_now(paths: &OtaPaths, now: Time) -> Result<Option<String>, StateError> {
    with_state(paths, |s| {
        let Some(t) = s.trial.take() else {
            return Ok(None);
        };
        s.reports.push(UpdateReport {
            version: t.version.clone(),
            outcome: super::trial::Outcome::Committed,
            previous: t.previous.clone(),
            attempts: t.attempts,
            reason: Some("committed by operator".into()),
            at: now,
        });
        Ok(Some(t.version))
    })
}

/// Drops the oldest `n` reports after the integrator published them.
pub fn ack_reports(paths: &OtaPaths, n: usize) -> Result<(), StateError> {
    with_state(paths, |s| {
        s.ack_reports(n);
        Ok(())
    })
}

/// Everything `carebridge ota status` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtaStatus {
    pub current: Option<String>,
    pub trial: Option<Trial>,
    pub releases: Vec<String>,
    pub reports: Vec<UpdateReport>,
    /// Versions rolled back here: not installed again automatically.
    pub rolled_back: Vec<RolledBack>,
}

/// A read-only snapshot of the OTA state.
pub fn status(paths: &OtaPaths) -> Result<OtaStatus, StateError> {
    let s = load_state(&paths.state)?;
    let mut releases: Vec<Version> = fs::read_dir(&paths.releases)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| Version::parse(n).ok()))
                .collect()
        })
        .unwrap_or_default();
    releases.sort();
    Ok(OtaStatus {
        current: install::current_version(paths),
        trial: s.trial,
        releases: releases.iter().map(Version::to_string).collect(),
        reports: s.reports,
        rolled_back: s.rolled_back,
    })
}
