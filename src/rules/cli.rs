//! `carebridge rules check PATH` and `carebridge rules replay --rules PATH
//! --events PATH.jsonl [--tz ZONE] [--out-of-order sort|refuse]`, plus
//! [`replay`] and [`replay_story`], the deterministic replay the scenario
//! tests use.
//!
//! Events file (JSON lines, `#` comments and blank lines ignored): readings,
//! registry facts, acknowledgements (by rule and device, or by instance),
//! clock steps, `restart` and `learn` directives — the format is documented
//! in the core's `rules::replay` and in RULES.md. Times without an offset
//! are local times in `--tz`.
//!
//! Replay drives a virtual clock from the event times: before each event the
//! timers due by its time fire in order, and after the last event the timers
//! due by the last event time fire. Lines out of time order are sorted into
//! place with a warning on stderr that counts them (or, with
//! `--out-of-order refuse`, refused naming the first). Output: one
//! `model::Alert` JSON per line.
//! Exit codes: 2 for bad input (rules, events, zone), 1 for runtime failures.

use std::io::Write;
use std::path::PathBuf;

use jiff::tz::TimeZone;

use super::{Engine, Order, OrderReport, RuleSet, order_story, parse_story, replay_events};
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
        /// IANA time zone of the rules' windows (and of times without an offset).
        #[arg(long, default_value = "Europe/London")]
        tz: String,
        /// Lines out of time order: sort them (with a warning) or refuse the file.
        #[arg(long, value_enum, default_value = "sort")]
        out_of_order: OutOfOrder,
    },
}

/// `--out-of-order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutOfOrder {
    #[default]
    Sort,
    Refuse,
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
        RulesCmd::Replay {
            rules,
            events,
            tz,
            out_of_order,
        } => {
            let set = load(&rules)?;
            let tz = TimeZone::get(&tz).map_err(|_| {
                RulesCliError::BadInput(format!(
                    "{tz:?} is not a known IANA time zone (e.g. Europe/London)"
                ))
            })?;
            let shown = events.display().to_string();
            let text = std::fs::read_to_string(&events)
                .map_err(|e| RulesCliError::BadInput(format!("{shown}: cannot read: {e}")))?;
            let order = match out_of_order {
                OutOfOrder::Sort => Order::Sort,
                OutOfOrder::Refuse => Order::Refuse,
            };
            let done = replay_story(&set, tz, &text, &shown, order)?;
            if let Some((line, before)) = done.order.first {
                eprintln!(
                    "warning: {shown}: {} line(s) out of time order (first: line {line}, earlier than line {before}); sorted into place",
                    done.order.out_of_order
                );
            }
            for a in done.alerts {
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

/// Replays events through a fresh engine and returns the alerts, in order
/// (lines out of time order sorted into place).
pub fn replay(
    set: &RuleSet,
    tz: TimeZone,
    events: &str,
    path: &str,
) -> Result<Vec<Alert>, RulesCliError> {
    Ok(replay_story(set, tz, events, path, Order::Sort)?.alerts)
}

/// What [`replay_story`] gives: the alerts and what ordering did.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    pub alerts: Vec<Alert>,
    pub order: OrderReport,
}

/// Replays a story (local times in `tz`) through a fresh engine.
pub fn replay_story(
    set: &RuleSet,
    tz: TimeZone,
    events: &str,
    path: &str,
    order: Order,
) -> Result<Replayed, RulesCliError> {
    let bad = |e: super::EventsError| RulesCliError::BadInput(e.to_string());
    let mut story = parse_story(events, path, Some(&tz)).map_err(bad)?;
    let report = order_story(&mut story, order, path).map_err(bad)?;
    let events: Vec<_> = story.into_iter().map(|(_, e)| e).collect();
    let mut engine = Engine::new(set, tz).map_err(|e| RulesCliError::BadInput(e.to_string()))?;
    let mut out = Vec::new();
    replay_events(&mut engine, &events, &mut out);
    Ok(Replayed {
        alerts: out,
        order: report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::parse_events;

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
