//! The running gateway's side of OTA: health reports that commit a release
//! on trial, and the outcome of updates reported upstream.
//!
//! Every [`HEALTH_EVERY`] the daemon reports what it sees (store accepts
//! writes, rules loaded, uplink and coordinator state where configured) to
//! the trial state machine ([`super::recover::report_health`]). A release on
//! trial that stays healthy for `[ota] trial_period` is committed; one that
//! is still unhealthy at `commit_timeout` makes this task fail, so the
//! gateway exits non-zero and the next start counts an attempt (or rolls
//! back: [`super::recover::recover`], run by `ExecStartPre`).
//!
//! Update outcomes (committed, rolled back) kept in the OTA state are
//! published on `cmd/update/result` once the uplink is connected, then
//! dropped from the state; while it is down they wait there (durable).
//!
//! `cmd/update` itself ([`start_update`]) downloads, verifies and installs
//! on a blocking thread with progress on the same topic; after a good
//! install the gateway stops cleanly and systemd starts the new release.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::download::{Phase, Progress};
use super::recover;
use super::trial::{HealthDecision, HealthReport};
use super::{OtaConfig, OtaPaths};
use crate::model::LinkStatus;
use crate::store::Store;
use crate::uplink::{Direct, UplinkState};

/// How often health is reported while a release is on trial.
pub const HEALTH_EVERY: Duration = Duration::from_secs(5);
/// The topic below `<prefix>/<gateway>/` for update progress and outcomes.
pub const RESULT_TOPIC: &str = "cmd/update/result";

/// What the OTA task watches and where it reports.
#[derive(Debug, Clone)]
pub struct OtaLinks {
    pub store: Store,
    /// The MQTT uplink's state, when one is configured.
    pub uplink: Option<watch::Receiver<UplinkState>>,
    /// Link states by name (the coordinator reports as `zigbee`).
    pub links: watch::Receiver<BTreeMap<String, LinkStatus>>,
    /// A Zigbee coordinator is configured.
    pub coordinator: bool,
    /// Direct publishes upstream (results), when MQTT is configured.
    pub direct: Option<mpsc::Sender<Direct>>,
}

/// The health the daemon sees now (pure).
pub fn observe(
    store_ok: bool,
    uplink: Option<&UplinkState>,
    links: &BTreeMap<String, LinkStatus>,
    coordinator: bool,
) -> HealthReport {
    HealthReport {
        store_ok,
        rules_loaded: true, // the engine is built before any task starts
        uplink_up: uplink.map(|u| u.state == "connected"),
        coordinator_up: coordinator.then(|| links.get("zigbee").is_some_and(|l| l.up)),
    }
}

/// Runs until shutdown; fails when a release on trial gives up.
pub async fn run(
    cfg: OtaConfig,
    paths: OtaPaths,
    l: OtaLinks,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(HEALTH_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let store_ok = l.store.flush().await.is_ok();
        let health = {
            let up = l.uplink.as_ref().map(|u| u.borrow().clone());
            let links = l.links.borrow();
            observe(store_ok, up.as_ref(), &links, l.coordinator)
        };
        let (c, p) = (cfg.clone(), paths.clone());
        let decision = tokio::task::spawn_blocking(move || {
            recover::report_health(&p, &c, &health, crate::wall::now())
        })
        .await?;
        match decision {
            Ok(HealthDecision::GiveUp { version, reason }) => {
                anyhow::bail!("release {version} on trial is not healthy: {reason}");
            }
            Ok(HealthDecision::Commit { version }) => {
                tracing::info!(%version, "release committed after its trial");
            }
            Ok(_) => {}
            // No OTA state yet (not a packaged install): nothing to do.
            Err(e) => tracing::debug!(error = %e, "OTA state"),
        }
        publish_reports(&paths, &l).await;
    }
}

/// Publishes kept outcomes while the uplink is connected, then drops them.
async fn publish_reports(paths: &OtaPaths, l: &OtaLinks) {
    let (Some(direct), Some(up)) = (&l.direct, &l.uplink) else {
        return;
    };
    if up.borrow().state != "connected" {
        return;
    }
    let Ok(status) = recover::status(paths) else {
        return;
    };
    let mut sent = 0;
    for r in &status.reports {
        let doc = super::update::report_progress(r);
        let msg = Direct {
            subtopic: RESULT_TOPIC.into(),
            payload: serde_json::to_vec(&doc).unwrap_or_default(),
            retain: false,
            settles: None,
        };
        if direct.send(msg).await.is_err() {
            break;
        }
        sent += 1;
    }
    if sent > 0 {
        let p = paths.clone();
        let _ = tokio::task::spawn_blocking(move || recover::ack_reports(&p, sent)).await;
    }
}

/// `cmd/update`: one at a time, in the background (other commands are not
/// held up by a download). Returns the immediate answer.
#[derive(Debug, Clone)]
pub struct Updater {
    pub cfg: OtaConfig,
    pub paths: OtaPaths,
    /// This gateway's id and fleets (bundle targeting).
    pub target: super::bundle::Target,
    pub store: Store,
    pub direct: mpsc::Sender<Direct>,
    /// Cancelled after a good install: a clean stop, systemd restarts into it.
    pub shutdown: CancellationToken,
    pub busy: Arc<AtomicBool>,
}

impl Updater {
    pub fn start_update(&self, payload: &[u8]) -> serde_json::Value {
        if self.busy.swap(true, Ordering::SeqCst) {
            return serde_json::json!({"ok": false, "error": "an update is already running"});
        }
        let me = self.clone();
        let payload = payload.to_vec();
        tokio::spawn(async move {
            // The install backs the database up: let queued writes land first.
            let _ = me.store.flush().await;
            let (cfg, paths, direct) = (me.cfg.clone(), me.paths.clone(), me.direct.clone());
            let target = me.target.clone();
            let done = tokio::task::spawn_blocking(move || {
                let mut publish = |p: &Progress| {
                    let _ = direct.blocking_send(Direct {
                        subtopic: RESULT_TOPIC.into(),
                        payload: serde_json::to_vec(p).unwrap_or_default(),
                        retain: false,
                        settles: None,
                    });
                };
                super::update::handle_update_command(&payload, &cfg, &paths, &target, &mut publish)
            })
            .await;
            let done = done.unwrap_or_else(|e| Progress {
                phase: Phase::Failed,
                received: 0,
                total: None,
                version: None,
                error: Some(format!("update task: {e}")),
            });
            let _ = me
                .direct
                .send(Direct {
                    subtopic: RESULT_TOPIC.into(),
                    payload: serde_json::to_vec(&done).unwrap_or_default(),
                    retain: false,
                    settles: None,
                })
                .await;
            if done.phase == Phase::Installed {
                tracing::warn!(version = ?done.version, "update installed: restarting into it on trial");
                tokio::time::sleep(Duration::from_secs(2)).await;
                me.shutdown.cancel();
            } else {
                me.busy.store(false, Ordering::SeqCst);
            }
        });
        serde_json::json!({"ok": true, "phase": "started"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_the_configured_parts() {
        let mut links = BTreeMap::new();
        let h = observe(true, None, &links, false);
        assert_eq!((h.uplink_up, h.coordinator_up), (None, None));
        let up = UplinkState {
            state: "connected",
            ..UplinkState::off()
        };
        let h = observe(true, Some(&up), &links, true);
        assert_eq!((h.uplink_up, h.coordinator_up), (Some(true), Some(false)));
        links.insert(
            "zigbee".to_string(),
            LinkStatus {
                link: "zigbee".into(),
                up: true,
                detail: String::new(),
                at: crate::model::Time(0),
            },
        );
        let h = observe(false, Some(&UplinkState::off()), &links, true);
        assert_eq!(
            (h.store_ok, h.uplink_up, h.coordinator_up),
            (false, Some(false), Some(true))
        );
    }
}
