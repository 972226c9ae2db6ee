//! Commands from the care organisation's cloud (`<prefix>/<gateway>/cmd/<name>`
//! over MQTT, or a LoRaWAN downlink): each gets exactly one JSON result,
//! published on `cmd/<name>/result`. A command never fails the gateway:
//! a bad one gets `{"ok": false, "error": "<field>: <why>"}`.
//!
//! | command | body | effect |
//! |---|---|---|
//! | `ping` | – | `{"ok":true,"pong":<time>}` |
//! | `ack` | `{"instance"}` or `{"rule", "device"?}` | acknowledges one alert by its instance id (stops its escalation), or the matching open alerts |
//! | `mode` | `{"mode": "away"\|"visitor"\|"home", "until"?}` (`until` RFC 3339; visitor defaults to 4 h) | sets the household's mode: inactivity, absence, routine, dwell and gone_out rules stand down while away or with visitors ([`crate::rules::mode`]); `{"ok":true,"mode":{…}}` |
//! | `permit_join` | `{"seconds"?}` (≤ 254, default 60) | opens the Zigbee network |
//! | `config` | `{"rules", "version"?, "allow_missing_life_safety"?}` or `{"rollback": true}` | applies a rule set without restart; one without the life-safety rules ([`crate::life_safety`]) only with `allow_missing_life_safety: true` |
//! | `config` | `{"config": "<TOML fragment>", "version"?}` or `{"rollback": "config"}` | applies `[devices.*]`/`[log]` without restart |
//! | `config` | `{"device_credentials": {"set": [...], "revoke": [...]}}` | Wi-Fi device credentials for the local broker ([`crate::devauth::record`]), applied first, all or nothing |
//! | `diagnostics` | – | a bounded JSON report ([`crate::diagnostics`]) |
//! | `arc_test` | – | sends a manual test (Contact ID 601 / SIA RX, zone 0) to the alarm receiving centre; `{"ok":true,"receiver":"primary"\|"secondary"}` once acknowledged (waits at most 30 s) |
//! | `update` | `{"url", "sha256", "size"?}` | download, verify, install on trial, restart ([`crate::ota::daemon`]); progress and outcome on `cmd/update/result` |
//!
//! `cmd/config` bodies may be JSON or TOML, and signed: see
//! [`crate::remote_config`] for the envelope and `[remote] require_signed`.
//!
//! Every JSON command body may also carry (see [`once`]):
//!
//! | field | meaning |
//! |---|---|
//! | `id` | 1–128 characters: executed once; a repeat (a redelivery over the persistent session — MQTT commands are PUBACKed only after they ran, see below —, a retry by the cloud) gets `{"ok":…,"id","duplicate":true}` and is not run again (ids remembered durably, newest 4,096) |
//! | `expires` | RFC 3339: past it the command is refused, `{"ok":false,"error":"expired …"}`, not executed; if the gateway's clock is not trusted the command runs and the result says `expires_unchecked` |
//!
//! The result of a command with an `id` carries the same `id`.
//!
//! Over MQTT a command's PUBLISH is acknowledged (PUBACK) only when its
//! result goes out: [`CommandHandler::run`] hands the command's
//! [`Command::receipt`] back on the result's [`Direct::settles`], after
//! [`CommandHandler::handle_once`] ran it and synced its id. A command
//! received but not run when the gateway dies is therefore delivered again
//! over the persistent session (and runs once: its id was not remembered,
//! or it was and the repeat is answered as a duplicate).

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::hub::HubCommand;
use crate::model::DeviceId;
use crate::rules::active::Rules;
use crate::uplink::{Command, Direct};

pub mod once;

/// Answers commands from upstream on `cmd/<name>/result`.
pub struct CommandHandler {
    pub hub: mpsc::Sender<HubCommand>,
    pub zigbee: Option<mpsc::Sender<crate::zigbee::ZigbeeCommand>>,
    pub direct: mpsc::Sender<Direct>,
    pub rules: Rules,
    /// Remote configuration and diagnostics; `None`: rules only.
    pub fleet: Option<Fleet>,
    /// `cmd/update`, when `[ota]` is configured.
    pub updater: Option<crate::ota::daemon::Updater>,
    /// Ids of executed commands (`None`: ids are not remembered).
    pub seen: Option<once::SeenIds>,
    /// The gateway's clock, for `expires` (`None`: the system clock,
    /// taken as trusted).
    pub clock: Option<std::sync::Arc<dyn crate::clock::Clock>>,
    /// `cmd/arc_test`, when `[arc]` is configured.
    pub arc: Option<crate::uplink::arc::ArcHandle>,
}

/// What `cmd/config` (beyond rule sets) and `cmd/diagnostics` need.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub gateway: String,
    pub require_signed: bool,
    pub keys_dir: std::path::PathBuf,
    pub config: crate::remote_config::ConfigState,
    pub diagnostics: crate::diagnostics::Diagnostics,
    /// The local broker's device credentials (with `[local_broker]`).
    pub credentials: Option<crate::devauth::CredentialStore>,
}

impl CommandHandler {
    /// Answers each command from `rx` until shutdown.
    pub async fn run(
        self,
        mut rx: mpsc::Receiver<Command>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            let cmd = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                c = rx.recv() => match c { Some(c) => c, None => return Ok(()) },
            };
            let result = self.handle_once(&cmd.name, &cmd.payload).await;
            // The receipt rides on the result: the uplink acknowledges the
            // command's delivery only once it publishes this (after the id
            // was remembered), so a crash before that gets it redelivered.
            let _ = self
                .direct
                .send(Direct {
                    subtopic: format!("cmd/{}/result", cmd.name),
                    payload: result.to_string().into_bytes(),
                    retain: false,
                    settles: cmd.receipt,
                })
                .await;
        }
    }

    /// One command with its envelope ([`once`]): refused when expired, not
    /// run again when its `id` was executed, its `id` remembered after it
    /// ran (synced before the result is published).
    pub async fn handle_once(&self, name: &str, payload: &[u8]) -> serde_json::Value {
        let (env, body) = match once::split(payload) {
            Ok(x) => x,
            Err(e) => return json!({"ok": false, "error": e}),
        };
        if let (Some(id), Some(seen)) = (&env.id, &self.seen)
            && let Some(ok) = seen.seen(id)
        {
            tracing::info!(command = name, id, "duplicate command not run again");
            return json!({"ok": ok, "id": id, "duplicate": true});
        }
        let mut unchecked = None;
        let result = match env.expires {
            None => None,
            Some(expires) => {
                let (now, state) = match &self.clock {
                    Some(c) => (c.now(), c.state()),
                    None => (
                        crate::wall::now(),
                        crate::clock::ClockState {
                            trusted: true,
                            source: "system",
                            ..Default::default()
                        },
                    ),
                };
                match once::expiry(expires, now, &state) {
                    once::Expiry::Fresh => None,
                    once::Expiry::Unchecked(why) => {
                        unchecked = Some(why);
                        None
                    }
                    once::Expiry::Expired { expires, now } => {
                        tracing::warn!(command = name, %expires, %now, "expired command refused");
                        Some(json!({"ok": false, "error":
                            format!("expired at {expires} (gateway time {now}): not executed")}))
                    }
                }
            }
        };
        let mut result = match result {
            Some(r) => r,
            None => self.handle(name, &body).await,
        };
        if let Some(m) = result.as_object_mut() {
            if let Some(why) = unchecked {
                m.insert("expires_unchecked".into(), why.into());
            }
            if let Some(id) = &env.id {
                m.insert("id".into(), id.clone().into());
            }
        }
        if let (Some(id), Some(seen)) = (env.id, self.seen.clone()) {
            let ok = result.get("ok").and_then(|v| v.as_bool()).unwrap_or(false);
            let stored = tokio::task::spawn_blocking(move || seen.remember(&id, ok)).await;
            if !matches!(stored, Ok(Ok(()))) {
                tracing::error!(
                    command = name,
                    "could not remember the command id: a repeat would run again"
                );
            }
        }
        result
    }

    /// One command (from any path: MQTT `cmd/<name>`, a LoRaWAN downlink)
    /// to its JSON result. Never fails: errors are results naming the field.
    pub async fn handle(&self, name: &str, payload: &[u8]) -> serde_json::Value {
        if name == "config" {
            return self.remote_config(payload).await;
        }
        if name == "update" {
            return match &self.updater {
                Some(u) => u.start_update(payload),
                None => json!({"ok": false, "error": "updates are not configured ([ota])"}),
            };
        }
        if name == "diagnostics" {
            return match &self.fleet {
                Some(f) => f.diagnostics.report().await,
                None => json!({"ok": false, "error": "diagnostics are not available"}),
            };
        }
        let body: serde_json::Value = if payload.is_empty() {
            json!({})
        } else {
            match serde_json::from_slice(payload) {
                Ok(v) => v,
                Err(e) => return json!({"ok": false, "error": format!("payload is not JSON: {e}")}),
            }
        };
        match name {
            "ping" => json!({"ok": true, "pong": crate::wall::now().to_rfc3339()}),
            "ack" if body.get("instance").is_some() => {
                let Some(instance) = body.get("instance").and_then(|v| v.as_str()) else {
                    return json!({"ok": false, "error": "field instance: must be a string (the alert's instance id)"});
                };
                let (reply, rx) = tokio::sync::oneshot::channel();
                let sent = self
                    .hub
                    .send(HubCommand::AckInstance {
                        instance: instance.to_string(),
                        reply,
                    })
                    .await;
                match (sent, rx.await) {
                    (Ok(()), Ok(true)) => json!({"ok": true}),
                    (Ok(()), Ok(false)) => {
                        json!({"ok": false, "error": "no open alert has this instance"})
                    }
                    _ => json!({"ok": false, "error": "gateway is shutting down"}),
                }
            }
            "ack" => {
                let Some(rule) = body.get("rule").and_then(|v| v.as_str()) else {
                    return json!({"ok": false, "error": "field rule: required (the alert's rule id)"});
                };
                let device = match body.get("device").and_then(|v| v.as_str()) {
                    Some(d) => match DeviceId::new(d) {
                        Ok(id) => Some(id),
                        Err(e) => {
                            return json!({"ok": false, "error": format!("field device: {e}")});
                        }
                    },
                    None => None,
                };
                let (reply, rx) = tokio::sync::oneshot::channel();
                let sent = self
                    .hub
                    .send(HubCommand::Ack {
                        rule: rule.to_string(),
                        device,
                        reply,
                    })
                    .await;
                match (sent, rx.await) {
                    (Ok(()), Ok(true)) => json!({"ok": true}),
                    (Ok(()), Ok(false)) => json!({"ok": false, "error": "no open alert matches"}),
                    _ => json!({"ok": false, "error": "gateway is shutting down"}),
                }
            }
            "mode" => {
                let Some(m) = body.get("mode").and_then(|v| v.as_str()) else {
                    return json!({"ok": false, "error": "field mode: required (away, visitor or home)"});
                };
                let mode: crate::rules::mode::Mode = match m.parse() {
                    Ok(m) => m,
                    Err(e) => return json!({"ok": false, "error": format!("field {e}")}),
                };
                let until = match body.get("until") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(v) => match v.as_str().map(crate::model::Time::parse_rfc3339) {
                        Some(Ok(t)) => Some(t),
                        _ => {
                            return json!({"ok": false, "error": "field until: an RFC 3339 time (e.g. 2026-12-05T18:00:00Z)"});
                        }
                    },
                };
                let (reply, rx) = tokio::sync::oneshot::channel();
                let sent = self
                    .hub
                    .send(HubCommand::Mode {
                        mode,
                        until,
                        source: "cmd/mode".into(),
                        reply,
                    })
                    .await;
                match (sent, rx.await) {
                    (Ok(()), Ok(Ok(state))) => json!({"ok": true, "mode": state}),
                    (Ok(()), Ok(Err(e))) => json!({"ok": false, "error": format!("field {e}")}),
                    _ => json!({"ok": false, "error": "gateway is shutting down"}),
                }
            }
            "permit_join" => {
                let secs = body.get("seconds").and_then(|v| v.as_u64()).unwrap_or(60);
                let Ok(secs) = u16::try_from(secs).map(|s| s.min(254)) else {
                    return json!({"ok": false, "error": "field seconds: 0 to 254"});
                };
                match &self.zigbee {
                    None => json!({"ok": false, "error": "no Zigbee coordinator configured"}),
                    Some(z) => match z
                        .send(crate::zigbee::ZigbeeCommand::PermitJoin { secs })
                        .await
                    {
                        Ok(()) => json!({"ok": true, "seconds": secs}),
                        Err(_) => json!({"ok": false, "error": "Zigbee coordinator task stopped"}),
                    },
                }
            }
            "arc_test" => match &self.arc {
                None => {
                    json!({"ok": false, "error": "no alarm receiving centre configured ([arc])"})
                }
                Some(a) => {
                    match tokio::time::timeout(std::time::Duration::from_secs(30), a.test()).await {
                        Ok(Ok(by)) => json!({"ok": true, "receiver": by}),
                        Ok(Err(e)) => json!({"ok": false, "error": e}),
                        Err(_) => {
                            json!({"ok": false, "error": "no acknowledgement within 30 s (still trying; see the status)"})
                        }
                    }
                }
            },
            other => json!({"ok": false, "error": format!("unknown command {other:?}")}),
        }
    }

    /// `cmd/config` with its envelope: signature check (when signed or
    /// required), JSON or TOML body, then a configuration fragment, a rule
    /// set, or a rollback. Both `config` and `rules` may come together: the
    /// fragment is applied first, and nothing is applied if it is refused.
    async fn remote_config(&self, payload: &[u8]) -> serde_json::Value {
        let Some(fleet) = &self.fleet else {
            let body = match crate::remote_config::parse_body(&String::from_utf8_lossy(payload)) {
                Ok(b) => b,
                Err(e) => return json!({"ok": false, "error": e.to_string()}),
            };
            return self.config(&body).await;
        };
        let keys = fleet.keys_dir.clone();
        let opened =
            crate::remote_config::open(payload, &fleet.gateway, fleet.require_signed, || {
                crate::ota::keys::TrustStore::load(&keys).map_err(|e| e.to_string())
            });
        let opened = match opened {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "remote configuration refused");
                return json!({"ok": false, "error": e.to_string()});
            }
        };
        let body = &opened.body;
        let version = match body.get("version") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) => Some(n),
                None => return json!({"ok": false, "error": "field version: a whole number ≥ 1"}),
            },
        };
        let mut out = serde_json::Map::new();
        if let Some(dc) = body.get("device_credentials") {
            match push_credentials(fleet.credentials.clone(), dc).await {
                Ok(done) => {
                    out.insert("device_credentials".into(), done);
                    if !["config", "rules", "rollback"]
                        .iter()
                        .any(|k| body.get(*k).is_some())
                    {
                        out.insert("ok".into(), true.into());
                        return out.into();
                    }
                }
                Err(e) => return json!({"ok": false, "error": e}),
            }
        }
        if body.get("rollback").and_then(|v| v.as_str()) == Some("config") {
            return match fleet.config.rollback().await {
                Ok(a) => json!({"ok": true, "config": a}),
                Err(e) => json!({"ok": false, "error": e.to_string()}),
            };
        }
        if let Some(frag) = body.get("config") {
            let text = match crate::remote_config::fragment_text(frag) {
                Ok(t) => t,
                Err(e) => return json!({"ok": false, "error": e.to_string()}),
            };
            // With rules as well, the version belongs to the rules.
            let v = if body.get("rules").is_some() {
                None
            } else {
                version
            };
            match fleet
                .config
                .apply(&text, "remote", v, crate::wall::now())
                .await
            {
                Ok(a) => {
                    out.insert(
                        "config".into(),
                        serde_json::to_value(&a).unwrap_or_default(),
                    );
                    if body.get("rules").is_none() {
                        out.insert("ok".into(), true.into());
                        out.insert("version".into(), a.version.into());
                        return out.into();
                    }
                }
                Err(e) => return json!({"ok": false, "error": e.to_string()}),
            }
        }
        let mut r = self.config(body).await;
        if let (Some(m), false) = (r.as_object_mut(), out.is_empty()) {
            m.extend(out);
        }
        r
    }

    /// `cmd/config`: `{"rules": "<TOML>", "version": N}` applies a rule set
    /// (validated completely first; the version is optional and must be
    /// newer than the active one); `{"rollback": true}` brings back the
    /// previous version. The result carries the active version.
    async fn config(&self, body: &serde_json::Value) -> serde_json::Value {
        let now = crate::wall::now();
        let result = if body.get("rollback").and_then(|v| v.as_bool()) == Some(true) {
            self.rules.rollback().await
        } else {
            let Some(text) = body.get("rules").and_then(|v| v.as_str()) else {
                return json!({"ok": false, "error": "field rules: required (the rule set as TOML text), or rollback: true"});
            };
            let version = match body.get("version") {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => match v.as_u64() {
                    Some(n) => Some(n),
                    None => {
                        return json!({"ok": false, "error": "field version: a whole number ≥ 1"});
                    }
                },
            };
            // A set without the life-safety rules only when the sender says so.
            if body
                .get(crate::life_safety::CONFIRM_FIELD)
                .and_then(|v| v.as_bool())
                != Some(true)
                && let Ok(set) = crate::rules::RuleSet::parse(text, "rules")
            {
                let missing = self.rules.missing(&set);
                if !missing.is_empty() {
                    return json!({"ok": false, "error": format!("field rules: {}", crate::life_safety::refusal(&missing)),
                        "missing_life_safety": missing.iter().map(|k| k.as_str()).collect::<Vec<_>>()});
                }
            }
            self.rules.apply(text, "remote", version, now).await
        };
        match result {
            Ok(a) => json!({"ok": true, "version": a.version, "unchanged": a.unchanged,
                "kept": a.kept, "fresh": a.fresh, "removed": a.removed}),
            Err(e) => json!({"ok": false, "error": e.to_string()}),
        }
    }
}

/// `device_credentials` of `cmd/config`: validated whole, then written as
/// one change. The result counts what was set and revoked.
async fn push_credentials(
    store: Option<crate::devauth::CredentialStore>,
    v: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let Some(store) = store else {
        return Err("device_credentials: no local broker on this gateway ([local_broker])".into());
    };
    let now = crate::wall::now();
    let push = crate::devauth::record::parse_push(v, now, "remote").map_err(|e| e.to_string())?;
    let (set, revoked) = tokio::task::spawn_blocking(move || store.apply_push(push, now))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("device_credentials: {e}"))?;
    tracing::info!(set, revoked, "device credentials changed by cmd/config");
    Ok(json!({"set": set, "revoked": revoked}))
}
