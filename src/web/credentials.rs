//! Wi-Fi device credentials for the local broker (installers only): list
//! them, make one for a device id (or the Home Assistant account) — its
//! secret is shown once, as text and as a QR code rendered here as SVG —
//! and revoke one. Every change is audited. The policy and the file are
//! [`crate::devauth`]'s; this is only the HTTP side.
//!
//! The QR code holds a JSON document a device's setup app can read:
//! `{"username", "password", "topic", "commands", "tls_sha256"?}`.

use serde_json::json;
use warp::http::StatusCode;

use super::http::{App, Fail, Req, Resp, Result, Who, installer, json_resp};
use super::roles::CreateError;
use super::validate::{Invalid, Obj};
use crate::devauth::acl::CMD_TOPIC_ROOT;
use crate::devauth::record::Holder;
use crate::model::INGEST_TOPIC_ROOT;

/// `GET /api/v1/device-credentials`.
pub async fn list(app: &App, who: &Who) -> Result<Resp> {
    installer(who)?;
    let o = app.roles.credentials()?.overview().await?;
    Ok(json_resp(StatusCode::OK, &json!(o)))
}

/// `POST /api/v1/device-credentials` `{"device": ID}` or `{"service": "homeassistant"}`.
pub async fn create(app: &App, req: &Req, who: &Who) -> Result<Resp> {
    installer(who)?;
    let o = Obj::parse(&req.body, &["device", "service"])?;
    let holder = match (o.opt_str("device")?, o.opt_str("service")?) {
        (Some(d), None) => {
            let h =
                Holder::from_username(d.trim()).map_err(|e| Invalid::new("device", e.reason))?;
            if !matches!(h, Holder::Device(_)) {
                return Err(Invalid::new(
                    "device",
                    format!("{d} is the name of a service account; choose another device id"),
                )
                .into());
            }
            h
        }
        (None, Some(s)) => {
            let h = Holder::from_username(s).map_err(|e| Invalid::new("service", e.reason))?;
            if !matches!(h, Holder::Service(_)) {
                return Err(
                    Invalid::new("service", format!("{s:?} is not a service account")).into(),
                );
            }
            h
        }
        _ => return Err(Invalid::new("device", "give the device id").into()),
    };
    let creds = app.roles.credentials()?;
    let secret = match creds
        .create(holder.clone(), format!("ui:{}", who.session.user))
        .await
    {
        Ok(s) => s,
        Err(CreateError::Exists(u)) => {
            return Err(Fail {
                status: StatusCode::CONFLICT,
                message: format!("{u} already has a credential: revoke it first"),
                field: Some("device".into()),
            });
        }
        Err(CreateError::Backend(e)) => return Err(e.into()),
    };
    let overview = creds.overview().await?;
    let user = holder.username().to_string();
    let (topic, commands) = match &holder {
        Holder::Device(d) => (
            Some(format!("{INGEST_TOPIC_ROOT}{d}")),
            Some(format!("{CMD_TOPIC_ROOT}{d}/#")),
        ),
        Holder::Service(_) => (None, None),
    };
    let mut doc = json!({"username": user, "password": secret});
    if let (Some(t), Some(c)) = (&topic, &commands) {
        doc["topic"] = t.clone().into();
        doc["commands"] = c.clone().into();
    }
    if let Some(fp) = &overview.tls_sha256 {
        doc["tls_sha256"] = fp.clone().into();
    }
    let qr_text = doc.to_string();
    let qr_svg = crate::devauth::qr::svg(&qr_text)
        .map_err(|e| Fail::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    app.audit(
        &who.session.user,
        "device_credential.create",
        format!("{user}: credential made"),
    )
    .await?;
    let mut out = doc;
    out["qr_text"] = qr_text.into();
    out["qr_svg"] = qr_svg.into();
    out["enabled"] = overview.enabled.into();
    Ok(json_resp(StatusCode::CREATED, &out))
}

/// `DELETE /api/v1/device-credentials/<user name>`.
pub async fn revoke(app: &App, who: &Who, user: &str) -> Result<Resp> {
    installer(who)?;
    Holder::from_username(user).map_err(|e| Invalid::new("device", e.reason))?;
    if !app.roles.credentials()?.revoke(user.to_string()).await? {
        return Err(Fail::new(
            StatusCode::NOT_FOUND,
            format!("{user} has no credential"),
        ));
    }
    app.audit(
        &who.session.user,
        "device_credential.revoke",
        format!("{user}: credential revoked"),
    )
    .await?;
    Ok(json_resp(StatusCode::OK, &json!({"ok": true})))
}
