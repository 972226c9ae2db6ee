//! The System and Uplinks pages' actions: configuration backup and
//! restore, factory reset, log download, the MQTT "test connection", and
//! the OTA bundle upload (streamed to a file, verified, installed when the
//! gateway runs from the packaged release layout).
//!
//! Invariants: a restore validates everything it carries (config with the
//! `config check` logic, rules, device facts) before it writes anything,
//! refuses rules without the life-safety ones unless the document carries
//! `allow_missing_life_safety: true`, and says what it did not expect
//! (devices this gateway never saw, a plain-HTTP web UI off loopback) in
//! `warnings`; a factory reset brings back the base rules;
//! an upload is never held in memory and never exceeds the bundle limit;
//! the log comes from `journalctl` with fixed arguments only (nothing from
//! the request reaches a command line).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::json;
use warp::Reply as _;
use warp::http::{HeaderValue, StatusCode, header};

use super::http::{App, Fail, Req, Resp, Result, Who, installer, json_resp};
use super::roles::Record;
use super::validate::{self, Invalid};
use crate::model::{DeviceId, DeviceInfo};

/// A chunk of an upload must arrive within this long.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);
const BACKUP_FORMAT: &str = "carebridge-backup-1";

fn attachment(mut r: Resp, name: &'static str) -> Resp {
    r.headers_mut()
        .insert(header::CONTENT_DISPOSITION, HeaderValue::from_static(name));
    r
}

/// `GET /api/v1/system/backup`: config, active rules, devices, users (no
/// password hashes), uplink settings and the audit log.
pub async fn backup(app: &App, who: &Who) -> Result<Resp> {
    installer(who)?;
    let devices = app.roles.registry.devices().await?;
    let users: Vec<_> = app
        .accounts
        .lock()
        .await
        .iter()
        .map(|a| json!({"name": a.name, "role": a.role}))
        .collect();
    let audit = app.audit.lock().await.recent(super::audit::AUDIT_MAX);
    let rules = match &app.roles.rules {
        Some(r) => r
            .active()
            .await
            .ok()
            .map(|v| json!({"version": v.version, "source": v.source, "text": v.text})),
        None => None,
    };
    let doc = json!({
        "format": BACKUP_FORMAT,
        "at": crate::wall::now(),
        "version": env!("CARGO_PKG_VERSION"),
        "gateway": app.roles.watch.status().gateway,
        "config": app.roles.settings.config_toml,
        "rules": rules,
        "devices": devices,
        "users": users,
        "uplinks": app.roles.settings.uplinks,
        "audit": audit,
    });
    app.audit(
        &who.session.user,
        "system.backup",
        "configuration backup downloaded".into(),
    )
    .await?;
    Ok(attachment(
        json_resp(StatusCode::OK, &doc),
        "attachment; filename=\"carebridge-backup.json\"",
    ))
}

fn problems_resp(field: &str, message: String, problems: serde_json::Value) -> Resp {
    json_resp(
        StatusCode::BAD_REQUEST,
        &json!({"error": format!("{field}: {message}"), "field": field, "problems": problems}),
    )
}

/// Device facts from a backup, checked like the device editor checks them.
fn restore_devices(v: Option<&serde_json::Value>) -> Result<Vec<DeviceInfo>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = v
        .as_array()
        .ok_or_else(|| Invalid::new("devices", "must be an array"))?;
    let mut out = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let f = |k: &str| format!("devices[{i}].{k}");
        let s = |k: &str| -> Result<Option<String>> {
            match d.get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(Invalid::new(&f(k), "must be a string").into()),
            }
        };
        let id = s("id")?.ok_or_else(|| Invalid::new(&f("id"), "is required"))?;
        let id = DeviceId::new(&id).map_err(|e| Invalid::new(&f("id"), e.to_string()))?;
        let name = s("name")?
            .map(|n| validate::text(&f("name"), &n, 64))
            .transpose()?;
        let room = s("room")?
            .map(|n| validate::word(&f("room"), &n, 32))
            .transpose()?;
        let role = s("role")?
            .map(|n| validate::word(&f("role"), &n, 32))
            .transpose()?;
        out.push(DeviceInfo {
            id: Some(id),
            name,
            room,
            role,
            ..Default::default()
        });
    }
    Ok(out)
}

/// `POST /api/v1/system/restore` with a backup document: validates the
/// config (as `carebridge config check` does), the rules and the device
/// facts; only then applies the rules and device facts and saves the
/// config next to the data for the installer to put in place.
pub async fn restore(app: &App, req: &Req, who: &Who) -> Result<Resp> {
    installer(who)?;
    let doc: serde_json::Value = serde_json::from_slice(&req.body)
        .map_err(|e| Invalid::new("body", format!("not a backup document ({e})")))?;
    if doc.get("format").and_then(|f| f.as_str()) != Some(BACKUP_FORMAT) {
        return Err(Invalid::new("format", format!("must be {BACKUP_FORMAT:?}")).into());
    }
    let config = match doc.get("config") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(Invalid::new("config", "must be TOML text").into()),
    };
    if let Some(text) = &config
        && let Err(e) = crate::config::Config::parse(text, "config")
    {
        let list = match &e {
            crate::config::ConfigError::Invalid { problems, .. } => problems
                .iter()
                .map(|(l, p)| json!({"line": l, "key": p.key, "message": p.reason}))
                .collect(),
            other => vec![json!({"line": null, "key": "", "message": other.to_string()})],
        };
        return Ok(problems_resp("config", e.to_string(), json!(list)));
    }
    let rules = match doc.get("rules") {
        None | Some(serde_json::Value::Null) => None,
        Some(r) => Some(
            r.get("text")
                .and_then(|t| t.as_str())
                .ok_or_else(|| Invalid::new("rules.text", "is required (TOML text)"))?
                .to_string(),
        ),
    };
    let confirmed = match doc.get(crate::life_safety::CONFIRM_FIELD) {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => {
            return Err(
                Invalid::new(crate::life_safety::CONFIRM_FIELD, "must be true or false").into(),
            );
        }
    };
    if let Some(text) = &rules {
        let set = match crate::rules::RuleSet::parse(text, "rules") {
            Ok(s) => s,
            Err(e) => {
                let p = serde_json::to_value(super::rules_page::problems(&e)).unwrap_or_default();
                return Ok(problems_resp("rules", e.to_string(), p));
            }
        };
        if let Some(r) = super::rules_page::life_safety_guard(app, &set, confirmed, "rules") {
            return Ok(r);
        }
    }
    let devices = restore_devices(doc.get("devices"))?;
    let mut warnings = Vec::new();
    if let Some(text) = &config
        && let Some(w) = plain_http_warning(text)
    {
        warnings.push(w);
    }
    let known: std::collections::HashSet<DeviceId> = app
        .roles
        .registry
        .devices()
        .await?
        .into_iter()
        .filter_map(|d| d.id)
        .collect();
    let unseen: Vec<&str> = devices
        .iter()
        .filter_map(|d| d.id.as_ref())
        .filter(|id| !known.contains(id))
        .map(|id| id.as_str())
        .collect();
    if !unseen.is_empty() {
        warnings.push(format!(
            "{} device(s) in the backup were never seen by this gateway and are added as \
             not yet seen (pair or connect them to bring them in): {}",
            unseen.len(),
            unseen.join(", ")
        ));
    }
    // Everything is valid: now write.
    let mut done = Vec::new();
    if let Some(text) = &rules {
        match &app.roles.rules {
            Some(r) => {
                let source = format!("ui:{}", who.session.user);
                let a = r
                    .apply(text.clone(), source, super::rules_page::gateway_now(app))
                    .await
                    .map_err(|e| Fail::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
                done.push(format!("rules version {}", a.version));
            }
            None => done.push("rules skipped (no rule engine here)".into()),
        }
    }
    if !devices.is_empty() {
        app.roles
            .registry
            .update_devices(devices.clone(), format!("ui:{}", who.session.user))
            .await?;
    }
    done.push(format!("{} devices", devices.len()));
    let mut saved = None;
    if let Some(text) = &config {
        let path = app.data_dir.join("restored-config.toml");
        super::tls::write_private(&path, text.as_bytes())
            .map_err(|e| Fail::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        done.push(format!("config checked and saved to {}", path.display()));
        saved = Some(path.display().to_string());
    }
    let mut detail = done.join("; ");
    for w in &warnings {
        detail.push_str("; warning: ");
        detail.push_str(w);
    }
    app.audit(&who.session.user, "system.restore", detail)
        .await?;
    Ok(json_resp(
        StatusCode::OK,
        &json!({"ok": true, "done": done, "config_saved": saved, "warnings": warnings,
                "note": saved.as_ref().map(|p| format!(
                    "the configuration takes effect once installed as the gateway's config file (e.g. /etc/carebridge/carebridge.toml) and the gateway restarted; it is saved in {p}"))}),
    ))
}

/// A warning when a restored config serves the web UI over plain HTTP to
/// the network (passwords would cross it unencrypted).
fn plain_http_warning(config: &str) -> Option<String> {
    let cfg = crate::config::Config::parse(config, "config").ok()?;
    let web = cfg.web?;
    let addr: std::net::SocketAddr = web.listen.parse().ok()?;
    (!web.tls && !addr.ip().is_loopback()).then(|| {
        format!(
            "the restored configuration serves the web UI over plain HTTP on {} (web.tls = false): \
             passwords and session cookies would cross the network unencrypted",
            web.listen
        )
    })
}

/// Wipes accounts, devices, history, alerts and sessions; brings back the
/// base rules; setup is needed again.
pub async fn factory_reset(app: &App, req: &Req, who: &Who) -> Result<Resp> {
    installer(who)?;
    let o = validate::Obj::parse(&req.body, &["confirm"])?;
    if o.str("confirm")? != "RESET" {
        return Err(Invalid::new("confirm", "type RESET to confirm").into());
    }
    let mut notes = Vec::new();
    for d in app.roles.registry.devices().await? {
        if let Some(id) = d.id {
            app.roles
                .registry
                .remove_device(id, format!("ui:{}", who.session.user))
                .await?;
        }
    }
    if let Err(e) = app.roles.history.wipe_history().await {
        notes.push(format!("history not wiped: {e}"));
    }
    // The next household starts with the default (base) rules, never with
    // rules an installer or the cloud changed for this one.
    if let Some(r) = &app.roles.rules
        && let Err(e) = r.reset().await
    {
        notes.push(format!("rules not reset: {e}"));
    }
    {
        let mut accounts = app.accounts.lock().await;
        accounts.clear();
        app.save_accounts(&accounts).await?;
    }
    if let Ok(mut s) = app.sessions.lock() {
        s.clear();
    }
    if let Ok(mut t) = app.throttle.lock() {
        t.clear();
    }
    if let Ok(mut a) = app.alerts.lock() {
        a.clear();
    }
    app.roles.state.save(Record::RecentAlerts, None).await?;
    // The next household gets its own commissioning.
    app.roles.state.save(Record::Commissioning, None).await?;
    {
        let mut log = app.audit.lock().await;
        *log = super::audit::AuditLog::default();
    }
    app.audit(
        &who.session.user,
        "system.factory_reset",
        format!(
            "accounts, devices, alerts and history wiped; default rules back. {}",
            notes.join("; ")
        ),
    )
    .await?;
    let code = std::fs::read_to_string(app.data_dir.join("setup-code")).unwrap_or_default();
    tracing::warn!(user = %who.session.user, setup_code = %code.trim(),
        "factory reset from the web UI: the setup code is needed again");
    let mut r = json_resp(StatusCode::OK, &json!({"ok": true, "notes": notes}));
    if let Ok(v) = HeaderValue::from_str(&app.clear_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// Under systemd the journal has the log; elsewhere nothing collects it.
fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some() || std::env::var_os("JOURNAL_STREAM").is_some()
}

/// `GET /api/v1/system/logs`: the last lines of the service's journal.
pub async fn logs(who: &Who) -> Result<Resp> {
    installer(who)?;
    if !under_systemd() {
        return Err(Fail::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no log to download: this gateway is not running under systemd, so its log goes \
             to the standard error of the process that started it (the demo prints it in its terminal)",
        ));
    }
    // Fixed arguments only: nothing from the request reaches the command.
    let run = tokio::task::spawn_blocking(|| {
        std::process::Command::new("journalctl")
            .args([
                "--unit",
                "carebridge",
                "--lines",
                "5000",
                "--no-pager",
                "--output",
                "short-iso",
            ])
            .stdin(std::process::Stdio::null())
            .output()
    });
    let out = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .map_err(|_| Fail::new(StatusCode::GATEWAY_TIMEOUT, "journalctl took too long"))?
        .map_err(|e| Fail::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| Fail::new(StatusCode::SERVICE_UNAVAILABLE, format!("journalctl: {e}")))?;
    if !out.status.success() {
        return Err(Fail::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "journalctl failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let mut r = warp::http::Response::new(out.stdout).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(attachment(r, "attachment; filename=\"carebridge-log.txt\""))
}

/// `POST /api/v1/uplinks/arc/test`: a manual test signal (Contact ID 601,
/// zone 0) to the alarm receiving centre, waiting at most 30 s for its ACK.
pub async fn arc_test(app: &App, who: &Who) -> Result<Resp> {
    installer(who)?;
    let Some(arc) = app.roles.settings.arc.clone() else {
        return Err(Fail::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no alarm receiving centre is configured ([arc] is missing)",
        ));
    };
    let t0 = Instant::now();
    let body = match tokio::time::timeout(Duration::from_secs(30), arc.test()).await {
        Ok(Ok(by)) => json!({"ok": true, "receiver": by, "ms": t0.elapsed().as_millis() as u64}),
        Ok(Err(e)) => json!({"ok": false, "error": e}),
        Err(_) => {
            json!({"ok": false, "error": "no acknowledgement within 30 s (the gateway keeps trying)"})
        }
    };
    Ok(json_resp(StatusCode::OK, &body))
}

/// `POST /api/v1/uplinks/mqtt/test`: one connection with the configured
/// settings (own client id), at most 10 s, reporting the exact error.
pub async fn mqtt_test(app: &App, who: &Who) -> Result<Resp> {
    installer(who)?;
    let Some((m, gateway)) = app.roles.settings.mqtt.clone() else {
        return Err(Fail::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the MQTT uplink is not configured ([uplink.mqtt] is missing)",
        ));
    };
    let t0 = Instant::now();
    let prep = match crate::uplink::mqtt::Prepared::new(&m, &gateway) {
        Ok(p) => p,
        Err(e) => {
            return Ok(json_resp(
                StatusCode::OK,
                &json!({"ok": false, "url": m.url, "stage": "settings", "error": e.to_string()}),
            ));
        }
    };
    let id = format!(
        "{}-uitest",
        m.client_id.clone().unwrap_or_else(|| gateway.clone())
    );
    let (client, mut events) = rumqttc::AsyncClient::new(prep.probe_options(&id), 10);
    let attempt = async {
        loop {
            match events.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    let result = tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .unwrap_or_else(|_| Err("no answer from the broker within 10 s".into()));
    if result.is_ok() {
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), events.poll()).await;
    }
    let ms = t0.elapsed().as_millis() as u64;
    Ok(json_resp(
        StatusCode::OK,
        &match result {
            Ok(()) => json!({"ok": true, "url": m.url, "client_id": id, "ms": ms}),
            Err(e) => json!({"ok": false, "url": m.url, "stage": "connect", "error": e, "ms": ms}),
        },
    ))
}

/// Removes the temporary upload file however the handler ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `POST /api/v1/system/ota` with the bundle as the raw body: checked
/// (session, Origin, CSRF by the route, installer here) before a byte is
/// read, streamed to a file under the data dir (size-capped), then handed
/// to [`crate::ota::Installer`], which verifies it and installs it when the
/// gateway runs from the packaged layout.
pub async fn ota_upload<S, B>(
    app: Arc<App>,
    who: Who,
    declared: Option<u64>,
    body: S,
) -> Result<Resp>
where
    S: futures_util::Stream<Item = std::result::Result<B, warp::Error>> + Send,
    B: warp::Buf,
{
    installer(&who)?;
    let cap = app.ota.upload_cap();
    if declared.is_some_and(|n| n > cap) {
        return Err(Fail::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("bundle: larger than the limit of {cap} bytes"),
        ));
    }
    let tag = super::auth::random_bytes::<8>()
        .map_err(|_| Fail::new(StatusCode::INTERNAL_SERVER_ERROR, "no randomness"))?;
    let path = app
        .data_dir
        .join(format!("ota-upload-{}.cbb", hex::encode(tag)));
    let temp = TempFile(path.clone());
    let size = receive(body, &path, cap).await?;
    if size == 0 {
        return Err(Invalid::new("bundle", "the upload is empty: choose a bundle file").into());
    }
    let ota = app.ota.clone();
    let outcome = tokio::task::spawn_blocking(move || ota.install_file(&path))
        .await
        .map_err(|e| Fail::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    drop(temp);
    let shown = |m: &crate::ota::bundle::Manifest| {
        json!({"version": m.version, "arch": m.arch, "key_id": m.key_id,
               "created": m.created, "payload_size": m.payload_size})
    };
    use crate::ota::installer::Outcome;
    match outcome {
        Outcome::Refused(msg) => {
            app.audit(
                &who.session.user,
                "ota.refused",
                format!("{size} bytes: {msg}"),
            )
            .await?;
            Ok(json_resp(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({"ok": false, "verified": false, "field": "bundle",
                        "error": format!("bundle: refused: {msg}"), "bytes": size}),
            ))
        }
        Outcome::VerifiedOnly { manifest, current } => {
            app.audit(
                &who.session.user,
                "ota.verified",
                format!(
                    "{} verified, not installed (no packaged layout)",
                    manifest.version
                ),
            )
            .await?;
            Ok(json_resp(
                StatusCode::OK,
                &json!({"ok": true, "verified": true, "installed": false, "manifest": shown(&manifest),
                        "message": format!(
                            "bundle {} verified (signed by {}); not installed: installing needs the packaged layout \
                             ({} pointing at a release), which this gateway does not run from",
                            manifest.version, manifest.key_id, current.display())}),
            ))
        }
        Outcome::Installed { manifest, done } => {
            app.audit(
                &who.session.user,
                "ota.install",
                format!(
                    "{} installed (was {}); restarting into it on trial",
                    done.version,
                    done.previous.as_deref().unwrap_or("none")
                ),
            )
            .await?;
            // A clean stop: systemd starts the new release, which is then on trial.
            let sd = app.shutdown.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                tracing::warn!("restarting into the uploaded release");
                sd.cancel();
            });
            Ok(json_resp(
                StatusCode::OK,
                &json!({"ok": true, "verified": true, "installed": true, "manifest": shown(&manifest),
                        "install": done,
                        "message": "installed; the gateway restarts into it now and keeps it if it stays healthy"}),
            ))
        }
        Outcome::Failed { manifest, error } => Ok(json_resp(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"ok": false, "verified": true, "installed": false, "field": "bundle",
                    "manifest": shown(&manifest), "error": format!("bundle: install failed: {error}")}),
        )),
    }
}

/// Streams the body into `path` (on a blocking thread), at most `cap` bytes.
async fn receive<S, B>(body: S, path: &std::path::Path, cap: u64) -> Result<u64>
where
    S: futures_util::Stream<Item = std::result::Result<B, warp::Error>> + Send,
    B: warp::Buf,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let p = path.to_path_buf();
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&p)?;
        while let Some(chunk) = rx.blocking_recv() {
            f.write_all(&chunk)?;
        }
        f.sync_all()
    });
    let mut body = std::pin::pin!(body);
    let mut size = 0u64;
    let too_slow = || Fail::new(StatusCode::REQUEST_TIMEOUT, "bundle: upload stalled");
    loop {
        let next = tokio::time::timeout(CHUNK_TIMEOUT, body.next())
            .await
            .map_err(|_| too_slow())?;
        let Some(chunk) = next else { break };
        let mut chunk =
            chunk.map_err(|e| Fail::new(StatusCode::BAD_REQUEST, format!("bundle: {e}")))?;
        let bytes = chunk.copy_to_bytes(chunk.remaining());
        size += bytes.len() as u64;
        if size > cap {
            return Err(Fail::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("bundle: larger than the limit of {cap} bytes"),
            ));
        }
        if tx.send(bytes).await.is_err() {
            break;
        }
    }
    drop(tx);
    writer
        .await
        .map_err(|e| Fail::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| {
            Fail::new(
                StatusCode::INSUFFICIENT_STORAGE,
                format!("bundle: cannot save the upload: {e}"),
            )
        })?;
    Ok(size)
}
