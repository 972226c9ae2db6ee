//! Replaying an events file through the engine on a virtual clock: what
//! `carebridge rules replay` and the scenario tests run. Pure: the text comes
//! in, alerts go out.
//!
//! An events file is JSON lines: a reading (`{"device":…,"kind":…,"value":…,"at":…}`),
//! device facts (`{"id":…,"room":…}`), an acknowledgement
//! (`{"ack":RULE,"device":ID,"at":…}`) or a clock tick (`{"tick":TIME}`);
//! blank lines and `#` comments are skipped. Time only moves forward.

use super::Engine;
use crate::model::{Alert, DeviceId, DeviceInfo, Reading, Time};

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
    Tick(Time),
}

/// Parses an events file (see the module header); `path` is for messages.
pub fn parse_events(text: &str, path: &str) -> Result<Vec<Event>, EventsError> {
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
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| bad(e.to_string()))?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str());
        let time = |k: &str| -> Result<Time, EventsError> {
            let s = field(k).ok_or_else(|| bad(format!("{k}: missing RFC 3339 time")))?;
            Time::parse_rfc3339(s).map_err(|e| bad(format!("{k}: {e}")))
        };
        let ev = if let Some(rule) = field("ack") {
            let device = match field("device") {
                Some(d) => Some(DeviceId::new(d).map_err(|e| bad(format!("device: {e}")))?),
                None => None,
            };
            Event::Ack {
                rule: rule.to_string(),
                device,
                at: time("at")?,
            }
        } else if v.get("tick").is_some() {
            Event::Tick(time("tick")?)
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
                "expected a reading (kind), device facts (id), ack or tick".into(),
            ));
        };
        out.push(ev);
    }
    Ok(out)
}

/// Drives `engine` through `events` on a virtual clock (see the module header).
pub fn replay_events(engine: &mut Engine, events: &[Event], out: &mut Vec<Alert>) {
    let mut clock: Option<Time> = None;
    for ev in events {
        let at = match ev {
            Event::Reading(r) => Some(r.at),
            Event::Ack { at, .. } | Event::Tick(at) => Some(*at),
            Event::Device(_) => None,
        };
        if let Some(at) = at {
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
            Event::Tick(_) => {}
        }
    }
    if let Some(now) = clock {
        engine.on_tick(now, out);
    }
}
