//! The active rule set: which rules the running engine uses, where they came
//! from, their version, and the one before them (for rollback).
//!
//! Three sources can set the rules: the `[rules] file` of the config (or the
//! built-in safety rules when there is none), an edit in the local web UI, and
//! a rule set pushed by the care organisation's cloud (`cmd/config`). The
//! latter two are kept in the store's kv table under [`ACTIVE_KEY`] as a
//! [`History`] (current + previous), and win over the file at start-up: a
//! gateway that restarts, or is updated over the air, keeps the rules the
//! cloud or the installer last gave it.
//!
//! Invariants:
//! - nothing is applied that does not parse and validate completely: the
//!   text goes through [`RuleSet::parse`] first, and its error (file:line:
//!   key) is returned unchanged, with the engine and the stored history untouched;
//! - the new history is **committed before** the engine switches, so a crash
//!   in between restarts with the new rules rather than silently forgetting
//!   an accepted change;
//! - versions only increase, except by an explicit rollback, which brings
//!   back the previous version with its own number (so the cloud sees
//!   exactly which of its versions is active);
//! - the engine keeps the state of every rule whose spec did not change
//!   ([`super::Engine::reload`]).
//!
//! The pure part ([`History`]) decides; [`Rules`] is the thin async shell
//! that reads and writes the store and talks to the hub. It also follows
//! which life-safety kinds the active set leaves without an alert
//! ([`Rules::life_safety_off`], see [`crate::life_safety`]); refusing such a
//! set unless confirmed is up to the caller (web UI, `cmd/config`).
//! [`Rules::reset`] (factory reset) forgets the stored versions: the base
//! rules apply again.

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{ReloadSummary, RuleSet, RulesError};
use crate::hub::HubCommand;
use crate::model::{Kind, Time};
use crate::store::{Store, StoreError, Write};

/// kv key of the stored [`History`].
pub const ACTIVE_KEY: &str = "rules.active";

/// One version of the rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// Increasing number; 0 is the config file / built-in set.
    pub version: u64,
    /// `config`, `built-in`, `ui:<user>`, `remote`.
    pub source: String,
    /// When it was applied (ms since the epoch).
    pub applied_at: i64,
    /// The TOML text, exactly as given.
    pub text: String,
}

/// What the store keeps: the active version and the one before it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub current: Option<Version>,
    pub previous: Option<Version>,
}

/// Why a rule set was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The text does not parse or validate (message names line and key).
    #[error("{0}")]
    Invalid(#[from] RulesError),
    /// A remote version not above the active one (and not the same text).
    #[error("version {given} is not newer than the active version {active}")]
    Stale { given: u64, active: u64 },
    /// Rollback asked with no previous version kept.
    #[error("there is no previous rule set to roll back to")]
    NoPrevious,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The hub is gone (the gateway is stopping).
    #[error("the gateway is stopping")]
    Stopping,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub version: u64,
    pub source: String,
    /// Rules whose state was kept / that start fresh / that are gone.
    pub kept: usize,
    pub fresh: usize,
    pub removed: usize,
    /// The same version and text were already active: nothing changed.
    pub unchanged: bool,
}

/// The decision for a new text (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Already active: nothing to do.
    Unchanged(u64),
    /// Store this history, then switch the engine to its current version.
    Switch(History),
}

impl History {
    /// The active version number (0 when the file / built-in rules apply).
    pub fn version(&self) -> u64 {
        self.current.as_ref().map_or(0, |v| v.version)
    }

    /// Decides how to take `text` from `source`. `version` is the sender's
    /// (remote pushes carry one); `None` takes the next number.
    pub fn propose(
        &self,
        text: &str,
        source: &str,
        version: Option<u64>,
        now: Time,
    ) -> Result<Decision, ApplyError> {
        let active = self.version();
        if let Some(cur) = &self.current
            && cur.text == text
            && version.is_none_or(|v| v == cur.version)
        {
            return Ok(Decision::Unchanged(cur.version));
        }
        let version = match version {
            Some(v) if v <= active => return Err(ApplyError::Stale { given: v, active }),
            Some(v) => v,
            None => active + 1,
        };
        Ok(Decision::Switch(History {
            current: Some(Version {
                version,
                source: source.to_string(),
                applied_at: now.as_millis(),
                text: text.to_string(),
            }),
            previous: self.current.clone(),
        }))
    }

    /// The history after a rollback: the previous version becomes active
    /// again (with its own number) and the current one becomes "previous",
    /// so a second rollback undoes the first.
    /// With nothing before the first stored version, rollback returns to
    /// the base (config file or built-in rules).
    pub fn rollback(&self) -> Result<History, ApplyError> {
        if self.previous.is_none() && self.current.is_none() {
            return Err(ApplyError::NoPrevious);
        }
        Ok(History {
            current: self.previous.clone(),
            previous: self.current.clone(),
        })
    }

    fn decode(bytes: &[u8]) -> Option<History> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The handle other tasks (web UI, remote config) use to read and change
/// the active rules.
#[derive(Debug, Clone)]
pub struct Rules {
    store: Store,
    hub: mpsc::Sender<HubCommand>,
    /// One change at a time: two editors racing would otherwise both read
    /// the same history and one change would vanish.
    lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The text used when nothing is stored (config file or built-in).
    base: Version,
    /// The active version and its source, for the heartbeat and drift reports.
    active: std::sync::Arc<tokio::sync::watch::Sender<crate::remote_config::Active>>,
    /// The life-safety kinds every set must cover (`[rules] life_safety`).
    life_safety: std::sync::Arc<[Kind]>,
    /// Those the active set leaves uncovered (status, metrics, UI banner).
    off: std::sync::Arc<tokio::sync::watch::Sender<Vec<Kind>>>,
}

impl Rules {
    pub fn new(store: Store, hub: mpsc::Sender<HubCommand>, base: Version) -> Rules {
        let active = crate::remote_config::Active {
            version: base.version,
            source: base.source.clone(),
        };
        let life_safety: std::sync::Arc<[Kind]> = crate::life_safety::DEFAULT.into();
        let off = uncovered(&base.text, &life_safety);
        Rules {
            store,
            hub,
            lock: std::sync::Arc::default(),
            base,
            active: std::sync::Arc::new(tokio::sync::watch::channel(active).0),
            life_safety,
            off: std::sync::Arc::new(tokio::sync::watch::channel(off).0),
        }
    }

    /// Sets the life-safety kinds (`[rules] life_safety`); call before
    /// [`Rules::started_with`].
    pub fn with_life_safety(mut self, kinds: Vec<Kind>) -> Rules {
        self.life_safety = kinds.into();
        self.off
            .send_replace(uncovered(&self.base.text, &self.life_safety));
        self
    }

    /// The life-safety kinds every rule set must cover.
    pub fn life_safety(&self) -> &[Kind] {
        &self.life_safety
    }

    /// The life-safety kinds `set` leaves without an alert.
    pub fn missing(&self, set: &RuleSet) -> Vec<Kind> {
        crate::life_safety::missing(set, &self.life_safety)
    }

    /// Follows the life-safety kinds the active set leaves uncovered.
    pub fn life_safety_off(&self) -> tokio::sync::watch::Receiver<Vec<Kind>> {
        self.off.subscribe()
    }

    /// Forgets the stored versions: the base rules (config file or
    /// built-in) become active again (factory reset).
    pub async fn reset(&self) -> Result<Applied, ApplyError> {
        let _guard = self.lock.lock().await;
        let set = RuleSet::parse(&self.base.text, "rules")?;
        self.switch(History::default(), set).await
    }

    /// Records the version the engine started with (see [`startup_set`]).
    pub fn started_with(&self, v: &Version) {
        self.active.send_replace(crate::remote_config::Active {
            version: v.version,
            source: v.source.clone(),
        });
        self.off.send_replace(uncovered(&v.text, &self.life_safety));
    }

    /// Follows the active version (changes from the UI and the cloud).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<crate::remote_config::Active> {
        self.active.subscribe()
    }

    /// The stored history (empty when only the base applies).
    pub async fn history(&self) -> Result<History, StoreError> {
        Ok(load_history(&self.store).await?.unwrap_or_default())
    }

    /// The active version: the stored one, or the base.
    pub async fn active(&self) -> Result<Version, StoreError> {
        Ok(self.history().await?.current.unwrap_or(self.base.clone()))
    }

    /// Validates `text` completely, stores it, then switches the engine.
    pub async fn apply(
        &self,
        text: &str,
        source: &str,
        version: Option<u64>,
        now: Time,
    ) -> Result<Applied, ApplyError> {
        let set = RuleSet::parse(text, "rules")?;
        let _guard = self.lock.lock().await;
        let history = self.history().await?;
        match history.propose(text, source, version, now)? {
            Decision::Unchanged(v) => Ok(Applied {
                version: v,
                source: source.to_string(),
                kept: 0,
                fresh: 0,
                removed: 0,
                unchanged: true,
            }),
            Decision::Switch(next) => self.switch(next, set).await,
        }
    }

    /// Brings back the previous version.
    pub async fn rollback(&self) -> Result<Applied, ApplyError> {
        let _guard = self.lock.lock().await;
        let next = self.history().await?.rollback()?;
        let text = next.current.as_ref().unwrap_or(&self.base).text.as_str();
        // It was valid when it was applied; a newer binary may be stricter.
        let set = RuleSet::parse(text, "rules")?;
        self.switch(next, set).await
    }

    async fn switch(&self, next: History, set: RuleSet) -> Result<Applied, ApplyError> {
        let bytes = serde_json::to_vec(&next).unwrap_or_default();
        self.store
            .submit(Write::Kv(ACTIVE_KEY.to_string(), Some(bytes)))
            .await?;
        self.store.flush().await?;
        let off = self.missing(&set);
        let (reply, rx) = oneshot::channel();
        self.hub
            .send(HubCommand::Rules { set, reply })
            .await
            .map_err(|_| ApplyError::Stopping)?;
        let s: ReloadSummary = rx.await.map_err(|_| ApplyError::Stopping)?;
        let cur = next.current.unwrap_or(self.base.clone());
        tracing::info!(version = cur.version, source = %cur.source, kept = s.kept, fresh = s.fresh, removed = s.removed, "rules applied");
        self.active.send_replace(crate::remote_config::Active {
            version: cur.version,
            source: cur.source.clone(),
        });
        if !off.is_empty() {
            tracing::warn!(version = cur.version, missing = %crate::life_safety::names(&off),
                "the active rules raise no alert for these life-safety kinds");
        }
        self.off.send_replace(off);
        Ok(Applied {
            version: cur.version,
            source: cur.source,
            kept: s.kept,
            fresh: s.fresh,
            removed: s.removed,
            unchanged: false,
        })
    }
}

/// The life-safety kinds a rules text leaves uncovered (a text that does
/// not parse covers nothing: the engine falls back, see [`startup_set`]).
fn uncovered(text: &str, required: &[Kind]) -> Vec<Kind> {
    match RuleSet::parse(text, "rules") {
        Ok(set) => crate::life_safety::missing(&set, required),
        Err(_) => Vec::new(),
    }
}

/// Reads the stored history; an unreadable record is logged and ignored
/// (the file / built-in rules apply), never a reason not to start.
pub async fn load_history(store: &Store) -> Result<Option<History>, StoreError> {
    Ok(match store.kv_get(ACTIVE_KEY).await? {
        Some(bytes) => {
            let h = History::decode(&bytes);
            if h.is_none() {
                tracing::warn!(
                    key = ACTIVE_KEY,
                    "stored rule set unreadable; using the configured rules"
                );
            }
            h
        }
        None => None,
    })
}

/// The rule set to start with: the stored one when it parses, else `base`.
pub async fn startup_set(store: &Store, base: &Version) -> Result<(Version, RuleSet), StoreError> {
    if let Some(cur) = load_history(store).await?.and_then(|h| h.current) {
        match RuleSet::parse(&cur.text, "stored rules") {
            Ok(set) => return Ok((cur, set)),
            Err(e) => {
                tracing::error!(version = cur.version, error = %e, "stored rule set no longer valid; using the configured rules");
            }
        }
    }
    let set = RuleSet::parse(&base.text, &base.source).unwrap_or_default();
    Ok((base.clone(), set))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(cur: Option<(u64, &str)>, prev: Option<(u64, &str)>) -> History {
        let v = |(n, t): (u64, &str)| Version {
            version: n,
            source: "remote".into(),
            applied_at: 0,
            text: t.into(),
        };
        History {
            current: cur.map(v),
            previous: prev.map(v),
        }
    }

    #[test]
    fn a_local_edit_takes_the_next_version_and_keeps_the_old_one() {
        let d = h(Some((3, "a")), None)
            .propose("b", "ui:ann", None, Time(5))
            .unwrap();
        let Decision::Switch(n) = d else {
            panic!("{d:?}")
        };
        assert_eq!(n.version(), 4);
        assert_eq!(n.current.as_ref().unwrap().source, "ui:ann");
        assert_eq!(n.previous.unwrap().text, "a");
    }

    #[test]
    fn a_remote_version_not_newer_is_refused_unless_it_is_the_same() {
        let hist = h(Some((7, "a")), None);
        assert!(matches!(
            hist.propose("b", "remote", Some(7), Time(0)),
            Err(ApplyError::Stale {
                given: 7,
                active: 7
            })
        ));
        assert_eq!(
            hist.propose("a", "remote", Some(7), Time(0)).unwrap(),
            Decision::Unchanged(7)
        );
        assert!(matches!(
            hist.propose("b", "remote", Some(9), Time(0)).unwrap(),
            Decision::Switch(n) if n.version() == 9
        ));
    }

    #[test]
    fn rollback_twice_is_where_we_started() {
        let hist = h(Some((2, "b")), Some((1, "a")));
        let back = hist.rollback().unwrap();
        assert_eq!(back.version(), 1);
        assert_eq!(back.rollback().unwrap(), hist);
        let to_base = h(Some((1, "a")), None).rollback().unwrap();
        assert_eq!(to_base.current, None);
        assert_eq!(to_base.rollback().unwrap(), h(Some((1, "a")), None));
        assert!(matches!(
            History::default().rollback(),
            Err(ApplyError::NoPrevious)
        ));
    }

    #[test]
    fn the_first_stored_version_follows_the_base() {
        let d = History::default()
            .propose("x", "remote", None, Time(0))
            .unwrap();
        assert!(matches!(d, Decision::Switch(n) if n.version() == 1 && n.previous.is_none()));
    }
}
