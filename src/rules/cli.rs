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

use super::{Engine, RuleSet, parse_events, replay_events};
use crate::model::Alert;

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
    crate::rules::load(path).map_err(|e| RulesCliError::BadInput(e.to_string()))
}

/// Replays events through a fresh engine and returns the alerts, in order.
pub fn replay(
    set: &RuleSet,
    tz: TimeZone,
    events: &str,
    path: &str,
) -> Result<Vec<Alert>, RulesCliError> {
    let events = parse_events(events, path).map_err(|e| RulesCliError::BadInput(e.to_string()))?;
    let mut engine = Engine::new(set, tz).map_err(|e| RulesCliError::BadInput(e.to_string()))?;
    let mut out = Vec::new();
    replay_events(&mut engine, &events, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_file_errors_name_the_line() {
        let text = "# comment\n\n{\"device\":\"d1\",\"kind\":\"teleport\",\"value\":1,\"at\":\"2026-11-22T10:00:00Z\"}\n";
        let e = parse_events(text, "e.jsonl").unwrap_err();
        assert_eq!(e.line, 3);
        let tz = TimeZone::get("Europe/London").unwrap();
        let set = RuleSet::parse(crate::rules::MINIMAL_RULES, "m").unwrap();
        let cli = replay(&set, tz, text, "e.jsonl").unwrap_err();
        assert_eq!(cli.exit_code(), 2);
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
