//! `carebridge rules check PATH` and `carebridge rules replay --rules PATH
//! --events PATH.jsonl [--tz ZONE]`, plus [`replay`], the deterministic
//! replay the scenario tests use.
//!
//! Events file (JSON lines, `#` comments and blank lines ignored), one of:
//! - a reading (`model::Reading`): `{"device":"d1","kind":"motion","value":1,"at":"2026-11-22T10:00:00Z"}`
//! - registry facts (`model::DeviceInfo`): `{"id":"d1","room":"hall","role":"front_door"}`
//! - an acknowledgement: `{"ack":"rule-id","device":"d1","at":"…"}` (`device` optional)
//! - a clock step: `{"tick":"2026-11-22T14:00:00Z"}` (fires timers up to then)
//!
//! Replay drives a virtual clock from the event times: before each event the
//! timers due by its time fire in order, and after the last event the timers
//! due by the last event time fire. Output: one `model::Alert` JSON per line.
//! Exit codes: 2 for bad input (rules, events, zone), 1 for runtime failures.

use std::io::Write;
use std::path::PathBuf;

use jiff::tz::TimeZone;

use super::{Engine, RuleSet};
use crate::model::{Alert, DeviceId, DeviceInfo, Reading, Time};

#[derive(Debug, clap::Subcommand)]
pub enum RulesCmd {
    /// Validate a rules file; errors name the line and key.
    Check {
        /// The rules file (TOML).
        path: PathBuf,
    },
    /// Replay readings (JSON lines) through a rules file; print alerts as JSON lines.
    Replay {
        #[arg(long)]
        rules: PathBuf,
        #[arg(long)]
        events: PathBuf,
        /// IANA time zone of the rules' windows.
        #[arg(long, default_value = "Europe/London")]
        tz: String,
    },
}

/// A CLI failure that knows its exit code.
#[derive(Debug, thiserror::Error)]
pub enum RulesCliError {
    /// Invalid input: a rules file, an events file or a zone (exit 2).
    #[error("{0}")]
    BadInput(String),
    /// Anything else, e.g. stdout closed (exit 1).
    #[error("{0}")]
    Runtime(String),
}

impl RulesCliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            RulesCliError::BadInput(_) => 2,
            RulesCliError::Runtime(_) => 1,
        }
    }
}

/// Runs a `rules` subcommand, printing results on stdout.
pub fn run(cmd: RulesCmd) -> Result<(), RulesCliError> {
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    let io = |e: std::io::Error| RulesCliError::Runtime(format!("cannot write output: {e}"));
    match cmd {
        RulesCmd::Check { path } => {
            let set = load(&path)?;
            let enabled = set.rules.iter().filter(|r| r.enabled).count();
            writeln!(
                w,
                "{}: ok, {} rules ({enabled} enabled)",
                path.display(),
                set.rules.len()
            )
            .map_err(io)?;
        }
        RulesCmd::Replay { rules, events, tz } => {
            let set = load(&rules)?;
            let tz = TimeZone::get(&tz).map_err(|_| {
                RulesCliError::BadInput(format!(
                    "{tz:?} is not a known IANA time zone (e.g. Europe/London)"
                ))
            })?;
            let shown = events.display().to_string();
            let text = std::fs::read_to_string(&events)
                .map_err(|e| RulesCliError::BadInput(format!("{shown}: cannot read: {e}")))?;
            for a in replay(&set, tz, &text, &shown)? {
                let line =
                    serde_json::to_string(&a).map_err(|e| RulesCliError::Runtime(e.to_string()))?;
                writeln!(w, "{line}").map_err(io)?;
            }
        }
    }
    w.flush().map_err(io)
}

fn load(path: &std::path::Path) -> Result<RuleSet, RulesCliError> {
    RuleSet::load(path).map_err(|e| RulesCliError::BadInput(e.to_string()))
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
pub fn parse_events(text: &str, path: &str) -> Result<Vec<Event>, RulesCliError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let bad = |m: String| RulesCliError::BadInput(format!("{path}:{}: {m}", i + 1));
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| bad(e.to_string()))?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str());
        let time = |k: &str| -> Result<Time, RulesCliError> {
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

/// Replays events through a fresh engine and returns the alerts, in order.
pub fn replay(
    set: &RuleSet,
    tz: TimeZone,
    events: &str,
    path: &str,
) -> Result<Vec<Alert>, RulesCliError> {
    let events = parse_events(events, path)?;
    let mut engine = Engine::new(set, tz).map_err(|e| RulesCliError::BadInput(e.to_string()))?;
    let mut out = Vec::new();
    replay_events(&mut engine, &events, &mut out);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_file_errors_name_the_line() {
        let text = "# comment\n\n{\"device\":\"d1\",\"kind\":\"teleport\",\"value\":1,\"at\":\"2026-11-22T10:00:00Z\"}\n";
        let e = parse_events(text, "e.jsonl").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("e.jsonl:3:"), "{e}");
        let e = parse_events("{\"tick\":\"soon\"}", "e.jsonl").unwrap_err();
        assert!(e.to_string().contains("e.jsonl:1: tick"), "{e}");
    }

    #[test]
    fn replay_of_a_panic_press_prints_one_alert() {
        let set = RuleSet::parse(super::super::MINIMAL_RULES, "m").unwrap();
        let ev = "{\"id\":\"b1\",\"room\":\"hall\"}\n{\"device\":\"b1\",\"kind\":\"panic\",\"value\":1,\"at\":\"2026-11-22T10:00:00Z\"}\n";
        let a = replay(&set, TimeZone::UTC, ev, "e").unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].room.as_deref(), Some("hall"));
    }
}
