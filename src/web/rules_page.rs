//! The Rules page's API: view the active rules, apply an edited set
//! without restart (through [`crate::rules::active::Rules`]), roll back, and
//! "try it": replay the last 24 h of history through the edited rules in a
//! fresh engine and list the alerts they would have raised.
//!
//! Invariants: a text that does not parse and validate is never applied,
//! and its problems come back one per line/key so the page can show them
//! inline; a text that leaves a life-safety kind without an alert
//! ([`crate::life_safety`]) is refused (409, naming the kinds) unless the
//! request confirms it with `allow_missing_life_safety: true`, and while
//! the active rules leave one uncovered every page shows a warning
//! ([`life_safety_warnings`]); a replay is bounded (at most [`TRY_READINGS_MAX`] readings,
//! [`TRY_BUDGET`] of CPU on a blocking thread, [`TRY_ALERTS_MAX`] alerts
//! listed) and never touches the live engine.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use warp::http::StatusCode;

use super::http::{App, Fail, Req, Resp, Result, Who, installer, json_resp};
use super::roles::RulesAdmin;
use super::validate::{Invalid, Obj};
use crate::config::ConfigError;
use crate::model::{Alert, DeviceInfo, Reading, Time};
use crate::rules::{Engine, RuleSet, RulesError};

/// Largest rules text accepted from the editor.
pub const RULES_TEXT_MAX: usize = 128 * 1024;
/// Readings replayed by "try it" at most (the oldest of the window first).
pub const TRY_READINGS_MAX: usize = 100_000;
/// CPU time a replay may take before it stops and says so.
pub const TRY_BUDGET: Duration = Duration::from_secs(3);
/// Alerts listed by "try it" at most (the count is always exact).
pub const TRY_ALERTS_MAX: usize = 500;

/// One problem of a rules text, for inline display.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

/// Splits a [`RulesError`] into its problems (line, key, message).
pub fn problems(e: &RulesError) -> Vec<Problem> {
    match e {
        RulesError::File(ConfigError::Parse {
            line, key, message, ..
        }) => vec![Problem {
            line: Some(*line),
            key: key.trim_end_matches(": ").to_string(),
            message: message.clone(),
        }],
        RulesError::File(ConfigError::Invalid { problems, .. }) => problems
            .iter()
            .map(|(line, p)| Problem {
                line: *line,
                key: p.key.clone(),
                message: p.reason.clone(),
            })
            .collect(),
        other => vec![Problem {
            line: None,
            key: String::new(),
            message: other.to_string(),
        }],
    }
}

/// A refused rules text: 400 naming the `text` field, with every problem.
fn refused(e: &RulesError) -> Resp {
    json_resp(
        StatusCode::BAD_REQUEST,
        &json!({"error": format!("text: {e}"), "field": "text", "problems": problems(e)}),
    )
}

/// 409 naming the life-safety kinds `set` would leave without an alert,
/// unless `confirmed` (or none is missing).
pub fn life_safety_guard(app: &App, set: &RuleSet, confirmed: bool, field: &str) -> Option<Resp> {
    let missing = crate::life_safety::missing(set, &app.roles.settings.life_safety);
    if missing.is_empty() || confirmed {
        return None;
    }
    let names: Vec<&str> = missing.iter().map(|k| k.as_str()).collect();
    Some(json_resp(
        StatusCode::CONFLICT,
        &json!({"error": format!("{field}: {}", crate::life_safety::refusal(&missing)),
                "field": field, "missing_life_safety": names,
                "confirm_field": crate::life_safety::CONFIRM_FIELD}),
    ))
}

/// The standing warnings about the active rules: one while they leave a
/// life-safety kind without an alert (none when the rules role is absent).
pub async fn life_safety_warnings(app: &App) -> Vec<String> {
    let Some(rules) = &app.roles.rules else {
        return Vec::new();
    };
    let Ok(active) = rules.active().await else {
        return Vec::new();
    };
    match RuleSet::parse(&active.text, "rules") {
        Ok(set) => {
            let missing = crate::life_safety::missing(&set, &app.roles.settings.life_safety);
            if missing.is_empty() {
                Vec::new()
            } else {
                vec![crate::life_safety::warning(&missing)]
            }
        }
        Err(_) => Vec::new(),
    }
}

/// The `text` of a rules request and whether it confirms leaving
/// life-safety kinds uncovered.
fn rules_text(req: &Req) -> Result<String> {
    rules_body(req).map(|(t, _)| t)
}

fn rules_body(req: &Req) -> Result<(String, bool)> {
    let o = Obj::parse(&req.body, &["text", crate::life_safety::CONFIRM_FIELD])?;
    let confirmed = o.flag(crate::life_safety::CONFIRM_FIELD)?;
    let text = o.str("text")?;
    if text.len() > RULES_TEXT_MAX {
        return Err(Invalid::new(
            "text",
            format!("must be at most {} KiB", RULES_TEXT_MAX / 1024),
        )
        .into());
    }
    if text.contains('\u{0}') {
        return Err(Invalid::new("text", "must not contain NUL characters").into());
    }
    Ok((text.to_string(), confirmed))
}

/// The rules role; 501 when this server has none.
fn handle(app: &App) -> Result<&std::sync::Arc<dyn RulesAdmin>> {
    app.roles.rules().map_err(Fail::from)
}

/// `GET /api/v1/rules`: the active version (with text) and the previous one.
pub async fn get(app: &App) -> Result<Resp> {
    let Some(rules) = &app.roles.rules else {
        return Ok(json_resp(
            StatusCode::OK,
            &json!({"available": false,
                    "message": "the rule engine is not wired in this server; the built-in safety rules apply"}),
        ));
    };
    let active = rules.active().await?;
    let history = rules.versions().await?;
    let previous = history.previous.map(
        |p| json!({"version": p.version, "source": p.source, "applied_at": Time(p.applied_at)}),
    );
    // With one stored version, rollback returns to the base rules.
    let can_rollback = history.current.is_some();
    Ok(json_resp(
        StatusCode::OK,
        &json!({
            "available": true,
            "active": {"version": active.version, "source": active.source,
                       "applied_at": Time(active.applied_at), "text": active.text},
            "previous": previous,
            "can_rollback": can_rollback,
        }),
    ))
}

/// `PUT /api/v1/rules` `{"text"}`: validates, stores, switches the engine.
pub async fn put(app: &App, req: &Req, who: &Who) -> Result<Resp> {
    installer(who)?;
    let rules = handle(app)?;
    let (text, confirmed) = rules_body(req)?;
    let set = match RuleSet::parse(&text, "rules") {
        Ok(s) => s,
        Err(e) => return Ok(refused(&e)),
    };
    if let Some(r) = life_safety_guard(app, &set, confirmed, "text") {
        return Ok(r);
    }
    let missing = crate::life_safety::missing(&set, &app.roles.settings.life_safety);
    let source = format!("ui:{}", who.session.user);
    let applied = match rules.apply(text, source, gateway_now(app)).await {
        Ok(a) => a,
        Err(crate::rules::active::ApplyError::Invalid(e)) => return Ok(refused(&e)),
        Err(e) => return Err(Fail::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    };
    if !applied.unchanged {
        let off = if missing.is_empty() {
            String::new()
        } else {
            format!(
                "; confirmed WITHOUT life-safety rules for {}",
                crate::life_safety::names(&missing)
            )
        };
        app.audit(
            &who.session.user,
            "rules.apply",
            format!(
                "version {} applied ({} kept, {} new or changed, {} removed){off}",
                applied.version, applied.kept, applied.fresh, applied.removed
            ),
        )
        .await?;
    }
    Ok(json_resp(
        StatusCode::OK,
        &json!({"ok": true, "applied": applied}),
    ))
}

/// `POST /api/v1/rules/rollback`: the previous version becomes active.
pub async fn rollback(app: &App, who: &Who) -> Result<Resp> {
    installer(who)?;
    let rules = handle(app)?;
    let applied = rules.rollback().await.map_err(|e| match e {
        crate::rules::active::ApplyError::NoPrevious => {
            Fail::new(StatusCode::CONFLICT, e.to_string())
        }
        other => Fail::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
    })?;
    app.audit(
        &who.session.user,
        "rules.rollback",
        format!("back to version {} ({})", applied.version, applied.source),
    )
    .await?;
    Ok(json_resp(
        StatusCode::OK,
        &json!({"ok": true, "applied": applied}),
    ))
}

/// The gateway's clock (the demo's runs fast), from its status document.
pub fn gateway_now(app: &App) -> Time {
    app.roles.watch.status().at
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replay {
    /// The first [`TRY_ALERTS_MAX`] alerts, in order.
    pub alerts: Vec<Alert>,
    /// Every alert raised or cleared (may exceed `alerts.len()`).
    pub total: usize,
    pub readings: usize,
    /// Stopped early: out of time budget.
    pub timed_out: bool,
}

/// Replays `history` (oldest first) through a fresh engine for `set`, then
/// lets timers run to `until`. Pure apart from the time budget check.
pub fn replay(
    set: &RuleSet,
    tz: jiff::tz::TimeZone,
    devices: &[DeviceInfo],
    history: &[Reading],
    until: Time,
    budget: Duration,
) -> std::result::Result<Replay, RulesError> {
    let mut engine = Engine::new(set, tz)?;
    for d in devices {
        engine.set_device(d);
    }
    let started = Instant::now();
    let mut out = Vec::new();
    let mut r = Replay {
        alerts: Vec::new(),
        total: 0,
        readings: 0,
        timed_out: false,
    };
    let keep = |out: &mut Vec<Alert>, r: &mut Replay| {
        r.total += out.len();
        let room = TRY_ALERTS_MAX.saturating_sub(r.alerts.len());
        r.alerts.extend(out.drain(..).take(room));
    };
    for (i, reading) in history.iter().enumerate() {
        if i % 1024 == 0 && started.elapsed() > budget {
            r.timed_out = true;
            return Ok(r);
        }
        engine.on_tick(reading.at, &mut out);
        engine.on_reading(reading.at, reading, &mut out);
        r.readings += 1;
        keep(&mut out, &mut r);
    }
    engine.on_tick(until, &mut out);
    keep(&mut out, &mut r);
    Ok(r)
}

/// `POST /api/v1/rules/try` `{"text"}`: the alerts the edited rules would
/// have raised over the last 24 h of history. Nothing is applied.
pub async fn try_it(app: &App, req: &Req, who: &Who) -> Result<Resp> {
    installer(who)?;
    let text = rules_text(req)?;
    let set = match RuleSet::parse(&text, "rules") {
        Ok(s) => s,
        Err(e) => return Ok(refused(&e)),
    };
    let until = gateway_now(app);
    let since = Time(until.as_millis() - 86_400_000);
    let mut history = app
        .roles
        .history
        .history(since, Time(until.as_millis() + 1), TRY_READINGS_MAX + 1)
        .await?;
    let capped = history.len() > TRY_READINGS_MAX;
    history.truncate(TRY_READINGS_MAX);
    let devices = app.roles.registry.devices().await?;
    let tz = jiff::tz::TimeZone::get(&app.roles.watch.status().timezone)
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let t0 = Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        replay(&set, tz, &devices, &history, until, TRY_BUDGET)
    })
    .await
    .map_err(|e| Fail::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let r = match result {
        Ok(r) => r,
        Err(e) => return Ok(refused(&e)),
    };
    Ok(json_resp(
        StatusCode::OK,
        &json!({
            "since": since, "until": until,
            "readings": r.readings, "capped": capped, "timed_out": r.timed_out,
            "total": r.total, "alerts": r.alerts,
            "ms": t0.elapsed().as_millis() as u64,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeviceId, Kind};

    fn reading(dev: &str, kind: Kind, value: f64, at: i64) -> Reading {
        Reading::new(DeviceId::new(dev).unwrap(), kind, value, Time(at)).unwrap()
    }

    #[test]
    fn replay_lists_the_alerts_of_the_edited_rules_only() {
        let set = RuleSet::parse(
            "[[rule]]\nid = \"cold\"\ntype = \"threshold\"\nkind = \"temperature\"\nbelow = 16.0\n",
            "t",
        )
        .unwrap();
        let h = [
            reading("lounge", Kind::Temperature, 20.0, 1_000),
            reading("lounge", Kind::Temperature, 14.0, 600_000),
            reading("pendant", Kind::Panic, 1.0, 700_000),
        ];
        let r = replay(
            &set,
            jiff::tz::TimeZone::UTC,
            &[],
            &h,
            Time(800_000),
            TRY_BUDGET,
        )
        .unwrap();
        assert_eq!(r.readings, 3);
        assert!(!r.timed_out);
        assert!(r.total >= 1);
        assert!(
            r.alerts.iter().all(|a| &*a.rule == "cold"),
            "{:?}",
            r.alerts
        );
        assert!(r.alerts.iter().all(|a| &*a.rule != "panic"));
    }

    #[test]
    fn replay_out_of_budget_stops_and_says_so() {
        let set = RuleSet::parse(crate::rules::MINIMAL_RULES, "m").unwrap();
        let h: Vec<_> = (0..5000)
            .map(|i| reading("pendant", Kind::Panic, 1.0, i * 1000))
            .collect();
        let r = replay(
            &set,
            jiff::tz::TimeZone::UTC,
            &[],
            &h,
            Time(5_000_000),
            Duration::ZERO,
        )
        .unwrap();
        assert!(r.timed_out);
        assert!(r.readings < h.len());
    }

    #[test]
    fn problems_carry_line_and_key() {
        let e = RuleSet::parse(
            "[[rule]]\nid = \"x\"\ntype = \"threshold\"\nkind = \"temperature\"\n",
            "rules",
        )
        .unwrap_err();
        let p = problems(&e);
        assert!(!p.is_empty());
        assert!(p[0].key.starts_with("rule[0]"), "{p:?}");
        let e = RuleSet::parse("[[rule]\nid = 1\n", "rules").unwrap_err();
        let p = problems(&e);
        assert_eq!(p[0].line, Some(1), "{p:?}");
    }
}
