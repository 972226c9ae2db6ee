//! The JSON API under `/api/v1` for logged-in users (documented in
//! `src/web/openapi.yaml`; routed in [`super::routes`], which has already
//! checked the session, Origin and CSRF token); handlers check the role and
//! validate their input.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use futures_util::Stream;
use serde_json::json;
use warp::Reply as _;
use warp::http::{HeaderValue, StatusCode, header};

use super::http::{App, Fail, Req, Resp, Result, Who, installer, json_resp};
use super::validate::{self, Obj};
use crate::model::{DeviceId, DeviceInfo, Time};

/// `GET /api/v1/session`: who is logged in, their CSRF token, the gateway's time zone.
/// `warnings` are the standing warnings every page shows (e.g. a local
/// broker open to anyone on the network, alert rules without the
/// life-safety ones).
pub async fn session(app: &App, who: &Who) -> Result<Resp> {
    let status = app.roles.watch.status();
    let mut warnings = status.local_broker.map(|b| b.warnings).unwrap_or_default();
    warnings.extend(super::rules_page::life_safety_warnings(app).await);
    Ok(json_resp(
        StatusCode::OK,
        &json!({"user": who.session.user, "role": who.session.role, "csrf": who.session.csrf,
                "timezone": status.timezone, "warnings": warnings}),
    ))
}

/// `GET /api/v1/openapi.yaml`: this API's description.
pub fn openapi() -> Result<Resp> {
    let mut r = warp::http::Response::new(super::pages::OPENAPI).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml"),
    );
    Ok(r)
}

pub async fn status(app: &App) -> Result<Resp> {
    let open = app.alerts.lock().map(|a| a.open()).unwrap_or_default();
    let open = with_delivery(app, open).await;
    Ok(json_resp(
        StatusCode::OK,
        &json!({"status": crate::uplink::mqtt::status_document(&app.roles.watch.status()), "open_alerts": open}),
    ))
}

/// Devices with the reading kinds each has reported, and what the device
/// library knows of each Zigbee device: its `definition` (vendor, model,
/// description, senses, commissioning step) or, for an unknown one,
/// `definition: null` and the `clusters` its interview found.
pub async fn devices(app: &App) -> Result<Resp> {
    let devices = app.roles.registry.devices().await?;
    let kinds = app.kinds.lock().map(|k| k.clone()).unwrap_or_default();
    let network = app
        .roles
        .state
        .load(super::roles::Record::ZigbeeNetwork)
        .await
        .ok()
        .flatten()
        .and_then(|b| crate::zigbee::NetworkParams::from_bytes(&b).ok());
    let lib = &app.roles.settings.devices;
    let list: Vec<_> = devices
        .into_iter()
        .map(|d| {
            let mut v = serde_json::to_value(&d).unwrap_or_default();
            let k: Vec<&str> =
                d.id.as_ref()
                    .and_then(|id| kinds.get(id))
                    .map(|s| s.iter().map(|k| k.as_str()).collect())
                    .unwrap_or_default();
            v["kinds"] = json!(k);
            let known = network.as_ref().and_then(|n| {
                let ieee = d.ieee.as_deref()?;
                n.devices
                    .iter()
                    .find(|k| format!("0x{:016x}", k.ieee) == ieee)
            });
            let manufacturer = d
                .manufacturer
                .clone()
                .or_else(|| known.and_then(|k| k.manufacturer.clone()));
            let model = d
                .model
                .clone()
                .or_else(|| known.and_then(|k| k.model.clone()));
            v["manufacturer"] = json!(manufacturer);
            v["model"] = json!(model);
            match lib.find(manufacturer.as_deref(), model.as_deref()) {
                Some(def) => {
                    v["definition"] = json!({
                        "vendor": def.vendor,
                        "model": def.model,
                        "description": def.description,
                        "senses": def.senses.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                        "commissioning": def.commissioning,
                    });
                }
                None => {
                    v["definition"] = serde_json::Value::Null;
                    let clusters: Vec<String> = known
                        .map(|k| k.clusters.iter().map(|c| format!("0x{c:04x}")).collect())
                        .unwrap_or_default();
                    v["clusters"] = json!(clusters);
                }
            }
            v
        })
        .collect();
    Ok(json_resp(StatusCode::OK, &json!({ "devices": list })))
}

fn device_id(s: &str) -> Result<DeviceId> {
    DeviceId::new(s).map_err(|e| validate::Invalid::new("id", e.to_string()).into())
}

pub async fn update_device(app: &App, req: &Req, who: &Who, id: &str) -> Result<Resp> {
    installer(who)?;
    let id = device_id(id)?;
    let o = Obj::parse(&req.body, &["name", "room", "role"])?;
    let name = o
        .opt_str("name")?
        .map(|s| validate::text("name", s, 64))
        .transpose()?;
    // A room or role sent back unchanged is not re-validated: a room named
    // in the configuration file ("living room") must not block a rename.
    // Anything else is checked before the device is looked up.
    let mut current = None;
    let mut word = async |field: &str, s: Option<&str>| -> Result<Option<String>> {
        let Some(s) = s else { return Ok(None) };
        match validate::word(field, s, 32) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                if current.is_none() {
                    current = Some(app.roles.registry.device(id.clone()).await?);
                }
                let was = current
                    .as_ref()
                    .and_then(|c| c.as_ref())
                    .and_then(|d| match field {
                        "room" => d.room.clone(),
                        _ => d.role.clone(),
                    });
                if was.as_deref() == Some(s) {
                    Ok(None)
                } else {
                    Err(e.into())
                }
            }
        }
    };
    let room = word("room", o.opt_str("room")?).await?;
    let role = word("role", o.opt_str("role")?).await?;
    if name.is_none() && room.is_none() && role.is_none() {
        if o.has("room") || o.has("role") {
            return Ok(json_resp(
                StatusCode::OK,
                &json!({"ok": true, "unchanged": true}),
            ));
        }
        return Err(validate::Invalid::new("body", "give at least one of name, room, role").into());
    }
    if app.roles.registry.device(id.clone()).await?.is_none() {
        return Err(Fail::new(StatusCode::NOT_FOUND, format!("no device {id}")));
    }
    let mut what = Vec::new();
    for (k, v) in [("name", &name), ("room", &room), ("role", &role)] {
        if let Some(v) = v {
            what.push(format!("{k}={v:?}"));
        }
    }
    app.roles
        .registry
        .update_devices(
            vec![DeviceInfo {
                id: Some(id.clone()),
                name,
                room,
                role,
                ..Default::default()
            }],
            format!("ui:{}", who.session.user),
        )
        .await?;
    app.audit(
        &who.session.user,
        "device.update",
        format!("{id}: {}", what.join(" ")),
    )
    .await?;
    Ok(json_resp(StatusCode::OK, &json!({"ok": true})))
}

pub async fn remove_device(app: &App, who: &Who, id: &str) -> Result<Resp> {
    installer(who)?;
    let id = device_id(id)?;
    if app.roles.registry.device(id.clone()).await?.is_none() {
        return Err(Fail::new(StatusCode::NOT_FOUND, format!("no device {id}")));
    }
    app.roles
        .registry
        .remove_device(id.clone(), format!("ui:{}", who.session.user))
        .await?;
    app.audit(&who.session.user, "device.remove", format!("{id} removed"))
        .await?;
    Ok(json_resp(StatusCode::OK, &json!({"ok": true})))
}

pub async fn permit_join(app: &App, req: &Req, who: &Who) -> Result<Resp> {
    installer(who)?;
    let o = Obj::parse(&req.body, &["seconds"])?;
    let seconds = o.int("seconds", 1, 254)?;
    let seconds = u16::try_from(seconds).unwrap_or(254);
    app.roles.pairing.permit_join(seconds).await?;
    app.audit(
        &who.session.user,
        "zigbee.permit_join",
        format!("{seconds} s"),
    )
    .await?;
    Ok(json_resp(
        StatusCode::OK,
        &json!({"ok": true, "seconds": seconds}),
    ))
}

/// Sets the household's mode (`{"mode": "away"|"visitor"|"home",
/// "until"?}`): the Overview's mode card. Any signed-in user (carers set
/// it as often as installers).
pub async fn set_mode(app: &App, req: &Req, who: &Who) -> Result<Resp> {
    let o = Obj::parse(&req.body, &["mode", "until"])?;
    let mode: crate::rules::mode::Mode = o
        .str("mode")?
        .parse()
        .map_err(|_| validate::Invalid::new("mode", "must be away, visitor or home"))?;
    let until = match o.opt_str("until")? {
        None => None,
        Some(s) => Some(crate::model::Time::parse_rfc3339(s).map_err(|_| {
            validate::Invalid::new("until", "must be an RFC 3339 time (2026-12-05T18:00:00Z)")
        })?),
    };
    let source = format!("web UI ({})", who.session.user);
    let state = app
        .roles
        .alerting
        .set_mode(mode, until, source)
        .await?
        .map_err(|e| {
            let (field, why) = e.split_once(": ").unwrap_or(("mode", e.as_str()));
            validate::Invalid::new(field, why)
        })?;
    app.audit(
        &who.session.user,
        "mode.set",
        format!(
            "{}{}",
            state.mode.as_str(),
            state
                .until
                .map_or_else(String::new, |u| format!(" until {}", u.to_rfc3339()))
        ),
    )
    .await?;
    Ok(json_resp(
        StatusCode::OK,
        &json!({"ok": true, "mode": state}),
    ))
}

/// `POST /api/v1/devices/{id}/identify` `{"seconds": 1..=300}` (default
/// 10): ZCL Identify to a Zigbee device, so the installer sees which one it
/// is. The device id (`zb-` + IEEE) or its registered IEEE names it.
pub async fn identify(app: &App, req: &Req, who: &Who, id: &str) -> Result<Resp> {
    installer(who)?;
    let id = device_id(id)?;
    let seconds = if req.body.iter().all(u8::is_ascii_whitespace) {
        10
    } else {
        let o = Obj::parse(&req.body, &["seconds"])?;
        if o.has("seconds") {
            o.int("seconds", 1, u64::from(crate::zigbee::identify::MAX_SECS))?
        } else {
            10
        }
    };
    let Some(info) = app.roles.registry.device(id.clone()).await? else {
        return Err(Fail::new(StatusCode::NOT_FOUND, format!("no device {id}")));
    };
    let Some(ieee) = zigbee_ieee(&id, &info) else {
        return Err(validate::Invalid::new(
            "id",
            format!("{id} is not a Zigbee device (Identify needs one)"),
        )
        .into());
    };
    let seconds = u16::try_from(seconds).unwrap_or(10);
    app.roles.pairing.identify(ieee, seconds).await?;
    app.audit(
        &who.session.user,
        "zigbee.identify",
        format!("{id} for {seconds} s"),
    )
    .await?;
    Ok(json_resp(
        StatusCode::OK,
        &json!({"ok": true, "device": id, "seconds": seconds}),
    ))
}

/// The IEEE address of a Zigbee device: its registered `ieee`
/// (`0x00158d…`), else the hex digits of a `zb-…` id.
fn zigbee_ieee(id: &DeviceId, info: &DeviceInfo) -> Option<u64> {
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    info.ieee
        .as_deref()
        .and_then(|s| hex(s.trim_start_matches("0x")))
        .or_else(|| id.as_str().strip_prefix("zb-").and_then(hex))
}

/// The alerts as JSON, each with the path that delivered it upstream
/// (`delivered_via`: `mqtt` / `lorawan`, `delivered_at`), or `delivery:
/// "waiting"` while it is still in the outbox. Only the UI view: a failure
/// to read the records leaves them out rather than failing the page.
async fn with_delivery(app: &App, list: Vec<super::alerts::Shown>) -> Vec<serde_json::Value> {
    let uids: Vec<String> = list.iter().filter_map(|s| s.alert.uid.clone()).collect();
    let records = if uids.is_empty() {
        Vec::new()
    } else {
        app.roles
            .alerting
            .deliveries(uids)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "alert delivery records not read");
                Vec::new()
            })
    };
    let by_uid: std::collections::HashMap<&str, &crate::store::AlertDelivery> =
        records.iter().map(|d| (d.id.as_str(), d)).collect();
    list.iter()
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            let found = s.alert.uid.as_deref().and_then(|u| by_uid.get(u));
            if let Some(o) = v.as_object_mut() {
                match found {
                    Some(d) => {
                        o.insert("delivery".into(), "delivered".into());
                        o.insert("delivered_via".into(), d.via.as_str().into());
                        o.insert("delivered_at".into(), json!(d.delivered_at));
                    }
                    None if s.alert.uid.is_some() => {
                        o.insert("delivery".into(), "waiting".into());
                    }
                    None => {}
                }
            }
            v
        })
        .collect()
}

pub async fn alerts(app: &App) -> Result<Resp> {
    let (open, recent) = app
        .alerts
        .lock()
        .map(|a| (a.open(), a.recent()))
        .unwrap_or_default();
    let open = with_delivery(app, open).await;
    let recent = with_delivery(app, recent).await;
    // Per-path delivery counters, when the status document carries them
    // (the dual-path uplink adds `delivered`).
    let delivered = app.roles.watch.status().delivered;
    Ok(json_resp(
        StatusCode::OK,
        &json!({"open": open, "recent": recent, "delivered": delivered}),
    ))
}

pub async fn ack(app: &App, who: &Who, id: &str) -> Result<Resp> {
    let id: u64 = id
        .parse()
        .map_err(|_| validate::Invalid::new("id", "must be a whole number"))?;
    let now = crate::wall::now();
    let target = app
        .alerts
        .lock()
        .map_err(|_| Fail::new(StatusCode::INTERNAL_SERVER_ERROR, "lock poisoned"))?
        .get(id)
        .map(|s| {
            (
                s.alert.rule.clone(),
                s.alert.device.clone(),
                s.acked_by.clone(),
                s.alert.instance.as_ref().map(|i| i.instance.to_string()),
            )
        });
    let Some((rule, device, acked, instance)) = target else {
        return Err(Fail::new(
            StatusCode::NOT_FOUND,
            super::alerts::AckError::Unknown(id).to_string(),
        ));
    };
    if let Some(by) = acked {
        return Err(Fail::new(
            StatusCode::CONFLICT,
            super::alerts::AckError::Already(id, by).to_string(),
        ));
    }
    // The rule engine owns the situation: it stops repeating/escalating it.
    let engine = match instance {
        Some(i) => {
            app.roles
                .alerting
                .ack_instance(i, rule.to_string(), device)
                .await?
        }
        None => {
            app.roles
                .alerting
                .ack_alert(rule.to_string(), device)
                .await?
        }
    };
    let shown = app
        .alerts
        .lock()
        .map_err(|_| Fail::new(StatusCode::INTERNAL_SERVER_ERROR, "lock poisoned"))?
        .ack(id, &who.session.user, now)
        .map_err(|e| match e {
            super::alerts::AckError::Unknown(_) => Fail::new(StatusCode::NOT_FOUND, e.to_string()),
            super::alerts::AckError::Already(..) => Fail::new(StatusCode::CONFLICT, e.to_string()),
        })?;
    let saved = app.alerts.lock().map(|a| a.to_json()).ok();
    if let Some(bytes) = saved {
        app.roles
            .state
            .save(super::roles::Record::RecentAlerts, Some(bytes))
            .await?;
    }
    app.audit(
        &who.session.user,
        "alert.ack",
        format!(
            "alert {id} ({} on {}: {}){}",
            shown.alert.rule,
            shown.alert.device,
            shown.alert.message,
            if engine {
                ""
            } else {
                " — the rule engine had no open alert left for it"
            }
        ),
    )
    .await?;
    let _ = app
        .ui
        .send(json!({"type": "ack", "id": id, "by": who.session.user, "at": now}).to_string());
    Ok(json_resp(
        StatusCode::OK,
        &json!({ "alert": shown, "engine": engine }),
    ))
}

pub fn uplinks(app: &App) -> Result<Resp> {
    let status = app.roles.watch.status();
    Ok(json_resp(
        StatusCode::OK,
        &json!({
            "settings": app.roles.settings.uplinks,
            "state": status.uplinks,
            // The LoRaWAN state is in `state.lorawan`; this older field
            // stays, empty, for clients that still read it.
            "lorawan_status": null,
        }),
    ))
}

pub async fn audit(app: &App, who: &Who) -> Result<Resp> {
    installer(who)?;
    let entries = app.audit.lock().await.recent(200);
    Ok(json_resp(StatusCode::OK, &json!({ "entries": entries })))
}

/// Devices grouped by room, each with its newest reading.
pub async fn commissioning(app: &App) -> Result<Resp> {
    let devices = app.roles.registry.devices().await?;
    let now = app.roles.settings.now();
    let since = Time(now.as_millis() - 30 * 86_400_000);
    // Each device's newest reading of each kind of the last 30 days (one
    // grouped scan, not a capped oldest-first read that misses the newest
    // on a busy home): the last event, and the baseline of a rise test —
    // the newest reading of the test's kind, as the sign-off takes it.
    let latest = app
        .roles
        .history
        .latest_readings(since)
        .await
        .unwrap_or_default();
    let mut last: BTreeMap<&str, &crate::model::Reading> = BTreeMap::new();
    for r in &latest {
        if last.get(r.device.as_str()).is_none_or(|l| l.at <= r.at) {
            last.insert(r.device.as_str(), r);
        }
    }
    let of_kind: BTreeMap<(&str, crate::model::Kind), f64> = latest
        .iter()
        .map(|r| ((r.device.as_str(), r.kind), r.value))
        .collect();
    let mut rooms: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for d in &devices {
        let Some(id) = &d.id else { continue };
        let room = d.room.clone().unwrap_or_else(|| "(no room)".into());
        let test = super::commissioning::device_test(app, d);
        let base = test
            .as_ref()
            .and_then(|t| of_kind.get(&(id.as_str(), t.kind)));
        rooms.entry(room).or_default().push(json!({
            "device": d,
            "last_event": last.get(id.as_str()),
            "test": test,
            "base": base,
        }));
    }
    let rooms: Vec<_> = rooms
        .into_iter()
        .map(|(room, devices)| json!({"room": room, "devices": devices}))
        .collect();
    Ok(json_resp(
        StatusCode::OK,
        &json!({"generated": now, "gateway": app.roles.watch.status().gateway, "rooms": rooms,
                "arc": app.roles.settings.arc.is_some(),
                "tests": super::commissioning::all_tests()}),
    ))
}

/// `GET /api/v1/events`: server-sent events from the live stream. The
/// stream ends when the session ends or the server shuts down.
pub fn events(app: &Arc<App>, who: &Who) -> Resp {
    let rx = app.ui.subscribe();
    let stream = live_stream(app.clone(), who.token.clone(), rx);
    let mut r = warp::sse::reply(warp::sse::keep_alive().stream(stream)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn live_stream(
    app: Arc<App>,
    token: String,
    rx: tokio::sync::broadcast::Receiver<String>,
) -> impl Stream<Item = std::result::Result<warp::sse::Event, Infallible>> + Send + 'static {
    use tokio::sync::broadcast::error::RecvError;
    let hello = warp::sse::Event::default().event("hello").data("{}");
    let first = futures_util::stream::iter([Ok(hello)]);
    let rest = futures_util::stream::unfold((app, token, rx), |(app, token, mut rx)| async move {
        loop {
            let got = tokio::select! {
                _ = app.shutdown.cancelled() => return None,
                _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => None,
                r = rx.recv() => Some(r),
            };
            if !app.alive(&token) {
                return None;
            }
            let ev = match got {
                None => continue,
                Some(Ok(s)) => warp::sse::Event::default().event("live").data(s),
                Some(Err(RecvError::Lagged(n))) => warp::sse::Event::default()
                    .event("lagged")
                    .data(json!({ "missed": n }).to_string()),
                Some(Err(RecvError::Closed)) => return None,
            };
            return Some((Ok(ev), (app, token, rx)));
        }
    });
    futures_util::StreamExt::chain(first, rest)
}
