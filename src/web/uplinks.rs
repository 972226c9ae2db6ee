//! The Uplinks page's editor: an installer enters a fresh unit's cloud URL,
//! gateway id, TLS files, user name, password and LoRaWAN keys in the field.
//!
//! The form's fields are named by their configuration keys
//! (`uplink.mqtt.url`, `gateway.id`, `lorawan.dev_eui`, …), so a refusal
//! names the key exactly as `carebridge config check` does: the values
//! become a TOML fragment checked merged over the saved configuration
//! ([`crate::config::check_fragment`]). Secrets are write-only: a password
//! or AppKey is written to its own file under `<data_dir>/secrets/` (mode
//! 0600, named by a hash of its content, so an older version's file stays
//! for a rollback) and only the `*_file` key goes into the fragment; the API
//! answers whether one is set, never its value.
//!
//! Saving stores a new version of the configuration overlay
//! ([`super::roles::UplinkAdmin`], the one device edits use), with
//! rollback; the uplinks run with it after a restart (`POST
//! /api/v1/uplinks/restart` stops the process cleanly and systemd starts it
//! again). "Test connection" tries the *entered* settings before saving:
//! MQTT connect + disconnect, LoRaWAN `AT` → `OK` on the modem's port, each
//! with a timeout and a result saying which stage failed.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use warp::http::StatusCode;

use super::http::{App, Fail, Req, Resp, Result, Who, installer, json_resp};
use super::validate::{self, Invalid};
use crate::config::Config;

/// The fields the form may send (configuration keys; `*.password` and
/// `lorawan.app_key` are the secrets, stored as files).
pub const FIELDS: &[&str] = &[
    "gateway.id",
    "uplink.mqtt.url",
    "uplink.mqtt.topic_prefix",
    "uplink.mqtt.username",
    "uplink.mqtt.password",
    "uplink.mqtt.ca_file",
    "uplink.mqtt.cert_file",
    "uplink.mqtt.key_file",
    "lorawan.port",
    "lorawan.modem",
    "lorawan.region",
    "lorawan.dev_eui",
    "lorawan.join_eui",
    "lorawan.app_key",
];

/// How long a test connection may take.
const TEST_TIMEOUT: Duration = Duration::from_secs(8);

/// The form's values for `cfg` (no secret, only whether it is set).
pub fn form_values(cfg: &Config) -> serde_json::Value {
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let m = cfg.uplink.mqtt.as_ref();
    let l = cfg.lorawan.as_ref();
    json!({
        "gateway.id": cfg.gateway.id,
        "uplink.mqtt.url": m.map(|m| m.url.clone()),
        "uplink.mqtt.topic_prefix": m.map(|m| m.topic_prefix.clone()),
        "uplink.mqtt.username": m.and_then(|m| m.username.clone()),
        "uplink.mqtt.password": m.is_some_and(|m| m.password_file.is_some()),
        "uplink.mqtt.ca_file": m.and_then(|m| path(&m.ca_file)),
        "uplink.mqtt.cert_file": m.and_then(|m| path(&m.cert_file)),
        "uplink.mqtt.key_file": m.and_then(|m| path(&m.key_file)),
        "lorawan.port": l.map(|l| l.port.clone()),
        "lorawan.modem": l.map(|l| l.modem.clone()),
        "lorawan.region": l.map(|l| l.region.clone()),
        "lorawan.dev_eui": l.map(|l| l.dev_eui.clone()),
        "lorawan.join_eui": l.map(|l| l.join_eui.clone()),
        "lorawan.app_key": l.is_some_and(|l| !l.app_key_file.is_empty()),
    })
}

/// `GET /api/v1/uplinks/settings`: the saved values, their version, and
/// whether a restart is needed to run them.
pub async fn get(app: &App, who: &Who) -> Result<Resp> {
    installer(who)?;
    let admin = app.roles.uplinks()?;
    let (cfg, active) = admin.saved().await;
    let running = &app.roles.settings.uplinks;
    let saved = super::backend::uplink_settings(&cfg);
    Ok(json_resp(
        StatusCode::OK,
        &json!({
            "values": form_values(&cfg),
            "version": active.version,
            "source": active.source,
            "restart_needed": saved != *running,
        }),
    ))
}

/// A secret written to `<data_dir>/secrets/<what>-<hash>` (0600), its path.
fn store_secret(data_dir: &Path, what: &str, value: &str) -> Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = data_dir.join("secrets");
    let io = |e: std::io::Error| {
        Fail::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot store the {what}: {e}"),
        )
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let hash = ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
    let name = format!("{what}-{}", hex::encode(&hash.as_ref()[..6]));
    let path = dir.join(name);
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(value.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(path)
}

/// The form's values as a TOML fragment (secrets stored as files first).
/// Empty fields are left out (unchanged); `uplink.mqtt.url` with commas
/// becomes a list of URLs, one URL stays a string.
pub fn fragment(body: &[u8], data_dir: &Path) -> Result<String> {
    let o: serde_json::Map<String, serde_json::Value> = {
        let _ = validate::Obj::parse(body, FIELDS)?;
        serde_json::from_slice(body).map_err(|e| Invalid::new("body", e.to_string()))?
    };
    let mut root = toml::Table::new();
    for (k, v) in &o {
        let s = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s.trim(),
            _ => return Err(Invalid::new(k, "must be a string").into()),
        };
        if s.is_empty() {
            continue;
        }
        if s.chars().any(char::is_control) {
            return Err(Invalid::new(k, "must not contain control characters").into());
        }
        let (key, value) = match k.as_str() {
            "uplink.mqtt.password" => (
                "uplink.mqtt.password_file".to_string(),
                toml::Value::String(
                    store_secret(data_dir, "mqtt-password", s)?
                        .display()
                        .to_string(),
                ),
            ),
            "lorawan.app_key" => {
                if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(
                        Invalid::new(k, "must be 32 hex digits (the 16-byte AppKey)").into(),
                    );
                }
                (
                    "lorawan.app_key_file".to_string(),
                    toml::Value::String(
                        store_secret(data_dir, "lorawan-appkey", s)?
                            .display()
                            .to_string(),
                    ),
                )
            }
            "uplink.mqtt.url" if s.contains(',') => (
                k.clone(),
                toml::Value::Array(
                    s.split(',')
                        .map(str::trim)
                        .filter(|u| !u.is_empty())
                        .map(|u| toml::Value::String(u.to_string()))
                        .collect(),
                ),
            ),
            _ => (k.clone(), toml::Value::String(s.to_string())),
        };
        let mut parts: Vec<&str> = key.split('.').collect();
        let leaf = parts.pop().unwrap_or_default();
        let mut t = &mut root;
        for p in parts {
            t = t
                .entry(p)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| Invalid::new(k, "conflicting keys"))?;
        }
        t.insert(leaf.to_string(), value);
    }
    if root.is_empty() {
        return Err(Invalid::new("body", "nothing to change: fill in at least one field").into());
    }
    Ok(toml::to_string(&root).unwrap_or_default())
}

/// A refused configuration as the form's error: the key it names (the form
/// field), the message `config check` gives.
fn refused(e: &crate::remote_config::RemoteError) -> Fail {
    use crate::config::ConfigError;
    use crate::remote_config::RemoteError;
    let (field, msg) = match e {
        RemoteError::Config(ConfigError::Invalid { problems, .. }) => match problems.first() {
            Some((_, p)) => (Some(p.key.to_string()), format!("{}: {}", p.key, p.reason)),
            None => (None, e.to_string()),
        },
        RemoteError::Config(ConfigError::Parse { key, message, .. }) => {
            let k = key.trim_end_matches(": ").to_string();
            (
                (!k.is_empty()).then_some(k.clone()),
                format!("{key}{message}"),
            )
        }
        RemoteError::NeedsRestart(k) => (Some(k.clone()), format!("{k}: cannot be set here")),
        other => (None, other.to_string()),
    };
    // Secrets are entered under their own names, not the `*_file` keys.
    let field = field.map(|f| match f.as_str() {
        "uplink.mqtt.password_file" => "uplink.mqtt.password".to_string(),
        "lorawan.app_key_file" => "lorawan.app_key".to_string(),
        _ => f,
    });
    let mut fail = Fail::new(StatusCode::BAD_REQUEST, msg);
    fail.field = field;
    fail
}

/// `PUT /api/v1/uplinks/settings`: checks and saves the entered settings as
/// a new version (run after a restart).
pub async fn save(app: &App, req: &Req, who: &Who) -> Result<Resp> {
    installer(who)?;
    let admin = app.roles.uplinks()?;
    let frag = fragment(&req.body, &app.data_dir)?;
    let version = admin
        .save(frag, format!("ui:{}", who.session.user), crate::wall::now())
        .await
        .map_err(|e| refused(&e))?;
    let keys: Vec<&str> =
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&req.body)
            .map(|o| {
                FIELDS
                    .iter()
                    .copied()
                    .filter(|f| {
                        o.get(*f)
                            .and_then(|v| v.as_str())
                            .is_some_and(|s| !s.trim().is_empty())
                    })
                    .collect()
            })
            .unwrap_or_default();
    app.audit(
        &who.session.user,
        "uplinks.save",
        format!("version {version}: {}", keys.join(", ")),
    )
    .await?;
    Ok(json_resp(
        StatusCode::OK,
        &json!({"ok": true, "version": version, "restart_needed": true}),
    ))
}

/// `POST /api/v1/uplinks/rollback`: the previous version of the settings.
pub async fn rollback(app: &App, who: &Who) -> Result<Resp> {
    installer(who)?;
    let admin = app.roles.uplinks()?;
    let version = admin.rollback().await.map_err(|e| refused(&e))?;
    app.audit(
        &who.session.user,
        "uplinks.rollback",
        format!("back to version {version}"),
    )
    .await?;
    Ok(json_resp(
        StatusCode::OK,
        &json!({"ok": true, "version": version, "restart_needed": true}),
    ))
}

/// `POST /api/v1/uplinks/restart`: a clean stop in a second, so systemd
/// starts the gateway with the saved settings.
pub async fn restart(app: &App, who: &Who) -> Result<Resp> {
    installer(who)?;
    app.audit(&who.session.user, "uplinks.restart", String::new())
        .await?;
    let sd = app.shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tracing::warn!("restarting to run the saved uplink settings");
        sd.cancel();
    });
    Ok(json_resp(
        StatusCode::OK,
        &json!({"ok": true, "message": "the gateway restarts now; reload this page in a minute"}),
    ))
}

/// `POST /api/v1/uplinks/test`: tries the entered settings (merged over
/// the saved ones) without saving them.
pub async fn test(app: &App, req: &Req, who: &Who) -> Result<Resp> {
    installer(who)?;
    let admin = app.roles.uplinks()?;
    let (saved, _) = admin.saved().await;
    // Secrets for a test go to a scratch directory that is removed after.
    let scratch = Scratch(
        app.data_dir
            .join(format!("uplink-test-{}", crate::wall::now().as_millis())),
    );
    let cfg = if req.body.iter().all(u8::is_ascii_whitespace) || &req.body[..] == b"{}" {
        saved
    } else {
        let frag = fragment(&req.body, &scratch.0)?;
        crate::config::check_fragment(&saved, &frag, "uplink settings")
            .map_err(|e| refused(&crate::remote_config::RemoteError::Config(e)))?
    };
    let mqtt = match &cfg.uplink.mqtt {
        Some(m) => Some(probe_mqtt(m, &cfg.gateway.id).await),
        None => None,
    };
    let lorawan = match &cfg.lorawan {
        Some(l) => {
            let (port, baud) = (l.port.clone(), l.baud);
            Some(
                tokio::task::spawn_blocking(move || probe_modem(&port, baud))
                    .await
                    .unwrap_or_else(
                        |e| json!({"ok": false, "stage": "test", "error": e.to_string()}),
                    ),
            )
        }
        None => None,
    };
    drop(scratch);
    Ok(json_resp(
        StatusCode::OK,
        &json!({"mqtt": mqtt, "lorawan": lorawan}),
    ))
}

/// A scratch directory removed however the handler ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Connects and disconnects with `m`: `{"ok", "url", "stage"?, "error"?, "ms"}`.
pub async fn probe_mqtt(m: &crate::config::MqttUplinkConfig, gateway: &str) -> serde_json::Value {
    let t0 = Instant::now();
    let prep = match crate::uplink::mqtt::Prepared::new(m, gateway) {
        Ok(p) => p,
        Err(e) => {
            return json!({"ok": false, "url": m.url, "stage": "settings", "error": e.to_string()});
        }
    };
    let id = format!(
        "{}-uitest",
        m.client_id.clone().unwrap_or_else(|| gateway.to_string())
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
    let result = tokio::time::timeout(TEST_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer from the broker within {} s",
                TEST_TIMEOUT.as_secs()
            ))
        });
    if result.is_ok() {
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), events.poll()).await;
    }
    let ms = t0.elapsed().as_millis() as u64;
    match result {
        Ok(()) => json!({"ok": true, "url": m.url, "client_id": id, "ms": ms}),
        Err(e) => json!({"ok": false, "url": m.url, "stage": "connect", "error": e, "ms": ms}),
    }
}

/// Sends `AT` to the modem on `port` and waits for `OK` (2 s).
pub fn probe_modem(port: &str, baud: u32) -> serde_json::Value {
    let t0 = Instant::now();
    let mut p = match serialport::new(port, baud)
        .timeout(Duration::from_millis(100))
        .open()
    {
        Ok(p) => p,
        Err(e) => {
            return json!({"ok": false, "port": port, "stage": "open", "error": e.to_string()});
        }
    };
    if let Err(e) = p.write_all(b"AT\r\n") {
        return json!({"ok": false, "port": port, "stage": "write", "error": e.to_string()});
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while t0.elapsed() < Duration::from_secs(2) {
        match p.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => {
                return json!({"ok": false, "port": port, "stage": "read", "error": e.to_string()});
            }
        }
        let text = String::from_utf8_lossy(&got);
        if text.lines().any(|l| l.trim() == "OK") {
            return json!({"ok": true, "port": port, "ms": t0.elapsed().as_millis() as u64});
        }
        if text.contains("ERROR") {
            return json!({"ok": false, "port": port, "stage": "answer", "error": text.trim()});
        }
    }
    json!({"ok": false, "port": port, "stage": "answer", "error": "the modem did not answer AT with OK within 2 s"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_become_a_fragment_with_secrets_in_files_and_urls_as_a_list() {
        let dir = tempfile::tempdir().unwrap();
        let body = br#"{"uplink.mqtt.url":"mqtts://a.example:8883, mqtts://b.example:8883","gateway.id":"home-7",
            "uplink.mqtt.password":"s3cret pass","uplink.mqtt.username":"","lorawan.app_key":"2B7E151628AED2A6ABF7158809CF4F3C"}"#;
        let f = fragment(body, dir.path()).unwrap();
        let t: toml::Table = toml::from_str(&f).unwrap();
        assert_eq!(t["gateway"]["id"].as_str(), Some("home-7"));
        assert_eq!(t["uplink"]["mqtt"]["url"].as_array().unwrap().len(), 2);
        assert!(
            t["uplink"]["mqtt"].get("username").is_none(),
            "empty = unchanged"
        );
        let pw = t["uplink"]["mqtt"]["password_file"].as_str().unwrap();
        assert_eq!(std::fs::read_to_string(pw).unwrap(), "s3cret pass\n");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(pw).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!f.contains("s3cret"), "{f}");
        assert!(t["lorawan"]["app_key_file"].as_str().is_some());
        let one = fragment(br#"{"uplink.mqtt.url":"mqtt://one:1883"}"#, dir.path()).unwrap();
        assert!(one.contains("url = \"mqtt://one:1883\""), "{one}");
    }

    #[test]
    fn a_bad_app_key_and_an_unknown_field_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = fragment(br#"{"lorawan.app_key":"xyz"}"#, dir.path()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("lorawan.app_key"));
        let e = fragment(br#"{"web.listen":"0.0.0.0:80"}"#, dir.path()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("web.listen"));
        let e = fragment(br#"{"gateway.id":""}"#, dir.path()).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("body"));
    }
}
