//! Remote configuration: what `cmd/config` accepts besides rule sets —
//! the signed envelope, bodies in JSON or TOML, and configuration fragments
//! applied at run time.
//!
//! ## Body
//! A JSON object or a TOML document with the same fields:
//! - `rules` (TOML text) + `version`? — a rule set ([`crate::rules::active`]);
//! - `config` (TOML text, or a JSON object) + `version`? — a configuration
//!   fragment merged over the running configuration;
//! - `rollback = true` (rules) or `rollback = "config"` (the fragment);
//! - `gateway`? — when present it must be this gateway's id, so a signed
//!   body made for one home cannot be replayed to another.
//!
//! ## Signed envelope
//! ```json
//! {"body": "<the body text, exactly as signed>", "key_id": "ops-2026",
//!  "signature": "<128 hex chars: Ed25519 over b\"carebridge-config-v1\\n\" ‖ body>"}
//! ```
//! The keys are the OTA bundle keys ([`crate::ota::keys::TrustStore`]: the
//! `[remote] keys_dir`, default `[ota] keys_dir`, default
//! `/etc/carebridge/keys`), read at every command so a rotation or a
//! revocation needs no restart. The context prefix keeps a configuration
//! signature from ever being valid for anything else signed by the same
//! keys. Replay of an old signed body is refused by the version rule (a
//! version must be newer than the active one). With `[remote]
//! require_signed = true` an unsigned body is refused.
//!
//! ## Fragments
//! A fragment is checked merged over the running configuration with the
//! messages `config check` gives (lines and keys naming the fragment). Only
//! the sections in [`RUNTIME_SECTIONS`] (`[devices.*]` facts, `[log]`) can
//! change without restart; a fragment touching anything else is **refused**
//! (`"<key>: needs a restart …"`), never half-applied: a remote operator
//! should not believe a setting is active when it is not. The accepted
//! overlay (all fragments so far, merged) is committed to the store's kv
//! table under [`OVERLAY_KEY`] before it takes effect, with the previous
//! overlay kept for rollback, and is applied over the config file at every
//! start ([`with_overlay`]). The active versions (rules and overlay) are in
//! the heartbeat (`config_version`) and, retained, on `<prefix>/<gw>/config`
//! whenever they change — a local edit in the UI included (drift).

use std::sync::Arc;

use hex::FromHex;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::hub::HubCommand;
use crate::model::{DeviceId, DeviceInfo, Time};
use crate::ota::keys::{KeyStatus, TrustStore};
use crate::rules::active::{ApplyError, Decision, History};
use crate::store::{Store, StoreError, Write};

mod devices;

/// Domain separation for configuration signatures.
pub const SIGNING_CONTEXT: &[u8] = b"carebridge-config-v1\n";
/// kv key of the stored overlay [`History`].
pub const OVERLAY_KEY: &str = "config.overlay";
/// Top-level sections a fragment may change without restart.
pub const RUNTIME_SECTIONS: &[&str] = &["devices", "log"];
/// Largest accepted command body.
pub const BODY_MAX: usize = 256 * 1024;

pub use crate::config::RemoteConfig;

/// Why a remote configuration was refused (the message goes upstream).
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("payload is neither a JSON object nor a TOML document: {0}")]
    Syntax(String),
    #[error("unsigned configuration refused: remote.require_signed is set")]
    Unsigned,
    #[error("field {0}")]
    Field(String),
    #[error("signature: key {0:?} is not trusted")]
    UnknownKey(String),
    #[error("signature: key {0:?} is revoked")]
    Revoked(String),
    #[error("signature does not match the body (tampered, or signed by another key)")]
    BadSignature,
    #[error("signature: cannot read the trusted keys: {0}")]
    Keys(String),
    #[error("field gateway: this body is for {0:?}, not this gateway")]
    WrongGateway(String),
    #[error("{0}: needs a restart; remote config changes only [devices.*] and [log] at run time")]
    NeedsRestart(String),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Apply(#[from] ApplyError),
}

/// A body that passed the envelope check.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    pub body: serde_json::Value,
    /// The key id, when signed.
    pub signed_by: Option<String>,
}

/// Parses a body: a JSON object, else a TOML document (as JSON).
pub fn parse_body(text: &str) -> Result<serde_json::Value, RemoteError> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(serde_json::json!({}));
    }
    match serde_json::from_str::<serde_json::Value>(t) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(_) => Err(RemoteError::Syntax("a JSON body must be an object".into())),
        Err(je) => match toml::from_str::<toml::Table>(t) {
            Ok(table) => {
                serde_json::to_value(table).map_err(|e| RemoteError::Syntax(e.to_string()))
            }
            Err(_) if t.starts_with('{') => Err(RemoteError::Syntax(format!("JSON: {je}"))),
            Err(te) => Err(RemoteError::Syntax(format!(
                "TOML: {}",
                te.message().trim()
            ))),
        },
    }
}

/// Checks the envelope (signature when present or required) and parses
/// the body. `trust` is read lazily: only signed bodies need it.
pub fn open(
    payload: &[u8],
    gateway: &str,
    require_signed: bool,
    trust: impl FnOnce() -> Result<TrustStore, String>,
) -> Result<Opened, RemoteError> {
    if payload.len() > BODY_MAX {
        return Err(RemoteError::Syntax(format!(
            "body over {} KiB",
            BODY_MAX / 1024
        )));
    }
    let text =
        std::str::from_utf8(payload).map_err(|_| RemoteError::Syntax("not UTF-8 text".into()))?;
    let outer = parse_body(text)?;
    let (body, signed_by) = if outer.get("signature").is_some() {
        let field = |k: &str| {
            outer
                .get(k)
                .and_then(|v| v.as_str())
                .ok_or_else(|| RemoteError::Field(format!("{k}: required in a signed envelope")))
        };
        let (inner, key_id, sig) = (field("body")?, field("key_id")?, field("signature")?);
        let sig = <[u8; 64]>::from_hex(sig)
            .map_err(|_| RemoteError::Field("signature: 128 hex characters".into()))?;
        let key = match trust().map_err(RemoteError::Keys)?.status(key_id) {
            KeyStatus::Trusted(k) => k,
            KeyStatus::Revoked => return Err(RemoteError::Revoked(key_id.to_string())),
            KeyStatus::Unknown => return Err(RemoteError::UnknownKey(key_id.to_string())),
        };
        let mut signed = SIGNING_CONTEXT.to_vec();
        signed.extend_from_slice(inner.as_bytes());
        UnparsedPublicKey::new(&ED25519, key)
            .verify(&signed, &sig)
            .map_err(|_| RemoteError::BadSignature)?;
        (parse_body(inner)?, Some(key_id.to_string()))
    } else if require_signed {
        return Err(RemoteError::Unsigned);
    } else {
        (outer, None)
    };
    if let Some(g) = body.get("gateway")
        && g.as_str() != Some(gateway)
    {
        return Err(RemoteError::WrongGateway(
            g.as_str().unwrap_or("?").to_string(),
        ));
    }
    Ok(Opened { body, signed_by })
}

/// Signs `body` into an envelope (tests, tools of the care organisation).
pub fn sign(key: &Ed25519KeyPair, key_id: &str, body: &str) -> serde_json::Value {
    let mut signed = SIGNING_CONTEXT.to_vec();
    signed.extend_from_slice(body.as_bytes());
    let sig = key.sign(&signed);
    serde_json::json!({"body": body, "key_id": key_id, "signature": hex::encode(sig.as_ref())})
}

/// The raw public key of a key pair (tests).
pub fn public_key(key: &Ed25519KeyPair) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(key.public_key().as_ref());
    out
}

/// The `config` field as TOML text (a string, or a JSON object).
pub fn fragment_text(v: &serde_json::Value) -> Result<String, RemoteError> {
    match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Object(_) => {
            let t: toml::Table = serde_json::from_value(v.clone())
                .map_err(|e| RemoteError::Field(format!("config: {e}")))?;
            toml::to_string(&t).map_err(|e| RemoteError::Field(format!("config: {e}")))
        }
        _ => Err(RemoteError::Field(
            "config: TOML text or an object of sections".into(),
        )),
    }
}

/// The first key of `fragment` outside [`RUNTIME_SECTIONS`], if any.
pub fn needs_restart(fragment: &toml::Table) -> Option<String> {
    let mut keys: Vec<&String> = fragment
        .keys()
        .filter(|k| !RUNTIME_SECTIONS.contains(&k.as_str()))
        .collect();
    keys.sort();
    let k = keys.first()?;
    Some(match fragment.get(*k) {
        Some(toml::Value::Table(t)) => match t.keys().next() {
            Some(sub) => format!("{k}.{sub}"),
            None => (*k).clone(),
        },
        _ => (*k).clone(),
    })
}

/// A `[devices.<id>]` entry as device facts (`None`: not a valid id).
pub fn device_info(id: &str, d: &crate::config::DeviceConfig) -> Option<DeviceInfo> {
    Some(DeviceInfo {
        id: Some(DeviceId::new(id).ok()?),
        name: d.name.clone(),
        room: d.room.clone(),
        role: d.role.clone(),
        ..Default::default()
    })
}

/// The device facts that differ between two configurations.
pub fn changed_devices(old: &Config, new: &Config) -> Vec<DeviceInfo> {
    new.devices
        .iter()
        .filter(|(id, d)| old.devices.get(*id) != Some(*d))
        .filter_map(|(id, d)| device_info(id, d))
        .collect()
}

/// An active version, as the heartbeat and `<prefix>/<gw>/config` show it.
pub use crate::status::Active;

/// Read side of the active versions (rules and configuration overlay).
#[derive(Debug, Clone)]
pub struct Versions {
    pub rules: watch::Receiver<Active>,
    pub config: watch::Receiver<Active>,
}

impl Versions {
    /// The versions active now.
    pub fn snapshot(&self) -> crate::status::ConfigVersions {
        crate::status::ConfigVersions {
            rules: self.rules.borrow().clone(),
            config: self.config.borrow().clone(),
        }
    }
}

/// What a fragment or a rollback did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigApplied {
    pub version: u64,
    pub unchanged: bool,
    /// Device facts sent to the hub.
    pub devices: usize,
    /// Log levels switched now (false when unchanged or pinned by `RUST_LOG`).
    pub log: bool,
}

impl ConfigApplied {
    /// Nothing to do: `version` stays active.
    fn unchanged(version: u64) -> ConfigApplied {
        ConfigApplied {
            version,
            unchanged: true,
            devices: 0,
            log: false,
        }
    }
}

/// The running configuration and its stored overlay (async shell).
#[derive(Debug, Clone)]
pub struct ConfigState {
    store: Store,
    hub: mpsc::Sender<HubCommand>,
    log: Option<crate::logging::LogControl>,
    /// The config file as loaded (without overlay).
    base: Arc<Config>,
    /// Base + overlay, as running now; also serialises changes.
    effective: Arc<tokio::sync::Mutex<Config>>,
    active: Arc<watch::Sender<Active>>,
}

impl ConfigState {
    /// `effective` is what [`with_overlay`] returned.
    pub fn new(
        store: Store,
        hub: mpsc::Sender<HubCommand>,
        log: Option<crate::logging::LogControl>,
        base: Config,
        effective: Config,
        active: Active,
    ) -> ConfigState {
        ConfigState {
            store,
            hub,
            log,
            base: Arc::new(base),
            effective: Arc::new(tokio::sync::Mutex::new(effective)),
            active: Arc::new(watch::channel(active).0),
        }
    }

    pub fn watch(&self) -> watch::Receiver<Active> {
        self.active.subscribe()
    }

    /// The running configuration (base + overlay).
    pub async fn effective(&self) -> Config {
        self.effective.lock().await.clone()
    }

    /// Checks `fragment` completely, stores the new overlay, then applies it.
    pub async fn apply(
        &self,
        fragment: &str,
        source: &str,
        version: Option<u64>,
        now: Time,
    ) -> Result<ConfigApplied, RemoteError> {
        self.apply_sections(fragment, source, version, now, RUNTIME_SECTIONS)
            .await
    }

    /// As [`ConfigState::apply`], for a local installer who may also change
    /// `sections` that take effect only after a restart (the web UI's
    /// uplink settings): stored and versioned the same way, rolled back the
    /// same way, applied over the config file at the next start.
    pub async fn apply_sections(
        &self,
        fragment: &str,
        source: &str,
        version: Option<u64>,
        now: Time,
        sections: &[&str],
    ) -> Result<ConfigApplied, RemoteError> {
        let table: toml::Table =
            toml::from_str(fragment).map_err(|e| crate::config::ConfigError::Parse {
                path: "remote config".into(),
                line: e.span().map_or(1, |s| {
                    fragment
                        .get(..s.start)
                        .map_or(0, |b| b.matches('\n').count())
                        + 1
                }),
                column: 1,
                key: String::new(),
                message: e.message().trim().to_string(),
            })?;
        let outside: toml::Table = table
            .iter()
            .filter(|(k, _)| !sections.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(k) = needs_restart(&outside) {
            return Err(RemoteError::NeedsRestart(k));
        }
        let mut eff = self.effective.lock().await;
        let next_cfg = crate::config::check_fragment(&eff, fragment, "remote config")?;
        let (hist, mut overlay) = load_overlay(&self.store).await?;
        crate::config::merge_tables(&mut overlay, table);
        let text = toml::to_string(&overlay).unwrap_or_default();
        match hist.propose(&text, source, version, now)? {
            Decision::Unchanged(v) => Ok(ConfigApplied::unchanged(v)),
            Decision::Switch(next) => self.switch(&mut eff, next, next_cfg).await,
        }
    }

    /// Brings back the previous overlay (none: the config file alone).
    pub async fn rollback(&self) -> Result<ConfigApplied, RemoteError> {
        let mut eff = self.effective.lock().await;
        let next = load(&self.store)
            .await
            .map_err(ApplyError::from)?
            .rollback()?;
        let text = next.current.as_ref().map_or("", |v| v.text.as_str());
        let cfg = crate::config::check_fragment(&self.base, text, "stored config")?;
        self.switch(&mut eff, next, cfg).await
    }

    async fn switch(
        &self,
        eff: &mut Config,
        next: History,
        cfg: Config,
    ) -> Result<ConfigApplied, RemoteError> {
        let bytes = serde_json::to_vec(&next).unwrap_or_default();
        self.store
            .submit(Write::Kv(OVERLAY_KEY.to_string(), Some(bytes)))
            .await
            .map_err(ApplyError::from)?;
        self.store.flush().await.map_err(ApplyError::from)?;
        let devices = changed_devices(eff, &cfg);
        let n = devices.len();
        for d in devices {
            self.hub
                .send(HubCommand::Device(d))
                .await
                .map_err(|_| ApplyError::Stopping)?;
        }
        // Log levels: stored either way (a restart applies them), switched
        // now unless `RUST_LOG` pins them; the result says which.
        let log = eff.log != cfg.log
            && match &self.log {
                Some(l) => match l.apply(&cfg.log) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "log levels not changed now");
                        false
                    }
                },
                None => false,
            };
        *eff = cfg;
        let cur = next.current.unwrap_or(crate::rules::active::Version {
            version: 0,
            source: "config".into(),
            applied_at: 0,
            text: String::new(),
        });
        tracing::info!(version = cur.version, source = %cur.source, devices = n, log, "configuration applied");
        self.active.send_replace(Active {
            version: cur.version,
            source: cur.source,
        });
        Ok(ConfigApplied {
            version: cur.version,
            unchanged: false,
            devices: n,
            log,
        })
    }
}

/// The stored overlay history and its current overlay as a table.
async fn load_overlay(store: &Store) -> Result<(History, toml::Table), RemoteError> {
    let hist = load(store).await.map_err(ApplyError::from)?;
    let overlay = hist
        .current
        .as_ref()
        .and_then(|v| toml::from_str(&v.text).ok())
        .unwrap_or_default();
    Ok((hist, overlay))
}

async fn load(store: &Store) -> Result<History, StoreError> {
    Ok(store
        .kv_get(OVERLAY_KEY)
        .await?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

/// The configuration to run with: `cfg` with the stored overlay merged
/// over it (when it still validates), and the overlay's version.
pub async fn with_overlay(store: &Store, cfg: &Config) -> Result<(Config, Active), StoreError> {
    let base = Active {
        version: 0,
        source: "config".into(),
    };
    let Some(cur) = load(store).await?.current else {
        return Ok((cfg.clone(), base));
    };
    match crate::config::check_fragment(cfg, &cur.text, "stored config") {
        Ok(merged) => Ok((
            merged,
            Active {
                version: cur.version,
                source: cur.source,
            },
        )),
        Err(e) => {
            tracing::error!(version = cur.version, error = %e, "stored remote configuration no longer valid; using the file");
            Ok((cfg.clone(), base))
        }
    }
}

/// Publishes the active versions, retained, on `<prefix>/<gw>/config` at
/// start and whenever either changes (a UI edit included: drift).
pub async fn report_versions(
    mut versions: Versions,
    direct: mpsc::Sender<crate::uplink::Direct>,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let doc = {
            let mut v = serde_json::to_value(versions.snapshot()).unwrap_or_default();
            v["at"] = crate::wall::now().to_rfc3339().into();
            v
        };
        let _ = direct
            .send(crate::uplink::Direct {
                subtopic: "config".into(),
                payload: doc.to_string().into_bytes(),
                retain: true,
                settles: None,
            })
            .await;
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = versions.rules.changed() => if r.is_err() { return Ok(()) },
            r = versions.config.changed() => if r.is_err() { return Ok(()) },
        }
    }
}

#[cfg(test)]
mod tests;
