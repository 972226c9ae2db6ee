//! Logging: where log lines go, which levels per module, and the small ring
//! of recent warnings and errors that `cmd/diagnostics` reports.
//!
//! - Under systemd (`JOURNAL_STREAM` set) every line goes to stderr with an
//!   sd-daemon priority prefix (`<3>` error, `<4>` warning, `<6>` info,
//!   `<7>` debug/trace), no colours and no timestamp: journald stores the
//!   priority, the time and the unit itself (`journalctl -p warning -u
//!   carebridge`). The structured `key=value` fields stay in the line. No
//!   journald socket client: one dependency less, same result for the reader.
//! - Elsewhere: plain stderr lines with a timestamp (colours on a terminal).
//! - Levels: `[log] level` (a level or a full filter) plus `[log] modules`
//!   (`{ "carebridge::zigbee" = "debug" }`); `RUST_LOG` wins over both. The
//!   filter can be changed at run time ([`LogControl::apply`], used by remote
//!   configuration); with `RUST_LOG` set it is left alone.
//! - Personal data: at info level and above carebridge logs ids, counts and
//!   states, never device names, rooms, reading values, alert messages,
//!   secrets or payloads (those only at debug).
//!
//! Invariant: [`RecentErrors`] holds at most [`RECENT_MAX`] events of at most
//! [`EVENT_MAX`] characters each, so a log storm cannot grow memory.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::config::LogConfig;

/// Recent warnings and errors kept for diagnostics.
pub const RECENT_MAX: usize = 50;
/// Longest kept event text, in characters.
pub const EVENT_MAX: usize = 300;

/// Always appended: rumqttd logs an ERROR for every normal disconnect.
const QUIET: &str = "rumqttd=warn,rumqttd::router::routing=off";

/// The filter text for a `[log]` section (without `RUST_LOG`).
pub fn filter_text(cfg: &LogConfig) -> String {
    let mut s = format!("{},{QUIET}", cfg.level);
    for (module, level) in &cfg.modules {
        let _ = write!(s, ",{module}={level}");
    }
    s
}

/// Checks a `[log]` section (the core's pure check); keys relative to the section.
pub use crate::config::validate_log as validate;

/// One remembered warning or error.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecentEvent {
    pub at: String,
    pub level: &'static str,
    pub target: String,
    pub text: String,
}

/// The ring of recent warnings and errors (shared with diagnostics).
#[derive(Debug, Clone, Default)]
pub struct RecentErrors {
    ring: Arc<Mutex<VecDeque<RecentEvent>>>,
    /// Events seen in total (the ring keeps only the last [`RECENT_MAX`]).
    total: Arc<std::sync::atomic::AtomicU64>,
}

impl RecentErrors {
    pub fn push(&self, ev: RecentEvent) {
        self.total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut g = match self.ring.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.len() >= RECENT_MAX {
            g.pop_front();
        }
        g.push_back(ev);
    }
    /// Oldest first.
    pub fn snapshot(&self) -> Vec<RecentEvent> {
        match self.ring.lock() {
            Ok(g) => g.iter().cloned().collect(),
            Err(p) => p.into_inner().iter().cloned().collect(),
        }
    }
    pub fn total(&self) -> u64 {
        self.total.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Collects an event's message and fields into one bounded line.
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if self.0.len() > EVENT_MAX {
            return;
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?} ");
        } else {
            let _ = write!(self.0, "{}={value:?} ", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
            self.0.push(' ');
        } else {
            self.record_debug(field, &value);
        }
    }
}

fn bounded(mut s: String) -> String {
    let s2 = s.trim_end();
    if s2.chars().count() > EVENT_MAX {
        s = s2.chars().take(EVENT_MAX - 1).collect();
        s.push('…');
        s
    } else {
        s2.to_string()
    }
}

/// The layer that feeds [`RecentErrors`] with WARN and ERROR events.
struct RecentLayer(RecentErrors);

impl<S: Subscriber> Layer<S> for RecentLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut t = Text(String::new());
        event.record(&mut t);
        self.0.push(RecentEvent {
            at: crate::wall::now().to_rfc3339(),
            level: if level == Level::ERROR {
                "error"
            } else {
                "warn"
            },
            target: event.metadata().target().chars().take(80).collect(),
            text: bounded(t.0),
        });
    }
}

/// Counts rumqttd's "given index … less than head …, jumping to head"
/// warnings: a local subscriber fell behind the broker's in-memory log and
/// rumqttd skipped the messages it had not read. rumqttd counts them
/// nowhere else; the front door shows the count (`broker_skipped`).
/// (Filtered like every event: a filter that hides rumqttd's warnings hides
/// the count too.)
pub struct SkipLayer(pub Arc<std::sync::atomic::AtomicU64>);

impl<S: Subscriber> Layer<S> for SkipLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() != Level::WARN || !meta.target().starts_with("rumqttd") {
            return;
        }
        let mut t = Text(String::new());
        event.record(&mut t);
        if t.0.contains("jumping to head") {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Drops rumqttd's `router-drop` error for a link whose channel the router
/// closed (`Recv(Disconnected)`). Behind the front door (`crate::frontdoor`)
/// every device or Home Assistant disconnect closes its proxied loopback
/// connection, and rumqttd reports each as an ERROR although nothing went
/// wrong; the front door logs the connection's real end itself. Every
/// other rumqttd event passes.
pub struct QuietLayer;

impl<S: Subscriber> Layer<S> for QuietLayer {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || !meta.target().starts_with("rumqttd") {
            return true;
        }
        let mut t = Text(String::new());
        event.record(&mut t);
        !(t.0.starts_with("router-drop") && t.0.contains("Disconnected"))
    }
}

/// The sd-daemon priority of a level (syslog numbers).
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Formats `<N>LEVEL target: message key=value` for journald.
struct Journal;

impl<S, N> FormatEvent<S, N> for Journal
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        write!(
            writer,
            "<{}>{} {}: ",
            priority(meta.level()),
            meta.level(),
            meta.target()
        )?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(writer, "{}", span.name())?;
                if let Some(f) = span.extensions().get::<FormattedFields<N>>()
                    && !f.is_empty()
                {
                    write!(writer, "{{{f}}}")?;
                }
                write!(writer, ": ")?;
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Changes the log filter of the running process.
#[derive(Debug, Clone)]
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` was set: it wins, remote changes are refused.
    env_override: bool,
    pub recent: RecentErrors,
    /// Skips the embedded broker reported (see [`SkipLayer`]).
    pub broker_skips: Arc<std::sync::atomic::AtomicU64>,
}

impl LogControl {
    /// Switches to the levels of `cfg` (already validated).
    pub fn apply(&self, cfg: &LogConfig) -> Result<(), String> {
        if self.env_override {
            return Err("RUST_LOG is set on this gateway and wins over [log]".into());
        }
        let f = EnvFilter::try_new(filter_text(cfg)).map_err(|e| e.to_string())?;
        self.handle.reload(f).map_err(|e| e.to_string())
    }
}

/// Installs the process-wide subscriber (once; later calls return `None`).
pub fn init(cfg: &LogConfig) -> Option<LogControl> {
    let env = std::env::var("RUST_LOG").ok();
    let text = env.clone().unwrap_or_else(|| filter_text(cfg));
    let filter = EnvFilter::try_new(&text).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    let recent = RecentErrors::default();
    let broker_skips = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let journal = under_systemd.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .event_format(Journal)
    });
    let plain = (!under_systemd).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .event_format(format::Format::default())
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(journal)
        .with(plain)
        .with(RecentLayer(recent.clone()))
        .with(SkipLayer(broker_skips.clone()))
        .with(QuietLayer)
        .try_init()
        .ok()?;
    Some(LogControl {
        handle,
        env_override: env.is_some(),
        recent,
        broker_skips,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skip_layer_counts_rumqttds_jumps_to_head_only() {
        let n = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sub = tracing_subscriber::registry().with(SkipLayer(n.clone()));
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(target: "rumqttd::segments", "given index {} less than head {}, jumping to head", 2, 20381);
            tracing::warn!(target: "rumqttd::segments", "something else");
            tracing::warn!(target: "carebridge", "jumping to head");
            tracing::info!(target: "rumqttd::segments", "jumping to head");
        });
        assert_eq!(n.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn the_quiet_layer_drops_only_rumqttds_router_drop_of_a_closed_link() {
        let n = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sub = tracing_subscriber::registry()
            .with(RecentLayer(RecentErrors::default()))
            .with(CountAll(n.clone()))
            .with(QuietLayer);
        tracing::subscriber::with_default(sub, || {
            tracing::error!(target: "rumqttd::server::broker", error = ?"Recv(Disconnected)", "router-drop");
            tracing::error!(target: "rumqttd::server::broker", error = ?"Io(BrokenPipe)", "router-drop");
            tracing::error!(target: "rumqttd::server::broker", error = ?"Recv(Disconnected)", "connection-stop");
            tracing::error!(target: "carebridge", error = ?"Recv(Disconnected)", "router-drop");
        });
        assert_eq!(n.load(std::sync::atomic::Ordering::Relaxed), 3);
    }

    struct CountAll(Arc<std::sync::atomic::AtomicU64>);
    impl<S: Subscriber> Layer<S> for CountAll {
        fn on_event(&self, _e: &Event<'_>, _c: Context<'_, S>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn module_levels_are_appended_to_the_base_filter() {
        let mut cfg = LogConfig::default();
        cfg.modules
            .insert("carebridge::zigbee".into(), "debug".into());
        let f = filter_text(&cfg);
        assert!(f.starts_with("info,"), "{f}");
        assert!(f.ends_with(",carebridge::zigbee=debug"), "{f}");
        assert!(EnvFilter::try_new(&f).is_ok());
    }

    #[test]
    fn the_pure_filter_check_agrees_with_the_logger() {
        for f in [
            "info",
            "DEBUG",
            "off",
            "info,carebridge::zigbee=debug",
            "carebridge=trace",
            "carebridge::zigbee[port]=debug",
            "warn,rumqttd=off,",
            "carebridge",
            "info,carebridge::zigbee=loud",
            "loud=",
            "=debug",
            "info,,debug",
            "",
            "5",
            "carebridge=5",
            "[span]=info",
            "a b=info",
            "carebridge::x[{a=1}]=debug",
            "carebridge::web=debug=info",
        ] {
            let cfg = LogConfig {
                level: f.into(),
                ..LogConfig::default()
            };
            let pure = validate(&cfg).is_empty();
            assert_eq!(pure, EnvFilter::try_new(f).is_ok(), "{f:?}");
        }
    }

    #[test]
    fn a_bad_module_level_is_named_by_its_key() {
        let mut cfg = LogConfig::default();
        cfg.modules
            .insert("carebridge::zigbee".into(), "loud".into());
        let p = validate(&cfg);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "modules.carebridge::zigbee");
    }

    #[test]
    fn the_ring_keeps_only_the_newest_events_and_bounds_their_text() {
        let r = RecentErrors::default();
        for i in 0..(RECENT_MAX + 7) {
            r.push(RecentEvent {
                at: String::new(),
                level: "warn",
                target: "t".into(),
                text: bounded(format!("{i} {}", "x".repeat(1000))),
            });
        }
        let s = r.snapshot();
        assert_eq!(s.len(), RECENT_MAX);
        assert!(s[0].text.starts_with("7 "));
        assert!(s.iter().all(|e| e.text.chars().count() <= EVENT_MAX));
        assert_eq!(r.total(), (RECENT_MAX + 7) as u64);
    }

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn journald_lines_carry_the_priority_and_no_colours_and_warnings_are_remembered() {
        let buf = Buf::default();
        let w = buf.clone();
        let recent = RecentErrors::default();
        let sub = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(move || w.clone())
                    .with_ansi(false)
                    .event_format(Journal),
            )
            .with(RecentLayer(recent.clone()));
        tracing::subscriber::with_default(sub, || {
            tracing::info!(link = "zigbee", "link up");
            tracing::warn!(link = "zigbee", "link down");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("<6>INFO "), "{text}");
        assert!(
            lines[0].contains("link up") && lines[0].contains("link=\"zigbee\""),
            "{text}"
        );
        assert!(lines[1].starts_with("<4>WARN "), "{text}");
        assert!(!text.contains('\u{1b}'), "no ANSI escapes");
        let r = recent.snapshot();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].level, "warn");
        assert!(r[0].text.contains("link down"), "{:?}", r[0]);
    }

    #[test]
    fn journald_priorities_follow_syslog() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::TRACE), 7);
    }
}
