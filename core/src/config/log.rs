//! `[log]` validation without the logging library: the filter grammar that
//! `tracing_subscriber::EnvFilter` accepts, checked as text so that
//! `config check` needs no I/O crate. The shell's `logging` tests hold this
//! check and `EnvFilter::try_new` to the same verdicts.
//!
//! A filter is comma-separated directives; each is `LEVEL`, `TARGET`, or
//! `TARGET=LEVEL`, where `TARGET` may carry a span part in brackets
//! (`carebridge::zigbee[port]=debug`). Levels: off, error, warn, info,
//! debug, trace (any case) or 0–5; an empty level means trace.

use super::{LogConfig, Problem};

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// A level name (any case) or number 0 (off) to 5 (trace).
fn is_level(s: &str) -> bool {
    LEVELS.iter().any(|l| l.eq_ignore_ascii_case(s))
        || matches!(s, "0" | "1" | "2" | "3" | "4" | "5")
}

/// The logger takes any target text; `=` ends it.
fn is_target(s: &str) -> bool {
    !s.is_empty() && !s.contains('=')
}

/// Whether one directive parses.
fn directive_ok(d: &str) -> bool {
    let d = d.trim();
    if d.is_empty() {
        return true; // "info," is accepted: empty directives are skipped
    }
    let (lhs, level) = match d.rsplit_once('=') {
        Some((l, r)) if !r.contains(']') => (l, Some(r)),
        _ => (d, None),
    };
    if let Some(level) = level
        && !level.trim().is_empty()
        && !is_level(level.trim())
    {
        return false;
    }
    if level.is_none() && is_level(lhs.trim()) {
        return true;
    }
    let (target, span) = match lhs.find('[') {
        Some(i) => (&lhs[..i], Some(&lhs[i..])),
        None => (lhs, None),
    };
    let span_ok = span.is_none_or(|s| s.ends_with(']') && s.matches('[').count() == 1);
    span_ok && (target.is_empty() && span.is_some() || is_target(target.trim()))
}

/// Whether `text` is a filter the logger will accept.
pub fn filter_ok(text: &str) -> bool {
    text.split(',').all(directive_ok)
}

/// Problems in `[log]`, keys relative to the section.
pub fn validate(cfg: &LogConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    if !filter_ok(&cfg.level) {
        out.push(Problem::new(
            "level",
            format!("{:?} is not a log filter (try info or debug)", cfg.level),
        ));
    }
    for (module, level) in &cfg.modules {
        let ok = !module.is_empty()
            && module
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && is_level(&level.to_ascii_lowercase());
        if !ok {
            out.push(Problem::new(
                format!("modules.{module}"),
                format!(
                    "{level:?}: use a module path (carebridge::zigbee) and one of off, error, warn, info, debug, trace"
                ),
            ));
        }
    }
    out
}
