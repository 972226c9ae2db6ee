//! Replaying an events file (a *story*) through the engine on a virtual
//! clock: what `carebridge rules replay` and the scenario tests run. Pure:
//! the text comes in, alerts go out.
//!
//! A story is JSON lines; blank lines and `#` comments are skipped:
//! - a reading `{"device":…,"kind":…,"value":…,"at":…}`;
//! - device facts `{"id":…,"room":…,"role":…,"name":…}`;
//! - an acknowledgement `{"ack":RULE,"device":ID,"at":…}` (`device`
//!   optional), or of one alert `{"ack":RULE,"instance":ID,"at":…}`;
//! - a clock step `{"tick":TIME}`;
//! - `{"restart":TIME}`: the gateway restarts here — the engine's
//!   persisted state (`Engine::snapshot`) is restored into a fresh engine
//!   built from the same rules and registry, as `carebridge run` does;
//! - `{"learn":{"device":…,"kind":…,"value":1,"from":"2026-11-01","times":["07:05","07:20",…]}}`:
//!   routine history seeded as one reading a day from `from` at each
//!   local time (`Engine::learn_from_history`), without replaying weeks;
//! - `{"mode":"away"|"visitor"|"home","until"?:…,"at":…}`: the household's
//!   mode is set (as `cmd/mode` does);
//! - `{"expect":…}`: an assertion for the scenario tests, ignored here.
//!
//! Times are RFC 3339; with a zone given (`--tz`), a local time without an
//! offset (`2026-11-23T02:30:00`) is read in that zone (an hour repeated
//! on the autumn night: the earlier one). Time only moves forward: lines
//! out of time order are either sorted (stable, by time; lines without a
//! time stay after the line before them) and counted, or refused
//! ([`Order`]).

use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use super::spec::RuleSet;
use super::{Engine, window};
use crate::model::{Alert, DeviceId, DeviceInfo, Kind, Reading, Time};

/// A line of an events file that could not be read; names file and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct EventsError {
    pub path: String,
    pub line: usize,
    pub message: String,
}

/// One line of an events file.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Reading(Reading),
    Device(DeviceInfo),
    Ack {
        rule: String,
        device: Option<DeviceId>,
        at: Time,
    },
    AckInstance {
        instance: String,
        at: Time,
    },
    Tick(Time),
    Restart(Time),
    Learn(Vec<Reading>),
    /// `{"mode":"away"|"visitor"|"home","until"?:T,"at":T}` (as `cmd/mode`).
    Mode {
        mode: super::mode::Mode,
        until: Option<Time>,
        at: Time,
    },
}

impl Event {
    /// When the event happens (`None`: facts and seeds, which take the
    /// time of the line before them).
    pub fn time(&self) -> Option<Time> {
        match self {
            Event::Reading(r) => Some(r.at),
            Event::Ack { at, .. }
            | Event::AckInstance { at, .. }
            | Event::Tick(at)
            | Event::Mode { at, .. }
            | Event::Restart(at) => Some(*at),
            Event::Device(_) | Event::Learn(_) => None,
        }
    }
}

/// What to do with lines out of time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Sort them into place (stable) and count them.
    #[default]
    Sort,
    /// Refuse the file, naming the first such line.
    Refuse,
}

/// How many lines were out of time order (moved by sorting), and the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OrderReport {
    pub out_of_order: usize,
    /// `(line, the earlier line it should come before)` of the first one.
    pub first: Option<(usize, usize)>,
}

/// Parses an events file in UTC (see the module header).
pub fn parse_events(text: &str, path: &str) -> Result<Vec<Event>, EventsError> {
    Ok(parse_story(text, path, None)?
        .into_iter()
        .map(|(_, e)| e)
        .collect())
}

/// Parses a story: each event with its line number. `tz` reads local
/// times without an offset (without a zone they are refused).
pub fn parse_story(
    text: &str,
    path: &str,
    tz: Option<&TimeZone>,
) -> Result<Vec<(usize, Event)>, EventsError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let bad = |message: String| EventsError {
            path: path.to_string(),
            line: i + 1,
            message,
        };
        let mut v: serde_json::Value = serde_json::from_str(l).map_err(|e| bad(e.to_string()))?;
        if v.get("expect").is_some() {
            continue;
        }
        // Local times become RFC 3339 before anything reads them.
        for k in ["at", "tick", "restart", "until"] {
            if let Some(s) = v.get(k).and_then(|x| x.as_str()) {
                let t = parse_time(s, tz).map_err(|e| bad(format!("{k}: {e}")))?;
                if let Some(m) = v.as_object_mut() {
                    m.insert(k.into(), serde_json::Value::String(t.to_rfc3339()));
                }
            }
        }
        let field = |k: &str| v.get(k).and_then(|x| x.as_str());
        let time = |k: &str| -> Result<Time, EventsError> {
            let s = field(k).ok_or_else(|| bad(format!("{k}: missing RFC 3339 time")))?;
            Time::parse_rfc3339(s).map_err(|e| bad(format!("{k}: {e}")))
        };
        let ev = if let Some(rule) = field("ack") {
            match field("instance") {
                Some(inst) => Event::AckInstance {
                    instance: inst.to_string(),
                    at: time("at")?,
                },
                None => {
                    let device = match field("device") {
                        Some(d) => Some(DeviceId::new(d).map_err(|e| bad(format!("device: {e}")))?),
                        None => None,
                    };
                    Event::Ack {
                        rule: rule.to_string(),
                        device,
                        at: time("at")?,
                    }
                }
            }
        } else if let Some(m) = field("mode") {
            let mode: super::mode::Mode = m.parse().map_err(|e| bad(format!("{e}")))?;
            let at = time("at")?;
            let until = match field("until") {
                Some(_) => Some(time("until")?),
                None => None,
            };
            if until.is_some_and(|u| u <= at) {
                return Err(bad("until: must be after at".into()));
            }
            Event::Mode { mode, until, at }
        } else if v.get("tick").is_some() {
            Event::Tick(time("tick")?)
        } else if v.get("restart").is_some() {
            Event::Restart(time("restart")?)
        } else if let Some(l) = v.get("learn") {
            Event::Learn(learn_line(l, tz).map_err(bad)?)
        } else if v.get("kind").is_some() {
            let r: Reading = serde_json::from_value(v.clone()).map_err(|e| bad(e.to_string()))?;
            if !r.value.is_finite() {
                return Err(bad("value: not a finite number".into()));
            }
            Event::Reading(r)
        } else if v.get("id").is_some() {
            Event::Device(serde_json::from_value(v.clone()).map_err(|e| bad(e.to_string()))?)
        } else {
            return Err(bad(
                "expected a reading (kind), device facts (id), ack, tick, restart, learn or mode"
                    .into(),
            ));
        };
        out.push((i + 1, ev));
    }
    Ok(out)
}

/// RFC 3339, or a local date-time without an offset read in `tz`.
fn parse_time(s: &str, tz: Option<&TimeZone>) -> Result<Time, String> {
    match Time::parse_rfc3339(s) {
        Ok(t) => Ok(t),
        Err(e) => {
            let Ok(dt) = s.parse::<DateTime>() else {
                return Err(e.to_string());
            };
            let Some(tz) = tz else {
                return Err(format!("{s:?} has no UTC offset (give a zone: --tz)"));
            };
            let ts = tz
                .to_ambiguous_timestamp(dt)
                .compatible()
                .map_err(|e| e.to_string())?;
            Ok(Time(ts.as_millisecond()))
        }
    }
}

/// `{"device","kind","value"?,"from","times"}` → one reading a day.
fn learn_line(v: &serde_json::Value, tz: Option<&TimeZone>) -> Result<Vec<Reading>, String> {
    let s = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .ok_or_else(|| format!("learn.{k}: required string"))
    };
    let device = DeviceId::new(s("device")?).map_err(|e| format!("learn.device: {e}"))?;
    let kind: Kind = s("kind")?.parse().map_err(|e| format!("learn.kind: {e}"))?;
    let value = v.get("value").and_then(|x| x.as_f64()).unwrap_or(1.0);
    if !value.is_finite() {
        return Err("learn.value: not a finite number".into());
    }
    let from: jiff::civil::Date = s("from")?
        .parse()
        .map_err(|e| format!("learn.from: {e} (YYYY-MM-DD)"))?;
    let times = v
        .get("times")
        .and_then(|x| x.as_array())
        .ok_or("learn.times: required list of \"HH:MM\"")?;
    if times.len() > 366 {
        return Err("learn.times: at most 366 days".into());
    }
    let tz = tz.cloned().unwrap_or(TimeZone::UTC);
    let mut out = Vec::with_capacity(times.len());
    for (i, t) in times.iter().enumerate() {
        let hhmm = t.as_str().unwrap_or("");
        let secs = window::parse_hhmm(hhmm)
            .ok_or_else(|| format!("learn.times[{i}]: {hhmm:?} is not HH:MM"))?;
        let day = from
            .checked_add(jiff::Span::new().days(i64::try_from(i).unwrap_or(0)))
            .map_err(|e| format!("learn.times[{i}]: {e}"))?;
        let at = window::at_secs(&tz, day, secs)
            .ok_or_else(|| format!("learn.times[{i}]: no such local time"))?;
        out.push(Reading {
            device: device.clone(),
            kind,
            value,
            at,
        });
    }
    Ok(out)
}

/// Puts a story in time order (see [`Order`]); `path` is for messages.
pub fn order_story(
    story: &mut Vec<(usize, Event)>,
    order: Order,
    path: &str,
) -> Result<OrderReport, EventsError> {
    let mut report = OrderReport::default();
    let mut latest: Option<(Time, usize)> = None;
    let mut keys = Vec::with_capacity(story.len());
    for (line, ev) in story.iter() {
        match ev.time() {
            Some(t) => {
                if let Some((m, mline)) = latest
                    && t < m
                {
                    report.out_of_order += 1;
                    report.first.get_or_insert((*line, mline));
                    if order == Order::Refuse {
                        return Err(EventsError {
                            path: path.to_string(),
                            line: *line,
                            message: format!(
                                "{} is earlier than line {mline} ({}): lines out of time order",
                                t.to_rfc3339(),
                                m.to_rfc3339()
                            ),
                        });
                    }
                } else {
                    latest = Some((t, *line));
                }
                keys.push(t);
            }
            None => keys.push(keys.last().copied().unwrap_or(Time(i64::MIN))),
        }
    }
    if report.out_of_order > 0 {
        let mut idx: Vec<usize> = (0..story.len()).collect();
        idx.sort_by_key(|&i| keys.get(i).copied().unwrap_or(Time(i64::MIN)));
        let mut old: Vec<Option<(usize, Event)>> =
            std::mem::take(story).into_iter().map(Some).collect();
        for i in idx {
            if let Some(e) = old.get_mut(i).and_then(Option::take) {
                story.push(e);
            }
        }
    }
    Ok(report)
}

/// Drives `engine` through `events` on a virtual clock (see the module header).
pub fn replay_events(engine: &mut Engine, events: &[Event], out: &mut Vec<Alert>) {
    let mut clock: Option<Time> = None;
    for ev in events {
        if let Some(at) = ev.time() {
            let now = clock.map_or(at, |c| c.max(at));
            clock = Some(now);
            engine.on_tick(now, out);
        }
        let now = clock.unwrap_or_default();
        match ev {
            Event::Reading(r) => engine.on_reading(now, r, out),
            Event::Device(d) => engine.set_device(d),
            Event::Ack { rule, device, .. } => {
                engine.ack(rule, device.as_ref(), now);
            }
            Event::AckInstance { instance, .. } => {
                engine.ack_instance(instance, now);
            }
            Event::Restart(_) => *engine = restarted(engine, now),
            Event::Learn(readings) => engine.learn_from_history(readings.iter()),
            Event::Mode { mode, until, .. } => {
                // Checked when parsed (until after at); a refusal here
                // changes nothing, like a refused command.
                let _ = engine.set_mode(*mode, *until, "story", now, out);
            }
            Event::Tick(_) => {}
        }
    }
    if let Some(now) = clock {
        engine.on_tick(now, out);
    }
}

/// What a restarted gateway has: the same rules and registry, and the
/// state the old engine persisted (a state that fails to restore — it
/// cannot, being this engine's own — leaves the fresh engine as it is).
fn restarted(old: &Engine, now: Time) -> Engine {
    let bytes = old.snapshot();
    let set = RuleSet {
        rules: old
            .rules
            .iter()
            .map(|r| r.spec.clone())
            .chain(old.disabled.iter().cloned())
            .collect(),
    };
    let mut e = Engine::build(&set, old.tz.clone());
    for (i, d) in old.devs.iter() {
        e.set_device(&DeviceInfo {
            id: Some(d.id.clone()),
            name: d.name.as_deref().map(str::to_string),
            room: old.devs.room_name(i).map(str::to_string),
            role: d.role.as_deref().map(str::to_string),
            ..DeviceInfo::default()
        });
    }
    let _ = e.restore(&bytes, now);
    e
}
