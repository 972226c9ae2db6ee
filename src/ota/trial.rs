//! The trial/commit/rollback decision logic: a pure state machine over the
//! persisted [`StateFile`], driven by the caller with an explicit `now`.
//!
//! Lifecycle of an update:
//! ```text
//!  install ──► Trial{attempts: 0} ──start──► attempts+1, run ──healthy ≥ trial_period──► Idle + Committed
//!                    │                            │
//!                    │ start with current ≠ trial │ crash / watchdog kill / no commit by
//!                    ▼                            │ commit_timeout (exit or guard) → restart
//!             Idle + Interrupted                  ▼
//!       (install died before the switch)   start with attempts ≥ max_attempts
//!                                                 ──► RollBack → Idle + RolledBack
//! ```
//! The guard ([`StateFile::on_check`], run by a timer from the stable binary)
//! asks for a restart when an attempt has not committed within
//! `commit_timeout + trial_period`, or when the service never restarted into
//! an installed release within `commit_timeout`.
//!
//! Invariants (tested exhaustively below):
//! - a release on trial is started at most `max_attempts` times;
//! - it commits only after `trial_period` of *continuous* health within one
//!   attempt; any unhealthy report restarts the clock;
//! - `Idle` never rolls back and never commits;
//! - the decision for a start is the same when repeated after a crash
//!   (rollback is idempotent: the state stays `Trial` until the caller
//!   confirms it with [`StateFile::finish_rollback`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Time;

/// Timing and limits of a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialPolicy {
    pub trial_period: Duration,
    pub commit_timeout: Duration,
    pub max_attempts: u32,
}

impl From<&super::OtaConfig> for TrialPolicy {
    fn from(c: &super::OtaConfig) -> Self {
        TrialPolicy {
            trial_period: c.trial_period.0,
            commit_timeout: c.commit_timeout.0,
            max_attempts: c.max_attempts,
        }
    }
}

/// A release on trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    pub version: String,
    /// The release to return to; `None` on a first install.
    pub previous: Option<String>,
    /// Starts so far on trial.
    pub attempts: u32,
    /// When the install switched to it (the guard restarts a service that
    /// never started the new release).
    #[serde(default)]
    pub installed_at: Option<Time>,
    pub attempt_started: Option<Time>,
    pub healthy_since: Option<Time>,
    /// Database copy taken before this release could migrate it.
    pub db_backup: Option<PathBuf>,
    /// The last problem seen (unhealthy check, overdue), for the report.
    pub last_problem: Option<String>,
}

/// How an update ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Committed,
    RolledBack,
    Interrupted,
}

/// What the integrator publishes on `<prefix>/<gateway>/cmd/update/result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateReport {
    pub version: String,
    pub outcome: Outcome,
    pub previous: Option<String>,
    pub attempts: u32,
    pub reason: Option<String>,
    pub at: Time,
}

/// The whole persisted OTA state (`<data_dir>/ota-state.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateFile {
    pub trial: Option<Trial>,
    /// Results not yet acknowledged as published upstream (oldest first, ≤ 8).
    pub reports: Vec<UpdateReport>,
    /// Versions this gateway rolled back (oldest first, ≤ 32): never
    /// installed again automatically; by hand only with an explicit flag.
    pub rolled_back: Vec<RolledBack>,
}

/// A version that failed its trial here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolledBack {
    pub version: String,
    pub at: Time,
}

/// What to do at service start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartDecision {
    /// No trial: run `current`.
    Run,
    /// Run `current`, which is on trial (attempt number, 1-based).
    RunTrial { version: String, attempt: u32 },
    /// Restore the backup, point `current` at `to`, then `finish_rollback`.
    RollBack {
        version: String,
        to: Option<String>,
        db_backup: Option<PathBuf>,
        reason: String,
    },
    /// The install died before switching `current`: the trial was dropped.
    Interrupted { version: String },
}

/// What to do after a health report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthDecision {
    NotOnTrial,
    /// Keep reporting; commit possible at `until` if health holds.
    Wait {
        until: Option<Time>,
    },
    /// Committed now (state already updated): persist it.
    Commit {
        version: String,
    },
    /// Past `commit_timeout` and unhealthy: exit non-zero so the service restarts.
    GiveUp {
        version: String,
        reason: String,
    },
}

/// What the external guard should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckDecision {
    Fine,
    /// Restart the service (next start counts an attempt or rolls back).
    Overdue {
        version: String,
        reason: String,
    },
}

const MAX_REPORTS: usize = 8;
const MAX_ROLLED_BACK: usize = 32;

impl StateFile {
    /// Records the start of a trial (called by install before switching).
    pub fn begin_trial(
        &mut self,
        version: &str,
        previous: Option<String>,
        db_backup: Option<PathBuf>,
        now: Time,
    ) {
        self.trial = Some(Trial {
            version: version.to_string(),
            previous,
            attempts: 0,
            installed_at: Some(now),
            attempt_started: None,
            healthy_since: None,
            db_backup,
            last_problem: None,
        });
    }

    fn report(&mut self, t: &Trial, outcome: Outcome, reason: Option<String>, now: Time) {
        self.reports.push(UpdateReport {
            version: t.version.clone(),
            outcome,
            previous: t.previous.clone(),
            attempts: t.attempts,
            reason,
            at: now,
        });
        if self.reports.len() > MAX_REPORTS {
            self.reports.remove(0);
        }
    }

    /// Decides what a service start does. `current` is the version `current` points at.
    pub fn on_start(&mut self, p: &TrialPolicy, current: Option<&str>, now: Time) -> StartDecision {
        let Some(t) = self.trial.as_mut() else {
            return StartDecision::Run;
        };
        if t.attempts >= p.max_attempts {
            let reason = match &t.last_problem {
                Some(why) => format!("not committed after {} starts; last: {why}", t.attempts),
                None => format!(
                    "not committed after {} starts (crashed, hung or never healthy)",
                    t.attempts
                ),
            };
            return StartDecision::RollBack {
                version: t.version.clone(),
                to: t.previous.clone(),
                db_backup: t.db_backup.clone(),
                reason,
            };
        }
        if current != Some(t.version.as_str()) {
            let t = t.clone();
            self.trial = None;
            self.report(
                &t,
                Outcome::Interrupted,
                Some("the install stopped before switching to the new release".into()),
                now,
            );
            return StartDecision::Interrupted { version: t.version };
        }
        t.attempts += 1;
        t.attempt_started = Some(now);
        t.healthy_since = None;
        StartDecision::RunTrial {
            version: t.version.clone(),
            attempt: t.attempts,
        }
    }

    /// Confirms a rollback done by the caller, and remembers the version.
    pub fn finish_rollback(&mut self, reason: &str, now: Time) {
        if let Some(t) = self.trial.take() {
            self.report(&t, Outcome::RolledBack, Some(reason.to_string()), now);
            self.rolled_back.retain(|r| r.version != t.version);
            self.rolled_back.push(RolledBack {
                version: t.version,
                at: now,
            });
            if self.rolled_back.len() > MAX_ROLLED_BACK {
                self.rolled_back.remove(0);
            }
        }
    }

    /// When `version` was rolled back on this gateway, if it was.
    pub fn rolled_back_at(&self, version: &str) -> Option<Time> {
        self.rolled_back
            .iter()
            .find(|r| r.version == version)
            .map(|r| r.at)
    }

    /// Feeds one health observation of the running release.
    pub fn on_health(
        &mut self,
        p: &TrialPolicy,
        healthy: Result<(), String>,
        now: Time,
    ) -> HealthDecision {
        let Some(t) = self.trial.as_mut() else {
            return HealthDecision::NotOnTrial;
        };
        if t.attempts == 0 {
            // Not started through on_start (e.g. the old binary still runs).
            return HealthDecision::Wait { until: None };
        }
        let started = *t.attempt_started.get_or_insert(now);
        match healthy {
            Ok(()) => {
                let since = *t.healthy_since.get_or_insert(now);
                if now.since(since) >= p.trial_period {
                    let t = t.clone();
                    self.trial = None;
                    self.report(&t, Outcome::Committed, None, now);
                    HealthDecision::Commit { version: t.version }
                } else {
                    HealthDecision::Wait {
                        until: Some(since.saturating_add(p.trial_period)),
                    }
                }
            }
            Err(why) => {
                t.healthy_since = None;
                t.last_problem = Some(why.clone());
                if now.since(started) >= p.commit_timeout {
                    HealthDecision::GiveUp {
                        version: t.version.clone(),
                        reason: format!("still unhealthy after {:?}: {why}", p.commit_timeout),
                    }
                } else {
                    HealthDecision::Wait { until: None }
                }
            }
        }
    }

    /// The guard's periodic check, independent of the release on trial.
    pub fn on_check(&mut self, p: &TrialPolicy, now: Time) -> CheckDecision {
        let Some(t) = self.trial.as_mut() else {
            return CheckDecision::Fine;
        };
        match t.attempt_started {
            Some(s) if now.since(s) >= p.commit_timeout + p.trial_period => {
                let reason = format!("no commit within {:?} of starting", p.commit_timeout);
                t.last_problem = Some(reason.clone());
                CheckDecision::Overdue {
                    version: t.version.clone(),
                    reason,
                }
            }
            None if t
                .installed_at
                .is_some_and(|i| now.since(i) >= p.commit_timeout) =>
            {
                CheckDecision::Overdue {
                    version: t.version.clone(),
                    reason: "installed but the service never restarted into it".into(),
                }
            }
            _ => CheckDecision::Fine,
        }
    }

    /// Drops reports the integrator has published (oldest `n`).
    pub fn ack_reports(&mut self, n: usize) {
        let n = n.min(self.reports.len());
        self.reports.drain(..n);
    }
}

#[cfg(test)]
#[path = "trial_tests.rs"]
mod tests;

/// One health observation, filled in by the integrator from the running parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HealthReport {
    /// The store opened, migrated and accepts writes.
    pub store_ok: bool,
    /// The rule set compiled and is loaded.
    pub rules_loaded: bool,
    /// Upstream link state, `None` when no uplink is configured.
    pub uplink_up: Option<bool>,
    /// Zigbee coordinator state, `None` when no coordinator is configured.
    pub coordinator_up: Option<bool>,
}

impl HealthReport {
    /// `Ok` when healthy under the configured requirements, else what is wrong.
    pub fn verdict(&self, require_uplink: bool, require_coordinator: bool) -> Result<(), String> {
        let mut wrong = Vec::new();
        if !self.store_ok {
            wrong.push("store not ok");
        }
        if !self.rules_loaded {
            wrong.push("rules not loaded");
        }
        if require_uplink && self.uplink_up != Some(true) {
            wrong.push("uplink down");
        }
        if require_coordinator && self.coordinator_up != Some(true) {
            wrong.push("coordinator down");
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join(", "))
        }
    }
}
